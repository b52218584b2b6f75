package meshguardtier1disruptionbudget

params := {"services": ["order", "payment", "user"]}

pod_labels := {"app": "order", "version": "v3", "team": "checkout"}

order := {"review": {"object": {"kind": "Deployment", "metadata": {"name": "order", "namespace": "commerce", "labels": {"app": "order"}}, "spec": {"replicas": 3, "template": {"metadata": {"labels": pod_labels}}}}}, "parameters": params}

pdb(ns, selector) = {"namespace": {ns: {"policy/v1": {"PodDisruptionBudget": {"budget": {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "budget", "namespace": ns}, "spec": {"minAvailable": 1, "selector": selector}}}}}}}

messages(results) = {m | m := results[_].msg}

test_matching_budget_is_allowed {
  results := violation with input as order with data.inventory as pdb("commerce", {"matchLabels": {"app": "order"}})
  count(results) == 0
}

test_no_inventory_is_denied {
  results := violation with input as order with data.inventory as {}
  messages(results) == {"Deployment <order> runs tier-1 service <order> but no PodDisruptionBudget in namespace <commerce> selects its pods"}
}

test_budget_in_another_namespace_does_not_count {
  results := violation with input as order with data.inventory as pdb("staging", {"matchLabels": {"app": "order"}})
  count(results) == 1
}

test_budget_for_another_app_does_not_count {
  results := violation with input as order with data.inventory as pdb("commerce", {"matchLabels": {"app": "payment"}})
  count(results) == 1
}

test_match_expressions_in {
  selector := {"matchExpressions": [{"key": "app", "operator": "In", "values": ["order", "payment"]}]}
  results := violation with input as order with data.inventory as pdb("commerce", selector)
  count(results) == 0
}

test_match_expressions_not_in_excludes {
  selector := {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["order"]}]}
  results := violation with input as order with data.inventory as pdb("commerce", selector)
  count(results) == 1
}

test_match_expressions_exists_and_does_not_exist {
  selector := {"matchLabels": {"team": "checkout"}, "matchExpressions": [{"key": "version", "operator": "Exists"}, {"key": "canary", "operator": "DoesNotExist"}]}
  results := violation with input as order with data.inventory as pdb("commerce", selector)
  count(results) == 0
}

test_empty_selector_selects_everything {
  results := violation with input as order with data.inventory as pdb("commerce", {})
  count(results) == 0
}

test_namespace_from_the_request {
  inp := {"review": {"namespace": "commerce", "object": {"kind": "Deployment", "metadata": {"name": "order", "labels": {"app": "order"}}, "spec": {"template": {"metadata": {"labels": pod_labels}}}}}, "parameters": params}
  results := violation with input as inp with data.inventory as pdb("commerce", {"matchLabels": {"app": "order"}})
  count(results) == 0
}

test_other_services_need_no_budget {
  inp := {"review": {"object": {"kind": "Deployment", "metadata": {"name": "search", "namespace": "commerce", "labels": {"app": "search"}}, "spec": {}}}, "parameters": params}
  results := violation with input as inp with data.inventory as {}
  count(results) == 0
}
