package k8schained

# Within the parse-cost bounds as written (the head costs 2^16 parses), beyond them once the
# rewrites give each chained body a copy of the head: with 300 bodies, regorus would parse
# 300 heads (about 15 s, release build). The engine bounds the rewritten module too.
p = [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]] {
  input.review.object.x
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
} {
  input.review.object.y
}

violation[{"msg": "chained"}] {
  p
}
