; What a method is called on: `obj.name()` captures `obj` and `name`.

(call
  function: (attribute
    object: (_) @call.receiver
    attribute: (identifier) @call.method))
