package meshguardrunasnonroot

# Every container runs as a non-root user: runAsNonRoot must be true for it, set on the
# container or inherited from the pod's securityContext (a container's own setting wins, as in
# the kubelet), and no container may ask for user 0 explicitly.
#
# regorus notes: "is the field set on the container" is a helper on the bound container
# (`not sets_non_root(c)`), never `not is_boolean(c.securityContext.runAsNonRoot)`, whose
# undefined argument OPA and regorus read differently.

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

spec_containers(spec) = cs {
  cs := array.concat(array.concat(object.get(spec, "containers", []), object.get(spec, "initContainers", [])), object.get(spec, "ephemeralContainers", []))
}

sets_non_root(c) {
  is_boolean(c.securityContext.runAsNonRoot)
}

sets_user(c) {
  is_number(c.securityContext.runAsUser)
}

non_root(spec, c) {
  c.securityContext.runAsNonRoot == true
}

non_root(spec, c) {
  not sets_non_root(c)
  spec.securityContext.runAsNonRoot == true
}

user(spec, c) = u {
  u := c.securityContext.runAsUser
}

user(spec, c) = u {
  not sets_user(c)
  u := spec.securityContext.runAsUser
}

violation[{"msg": msg, "details": {"container": c.name}}] {
  spec := pod_spec(input.review.object)
  c := spec_containers(spec)[_]
  not non_root(spec, c)
  msg := sprintf("%v: container <%v> may run as root; set securityContext.runAsNonRoot: true on the pod or the container", [subject, c.name])
}

violation[{"msg": msg, "details": {"container": c.name}}] {
  spec := pod_spec(input.review.object)
  c := spec_containers(spec)[_]
  user(spec, c) == 0
  msg := sprintf("%v: container <%v> runs as user 0 (root)", [subject, c.name])
}
