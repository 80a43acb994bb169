; What a method is called on: `obj.name()` captures `obj` and `name` (TypeScript and TSX too).

(call_expression
  function: (member_expression
    object: (_) @call.receiver
    property: (property_identifier) @call.method))
