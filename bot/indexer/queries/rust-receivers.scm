; What a method is called on: `value.name()` captures `value` and `name`.

(call_expression
  function: (field_expression
    value: (_) @call.receiver
    field: (field_identifier) @call.method))
