package meshguardcontainerresources

params := {
  "cpu": {"minRequest": "50m", "maxLimit": "2"},
  "memory": {"minRequest": "64Mi", "maxLimit": "4Gi"},
}

good_resources := {
  "requests": {"cpu": "100m", "memory": "128Mi"},
  "limits": {"cpu": "1", "memory": "1Gi"},
}

pod(containers) = {"review": {"kind": {"kind": "Pod"}, "object": {
  "kind": "Pod",
  "metadata": {"name": "cart", "namespace": "commerce"},
  "spec": {"containers": containers},
}}, "parameters": params}

deployment(pod_spec) = {"review": {"kind": {"kind": "Deployment"}, "object": {
  "kind": "Deployment",
  "metadata": {"name": "order", "namespace": "commerce"},
  "spec": {"template": {"spec": pod_spec}},
}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_bounded_pod_is_allowed {
  results := violation with input as pod([{"name": "app", "resources": good_resources}])
  count(results) == 0
}

test_numbers_and_exponents_are_quantities {
  resources := {"requests": {"cpu": 0.5, "memory": "129e6"}, "limits": {"cpu": 1, "memory": "2G"}}
  results := violation with input as pod([{"name": "app", "resources": resources}])
  count(results) == 0
}

test_missing_limits_are_named {
  resources := {"requests": {"cpu": "100m", "memory": "128Mi"}}
  results := violation with input as pod([{"name": "app", "resources": resources}])
  messages(results) == {
    "Pod <cart>: container <app> does not set resources.limits.cpu",
    "Pod <cart>: container <app> does not set resources.limits.memory",
  }
}

test_no_resources_at_all_gives_four_violations {
  results := violation with input as pod([{"name": "app"}])
  count(results) == 4
}

test_cpu_limit_above_maximum {
  resources := object.union(good_resources, {"limits": {"cpu": "2500m", "memory": "1Gi"}})
  results := violation with input as pod([{"name": "app", "resources": resources}])
  messages(results) == {"Pod <cart>: container <app> cpu limit <2500m> is above the maximum <2>"}
}

test_memory_limit_at_maximum_is_allowed {
  resources := object.union(good_resources, {"limits": {"cpu": "1", "memory": "4096Mi"}})
  results := violation with input as pod([{"name": "app", "resources": resources}])
  count(results) == 0
}

test_memory_limit_above_maximum_in_decimal_units {
  resources := object.union(good_resources, {"limits": {"cpu": "1", "memory": "5G"}})
  results := violation with input as pod([{"name": "app", "resources": resources}])
  messages(results) == {"Pod <cart>: container <app> memory limit <5G> is above the maximum <4Gi>"}
}

test_request_below_minimum {
  resources := object.union(good_resources, {"requests": {"cpu": "10m", "memory": "128Mi"}})
  results := violation with input as pod([{"name": "app", "resources": resources}])
  messages(results) == {"Pod <cart>: container <app> cpu request <10m> is below the minimum <50m>"}
}

test_request_above_limit {
  resources := {"requests": {"cpu": "100m", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
  results := violation with input as pod([{"name": "app", "resources": resources}])
  messages(results) == {"Pod <cart>: container <app> memory request <2Gi> is above its limit <1Gi>"}
}

test_unreadable_quantity {
  resources := object.union(good_resources, {"limits": {"cpu": "one", "memory": "1Gi"}})
  results := violation with input as pod([{"name": "app", "resources": resources}])
  messages(results) == {"Pod <cart>: container <app> has an unreadable cpu limits <one>"}
}

test_init_containers_are_checked {
  spec := {"containers": [{"name": "app", "resources": good_resources}], "initContainers": [{"name": "migrate", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1"}}}]}
  results := violation with input as deployment(spec)
  messages(results) == {"Deployment <order>: container <migrate> does not set resources.limits.memory"}
}

test_without_bounds_only_presence_is_checked {
  unbounded := {"requests": {"cpu": "1m", "memory": "1"}, "limits": {"cpu": "64", "memory": "1Ti"}}
  inp := {"review": pod([{"name": "app", "resources": unbounded}]).review, "parameters": {}}
  results := violation with input as inp
  count(results) == 0
}

test_other_kinds_are_ignored {
  inp := {"review": {"object": {"kind": "Service", "metadata": {"name": "cart"}, "spec": {}}}, "parameters": params}
  results := violation with input as inp
  count(results) == 0
}
