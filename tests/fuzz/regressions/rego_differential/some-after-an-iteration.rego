1package fuzz

# `some k` after an iteration: regorus' interpreter declares k again for the second element
# (divergence 10); OPA and the VM report the violation.
violation[{"msg": "m"}] {
  x := input.parameters.list[_]
  some k
  input.review.object.spec.y[k] == x
}
#--input--
{"object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"y": [1, 2]}}, "parameters": {"list": [1, 2]}}
