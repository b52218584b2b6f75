package meshguarduniqueserviceselector

service(name, ns, selector) = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector, "ports": [{"port": 80}]}}

review(svc) = {"review": {"object": svc}, "parameters": {}}

inventory(services) = {"namespace": {ns: {"v1": {"Service": {name: svc | svc := services[_]; svc.metadata.namespace == ns; name := svc.metadata.name}}} | ns := services[_].metadata.namespace}}

messages(results) = {m | m := results[_].msg}

test_distinct_selectors_are_allowed {
  existing := [service("cart", "commerce", {"app": "cart"})]
  results := violation with input as review(service("order", "commerce", {"app": "order"})) with data.inventory as inventory(existing)
  count(results) == 0
}

test_same_selector_is_denied {
  existing := [service("cart", "commerce", {"app": "cart"})]
  results := violation with input as review(service("cart-v2", "commerce", {"app": "cart"})) with data.inventory as inventory(existing)
  messages(results) == {"Service <cart-v2> in namespace <commerce> has the same selector {\"app\": \"cart\"} as Service <cart>; selectors must be unique per namespace"}
}

test_updating_the_same_service_is_allowed {
  existing := [service("cart", "commerce", {"app": "cart"})]
  results := violation with input as review(service("cart", "commerce", {"app": "cart"})) with data.inventory as inventory(existing)
  count(results) == 0
}

test_other_namespace_is_allowed {
  existing := [service("cart", "staging", {"app": "cart"})]
  results := violation with input as review(service("cart-v2", "commerce", {"app": "cart"})) with data.inventory as inventory(existing)
  count(results) == 0
}

test_superset_selector_is_a_different_selector {
  existing := [service("cart", "commerce", {"app": "cart"})]
  results := violation with input as review(service("cart-canary", "commerce", {"app": "cart", "track": "canary"})) with data.inventory as inventory(existing)
  count(results) == 0
}

test_services_without_selector_are_not_compared {
  existing := [service("db", "commerce", {})]
  results := violation with input as review(service("db-external", "commerce", {})) with data.inventory as inventory(existing)
  count(results) == 0
}
