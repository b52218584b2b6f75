package meshguardhpareplicas

params := {"maxReplicas": 20, "minReplicas": 2}

hpa(spec) = {"review": {"object": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "search"}, "spec": spec}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_within_bounds_is_allowed {
  results := violation with input as hpa({"minReplicas": 2, "maxReplicas": 20})
  count(results) == 0
}

test_max_above_limit {
  results := violation with input as hpa({"minReplicas": 2, "maxReplicas": 50})
  messages(results) == {"HorizontalPodAutoscaler <search> maxReplicas <50> is above the limit <20>"}
}

test_min_below_floor {
  results := violation with input as hpa({"minReplicas": 1, "maxReplicas": 10})
  messages(results) == {"HorizontalPodAutoscaler <search> minReplicas <1> is below the floor <2>"}
}

test_unset_min_defaults_to_one {
  results := violation with input as hpa({"maxReplicas": 10})
  messages(results) == {"HorizontalPodAutoscaler <search> minReplicas <1> is below the floor <2>"}
}

test_without_floor_only_the_ceiling_counts {
  inp := {"review": hpa({"maxReplicas": 30}).review, "parameters": {"maxReplicas": 40}}
  results := violation with input as inp
  count(results) == 0
}
