package meshguardhostnamespaces

deployment(spec) = {"review": {"object": {"kind": "Deployment", "metadata": {"name": "search"}, "spec": {"template": {"spec": spec}}}}, "parameters": {}}

messages(results) = {m | m := results[_].msg}

test_isolated_pod_is_allowed {
  results := violation with input as deployment({"hostNetwork": false, "containers": [{"name": "app"}]})
  count(results) == 0
}

test_host_network_is_denied {
  results := violation with input as deployment({"hostNetwork": true, "containers": [{"name": "app"}]})
  messages(results) == {"Deployment <search> shares a host namespace: hostNetwork is true"}
}

test_host_pid_and_ipc_are_denied {
  results := violation with input as deployment({"hostPID": true, "hostIPC": true, "containers": [{"name": "app"}]})
  messages(results) == {"Deployment <search> shares a host namespace: hostPID is true", "Deployment <search> shares a host namespace: hostIPC is true"}
}

test_pod_is_checked {
  inp := {"review": {"object": {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"hostNetwork": true}}}}
  results := violation with input as inp
  count(results) == 1
}
