package meshguardrequiredlabels

params := {"labels": [
  {"key": "app"},
  {"key": "version", "allowedRegex": "^v[0-9]+(\\.[0-9]+)*$"},
  {"key": "team"},
]}

complete := {"app": "payment", "version": "v2", "team": "payments"}

deployment(labels, pod_labels) = {"review": {"object": {
  "kind": "Deployment",
  "metadata": {"name": "payment", "labels": labels},
  "spec": {"template": {"metadata": {"labels": pod_labels}, "spec": {"containers": []}}},
}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_complete_labels_are_allowed {
  results := violation with input as deployment(complete, complete)
  count(results) == 0
}

test_missing_team_on_the_deployment {
  results := violation with input as deployment({"app": "payment", "version": "v2"}, complete)
  messages(results) == {"Deployment <payment> is missing the required label <team>"}
}

test_missing_version_on_the_pod_template {
  results := violation with input as deployment(complete, {"app": "payment", "team": "payments"})
  messages(results) == {"Deployment <payment> pod template is missing the required label <version>"}
}

test_no_labels_anywhere {
  inp := {"review": {"object": {"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"template": {"spec": {}}}}}, "parameters": params}
  results := violation with input as inp
  count(results) == 6
}

test_value_must_match_the_pattern {
  results := violation with input as deployment(object.union(complete, {"version": "latest"}), complete)
  messages(results) == {"Deployment <payment> label <version> has the value <latest>, which does not match <^v[0-9]+(\\.[0-9]+)*$>"}
}

test_dotted_version_matches {
  labels := object.union(complete, {"version": "v2.1.3"})
  results := violation with input as deployment(labels, labels)
  count(results) == 0
}

test_pod_is_checked_on_its_own_labels {
  inp := {"review": {"object": {"kind": "Pod", "metadata": {"name": "payment-7d9f", "labels": {"app": "payment"}}, "spec": {}}}, "parameters": params}
  results := violation with input as inp
  messages(results) == {
    "Pod <payment-7d9f> is missing the required label <version>",
    "Pod <payment-7d9f> is missing the required label <team>",
  }
}

test_cronjob_template_labels {
  inp := {"review": {"object": {"kind": "CronJob", "metadata": {"name": "report", "labels": complete}, "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "report", "version": "v1"}}}}}}}}, "parameters": params}
  results := violation with input as inp
  messages(results) == {"CronJob <report> pod template is missing the required label <team>"}
}

test_no_parameters_no_requirements {
  inp := {"review": deployment({}, {}).review, "parameters": {}}
  results := violation with input as inp
  count(results) == 0
}
