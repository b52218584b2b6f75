1package fuzz

# Find 15 (rego_differential): a function whose value iterates gives one call one value per
# container. OPA raises `functions must not produce multiple outputs for same inputs` when two
# differ, as regorus' interpreter does; regorus' VM took one of them and reported a violation.
# The engine now runs such a template on the interpreter.
f2(v7) = count(input.review.object.spec.containers[_].image) {
  v7 > 0
}

violation[{"msg": msg}] {
  n := f2(1)
  msg := sprintf("fuzz:%v", [n])
}
#--input--
{"object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "registry.example.com/cart:1.2"}]}}, "parameters": {}}
