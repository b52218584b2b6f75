//! `meshguard filter package` against a real registry (Debian's docker-registry, started per
//! test on a free loopback port with its storage in a fresh folder): every module the workspace
//! builds is pushed and read back over the plain distribution API, Envoy runs a module it fetches
//! from the registry, and each bad input gets a clear error and a non-zero exit.

mod support;

use std::path::PathBuf;

use meshguard_testkit::envoy::Options as EnvoyOptions;
use meshguard_testkit::registry::{Registry, TEST_PASSWORD, TEST_USER};
use meshguard_testkit::{Bootstrap, Cluster, Envoy, FilterSpec, Listener, Route, Upstream, http};
use support::package::{
    MANIFEST, fails, modules, ok, package, package_with_stdin, scratch, sha256, text, untar,
};

#[test]
fn every_module_is_pushed_and_pulled_back_byte_for_byte() {
    let registry = Registry::start().unwrap();
    for (name, path) in modules() {
        let module = std::fs::read(&path).unwrap();
        let repository = format!("meshguard/{name}");
        for variant in ["compat", "oci"] {
            let tag = format!("0.1.0-{variant}");
            let image = format!("{}/{repository}:{tag}", registry.address());
            let out = package(&[
                path.to_str().unwrap(),
                "--image",
                &image,
                "--variant",
                variant,
                "--push",
            ]);
            let printed = ok(&out).trim().to_string();

            let manifest = registry.manifest(&repository, &tag).unwrap();
            assert_eq!(
                printed, manifest.digest,
                "{name} {variant}: the printed digest is the registry's"
            );
            assert_eq!(
                manifest.digest,
                format!("sha256:{}", sha256(&manifest.bytes))
            );
            assert_eq!(manifest.content_type, MANIFEST);
            let json = manifest.json().unwrap();
            assert_eq!(json["mediaType"], MANIFEST);
            let layers = json["layers"].as_array().unwrap();
            let blob = |descriptor: &serde_json::Value| {
                let digest = descriptor["digest"].as_str().unwrap();
                let bytes = registry.blob(&repository, digest).unwrap();
                assert_eq!(format!("sha256:{}", sha256(&bytes)), digest);
                assert_eq!(descriptor["size"], bytes.len());
                bytes
            };
            match variant {
                "compat" => {
                    assert_eq!(json["annotations"]["module.wasm.image/variant"], "compat");
                    assert_eq!(
                        json["config"]["mediaType"],
                        "application/vnd.oci.image.config.v1+json"
                    );
                    assert_eq!(layers.len(), 1, "{json}");
                    assert_eq!(
                        layers[0]["mediaType"],
                        "application/vnd.oci.image.layer.v1.tar+gzip"
                    );
                    let files = untar(&blob(&layers[0]));
                    assert_eq!(files.len(), 1, "exactly one file in {name}'s layer");
                    assert_eq!(files[0].0, "plugin.wasm");
                    assert!(
                        files[0].1 == module,
                        "{name}: plugin.wasm differs from {}",
                        path.display()
                    );
                    let config: serde_json::Value =
                        serde_json::from_slice(&blob(&json["config"])).unwrap();
                    assert_eq!(config["architecture"], "wasm");
                }
                _ => {
                    assert_eq!(
                        json["config"]["mediaType"],
                        "application/vnd.module.wasm.config.v1+json"
                    );
                    let media_types: Vec<&str> = layers
                        .iter()
                        .map(|layer| layer["mediaType"].as_str().unwrap())
                        .collect();
                    assert_eq!(
                        media_types,
                        [
                            "application/vnd.module.wasm.config.v1+json",
                            "application/vnd.module.wasm.content.layer.v1+wasm"
                        ]
                    );
                    assert!(blob(&layers[1]) == module, "{name}: the wasm layer differs");
                    let config: serde_json::Value =
                        serde_json::from_slice(&blob(&json["config"])).unwrap();
                    assert_eq!(config["type"], "envoy_proxy");
                    assert_eq!(config["abiVersions"][0], "v0.2.1");
                }
            }
        }
    }
}

fn stamp_module() -> PathBuf {
    meshguard_testkit::paths::filter_module("meshguard_stamp").unwrap()
}

/// Envoy fetches the raw module layer of the oci variant from the registry's blob URL through a
/// cluster, checks its sha256, and runs it; with a wrong sha256 it refuses the filter.
#[test]
fn envoy_runs_the_module_it_fetches_from_the_registry_and_refuses_a_wrong_sha256() {
    let registry = Registry::start().unwrap();
    let image = format!("{}/meshguard/stamp:e2e", registry.address());
    let out = package(&[
        stamp_module().to_str().unwrap(),
        "--image",
        &image,
        "--variant",
        "oci",
        "--push",
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let layer = &report["layers"][1];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.module.wasm.content.layer.v1+wasm"
    );
    let digest = layer["digest"].as_str().unwrap();
    let sha = digest.trim_start_matches("sha256:");
    assert_eq!(
        sha, report["module"]["sha256"],
        "the raw layer is the module"
    );
    let uri = registry.blob_url("meshguard/stamp", digest);

    let upstream = Upstream::start("backend").unwrap();
    let bootstrap = |sha256: &str| {
        Bootstrap::new()
            .cluster(Cluster::new("backend", upstream.addr()))
            .cluster(Cluster::new(
                "registry",
                format!("127.0.0.1:{}", registry.port()).parse().unwrap(),
            ))
            .listener(
                Listener::new("edge")
                    .filter(FilterSpec::wasm_remote(
                        "stamp",
                        &uri,
                        "registry",
                        sha256,
                        r#"{"header":"x-meshguard-stamp","value":"from-the-registry"}"#,
                    ))
                    .route(Route::prefix("/", "backend")),
            )
    };

    // Envoy's remote data fetcher says at debug level whether the fetched bytes matched.
    let options = EnvoyOptions {
        component_log_level: "wasm:debug,config:debug".to_string(),
        ..EnvoyOptions::default()
    };
    let envoy = Envoy::start_with(&bootstrap(sha), &options).unwrap();
    for i in 0..5 {
        let response =
            http::get(&format!("{}/api/products?i={i}", envoy.url("edge")), &[]).unwrap();
        assert_eq!(response.status, 200, "{}", response.body);
        let echo = response.json().unwrap();
        assert_eq!(
            echo["headers"]["x-meshguard-stamp"], "from-the-registry",
            "{echo}"
        );
    }
    assert_eq!(upstream.hits("/api/products"), 5);
    assert!(
        envoy
            .log()
            .contains(&format!("fetch remote data [uri = {uri}]: success")),
        "Envoy fetched the module from the registry:\n{}",
        envoy.log()
    );
    drop(envoy);

    // The same blob with a wrong sha256: Envoy fetches it, rejects the bytes, and the filter
    // (configured to fail closed) never runs; nothing reaches the upstream.
    let wrong = "0".repeat(64);
    let envoy = Envoy::start_with(&bootstrap(&wrong), &options).unwrap();
    let log = wait_for_log(
        &envoy,
        &[
            &format!("fetch remote data [uri = {uri}]: data is invalid"),
            "Plugin stamp failed to load",
        ],
    );
    let response = http::get(&format!("{}/api/products", envoy.url("edge")), &[]).unwrap();
    assert_ne!(
        response.status, 200,
        "served through a module with a wrong sha256:\n{log}"
    );
    assert_eq!(
        upstream.hits("/api/products"),
        5,
        "nothing passed the refused filter"
    );
}

/// Envoy's log once it holds every one of `lines` (a generous deadline: the fetch is retried
/// with a back-off before Envoy gives up).
fn wait_for_log(envoy: &Envoy, lines: &[&str]) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let log = envoy.log();
        if lines.iter().all(|line| log.contains(line)) {
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Envoy's log lacks {lines:?}:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = scratch("not-wasm");
    let file = dir.join("config.wasm");
    std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\n").unwrap();
    let out = package(&[
        file.to_str().unwrap(),
        "--image",
        "registry.example.com/meshguard/x:1",
    ]);
    fails(
        &out,
        &[
            "config.wasm is not a WebAssembly module",
            "\"apiVersion: v1\"",
        ],
    );
    assert!(!dir.join("config.oci").exists(), "nothing was written");
}

#[test]
fn an_unreachable_registry_is_named() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let image = format!("127.0.0.1:{port}/meshguard/stamp:1");
    let out = package(&[
        stamp_module().to_str().unwrap(),
        "--image",
        &image,
        "--push",
    ]);
    fails(
        &out,
        &[
            &format!("cannot reach the registry 127.0.0.1:{port} over http"),
            "check the host and port",
        ],
    );
}

#[test]
fn a_reference_without_a_repository_is_refused() {
    for reference in ["127.0.0.1:5000", "registry.example.com", "rate-limit:0.1.0"] {
        let out = package(&[
            stamp_module().to_str().unwrap(),
            "--image",
            reference,
            "--push",
        ]);
        fails(
            &out,
            &[
                &format!("image reference `{reference}`"),
                "REGISTRY/REPOSITORY[:TAG]",
            ],
        );
    }
}

#[test]
fn an_existing_tag_is_not_moved_without_force() {
    let registry = Registry::start().unwrap();
    let image = format!("{}/meshguard/filter:1.0", registry.address());
    let stamp = stamp_module();
    let canary = meshguard_testkit::paths::filter_module("meshguard_canary").unwrap();
    let first = ok(&package(&[
        stamp.to_str().unwrap(),
        "--image",
        &image,
        "--push",
    ]));

    // The same image again: the tag already names it, nothing to do.
    let again = package(&[stamp.to_str().unwrap(), "--image", &image, "--push"]);
    assert_eq!(ok(&again), first);
    assert!(
        text(&again.stderr).contains("nothing uploaded"),
        "{}",
        text(&again.stderr)
    );

    let out = package(&[canary.to_str().unwrap(), "--image", &image, "--push"]);
    fails(
        &out,
        &[
            &format!("{image} already exists with digest {}", first.trim()),
            "--force",
        ],
    );
    assert_eq!(
        registry.manifest("meshguard/filter", "1.0").unwrap().digest,
        first.trim()
    );

    let moved = package(&[
        canary.to_str().unwrap(),
        "--image",
        &image,
        "--push",
        "--force",
    ]);
    let second = ok(&moved);
    assert!(text(&moved.stderr).contains(&format!("tag moved from {}", first.trim())));
    assert_eq!(
        registry.manifest("meshguard/filter", "1.0").unwrap().digest,
        second.trim()
    );
}

#[test]
fn basic_auth_takes_credentials_and_refuses_without_them() {
    let registry = Registry::start_with_basic_auth().unwrap();
    let image = format!("{}/meshguard/stamp:1", registry.address());
    let stamp = stamp_module();
    let stamp = stamp.to_str().unwrap();

    let out = package(&[stamp, "--image", &image, "--push"]);
    fails(&out, &["refused anonymous access", "--username"]);

    let out = package_with_stdin(
        &[
            stamp,
            "--image",
            &image,
            "--push",
            "--username",
            TEST_USER,
            "--password-stdin",
        ],
        Some("not-the-password\n"),
    );
    fails(&out, &[&format!("refused user {TEST_USER}")]);

    let out = package_with_stdin(
        &[
            stamp,
            "--image",
            &image,
            "--push",
            "--username",
            TEST_USER,
            "--password-stdin",
        ],
        Some(&format!("{TEST_PASSWORD}\n")),
    );
    let digest = ok(&out);
    assert_eq!(
        registry.manifest("meshguard/stamp", "1").unwrap().digest,
        digest.trim()
    );
}

#[test]
fn without_push_an_image_layout_is_written_and_wasmplugins_are_pinned() {
    let dir = scratch("layout");
    let layout = dir.join("stamp.oci");
    let stamp = stamp_module();
    let out = package(&[
        stamp.to_str().unwrap(),
        "--image",
        "registry.example.com/meshguard/stamp:0.1.0",
        "--output",
        layout.to_str().unwrap(),
        "--wasmplugin",
    ]);
    let printed = ok(&out);
    let plugin: serde_yaml::Value = serde_yaml::from_str(&printed).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        plugin["spec"]["url"].as_str().unwrap(),
        format!("oci://registry.example.com/meshguard/stamp:0.1.0@{digest}")
    );
    assert_eq!(
        plugin["spec"]["sha256"].as_str().unwrap(),
        digest.trim_start_matches("sha256:")
    );
    let manifest = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(format!("sha256:{}", sha256(&manifest)), digest);

    // Pinning a WasmPlugin file in place; the digest does not depend on where it is packaged.
    let manifests = dir.join("plugin.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata:\n  name: stamp\n\
         spec:\n  # pulled by every gateway\n  url: oci://ghcr.io/meshguard/stamp:0.0.9\n",
    )
    .unwrap();
    let out = package(&[
        stamp.to_str().unwrap(),
        "--image",
        "registry.example.com/meshguard/stamp:0.1.0",
        "--output",
        dir.join("again.oci").to_str().unwrap(),
        "--update-wasmplugin",
        manifests.to_str().unwrap(),
    ]);
    assert_eq!(ok(&out).trim(), digest);
    let pinned = std::fs::read_to_string(&manifests).unwrap();
    assert!(pinned.contains("  # pulled by every gateway\n"), "{pinned}");
    assert!(
        pinned.contains(&format!(
            "  url: oci://registry.example.com/meshguard/stamp:0.1.0@{digest}\n  sha256: {}\n",
            digest.trim_start_matches("sha256:")
        )),
        "{pinned}"
    );
}

#[test]
fn the_default_layout_sits_next_to_the_module() {
    let dir = scratch("default-layout");
    let module = dir.join("stamp.wasm");
    std::fs::copy(stamp_module(), &module).unwrap();
    let out = package(&[
        module.to_str().unwrap(),
        "--image",
        "registry.example.com/meshguard/stamp:1",
    ]);
    ok(&out);
    assert!(dir.join("stamp.oci/oci-layout").is_file());
}
