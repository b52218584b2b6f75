package fuzz

# A `with` modifier spanning lines after a `not` call: copied into each argument's binding as
# written, its line breaks moved every later line (and its comment, copied onto one line, would
# have commented out the rest of it). The bindings read the mocked input, so no violation.
allowed(x, _) { x == "ok" }

violation[{"msg": "mocked"}] {
  not allowed(input.review.object.spec.containers[0].image, input.parameters.p) with input as {
    "review": {"object": {"spec": {"containers": [{"image": "ok"}]}}}, # a mock
    "parameters": {"p": `two
lines`}
  }
}
