package meshguardrequiredprobes

params := {"probes": ["livenessProbe", "readinessProbe"], "probeTypes": ["httpGet", "tcpSocket", "exec", "grpc"]}

http_probe := {"httpGet": {"path": "/healthz", "port": 8080}}

pod(containers) = {"review": {"object": {
  "kind": "Pod",
  "metadata": {"name": "product"},
  "spec": {"containers": containers},
}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_both_probes_are_allowed {
  results := violation with input as pod([{"name": "app", "livenessProbe": http_probe, "readinessProbe": {"tcpSocket": {"port": 8080}}}])
  count(results) == 0
}

test_missing_readiness {
  results := violation with input as pod([{"name": "app", "livenessProbe": http_probe}])
  messages(results) == {"Pod <product>: container <app> has no readinessProbe"}
}

test_missing_both {
  results := violation with input as pod([{"name": "app"}])
  messages(results) == {"Pod <product>: container <app> has no livenessProbe", "Pod <product>: container <app> has no readinessProbe"}
}

test_probe_without_handler {
  results := violation with input as pod([{"name": "app", "livenessProbe": {"periodSeconds": 10}, "readinessProbe": http_probe}])
  messages(results) == {"Pod <product>: container <app> livenessProbe has none of the handlers [\"httpGet\", \"tcpSocket\", \"exec\", \"grpc\"]"}
}

test_grpc_handler_counts {
  results := violation with input as pod([{"name": "app", "livenessProbe": {"grpc": {"port": 9090}}, "readinessProbe": {"exec": {"command": ["true"]}}}])
  count(results) == 0
}

test_defaults_without_parameters {
  inp := {"review": pod([{"name": "app", "readinessProbe": http_probe}]).review, "parameters": {}}
  results := violation with input as inp
  messages(results) == {"Pod <product>: container <app> has no livenessProbe"}
}

test_init_containers_are_not_checked {
  inp := {"review": {"object": {"kind": "Deployment", "metadata": {"name": "product"}, "spec": {"template": {"spec": {
    "initContainers": [{"name": "migrate"}],
    "containers": [{"name": "app", "livenessProbe": http_probe, "readinessProbe": http_probe}],
  }}}}}, "parameters": params}
  results := violation with input as inp
  count(results) == 0
}

test_every_container_of_a_deployment {
  inp := {"review": {"object": {"kind": "Deployment", "metadata": {"name": "product"}, "spec": {"template": {"spec": {
    "containers": [{"name": "app", "livenessProbe": http_probe, "readinessProbe": http_probe}, {"name": "cache"}],
  }}}}}, "parameters": params}
  results := violation with input as inp
  messages(results) == {"Deployment <product>: container <cache> has no livenessProbe", "Deployment <product>: container <cache> has no readinessProbe"}
}
