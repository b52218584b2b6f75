package k8sdeep

violation[{"msg": msg}] {
  x := [[[[[[[[[[[[[[[[[[[[[[input.review.object]]]]]]]]]]]]]]]]]]]]]]
  msg := sprintf("%v", [x])
}
