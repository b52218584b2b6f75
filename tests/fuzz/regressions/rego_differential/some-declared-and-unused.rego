1package fuzz

# `some k` declared and never used: OPA refuses the module (divergence 11), raw regorus runs it.
violation[{"msg": "m"}] {
  some k
  input.review.object.spec.y[_] == 1
}
#--input--
{"object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"y": [1, 2]}}, "parameters": {}}
