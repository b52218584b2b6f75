package meshguardhpareplicas

# HorizontalPodAutoscalers stay within the platform's capacity plan: maxReplicas may not exceed
# the configured ceiling, and minReplicas (1 when unset, as the API server defaults it) may not
# fall below the configured floor.

name = n {
  n := object.get(input.review.object, ["metadata", "name"], object.get(input.review, "name", ""))
}

violation[{"msg": msg, "details": {"maxReplicas": got, "limit": limit}}] {
  input.review.object.kind == "HorizontalPodAutoscaler"
  got := input.review.object.spec.maxReplicas
  limit := input.parameters.maxReplicas
  got > limit
  msg := sprintf("HorizontalPodAutoscaler <%v> maxReplicas <%v> is above the limit <%v>", [name, got, limit])
}

violation[{"msg": msg, "details": {"minReplicas": got, "floor": floor}}] {
  input.review.object.kind == "HorizontalPodAutoscaler"
  got := object.get(input.review.object, ["spec", "minReplicas"], 1)
  floor := input.parameters.minReplicas
  got < floor
  msg := sprintf("HorizontalPodAutoscaler <%v> minReplicas <%v> is below the floor <%v>", [name, got, floor])
}
