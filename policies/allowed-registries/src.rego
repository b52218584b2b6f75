package meshguardallowedregistries

# Container images may only come from the approved registries (registry.example.com for the
# commerce platform). A registry matches when the image starts with "<registry>/", so a host
# that merely begins with an approved name (registry.example.com.evil.io) does not pass.
#
# regorus notes: `not approved(image)` binds `image` first, so a container without an image
# gives the same (no) result as in OPA.

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

registries = r {
  r := input.parameters.registries
}

registries = [] {
  not input.parameters.registries
}

approved(image) {
  registry := registries[_]
  startswith(image, concat("", [trim_suffix(registry, "/"), "/"]))
}

violation[{"msg": msg, "details": {"container": c.name, "image": image}}] {
  c := input_containers[_]
  image := c.image
  not approved(image)
  msg := sprintf("%v: container <%v> image <%v> is not from an approved registry %v", [subject, c.name, image, registries])
}
