package meshguardallowedregistries

params := {"registries": ["registry.example.com"]}

pod(containers) = {"review": {"object": {
  "kind": "Pod",
  "metadata": {"name": "cart"},
  "spec": {"containers": containers},
}}, "parameters": params}

messages(results) = {m | m := results[_].msg}

test_approved_registry_is_allowed {
  results := violation with input as pod([{"name": "app", "image": "registry.example.com/commerce/cart:1.4.2"}])
  count(results) == 0
}

test_registry_with_port_is_a_different_registry {
  results := violation with input as pod([{"name": "app", "image": "registry.example.com:5000/cart:1.0"}])
  count(results) == 1
}

test_docker_hub_image_is_denied {
  results := violation with input as pod([{"name": "app", "image": "nginx:1.25"}])
  messages(results) == {"Pod <cart>: container <app> image <nginx:1.25> is not from an approved registry [\"registry.example.com\"]"}
}

test_lookalike_host_is_denied {
  results := violation with input as pod([{"name": "app", "image": "registry.example.com.evil.io/cart:1.0"}])
  count(results) == 1
}

test_init_and_ephemeral_containers_are_checked {
  inp := {"review": {"object": {"kind": "Pod", "metadata": {"name": "cart"}, "spec": {
    "containers": [{"name": "app", "image": "registry.example.com/cart:1"}],
    "initContainers": [{"name": "init", "image": "busybox:1.36"}],
    "ephemeralContainers": [{"name": "debug", "image": "ghcr.io/tools/debug:2"}],
  }}}, "parameters": params}
  results := violation with input as inp
  messages(results) == {
    "Pod <cart>: container <init> image <busybox:1.36> is not from an approved registry [\"registry.example.com\"]",
    "Pod <cart>: container <debug> image <ghcr.io/tools/debug:2> is not from an approved registry [\"registry.example.com\"]",
  }
}

test_registry_written_with_trailing_slash {
  inp := object.union(pod([{"name": "app", "image": "registry.example.com/cart:1"}]), {"parameters": {"registries": ["registry.example.com/"]}})
  results := violation with input as inp
  count(results) == 0
}

test_no_registries_means_nothing_is_approved {
  inp := {"review": pod([{"name": "app", "image": "registry.example.com/cart:1"}]).review, "parameters": {}}
  results := violation with input as inp
  messages(results) == {"Pod <cart>: container <app> image <registry.example.com/cart:1> is not from an approved registry []"}
}

test_cronjob_pod_template_is_checked {
  inp := {"review": {"object": {"kind": "CronJob", "metadata": {"name": "reindex"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
    "containers": [{"name": "job", "image": "docker.io/library/python:3.12"}],
  }}}}}}}, "parameters": params}
  results := violation with input as inp
  messages(results) == {"CronJob <reindex>: container <job> image <docker.io/library/python:3.12> is not from an approved registry [\"registry.example.com\"]"}
}
