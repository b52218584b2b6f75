package meshguardhostnamespaces

# Pods do not share the node's network, process or IPC namespaces: hostNetwork bypasses the
# Istio sidecar's traffic capture entirely, hostPID and hostIPC expose every process on the node.

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

host_fields := ["hostNetwork", "hostPID", "hostIPC"]

violation[{"msg": msg, "details": {"field": field}}] {
  spec := pod_spec(input.review.object)
  field := host_fields[_]
  spec[field] == true
  msg := sprintf("%v shares a host namespace: %v is true", [subject, field])
}
