package meshguardedgeruntime

# Inventory workloads that run at the edge (the constraint selects them by the label
# node-type=edge) use the WasmEdge runtime class and land on edge nodes: runtimeClassName must
# be the configured one (wasmedge) and the pod's nodeSelector must hold every configured entry.
#
# regorus notes: `not selector[key] == value` compares a reference, no negated call.

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

shown(value) = "none" {
  value == ""
}

shown(value) = value {
  value != ""
}

violation[{"msg": msg, "details": {"runtimeClassName": got}}] {
  spec := pod_spec(input.review.object)
  want := input.parameters.runtimeClassName
  got := object.get(spec, "runtimeClassName", "")
  got != want
  msg := sprintf("%v runs on edge nodes and must use runtimeClassName <%v>, found <%v>", [subject, want, shown(got)])
}

violation[{"msg": msg, "details": {"nodeSelector": {key: value}}}] {
  spec := pod_spec(input.review.object)
  value := input.parameters.nodeSelector[key]
  selector := object.get(spec, "nodeSelector", {})
  not selector[key] == value
  msg := sprintf("%v runs on edge nodes and must set nodeSelector <%v: %v>", [subject, key, value])
}
