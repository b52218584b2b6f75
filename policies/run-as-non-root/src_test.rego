package meshguardrunasnonroot

pod(spec) = {"review": {"object": {"kind": "Pod", "metadata": {"name": "order"}, "spec": spec}}, "parameters": {}}

messages(results) = {m | m := results[_].msg}

test_pod_level_non_root_is_inherited {
  results := violation with input as pod({"securityContext": {"runAsNonRoot": true, "runAsUser": 10001}, "containers": [{"name": "app"}, {"name": "side"}]})
  count(results) == 0
}

test_container_level_non_root {
  results := violation with input as pod({"containers": [{"name": "app", "securityContext": {"runAsNonRoot": true}}]})
  count(results) == 0
}

test_missing_everywhere {
  results := violation with input as pod({"containers": [{"name": "app"}]})
  messages(results) == {"Pod <order>: container <app> may run as root; set securityContext.runAsNonRoot: true on the pod or the container"}
}

test_container_override_to_false_wins {
  results := violation with input as pod({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "app", "securityContext": {"runAsNonRoot": false}}]})
  messages(results) == {"Pod <order>: container <app> may run as root; set securityContext.runAsNonRoot: true on the pod or the container"}
}

test_explicit_user_zero {
  results := violation with input as pod({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "app", "securityContext": {"runAsUser": 0}}]})
  messages(results) == {"Pod <order>: container <app> runs as user 0 (root)"}
}

test_pod_user_zero_is_inherited {
  results := violation with input as pod({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}, "containers": [{"name": "app"}]})
  messages(results) == {"Pod <order>: container <app> runs as user 0 (root)"}
}

test_container_user_overrides_pod_user_zero {
  results := violation with input as pod({"securityContext": {"runAsNonRoot": true, "runAsUser": 0}, "containers": [{"name": "app", "securityContext": {"runAsUser": 1000}}]})
  count(results) == 0
}

test_init_container_is_checked {
  inp := {"review": {"object": {"kind": "Deployment", "metadata": {"name": "order"}, "spec": {"template": {"spec": {
    "containers": [{"name": "app", "securityContext": {"runAsNonRoot": true}}],
    "initContainers": [{"name": "chown"}],
  }}}}}}
  results := violation with input as inp
  messages(results) == {"Deployment <order>: container <chown> may run as root; set securityContext.runAsNonRoot: true on the pod or the container"}
}
