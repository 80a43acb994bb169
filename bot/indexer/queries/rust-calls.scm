; Calls through a path, which the grammar's own tags.scm does not capture: `Config::load()`, `helpers::tidy()`,
; `Vec::<u8>::with_capacity(3)`.

(call_expression
  function: (scoped_identifier
    name: (identifier) @name)) @reference.call

(call_expression
  function: (generic_function
    function: (scoped_identifier
      name: (identifier) @name))) @reference.call
