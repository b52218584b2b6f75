//! The manifests in `istio/rate-limit-service/` must fit together and fit the binary: the
//! ConfigMap loads with the service's own parser, the Deployment's args parse with its real
//! command line and name the mounted ConfigMap, Redis and ports the other objects define, the
//! gateway cluster points at the Service, and every descriptor the gateway's rate-limit actions
//! (Envoy's native filter, and meshguard's global limits in `istio/rate-limit/`) can build meets
//! a limit of the ConfigMap.

use std::time::Duration;

use clap::Parser;
use meshguard_rate_limit_service::cli::{Cli, Command, ServeArgs};
use meshguard_rate_limit_service::config::Config;
use meshguard_rate_limit_service::matching;
use serde_yaml::Value;

fn documents() -> Vec<(String, Value)> {
    meshguard_testkit::istio::documents("rate-limit-service")
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, doc)| doc)
        .find(|doc| {
            doc["kind"].as_str() == Some(kind) && doc["metadata"]["name"].as_str() == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The ConfigMap's files, loaded as the service loads the mounted folder.
fn config(docs: &[(String, Value)]) -> Config {
    let map = find(docs, "ConfigMap", "meshguard-rate-limit-config");
    let dir = meshguard_testkit::paths::target_dir()
        .join("rls-tests")
        .join(format!(
            "manifests-{}-{}",
            std::process::id(),
            // Tests run in parallel threads of one process: each needs its own folder.
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in map["data"].as_mapping().unwrap() {
        std::fs::write(dir.join(name.as_str().unwrap()), text.as_str().unwrap()).unwrap();
    }
    let config = Config::load(std::slice::from_ref(&dir)).unwrap_or_else(|err| panic!("{err}"));
    std::fs::remove_dir_all(&dir).unwrap();
    config
}

fn serve_args(container: &Value) -> ServeArgs {
    let args = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string());
    let cli = Cli::try_parse_from(
        std::iter::once("meshguard-rate-limit-service".to_string()).chain(args),
    )
    .unwrap_or_else(|err| panic!("the Deployment's args: {err}"));
    match cli.command {
        Command::Serve(args) => args,
        Command::Check(_) => panic!("the Deployment must serve"),
    }
}

fn port<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container port {name}"))
}

#[test]
fn the_configmap_loads_and_the_deployment_runs_it() {
    let docs = documents();
    let config = config(&docs);
    assert_eq!(config.domain_names(), vec!["commerce-edge"]);
    let deployment = find(&docs, "Deployment", "meshguard-rate-limit");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args = serve_args(container);
    let settings = args.settings();

    // The config folder is the ConfigMap's mount.
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| {
            std::path::Path::new(m["mountPath"].as_str().unwrap()) == settings.config_paths[0]
        })
        .expect("--config is a mounted volume");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(
        volume["configMap"]["name"].as_str(),
        Some("meshguard-rate-limit-config")
    );

    // Ports and probes.
    assert_eq!(
        port(container, "grpc")["containerPort"].as_u64(),
        Some(u64::from(settings.grpc_listen.port()))
    );
    assert_eq!(
        port(container, "http-monitoring")["containerPort"].as_u64(),
        Some(u64::from(settings.http_listen.port()))
    );
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"].as_str(),
            Some("http-monitoring")
        );
    }
    // Shutdown fits the grace period Kubernetes gives.
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(settings.drain_delay + settings.shutdown_timeout < grace);

    // Redis is the Service redis.yaml defines.
    let redis = find(&docs, "Service", "meshguard-rate-limit-redis");
    let expected = format!(
        "redis://{}.{}.svc.cluster.local:{}",
        redis["metadata"]["name"].as_str().unwrap(),
        redis["metadata"]["namespace"].as_str().unwrap(),
        redis["spec"]["ports"][0]["port"].as_u64().unwrap()
    );
    assert_eq!(settings.redis.url, expected);

    // The Service selects these pods and speaks gRPC.
    let service = find(&docs, "Service", "meshguard-rate-limit");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&labels[key.as_str().unwrap()], value);
    }
    let grpc = &service["spec"]["ports"][0];
    assert_eq!(grpc["appProtocol"].as_str(), Some("grpc"));
    assert_eq!(grpc["targetPort"].as_str(), Some("grpc"));
}

#[test]
fn the_gateway_cluster_reaches_the_service_and_every_action_meets_a_limit() {
    let docs = documents();
    let config = config(&docs);
    let service = find(&docs, "Service", "meshguard-rate-limit");
    let cluster = &find(&docs, "EnvoyFilter", "meshguard-rate-limit-cluster")["spec"]["configPatches"]
        [0]["patch"]["value"];
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"];
    assert_eq!(
        address["address"].as_str().unwrap(),
        format!(
            "{}.{}.svc.cluster.local",
            service["metadata"]["name"].as_str().unwrap(),
            service["metadata"]["namespace"].as_str().unwrap()
        )
    );
    assert_eq!(address["port_value"], service["spec"]["ports"][0]["port"]);
    assert!(
        !cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
            ["explicit_http_config"]["http2_protocol_options"]
            .is_null(),
        "gRPC needs HTTP/2"
    );

    let native =
        &find(&docs, "EnvoyFilter", "meshguard-rate-limit-global")["spec"]["configPatches"];
    let filter = &native[0]["patch"]["value"]["typed_config"];
    assert_eq!(
        filter["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"],
        cluster["name"]
    );
    let domain = filter["domain"].as_str().unwrap();
    let domain = config
        .domain(domain)
        .unwrap_or_else(|| panic!("no domain {domain} in the ConfigMap"));
    // The service answers within its Redis timeout, under the filter's.
    let deployment = find(&docs, "Deployment", "meshguard-rate-limit");
    let settings = serve_args(&deployment["spec"]["template"]["spec"]["containers"][0]).settings();
    let filter_timeout =
        meshguard_rate_limit_service::cli::parse_duration(filter["timeout"].as_str().unwrap())
            .unwrap();
    assert!(settings.redis.timeout < filter_timeout);

    let rate_limits = native[1]["patch"]["value"]["rate_limits"]
        .as_sequence()
        .unwrap();
    assert_eq!(rate_limits.len(), 4);
    for rate_limit in rate_limits {
        // The descriptor these actions build for a request that matches them all.
        let entries: Vec<(String, String)> = rate_limit["actions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|action| {
                if let Some(m) = action.get("header_value_match") {
                    (
                        m["descriptor_key"].as_str().unwrap().to_string(),
                        m["descriptor_value"].as_str().unwrap().to_string(),
                    )
                } else if let Some(h) = action.get("request_headers") {
                    (
                        h["descriptor_key"].as_str().unwrap().to_string(),
                        "user-42".to_string(),
                    )
                } else if action.get("remote_address").is_some() {
                    ("remote_address".to_string(), "198.51.100.7".to_string())
                } else {
                    panic!("unexpected action {action:?}")
                }
            })
            .collect();
        let entries: Vec<(&str, &str)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let applied = matching::find(domain, &entries)
            .unwrap_or_else(|| panic!("no limit for the descriptor {entries:?}"));
        assert!(applied.limit.name.is_some(), "{entries:?}");
    }
}

#[test]
fn every_global_limit_of_the_gateway_wasmplugin_meets_a_limit() {
    use meshguard_rate_limit::config::KeyPart;

    let docs = documents();
    let config = config(&docs);
    let cluster = &find(&docs, "EnvoyFilter", "meshguard-rate-limit-cluster")["spec"]["configPatches"]
        [0]["patch"]["value"]["name"];
    let plugin = meshguard_testkit::istio::documents("rate-limit")
        .into_iter()
        .map(|(_, doc)| doc)
        .find(|doc| doc["metadata"]["name"].as_str() == Some("meshguard-rate-limit-global"))
        .expect("istio/rate-limit/ has the global WasmPlugin");
    let filter = meshguard_rate_limit::parse_config(
        &serde_json::to_vec(&plugin["spec"]["pluginConfig"]).unwrap(),
    )
    .unwrap_or_else(|err| panic!("{err}"));
    assert!(!filter.globals.is_empty());
    for limit in &filter.globals {
        assert_eq!(Some(limit.global.cluster.as_str()), cluster.as_str());
        let domain = config
            .domain(&limit.global.domain)
            .unwrap_or_else(|| panic!("no domain {} in the ConfigMap", limit.global.domain));
        // The descriptor the filter sends for a request that has every key part.
        let entries: Vec<(String, String)> = limit
            .key
            .iter()
            .zip(&limit.descriptor_keys)
            .map(|(part, key)| {
                let value = match part {
                    KeyPart::Constant(value) => value.clone(),
                    KeyPart::ClientIp => "198.51.100.7".to_string(),
                    _ => "user-42".to_string(),
                };
                (key.clone(), value)
            })
            .collect();
        let entries: Vec<(&str, &str)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let applied = matching::find(domain, &entries)
            .unwrap_or_else(|| panic!("{}: no limit for {entries:?}", limit.name));
        assert!(applied.limit.name.is_some(), "{entries:?}");
    }
}
