package x

# A `not` call inside the argument of a `not` call: both are rewritten, so their edits overlapped.
violation[{"msg": "nested"}] {
  not f([x | not g(input.x.y); x := "éééééééééééé"])
}

f(_) = true

g(_) = true
