package meshguardsidecarinjection

# The namespaces of the commerce services carry Istio sidecar injection, and their workloads do
# not opt out. A namespace enables injection with `istio-injection: enabled` or with a revision
# label `istio.io/rev` (and no `istio-injection` label, which takes precedence in Istio). A
# workload opts out with `sidecar.istio.io/inject: "false"` on its pods (label or annotation).
# Namespaces are listed by name; an entry ending in `*` is a prefix (commerce-*).
#
# regorus notes: `not injection_enabled(labels)` binds `labels` first (object.get).

subject = s {
  obj := input.review.object
  s := sprintf("%v <%v>", [obj.kind, object.get(obj, ["metadata", "name"], object.get(input.review, "name", ""))])
}

namespace = ns {
  ns := input.review.object.metadata.namespace
}

namespace = ns {
  not input.review.object.metadata.namespace
  ns := input.review.namespace
}

template_kinds := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}

pod_metadata(obj) = m {
  obj.kind == "Pod"
  m := object.get(obj, "metadata", {})
}

pod_metadata(obj) = m {
  template_kinds[obj.kind]
  m := object.get(obj, ["spec", "template", "metadata"], {})
}

pod_metadata(obj) = m {
  obj.kind == "CronJob"
  m := object.get(obj, ["spec", "jobTemplate", "spec", "template", "metadata"], {})
}

commerce_namespace(name) {
  input.parameters.namespaces[_] == name
}

commerce_namespace(name) {
  pattern := input.parameters.namespaces[_]
  endswith(pattern, "*")
  startswith(name, trim_suffix(pattern, "*"))
}

injection_enabled(labels) {
  labels["istio-injection"] == "enabled"
}

injection_enabled(labels) {
  not labels["istio-injection"]
  labels["istio.io/rev"] != ""
}

opted_out(meta) {
  meta.labels["sidecar.istio.io/inject"] == "false"
}

opted_out(meta) {
  meta.annotations["sidecar.istio.io/inject"] == "false"
}

violation[{"msg": msg, "details": {"namespace": name}}] {
  obj := input.review.object
  obj.kind == "Namespace"
  name := obj.metadata.name
  commerce_namespace(name)
  labels := object.get(obj, ["metadata", "labels"], {})
  not injection_enabled(labels)
  msg := sprintf("Namespace <%v> holds commerce services and must enable Istio sidecar injection (label istio-injection: enabled, or istio.io/rev)", [name])
}

violation[{"msg": msg, "details": {"namespace": ns}}] {
  meta := pod_metadata(input.review.object)
  ns := namespace
  commerce_namespace(ns)
  opted_out(meta)
  msg := sprintf("%v in commerce namespace <%v> opts out of Istio sidecar injection (sidecar.istio.io/inject: \"false\")", [subject, ns])
}
