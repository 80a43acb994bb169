; `from module import name [as alias]`: where a called name comes from.

(import_from_statement
  module_name: [(dotted_name) (relative_import)] @module
  name: (dotted_name) @name)

(import_from_statement
  module_name: [(dotted_name) (relative_import)] @module
  name: (aliased_import
    name: (dotted_name) @name
    alias: (identifier) @alias))
