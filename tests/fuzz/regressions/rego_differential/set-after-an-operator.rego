1package fuzz

# A set literal after an operator in a rule's value (`{1} | {2}`) was read as the rule's body, so
# the real body looked like a chained body and got a copy of the head before it: the module no
# longer parsed, where OPA and raw regorus decide.
r = {1} | {2} { input.review.object.metadata.name == "a" }

violation[{"msg": sprintf("fuzz:%v", [count(r)])}] { r }
#--input--
{"object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": []}}, "parameters": {}}
