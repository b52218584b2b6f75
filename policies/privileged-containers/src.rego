package meshguardprivilegedcontainers

# No container runs privileged: a privileged container owns the node (all devices, all
# capabilities, no seccomp/AppArmor confinement). Init and ephemeral containers included, since
# `kubectl debug` can add a privileged ephemeral container to a running pod.

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

violation[{"msg": msg, "details": {"container": c.name}}] {
  c := input_containers[_]
  c.securityContext.privileged == true
  msg := sprintf("%v: container <%v> is privileged (securityContext.privileged: true)", [subject, c.name])
}
