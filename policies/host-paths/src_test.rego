package meshguardhostpaths

pod(volumes) = {"review": {"object": {"kind": "Pod", "metadata": {"name": "inventory"}, "spec": {"containers": [{"name": "app"}], "volumes": volumes}}}, "parameters": {}}

messages(results) = {m | m := results[_].msg}

test_other_volume_types_are_allowed {
  results := violation with input as pod([{"name": "cache", "emptyDir": {}}, {"name": "config", "configMap": {"name": "inventory"}}, {"name": "data", "persistentVolumeClaim": {"claimName": "inv"}}])
  count(results) == 0
}

test_host_path_is_denied {
  results := violation with input as pod([{"name": "sock", "hostPath": {"path": "/var/run/containerd/containerd.sock", "type": "Socket"}}])
  messages(results) == {"Pod <inventory>: volume <sock> mounts the host path </var/run/containerd/containerd.sock>; hostPath volumes are not allowed"}
}

test_each_host_path_is_reported {
  results := violation with input as pod([{"name": "a", "hostPath": {"path": "/etc"}}, {"name": "b", "emptyDir": {}}, {"name": "c", "hostPath": {"path": "/var/log"}}])
  count(results) == 2
}

test_statefulset_template_is_checked {
  inp := {"review": {"object": {"kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"template": {"spec": {"volumes": [{"name": "h", "hostPath": {"path": "/data"}}]}}}}}}
  results := violation with input as inp
  messages(results) == {"StatefulSet <db>: volume <h> mounts the host path </data>; hostPath volumes are not allowed"}
}
