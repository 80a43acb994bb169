; What a call in C++ goes through beyond C's (c-receivers.scm, read for C++ too): the class or namespace of
; `A::h()` and `A::h<T>()`.

(call_expression
  function: (qualified_identifier
    scope: (_) @call.receiver
    name: (identifier) @call.method))

(call_expression
  function: (qualified_identifier
    scope: (_) @call.receiver
    name: (template_function
      name: (identifier) @call.method)))
