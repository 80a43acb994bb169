; Calls in C and C++, which the grammars' own tags.scm do not capture (they have definitions only).

(call_expression
  function: (identifier) @name) @reference.call

(call_expression
  function: (field_expression
    field: (field_identifier) @name)) @reference.call
