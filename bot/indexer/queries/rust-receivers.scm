; What a method is called on: `value.name()` captures `value` and `name`.

(call_expression
  function: (field_expression
    value: (_) @call.receiver
    field: (field_identifier) @call.method))

; The type or module of a call through a path: `Config::load()` captures `Config` and `load`.

(call_expression
  function: (scoped_identifier
    path: (_) @call.receiver
    name: (identifier) @call.method))

(call_expression
  function: (generic_function
    function: (scoped_identifier
      path: (_) @call.receiver
      name: (identifier) @call.method)))
