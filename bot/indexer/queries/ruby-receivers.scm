; What a method is called on: `obj.name`, `obj&.name` capture `obj` and `name`.

(call
  receiver: (_) @call.receiver
  method: (identifier) @call.method)
