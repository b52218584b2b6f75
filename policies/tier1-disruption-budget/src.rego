package meshguardtier1disruptionbudget

# Tier-1 services (order, payment, user) are covered by a PodDisruptionBudget, so voluntary
# disruptions (drains, upgrades) keep them serving. The budget is looked up in data.inventory
# (Gatekeeper's sync must include policy/v1 PodDisruptionBudget): one in the workload's namespace
# whose selector selects the workload's pod template labels (matchLabels and matchExpressions).
# An empty selector selects every pod of the namespace, as in policy/v1.
#
# regorus notes: `not covered(ns, labels)`, `not has_key(labels, key)` and
# `not value_in(value, values)` get bound arguments only.

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

service_label = l {
  l := input.parameters.serviceLabel
}

service_label = "app" {
  not input.parameters.serviceLabel
}

tier1_service(obj) = service {
  key := service_label
  service := obj.metadata.labels[key]
  service == input.parameters.services[_]
}

has_key(obj, key) {
  _ = obj[key]
}

value_in(value, values) {
  values[_] == value
}

expression_holds(e, labels) {
  e.operator == "In"
  value := labels[e.key]
  values := object.get(e, "values", [])
  value_in(value, values)
}

expression_holds(e, labels) {
  e.operator == "NotIn"
  key := e.key
  not has_key(labels, key)
}

expression_holds(e, labels) {
  e.operator == "NotIn"
  value := labels[e.key]
  values := object.get(e, "values", [])
  not value_in(value, values)
}

expression_holds(e, labels) {
  e.operator == "Exists"
  key := e.key
  has_key(labels, key)
}

expression_holds(e, labels) {
  e.operator == "DoesNotExist"
  key := e.key
  not has_key(labels, key)
}

selects(selector, labels) {
  mismatched := {key | value := selector.matchLabels[key]; not labels[key] == value}
  count(mismatched) == 0
  failing := {i | e := selector.matchExpressions[i]; not expression_holds(e, labels)}
  count(failing) == 0
}

budget_versions := {"policy/v1", "policy/v1beta1"}

covered(ns, labels) {
  pdb := data.inventory.namespace[ns][version].PodDisruptionBudget[_]
  budget_versions[version]
  selector := object.get(pdb, ["spec", "selector"], {})
  selects(selector, labels)
}

violation[{"msg": msg, "details": {"service": service, "namespace": ns}}] {
  obj := input.review.object
  service := tier1_service(obj)
  labels := object.get(obj, ["spec", "template", "metadata", "labels"], {})
  ns := namespace
  not covered(ns, labels)
  msg := sprintf("%v runs tier-1 service <%v> but no PodDisruptionBudget in namespace <%v> selects its pods", [subject, service, ns])
}
