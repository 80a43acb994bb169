; Calls in C, which the grammar's own tags.scm does not capture (it has definitions only).

(call_expression
  function: (identifier) @name) @reference.call

(call_expression
  function: (field_expression
    field: (field_identifier) @name)) @reference.call
