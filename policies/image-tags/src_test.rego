package meshguardimagetags

params := {"disallowedTags": ["latest"]}

pod(images) = {"review": {"object": {
  "kind": "Pod",
  "metadata": {"name": "search"},
  "spec": {"containers": [{"name": sprintf("c%v", [i]), "image": image} | image := images[i]]},
}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_version_tag_is_allowed {
  results := violation with input as pod(["registry.example.com/commerce/search:2.3.1"])
  count(results) == 0
}

test_digest_is_allowed_without_tag {
  results := violation with input as pod(["registry.example.com/commerce/search@sha256:4f9d7ce3a0f2d5b4a6c9b1e0f7d8c2a3b4e5f60718293a4b5c6d7e8f90a1b2c3"])
  count(results) == 0
}

test_latest_is_denied {
  results := violation with input as pod(["registry.example.com/commerce/search:latest"])
  messages(results) == {"Pod <search>: container <c0> image <registry.example.com/commerce/search:latest> uses the disallowed tag <latest>"}
}

test_latest_in_capitals_is_denied {
  results := violation with input as pod(["registry.example.com/search:Latest"])
  count(results) == 1
}

test_untagged_is_denied {
  results := violation with input as pod(["registry.example.com/commerce/search"])
  messages(results) == {"Pod <search>: container <c0> image <registry.example.com/commerce/search> has no tag (it would run :latest); pin a version tag or a digest"}
}

test_registry_port_is_not_a_tag {
  results := violation with input as pod(["registry.example.com:5000/commerce/search"])
  count(results) == 1
  r := results[_]
  contains(r.msg, "has no tag")
}

test_registry_port_and_tag {
  results := violation with input as pod(["registry.example.com:5000/commerce/search:1.0"])
  count(results) == 0
}

test_each_container_is_reported {
  results := violation with input as pod(["registry.example.com/a:latest", "registry.example.com/b", "registry.example.com/c:1"])
  count(results) == 2
}

test_empty_tag_counts_as_untagged {
  results := violation with input as pod(["registry.example.com/search:"])
  count(results) == 1
}
