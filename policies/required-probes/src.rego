package meshguardrequiredprobes

# Every long-running container declares the probes the mesh and the scheduler rely on
# (livenessProbe and readinessProbe by default), each with a real handler (httpGet, tcpSocket,
# exec or grpc). Init and ephemeral containers cannot have probes and are not checked.
#
# regorus notes: `not c[probe]` is a reference, not a call; the handler set is computed with
# a comprehension instead of a negated call.

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

probes = p {
  p := input.parameters.probes
}

probes = ["livenessProbe", "readinessProbe"] {
  not input.parameters.probes
}

probe_types = t {
  t := input.parameters.probeTypes
}

probe_types = ["exec", "grpc", "httpGet", "tcpSocket"] {
  not input.parameters.probeTypes
}

violation[{"msg": msg, "details": {"container": c.name, "probe": probe}}] {
  c := pod_spec(input.review.object).containers[_]
  probe := probes[_]
  not c[probe]
  msg := sprintf("%v: container <%v> has no %v", [subject, c.name, probe])
}

violation[{"msg": msg, "details": {"container": c.name, "probe": probe}}] {
  c := pod_spec(input.review.object).containers[_]
  probe := probes[_]
  p := c[probe]
  handlers := {t | t := probe_types[_]; p[t]}
  count(handlers) == 0
  msg := sprintf("%v: container <%v> %v has none of the handlers %v", [subject, c.name, probe, probe_types])
}
