package meshguardtier1replicas

params := {"services": ["order", "payment", "user"]}

deployment(app, replicas) = {"review": {"object": {"kind": "Deployment", "metadata": {"name": app, "labels": {"app": app}}, "spec": {"replicas": replicas}}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_two_replicas_are_enough {
  results := violation with input as deployment("payment", 2)
  count(results) == 0
}

test_one_replica_is_denied {
  results := violation with input as deployment("payment", 1)
  messages(results) == {"Deployment <payment> runs tier-1 service <payment> with 1 replica(s); tier-1 services need at least 2"}
}

test_zero_replicas_is_denied {
  results := violation with input as deployment("order", 0)
  count(results) == 1
}

test_missing_replicas_defaults_to_one {
  inp := {"review": {"object": {"kind": "StatefulSet", "metadata": {"name": "user-db", "labels": {"app": "user"}}, "spec": {}}}, "parameters": params}
  results := violation with input as inp
  messages(results) == {"StatefulSet <user-db> runs tier-1 service <user> with 1 replica(s); tier-1 services need at least 2"}
}

test_other_services_may_run_one_replica {
  results := violation with input as deployment("search", 1)
  count(results) == 0
}

test_custom_label_and_minimum {
  inp := {"review": {"object": {"kind": "Deployment", "metadata": {"name": "pay", "labels": {"service": "payment"}}, "spec": {"replicas": 2}}}, "parameters": {"services": ["payment"], "serviceLabel": "service", "minReplicas": 3}}
  results := violation with input as inp
  messages(results) == {"Deployment <pay> runs tier-1 service <payment> with 2 replica(s); tier-1 services need at least 3"}
}
