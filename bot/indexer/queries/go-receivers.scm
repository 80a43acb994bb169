; What a function or method is called on: `pkg.Name()`, `value.Name()` capture `pkg`/`value` and `Name`.

(call_expression
  function: (selector_expression
    operand: (_) @call.receiver
    field: (field_identifier) @call.method))
