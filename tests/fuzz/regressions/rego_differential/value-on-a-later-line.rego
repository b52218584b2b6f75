1package x

# The second definition's value follows a comment, on the next line: the VM's rewrite of a rule
# with several definitions replaced the head by `__mg_defs_r[value]` on one line and took the
# line break before the value away (the VM's module lost a line).
r = 1 { input.review.object.metadata.name == "a" }
r = # the value follows
  2 { input.review.object.metadata.name == "b" }

violation[{"msg": sprintf("r is %v", [r])}] { r }
#--input--
{"object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}, "spec": {"containers": []}}, "parameters": {}}
