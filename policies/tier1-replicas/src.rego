package meshguardtier1replicas

# Tier-1 services (order, payment, user for the commerce platform) run at least two replicas, so
# a node drain or a crash never takes the checkout path down. A service is identified by a label
# of the workload (`app` by default); a Deployment or StatefulSet without `spec.replicas` runs
# one replica, as the API server defaults it.

subject = s {
  obj := input.review.object
  s := sprintf("%v <%v>", [obj.kind, object.get(obj, ["metadata", "name"], object.get(input.review, "name", ""))])
}

service_label = l {
  l := input.parameters.serviceLabel
}

service_label = "app" {
  not input.parameters.serviceLabel
}

min_replicas = n {
  n := input.parameters.minReplicas
}

min_replicas = 2 {
  not input.parameters.minReplicas
}

tier1_service(obj) = service {
  key := service_label
  service := obj.metadata.labels[key]
  service == input.parameters.services[_]
}

violation[{"msg": msg, "details": {"service": service, "replicas": replicas, "minReplicas": min_replicas}}] {
  obj := input.review.object
  service := tier1_service(obj)
  replicas := object.get(obj, ["spec", "replicas"], 1)
  replicas < min_replicas
  msg := sprintf("%v runs tier-1 service <%v> with %v replica(s); tier-1 services need at least %v", [subject, service, replicas, min_replicas])
}
