package k8stier1

# Reduced from rego_differential's timeout-f159c1c1: a reference whose index opens 71 brackets
# (73 in the original) and never closes them. regorus parses each `[` as a comprehension, then
# again as an array, and each attempt reads on to the parse error: 2^k attempts for k brackets
# (20 take 0.57 s, 22 take 2.2 s, 24 take 9 s, release build). The engine refuses it before
# regorus parses it; the hang was the target's raw evaluator, which handed it to regorus.
tier1_service(obj) = service {
  service := obj[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[labels.app
}

violation[{"msg": msg}] {
  service := tier1_service(input.review.object)
  msg := sprintf("tier-1 service <%v>", [service])
}
