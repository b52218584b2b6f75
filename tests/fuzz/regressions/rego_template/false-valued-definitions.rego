package fuzz

# Two definitions of `c0` with the value `false`: the VM's rewrite looked the value up as
# `__mg_defs_c0[__mg_value]`, an expression whose value is `false`, so `c0` was undefined on the
# VM, and the violation OPA, raw regorus and the interpreter report was missing.
c0 = false { input.parameters.list }
c0 = false { input.parameters.list }

violation[{"msg": "fuzz:cart"}] { v := c0; v == false }
