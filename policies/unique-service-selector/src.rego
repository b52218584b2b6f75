package meshguarduniqueserviceselector

# Two Services in one namespace must not select the same pods with the same selector: Istio then
# builds two clusters for one workload and traffic policies (DestinationRules, the mesh's own
# filters) apply to one name but not the other. The other Services come from data.inventory
# (Gatekeeper's sync must include v1 Service). A Service without a selector (external endpoints)
# is not compared.

namespace = ns {
  ns := input.review.object.metadata.namespace
}

namespace = ns {
  not input.review.object.metadata.namespace
  ns := input.review.namespace
}

violation[{"msg": msg, "details": {"duplicate": other_name}}] {
  obj := input.review.object
  obj.kind == "Service"
  selector := obj.spec.selector
  count(selector) > 0
  ns := namespace
  other := data.inventory.namespace[ns].v1.Service[other_name]
  other_name != obj.metadata.name
  other.spec.selector == selector
  msg := sprintf("Service <%v> in namespace <%v> has the same selector %v as Service <%v>; selectors must be unique per namespace", [obj.metadata.name, ns, selector, other_name])
}
