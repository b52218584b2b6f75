package meshguardcapabilities

params := {"allowedCapabilities": ["NET_BIND_SERVICE"], "requiredDropCapabilities": ["ALL"]}

pod(containers) = {"review": {"object": {"kind": "Pod", "metadata": {"name": "user"}, "spec": {"containers": containers}}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_drop_all_add_allowed_is_allowed {
  results := violation with input as pod([{"name": "app", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}])
  count(results) == 0
}

test_cap_prefix_and_case_are_ignored {
  results := violation with input as pod([{"name": "app", "securityContext": {"capabilities": {"drop": ["all"], "add": ["CAP_NET_BIND_SERVICE"]}}}])
  count(results) == 0
}

test_added_capability_outside_allowlist {
  results := violation with input as pod([{"name": "app", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE"]}}}])
  messages(results) == {"Pod <user>: container <app> adds the capability <NET_ADMIN>, which is not in the allowlist [\"NET_BIND_SERVICE\"]"}
}

test_missing_drop {
  results := violation with input as pod([{"name": "app"}])
  messages(results) == {"Pod <user>: container <app> must drop the capability <ALL> (securityContext.capabilities.drop)"}
}

test_dropping_some_is_not_dropping_all {
  results := violation with input as pod([{"name": "app", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}])
  count(results) == 1
}

test_specific_required_drop_satisfied_by_all {
  inp := {"review": pod([]).review, "parameters": {"requiredDropCapabilities": ["NET_RAW"]}}
  results := violation with input as object.union(inp, {"review": {"object": {"spec": {"containers": [{"name": "app", "securityContext": {"capabilities": {"drop": ["ALL"]}}}]}}}})
  count(results) == 0
}

test_wildcard_allows_everything {
  inp := {"review": pod([{"name": "app", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]).review, "parameters": {"allowedCapabilities": ["*"]}}
  results := violation with input as inp
  count(results) == 0
}

test_no_allowlist_denies_any_addition {
  inp := {"review": pod([{"name": "app", "securityContext": {"capabilities": {"add": ["CHOWN"]}}}]).review, "parameters": {}}
  results := violation with input as inp
  messages(results) == {"Pod <user>: container <app> adds the capability <CHOWN>, which is not in the allowlist []"}
}

test_init_containers_are_checked {
  inp := {"review": {"object": {"kind": "Job", "metadata": {"name": "migrate"}, "spec": {"template": {"spec": {
    "containers": [{"name": "app", "securityContext": {"capabilities": {"drop": ["ALL"]}}}],
    "initContainers": [{"name": "setup", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_PTRACE"]}}}],
  }}}}}, "parameters": params}
  results := violation with input as inp
  messages(results) == {"Job <migrate>: container <setup> adds the capability <SYS_PTRACE>, which is not in the allowlist [\"NET_BIND_SERVICE\"]"}
}
