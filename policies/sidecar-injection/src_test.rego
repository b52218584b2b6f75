package meshguardsidecarinjection

params := {"namespaces": ["commerce", "commerce-*"]}

ns(name, labels) = {"review": {"object": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}}, "parameters": params}

deployment(namespace, meta) = {"review": {"object": {"kind": "Deployment", "metadata": {"name": "cart", "namespace": namespace}, "spec": {"template": {"metadata": meta}}}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_enabled_namespace_is_allowed {
  results := violation with input as ns("commerce", {"istio-injection": "enabled"})
  count(results) == 0
}

test_revision_label_is_allowed {
  results := violation with input as ns("commerce-eu", {"istio.io/rev": "1-24"})
  count(results) == 0
}

test_unlabelled_commerce_namespace {
  results := violation with input as ns("commerce", {})
  messages(results) == {"Namespace <commerce> holds commerce services and must enable Istio sidecar injection (label istio-injection: enabled, or istio.io/rev)"}
}

test_disabled_wins_over_revision {
  results := violation with input as ns("commerce-us", {"istio-injection": "disabled", "istio.io/rev": "1-24"})
  count(results) == 1
}

test_namespace_without_labels_field {
  inp := {"review": {"object": {"kind": "Namespace", "metadata": {"name": "commerce-ap"}}}, "parameters": params}
  results := violation with input as inp
  count(results) == 1
}

test_other_namespaces_are_ignored {
  results := violation with input as ns("monitoring", {})
  count(results) == 0
}

test_workload_opting_out_by_annotation {
  results := violation with input as deployment("commerce", {"annotations": {"sidecar.istio.io/inject": "false"}})
  messages(results) == {"Deployment <cart> in commerce namespace <commerce> opts out of Istio sidecar injection (sidecar.istio.io/inject: \"false\")"}
}

test_workload_opting_out_by_label {
  results := violation with input as deployment("commerce-eu", {"labels": {"sidecar.istio.io/inject": "false"}})
  count(results) == 1
}

test_workload_with_injection_is_allowed {
  results := violation with input as deployment("commerce", {"labels": {"app": "cart", "sidecar.istio.io/inject": "true"}})
  count(results) == 0
}

test_workload_outside_commerce_may_opt_out {
  results := violation with input as deployment("batch", {"annotations": {"sidecar.istio.io/inject": "false"}})
  count(results) == 0
}
