package meshguardhostpaths

# Pods do not mount directories of the node (hostPath volumes): a hostPath mount reads or
# writes the node's filesystem (container runtime socket, kubelet credentials) outside any
# namespace isolation. Storage comes from PersistentVolumeClaims, ConfigMaps, Secrets, emptyDir.

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

violation[{"msg": msg, "details": {"volume": volume.name, "path": path}}] {
  volume := pod_spec(input.review.object).volumes[_]
  host_path := volume.hostPath
  path := object.get(host_path, "path", "")
  msg := sprintf("%v: volume <%v> mounts the host path <%v>; hostPath volumes are not allowed", [subject, volume.name, path])
}
