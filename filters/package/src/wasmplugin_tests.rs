use super::*;
use crate::test_util::TempDir;

const HEX: &str = "0f3a64a7c2b5e8d9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8";

fn image() -> ImageRef {
    ImageRef::parse("registry.example.com/meshguard/rate-limit:0.2.0").unwrap()
}

fn digest() -> String {
    format!("sha256:{HEX}")
}

const MANIFESTS: &str = "\
# Rate limits at the edge.
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: meshguard-rate-limit-edge
spec:
  selector:
    matchLabels:
      istio: ingressgateway
  url: oci://ghcr.io/meshguard/rate-limit:0.1.0 # the shipped module
  imagePullPolicy: IfNotPresent
  pluginConfig:
    limits:
      - name: login
        # a nested url key is not the plugin's
        url: keep-me
---
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: meshguard-canary
spec:
  url: oci://ghcr.io/meshguard/canary:0.1.0
---
# Pinned before; the digest moves.
apiVersion: extensions.istio.io/v1alpha1
kind: WasmPlugin
metadata:
  name: meshguard-rate-limit-order
spec:
  sha256: 1111111111111111111111111111111111111111111111111111111111111111
  url: oci://registry.example.com/meshguard/rate-limit:0.1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111
  phase: AUTHZ
";

#[test]
fn only_the_pin_of_matching_plugins_changes() {
    let (updated, plugins) = update_text(MANIFESTS, &image(), &digest()).unwrap();
    assert_eq!(plugins, 2);
    let url = format!("oci://registry.example.com/meshguard/rate-limit:0.2.0@sha256:{HEX}");
    let expected = MANIFESTS
        .replace(
            "  url: oci://ghcr.io/meshguard/rate-limit:0.1.0 # the shipped module\n",
            &format!("  url: {url} # the shipped module\n  sha256: {HEX}\n"),
        )
        .replace(
            "  sha256: 1111111111111111111111111111111111111111111111111111111111111111\n",
            "",
        )
        .replace(
            "  url: oci://registry.example.com/meshguard/rate-limit:0.1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111\n",
            &format!("  url: {url}\n  sha256: {HEX}\n"),
        );
    assert_eq!(updated, expected);
    // Idempotent: pinning again changes nothing.
    assert_eq!(
        update_text(&updated, &image(), &digest()).unwrap(),
        (updated.clone(), 2)
    );
}

#[test]
fn a_spec_the_edit_cannot_follow_is_refused_not_mangled() {
    let flow = "kind: WasmPlugin\nspec: {url: oci://ghcr.io/meshguard/rate-limit:0.1.0}\n";
    let err = update_text(flow, &image(), &digest()).unwrap_err();
    assert!(err.contains("pin it by hand"), "{err}");
    let folded =
        "kind: WasmPlugin\nspec:\n  url: >-\n    oci://ghcr.io/meshguard/rate-limit:0.1.0\n";
    let err = update_text(folded, &image(), &digest()).unwrap_err();
    assert!(err.contains("pin it by hand"), "{err}");
}

#[test]
fn a_printed_plugin_is_pinned_and_parses() {
    let text = render(&image(), &digest());
    let value: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(value["kind"], "WasmPlugin");
    assert_eq!(value["metadata"]["name"], "rate-limit");
    assert_eq!(
        value["spec"]["url"].as_str().unwrap(),
        format!("oci://registry.example.com/meshguard/rate-limit:0.2.0@sha256:{HEX}")
    );
    assert_eq!(value["spec"]["sha256"].as_str().unwrap(), HEX);
}

#[test]
fn files_are_rewritten_only_when_they_pull_the_image() {
    let dir = TempDir::new("wasmplugin");
    let nested = dir.path().join("edge");
    fs::create_dir_all(&nested).unwrap();
    let plugin = nested.join("plugin.yaml");
    let other = dir.path().join("other.yml");
    fs::write(&plugin, MANIFESTS).unwrap();
    fs::write(&other, "kind: Service\nmetadata:\n  name: x\n").unwrap();

    let updated = update_path(dir.path(), &image(), &digest()).unwrap();
    assert_eq!(
        updated,
        [Updated {
            path: plugin.clone(),
            plugins: 2,
            changed: true
        }]
    );
    assert!(fs::read_to_string(&plugin).unwrap().contains(HEX));
    let again = update_path(&plugin, &image(), &digest()).unwrap();
    assert!(!again[0].changed);

    let err = update_path(&other, &image(), &digest())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no WasmPlugin in it pulls an image named `rate-limit`"),
        "{err}"
    );
    assert_eq!(
        fs::read_dir(&nested).unwrap().count(),
        1,
        "no temporary file left"
    );
}
