package meshguardrequiredlabels

# Workloads carry the labels the platform routes and bills by (app, version, team), on the
# object and, for controllers, on the pod template (Istio reads app and version from the pods).
# A label may be constrained by a regular expression (`allowedRegex`, unanchored as in the
# Gatekeeper library: write ^ and $ yourself).
#
# regorus notes: `not has_key(labels, key)` and `not regex.match(pattern, value)` only get
# bound arguments (the pattern is bound before the negation).

subject = s {
  obj := input.review.object
  s := sprintf("%v <%v>", [obj.kind, object.get(obj, ["metadata", "name"], object.get(input.review, "name", ""))])
}

template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}

pod_template(obj) = t {
  template_kinds[obj.kind]
  t := obj.spec.template
}

pod_template(obj) = t {
  obj.kind == "CronJob"
  t := obj.spec.jobTemplate.spec.template
}

# [owner, labels]: the object's own labels and, for controllers, its pod template's.
label_sets[[owner, labels]] {
  owner := subject
  labels := object.get(input.review.object, ["metadata", "labels"], {})
}

label_sets[[owner, labels]] {
  t := pod_template(input.review.object)
  owner := sprintf("%v pod template", [subject])
  labels := object.get(t, ["metadata", "labels"], {})
}

has_key(obj, key) {
  _ = obj[key]
}

violation[{"msg": msg, "details": {"missing_label": key}}] {
  entry := input.parameters.labels[_]
  key := entry.key
  set := label_sets[_]
  owner := set[0]
  labels := set[1]
  not has_key(labels, key)
  msg := sprintf("%v is missing the required label <%v>", [owner, key])
}

violation[{"msg": msg, "details": {"label": key, "value": value, "allowedRegex": pattern}}] {
  entry := input.parameters.labels[_]
  key := entry.key
  pattern := entry.allowedRegex
  set := label_sets[_]
  owner := set[0]
  value := set[1][key]
  not regex.match(pattern, value)
  msg := sprintf("%v label <%v> has the value <%v>, which does not match <%v>", [owner, key, value, pattern])
}
