//! The deployment manifests (`admission-webhook/deploy/`) and the Dockerfile, parsed and checked
//! against each other and against the binary: the container args parse with the binary's own
//! flags, and the settings they resolve to (with the mounted ConfigMap) agree with the Service,
//! the ValidatingWebhookConfiguration, the cert-manager Certificate and the RBAC rules. No API
//! server runs here, so these checks are what keeps the manifests honest.

mod manifests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use manifests::*;
use meshguard_admission_webhook::config::{FailurePolicy, PolicySource};
use serde_json::Value as Json;

#[test]
fn service_ports_and_probes_match_the_binary() {
    let deploy = Deploy::load();
    let settings = deploy.settings();
    let container = deploy.container();
    let port = &container["ports"][0];
    assert_eq!(
        port["containerPort"].as_u64(),
        Some(u64::from(settings.listen.port())),
        "the container port is the port the binary listens on"
    );
    assert!(
        settings.listen.ip().is_unspecified(),
        "listens on all addresses in the pod"
    );

    let service = deploy.one("Service");
    let service_port = &service["spec"]["ports"][0];
    let target = &service_port["targetPort"];
    assert!(
        *target == port["name"] || *target == port["containerPort"],
        "Service targetPort {target} is the container port"
    );
    let pod_labels = &deploy.one("Deployment")["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[key], value, "the Service selects the pods");
    }
    let deployment_selector = selector(&deploy.one("Deployment")["spec"]["selector"]);
    let labels: BTreeMap<String, String> = pod_labels
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), str(v)))
        .collect();
    assert!(deployment_selector.matches(&labels));

    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(
            get["scheme"], "HTTPS",
            "{probe}: the webhook serves TLS only"
        );
        assert!(get["port"] == port["name"] || get["port"] == port["containerPort"]);
    }
}

#[test]
fn webhook_configuration_calls_validate_within_the_deadline() {
    let deploy = Deploy::load();
    let settings = deploy.settings();
    let namespace = deploy.namespace();
    let service = deploy.one("Service");
    let config = deploy.one("ValidatingWebhookConfiguration");
    let webhooks = config["webhooks"].as_array().unwrap();
    assert!(!webhooks.is_empty());
    for webhook in webhooks {
        let target = &webhook["clientConfig"]["service"];
        assert_eq!(target["path"], "/validate");
        assert_eq!(target["name"], service["metadata"]["name"]);
        assert_eq!(target["namespace"], namespace.as_str());
        assert_eq!(target["port"], service["spec"]["ports"][0]["port"]);
        let versions = webhook["admissionReviewVersions"].as_array().unwrap();
        assert!(versions.contains(&Json::from("v1")));
        assert!(
            versions.iter().all(|v| *v == "v1" || *v == "v1beta1"),
            "only versions the webhook answers"
        );
        assert_eq!(webhook["sideEffects"], "None");

        // The API server gives up after timeoutSeconds; the webhook answers (per its own failure
        // policy) within 1.5x its evaluation deadline: waiting for a slot, evaluating, and the
        // margin for a stuck builtin.
        let timeout = webhook["timeoutSeconds"].as_u64().unwrap();
        assert!((1..=30).contains(&timeout), "timeoutSeconds {timeout}");
        assert!(
            settings.evaluation_timeout.as_secs_f64() * 1.5 < timeout as f64,
            "evaluation deadline {:?} (x1.5) must be below timeoutSeconds {timeout}",
            settings.evaluation_timeout
        );
        let failure = str(&webhook["failurePolicy"]);
        let expected = match settings.failure_policy {
            FailurePolicy::Fail => "Fail",
            FailurePolicy::Ignore => "Ignore",
        };
        assert_eq!(
            failure, expected,
            "API server and webhook fail the same way"
        );

        let namespaces = selector(&webhook["namespaceSelector"]);
        for excluded in ["kube-system", namespace.as_str()] {
            assert!(
                !namespaces.matches(&namespace_labels(excluded)),
                "the namespaceSelector must exclude {excluded}"
            );
        }
        assert!(namespaces.matches(&namespace_labels("commerce")));
        let ops: Vec<String> = webhook["rules"][0]["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(str)
            .collect();
        assert!(ops.contains(&"CREATE".to_string()) && ops.contains(&"UPDATE".to_string()));
    }
    // Defence in depth: the webhook exempts the same namespaces itself.
    assert!(settings.is_exempt_namespace("kube-system"));
    assert!(settings.is_exempt_namespace(&namespace));
}

#[test]
fn certificate_is_mounted_where_the_binary_reads_it() {
    let deploy = Deploy::load();
    let settings = deploy.settings();
    let namespace = deploy.namespace();
    let service = str(&deploy.one("Service")["metadata"]["name"]);
    let (cert_volume, cert_key) = deploy.volume_for(&settings.cert_file);
    let (key_volume, key_key) = deploy.volume_for(&settings.key_file);
    assert_eq!(cert_volume, key_volume);
    assert_eq!(
        (cert_key.to_str(), key_key.to_str()),
        (Some("tls.crt"), Some("tls.key"))
    );
    let secret = str(&cert_volume["secret"]["secretName"]);

    let serving = deploy
        .docs
        .iter()
        .find(|d| d["kind"] == "Certificate" && d["spec"]["secretName"] == secret.as_str())
        .unwrap_or_else(|| panic!("no Certificate writes the Secret {secret}"));
    assert_eq!(serving["apiVersion"], "cert-manager.io/v1");
    let names: Vec<String> = serving["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(str)
        .collect();
    assert!(
        names.contains(&format!("{service}.{namespace}.svc")),
        "the API server calls {service}.{namespace}.svc: {names:?}"
    );
    // Its issuer chain ends in a self-signed Issuer, all in deploy/.
    let mut issuer = str(&serving["spec"]["issuerRef"]["name"]);
    for _ in 0..4 {
        let found = deploy.named("Issuer", &issuer);
        if found["spec"].get("selfSigned").is_some() {
            break;
        }
        let ca_secret = &found["spec"]["ca"]["secretName"];
        let ca = deploy
            .docs
            .iter()
            .find(|d| d["kind"] == "Certificate" && d["spec"]["secretName"] == *ca_secret)
            .unwrap_or_else(|| panic!("no Certificate makes the CA Secret {ca_secret}"));
        assert_eq!(ca["spec"]["isCA"], true);
        issuer = str(&ca["spec"]["issuerRef"]["name"]);
    }
    assert!(
        deploy.named("Issuer", &issuer)["spec"]
            .get("selfSigned")
            .is_some()
    );
    let inject = &deploy.one("ValidatingWebhookConfiguration")["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
    assert_eq!(
        str(inject),
        format!("{namespace}/{}", str(&serving["metadata"]["name"])),
        "cainjector fills the caBundle from the serving Certificate"
    );
}

#[test]
fn rbac_covers_cluster_mode_and_the_service_account_is_exempt() {
    let deploy = Deploy::load();
    let settings = deploy.settings();
    let namespace = deploy.namespace();
    let pod = &deploy.one("Deployment")["spec"]["template"]["spec"];
    let account = str(&pod["serviceAccountName"]);
    let service_account = deploy.named("ServiceAccount", &account);
    assert_eq!(service_account["metadata"]["namespace"], namespace.as_str());
    assert_eq!(
        settings.service_account.as_deref(),
        Some(format!("system:serviceaccount:{namespace}:{account}").as_str()),
        "the webhook admits its own service account"
    );

    let binding = deploy.one("ClusterRoleBinding");
    assert!(
        binding["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "ServiceAccount"
                && s["name"] == account.as_str()
                && s["namespace"] == namespace.as_str())
    );
    let role = deploy.named("ClusterRole", &str(&binding["roleRef"]["name"]));
    let rules = granted(role);
    assert!(can_list_and_watch(
        &rules,
        "templates.gatekeeper.sh",
        "constrainttemplates"
    ));
    // Constraint kinds come and go with templates (k8srequiredlabels, ...).
    assert!(can_list_and_watch(&rules, "constraints.gatekeeper.sh", "*"));
    assert!(can_list_and_watch(&rules, "", "namespaces"));
    assert!(
        !settings.sync.is_empty(),
        "the sync list feeds data.inventory in cluster mode"
    );
    for kind in &settings.sync {
        let plural = format!("{}s", kind.kind.to_lowercase());
        assert!(
            can_list_and_watch(&rules, &kind.group, &plural),
            "sync list names {}/{} but RBAC does not grant list/watch on {plural}",
            kind.group,
            kind.kind
        );
    }
    // It writes only the status subresource of templates and constraints (status.byPod).
    for ((group, resource), verbs) in &rules {
        let writes: Vec<&String> = verbs
            .iter()
            .filter(|v| !["get", "list", "watch"].contains(&v.as_str()))
            .collect();
        if writes.is_empty() {
            continue;
        }
        assert!(
            resource.ends_with("/status")
                && group.ends_with(".gatekeeper.sh")
                && writes.iter().all(|v| *v == "patch"),
            "{group}/{resource}: {writes:?}"
        );
    }
    let patch = |group: &str, resource: &str| {
        rules
            .get(&(group.to_string(), resource.to_string()))
            .is_some_and(|v| v.contains("patch"))
    };
    assert!(patch(
        "templates.gatekeeper.sh",
        "constrainttemplates/status"
    ));
    assert!(patch("constraints.gatekeeper.sh", "*/status"));
    // Status entries are named after the pod, from the downward API.
    let container = &pod["containers"][0];
    let pod_name = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .expect("POD_NAME in the container's env");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
}

#[test]
fn dockerfile_builds_the_binary_the_deployment_runs() {
    let lines = dockerfile();
    let stages = lines.iter().filter(|(i, _)| i == "FROM").count();
    assert!(stages >= 2, "multi-stage build");
    assert!(
        lines.iter().any(|(i, rest)| i == "RUN"
            && rest.contains("cargo build")
            && rest.contains("--release")
            && rest.contains("-p meshguard-admission-webhook")
            && rest.contains("--bin meshguard-admission-webhook")),
        "builds the admission-webhook binary"
    );
    let final_stage: Vec<&(String, String)> = lines
        .iter()
        .skip(lines.iter().rposition(|(i, _)| i == "FROM").unwrap())
        .collect();
    let entrypoint = final_stage
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, rest)| serde_json::from_str::<Vec<String>>(rest).unwrap())
        .expect("ENTRYPOINT in exec form");
    assert_eq!(entrypoint.len(), 1);
    assert!(
        final_stage
            .iter()
            .any(|(i, rest)| i == "COPY" && rest.ends_with(&entrypoint[0])),
        "the entrypoint {} is copied into the final image",
        entrypoint[0]
    );
    let user = final_stage
        .iter()
        .find(|(i, _)| i == "USER")
        .map(|(_, rest)| rest.clone())
        .expect("a non-root USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "USER {user}"
    );

    // The policies baked into the image are where the settings read them, and they load.
    let deploy = Deploy::load();
    let settings = deploy.settings();
    let PolicySource::Files(paths) = &settings.policies else {
        panic!("the shipped Deployment runs in files mode")
    };
    let (source, image_path) = final_stage
        .iter()
        .find(|(i, rest)| i == "COPY" && rest.contains("policies"))
        .map(|(_, rest)| {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            (parts[parts.len() - 2], parts[parts.len() - 1])
        })
        .expect("the image carries policies");
    assert!(source.contains("policies"), "{source}");
    let image_path = PathBuf::from(image_path.trim_end_matches('/'));
    for path in paths {
        let mounted = deploy.container()["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| Path::new(m["mountPath"].as_str().unwrap()) == path);
        assert!(
            mounted || *path == image_path,
            "policy path {} is neither in the image nor mounted",
            path.display()
        );
    }
    assert!(paths.contains(&image_path));
    // What the policies stage keeps (templates and constraints, no samples or suites) compiles.
    let gatekeeper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../gatekeeper");
    let docs: Vec<_> = meshguard_policy_engine::document::read_paths(&[gatekeeper])
        .unwrap()
        .into_iter()
        .filter(|d| {
            let file = d.location.to_string();
            !file.contains("/example_") && !file.contains("suite.yaml")
        })
        .collect();
    let set = meshguard_policy_engine::PolicySet::from_documents(&docs).unwrap();
    assert!(set.templates().count() >= 10);
    assert!(set.constraints().count() >= set.templates().count());
}
