package meshguardimagetags

# Images must be pinned: a version tag that is not in the disallowed list (latest), or a digest.
# An image without a tag means :latest to the container runtime, so it is denied too. The tag is
# read from the last path segment, so a registry port (registry.example.com:5000/app) is not
# mistaken for a tag.
#
# regorus notes: `not has_tag(image)` and `not has_digest(image)` bind `image` first.

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

has_digest(image) {
  contains(image, "@")
}

image_tag(image) = tag {
  segments := split(image, "/")
  last := segments[count(segments) - 1]
  name_and_tag := split(last, ":")
  count(name_and_tag) == 2
  tag := name_and_tag[1]
  tag != ""
}

has_tag(image) {
  image_tag(image)
}

violation[{"msg": msg, "details": {"container": c.name, "image": image}}] {
  c := input_containers[_]
  image := c.image
  not has_digest(image)
  not has_tag(image)
  msg := sprintf("%v: container <%v> image <%v> has no tag (it would run :latest); pin a version tag or a digest", [subject, c.name, image])
}

violation[{"msg": msg, "details": {"container": c.name, "image": image, "tag": tag}}] {
  c := input_containers[_]
  image := c.image
  not has_digest(image)
  tag := image_tag(image)
  lower(tag) == lower(input.parameters.disallowedTags[_])
  msg := sprintf("%v: container <%v> image <%v> uses the disallowed tag <%v>", [subject, c.name, image, tag])
}
