package fuzz

# One definition of a complete rule that iterates to two values (one per container): OPA raises
# `eval_conflict_error: complete rules must not produce multiple outputs`, as regorus'
# interpreter does; regorus' VM took one of the values and reported a violation (divergence 7
# with a single definition).
r0 = count(input.review.object.spec.containers[_].image) {
  is_array([input.review.object.spec.containers])
}

violation[{"msg": msg}] {
  r0 > 0
  msg := sprintf("fuzz:%v", [r0])
}
