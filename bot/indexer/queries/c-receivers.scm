; What a function pointer member is called through: `s.h()`, `p->h()` capture `s`/`p` and `h` (C and C++).

(call_expression
  function: (field_expression
    argument: (_) @call.receiver
    field: (field_identifier) @call.method))
