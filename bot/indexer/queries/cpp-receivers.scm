; What a method is called on: `s.h()`, `p->h()`, `this->h()`, and the class or namespace of `A::h()`, `A::h<T>()`.

(call_expression
  function: (field_expression
    argument: (_) @call.receiver
    field: (field_identifier) @call.method))

(call_expression
  function: (qualified_identifier
    scope: (_) @call.receiver
    name: (identifier) @call.method))

(call_expression
  function: (qualified_identifier
    scope: (_) @call.receiver
    name: (template_function
      name: (identifier) @call.method)))
