package meshguardcontainerresources

# Containers must request and limit CPU and memory, within the bounds the platform sets.
#
# Quantities are parsed with units.parse (Kubernetes suffixes: m, k, M, G, Ki, Mi, Gi, ...),
# one builtin call instead of the many-clause parsing helpers of older library templates.
#
# regorus notes: no line starts with "(", no chained rule bodies, and every `not f(...)` has
# only bound arguments (values are bound in an earlier expression first).

# === the object under review ===

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

# Ephemeral containers cannot set resources; init containers can and are checked.
resource_containers[c] {
  c := pod_spec(input.review.object).containers[_]
}

resource_containers[c] {
  c := pod_spec(input.review.object).initContainers[_]
}

resources := ["cpu", "memory"]

sections := ["requests", "limits"]

# === quantities ===

quantity(q) = n {
  is_number(q)
  n := q
}

quantity(q) = n {
  is_string(q)
  n := units.parse(q)
}

has_quantity(c, section, resource) {
  _ = c.resources[section][resource]
}

# === violations ===

violation[{"msg": msg, "details": {"container": c.name, "missing": field}}] {
  c := resource_containers[_]
  section := sections[_]
  resource := resources[_]
  not has_quantity(c, section, resource)
  field := sprintf("resources.%v.%v", [section, resource])
  msg := sprintf("%v: container <%v> does not set %v", [subject, c.name, field])
}

violation[{"msg": msg, "details": {"container": c.name, "invalid": q}}] {
  c := resource_containers[_]
  section := sections[_]
  resource := resources[_]
  q := c.resources[section][resource]
  not quantity(q)
  msg := sprintf("%v: container <%v> has an unreadable %v %v <%v>", [subject, c.name, resource, section, q])
}

violation[{"msg": msg, "details": {"container": c.name, "limit": limit, "max": max}}] {
  c := resource_containers[_]
  resource := resources[_]
  limit := c.resources.limits[resource]
  max := input.parameters[resource].maxLimit
  quantity(limit) > quantity(max)
  msg := sprintf("%v: container <%v> %v limit <%v> is above the maximum <%v>", [subject, c.name, resource, limit, max])
}

violation[{"msg": msg, "details": {"container": c.name, "request": request, "min": min}}] {
  c := resource_containers[_]
  resource := resources[_]
  request := c.resources.requests[resource]
  min := input.parameters[resource].minRequest
  quantity(request) < quantity(min)
  msg := sprintf("%v: container <%v> %v request <%v> is below the minimum <%v>", [subject, c.name, resource, request, min])
}

violation[{"msg": msg, "details": {"container": c.name, "request": request, "limit": limit}}] {
  c := resource_containers[_]
  resource := resources[_]
  request := c.resources.requests[resource]
  limit := c.resources.limits[resource]
  quantity(request) > quantity(limit)
  msg := sprintf("%v: container <%v> %v request <%v> is above its limit <%v>", [subject, c.name, resource, request, limit])
}
