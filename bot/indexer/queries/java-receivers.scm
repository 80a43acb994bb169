; What a method is called on: `obj.name()` captures `obj` and `name`.

(method_invocation
  object: (_) @call.receiver
  name: (identifier) @call.method)
