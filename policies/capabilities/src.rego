package meshguardcapabilities

# Containers add no Linux capabilities beyond an allowlist (NET_BIND_SERVICE for the commerce
# platform) and drop the ones the platform requires dropped (ALL). Names are compared the way
# the container runtime reads them: case-insensitive, with or without the CAP_ prefix.
#
# regorus notes: `not allowed(cap)` and `not drops(c, cap)` get bound arguments only.

subject = s {
  obj := input.review.object
  s := sprintf("%v <%v>", [obj.kind, object.get(obj, ["metadata", "name"], object.get(input.review, "name", ""))])
}

pod_spec(obj) = spec {
  obj.kind == "Pod"
  spec := obj.spec
}

pod_spec(obj) = spec {
  template_kinds[obj.kind]
  spec := obj.spec.template.spec
}

pod_spec(obj) = spec {
  obj.kind == "CronJob"
  spec := obj.spec.jobTemplate.spec.template.spec
}

template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}

input_containers[c] {
  c := pod_spec(input.review.object).containers[_]
}

input_containers[c] {
  c := pod_spec(input.review.object).initContainers[_]
}

input_containers[c] {
  c := pod_spec(input.review.object).ephemeralContainers[_]
}

normalize(cap) = n {
  n := trim_prefix(upper(cap), "CAP_")
}

allowlist = l {
  l := input.parameters.allowedCapabilities
}

allowlist = [] {
  not input.parameters.allowedCapabilities
}

allowed(cap) {
  normalize(allowlist[_]) == normalize(cap)
}

allowed(cap) {
  allowlist[_] == "*"
}

drops(c, cap) {
  normalize(c.securityContext.capabilities.drop[_]) == normalize(cap)
}

drops(c, cap) {
  normalize(c.securityContext.capabilities.drop[_]) == "ALL"
}

violation[{"msg": msg, "details": {"container": c.name, "capability": cap}}] {
  c := input_containers[_]
  cap := c.securityContext.capabilities.add[_]
  not allowed(cap)
  msg := sprintf("%v: container <%v> adds the capability <%v>, which is not in the allowlist %v", [subject, c.name, cap, allowlist])
}

violation[{"msg": msg, "details": {"container": c.name, "capability": cap}}] {
  c := input_containers[_]
  cap := input.parameters.requiredDropCapabilities[_]
  not drops(c, cap)
  msg := sprintf("%v: container <%v> must drop the capability <%v> (securityContext.capabilities.drop)", [subject, c.name, cap])
}
