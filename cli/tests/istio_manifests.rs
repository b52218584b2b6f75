//! The repository's own Istio manifests pass the repository's own policies, as a developer checks
//! them: `meshguard policy check -f istio/ --policies gatekeeper/` exits 0. Every WasmPlugin in
//! `istio/` is reviewed (new ones included, found by walking the folder), each pulls from the
//! registry the sample `approved-wasm-modules` constraint approves and pins its image by digest.
//! That the digests are the images this commit builds is checked by `cargo xtask release`'s
//! test (xtask/tests/release.rs).

mod support;

use std::path::{Path, PathBuf};

use support::{copy_dir, meshguard, root, scratch};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every WasmPlugin document under `istio/`, with its file.
fn wasmplugins() -> Vec<(PathBuf, serde_yaml::Value)> {
    let mut plugins = Vec::new();
    for file in yaml_files(&root().join("istio")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(document).unwrap();
            if value["kind"].as_str() == Some("WasmPlugin") {
                plugins.push((file.clone(), value));
            }
        }
    }
    plugins
}

fn approved_registries() -> Vec<String> {
    let path = root().join("gatekeeper/wasmplugin-source/samples/oci-and-sha256/constraint.yaml");
    let constraint: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    constraint["spec"]["parameters"]["registries"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|registry| registry.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn our_istio_manifests_pass_our_policies() {
    let run = meshguard(&[
        "policy",
        "check",
        "-f",
        "istio/",
        "--policies",
        "gatekeeper/",
    ]);
    run.expect_code(0);
    assert!(
        run.last_line()
            .ends_with(": 0 violations (0 deny, 0 warn, 0 dryrun)"),
        "{}",
        run.stdout
    );
}

#[test]
fn every_wasmplugin_pulls_an_approved_registry_by_digest() {
    let plugins = wasmplugins();
    assert!(plugins.len() >= 7, "found {} WasmPlugins", plugins.len());
    let approved = approved_registries();
    for (file, plugin) in &plugins {
        let url = plugin["spec"]["url"].as_str().unwrap_or_default();
        let sha256 = plugin["spec"]["sha256"].as_str().unwrap_or_default();
        let where_ = format!(
            "{} ({})",
            file.display(),
            plugin["metadata"]["name"].as_str().unwrap_or("?")
        );
        assert!(
            approved
                .iter()
                .any(|registry| url.starts_with(&format!("oci://{registry}/"))),
            "{where_}: {url} is not in an approved registry {approved:?}"
        );
        let digest = url.split_once("@sha256:").map(|(_, digest)| digest);
        assert_eq!(
            digest,
            Some(sha256),
            "{where_}: the url's digest and spec.sha256 agree"
        );
        assert!(
            sha256.len() == 64
                && sha256
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{where_}: spec.sha256 {sha256:?}"
        );
    }
}

/// The check is not vacuous: the same manifests with one WasmPlugin unpinned and another moved to
/// an unapproved registry fail it, each reported.
#[test]
fn the_check_fails_when_a_wasmplugin_is_unpinned() {
    let plugins = wasmplugins();
    let dir = scratch("istio-unpinned");
    copy_dir(&root().join("istio"), &dir);
    let (file, plugin) = &plugins[0];
    let relative = file.strip_prefix(root().join("istio")).unwrap();
    let url = plugin["spec"]["url"].as_str().unwrap();
    let sha256 = plugin["spec"]["sha256"].as_str().unwrap();
    let text = std::fs::read_to_string(dir.join(relative)).unwrap();
    let unpinned = text
        .replacen(&format!("\n  sha256: {sha256}\n"), "\n", 1)
        .replacen(url, url.split('@').next().unwrap(), 1)
        .replacen("oci://registry.example.com/", "oci://ghcr.io/", 1);
    assert_ne!(unpinned, text);
    std::fs::write(dir.join(relative), unpinned).unwrap();

    let run = meshguard(&[
        "policy",
        "check",
        "-f",
        dir.to_str().unwrap(),
        "--policies",
        "gatekeeper/",
    ]);
    run.expect_code(1).stdout_has(&[
        "[approved-wasm-modules]",
        "does not pin its module",
        "modules may only come from the OCI registries",
    ]);
}
