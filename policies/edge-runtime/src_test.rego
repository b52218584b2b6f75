package meshguardedgeruntime

params := {"runtimeClassName": "wasmedge", "nodeSelector": {"node-type": "edge"}}

deployment(spec) = {"review": {"object": {"kind": "Deployment", "metadata": {"name": "inventory-edge", "labels": {"node-type": "edge"}}, "spec": {"template": {"spec": spec}}}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_wasmedge_on_edge_nodes_is_allowed {
  results := violation with input as deployment({"runtimeClassName": "wasmedge", "nodeSelector": {"node-type": "edge", "zone": "store-12"}})
  count(results) == 0
}

test_missing_runtime_class {
  results := violation with input as deployment({"nodeSelector": {"node-type": "edge"}})
  messages(results) == {"Deployment <inventory-edge> runs on edge nodes and must use runtimeClassName <wasmedge>, found <none>"}
}

test_wrong_runtime_class {
  results := violation with input as deployment({"runtimeClassName": "runc", "nodeSelector": {"node-type": "edge"}})
  messages(results) == {"Deployment <inventory-edge> runs on edge nodes and must use runtimeClassName <wasmedge>, found <runc>"}
}

test_missing_node_selector {
  results := violation with input as deployment({"runtimeClassName": "wasmedge"})
  messages(results) == {"Deployment <inventory-edge> runs on edge nodes and must set nodeSelector <node-type: edge>"}
}

test_wrong_node_selector_value {
  results := violation with input as deployment({"runtimeClassName": "wasmedge", "nodeSelector": {"node-type": "core"}})
  count(results) == 1
}

test_pod_is_checked {
  inp := {"review": {"object": {"kind": "Pod", "metadata": {"name": "inventory-edge-x"}, "spec": {}}}, "parameters": params}
  results := violation with input as inp
  count(results) == 2
}
