package meshguardprivilegedcontainers

pod(spec) = {"review": {"object": {"kind": "Pod", "metadata": {"name": "cart"}, "spec": spec}}, "parameters": {}}

messages(results) = {m | m := results[_].msg}

test_unprivileged_is_allowed {
  results := violation with input as pod({"containers": [{"name": "app", "securityContext": {"privileged": false}}, {"name": "side"}]})
  count(results) == 0
}

test_privileged_container_is_denied {
  results := violation with input as pod({"containers": [{"name": "app", "securityContext": {"privileged": true}}]})
  messages(results) == {"Pod <cart>: container <app> is privileged (securityContext.privileged: true)"}
}

test_privileged_init_container_is_denied {
  results := violation with input as pod({"containers": [{"name": "app"}], "initContainers": [{"name": "setup", "securityContext": {"privileged": true}}]})
  messages(results) == {"Pod <cart>: container <setup> is privileged (securityContext.privileged: true)"}
}

test_privileged_ephemeral_container_is_denied {
  results := violation with input as pod({"containers": [{"name": "app"}], "ephemeralContainers": [{"name": "debugger", "securityContext": {"privileged": true}}]})
  count(results) == 1
}

test_daemonset_template_is_checked {
  inp := {"review": {"object": {"kind": "DaemonSet", "metadata": {"name": "node-agent"}, "spec": {"template": {"spec": {"containers": [{"name": "agent", "securityContext": {"privileged": true}}]}}}}}}
  results := violation with input as inp
  messages(results) == {"DaemonSet <node-agent>: container <agent> is privileged (securityContext.privileged: true)"}
}
