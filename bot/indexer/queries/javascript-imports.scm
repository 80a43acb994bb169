; `import { name [as alias] } from "module"`: where a called name comes from (JavaScript and TypeScript).

(import_statement
  (import_clause
    (named_imports
      (import_specifier
        name: (identifier) @import.name
        alias: (identifier)? @import.alias)))
  source: (string (string_fragment) @import.module))
