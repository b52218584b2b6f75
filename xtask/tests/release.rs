//! `cargo xtask release` end to end: every module the workspace builds is pushed to a real
//! registry and the rendered Istio manifests pin exactly what was pushed; rendered for the
//! approved registry, they pass the repository's own policy and are the committed `istio/`
//! byte for byte.
//!
//! The release packages with the `meshguard` binary that `cargo test --workspace` builds
//! (`target/debug/meshguard`), as `cargo xtask test` runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use meshguard_testkit::Registry;
use meshguard_testkit::paths::{module_image_name, target_dir, workspace_root};

fn meshguard() -> PathBuf {
    let path = target_dir().join("debug").join("meshguard");
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo xtask test`), \
         which builds it",
        path.display()
    );
    path
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--cli")
        .arg(meshguard())
        .current_dir(workspace_root())
        .output()
        .expect("xtask runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn scratch(name: &str) -> PathBuf {
    let dir = target_dir()
        .join("tmp/xtask-release-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The modules `build-filters` writes, as image names.
fn module_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(target_dir().join("filters"))
        .expect("the filters are built")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .map(|path| module_image_name(&path.file_stem().unwrap().to_string_lossy()))
        .collect();
    names.sort();
    names
}

/// Every `*.yaml` under `dir`, relative to it.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "yaml") {
                files.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    files.sort();
    files
}

/// `(file, name, url, sha256)` of every WasmPlugin under `dir`.
fn wasmplugins(dir: &Path) -> Vec<(PathBuf, String, String, String)> {
    let mut plugins = Vec::new();
    for file in yaml_files(dir) {
        let text = std::fs::read_to_string(dir.join(&file)).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(document).unwrap();
            if value["kind"].as_str() == Some("WasmPlugin") {
                let field =
                    |value: &serde_yaml::Value| value.as_str().unwrap_or_default().to_string();
                plugins.push((
                    file.clone(),
                    field(&value["metadata"]["name"]),
                    field(&value["spec"]["url"]),
                    field(&value["spec"]["sha256"]),
                ));
            }
        }
    }
    plugins
}

#[test]
fn a_release_pushes_every_module_and_pins_the_manifests_to_what_it_pushed() {
    let registry = Registry::start().unwrap();
    let out = scratch("pushed");
    let target = format!("{}/meshguard", registry.address());
    let run = xtask(&[
        "release",
        "--registry",
        &target,
        "--version",
        "0.1.0-test",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = ok(&run);

    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(out.join("release.json")).unwrap()).unwrap();
    let released: Vec<String> = rows
        .iter()
        .map(|row| module_image_name(row["module"].as_str().unwrap().trim_end_matches(".wasm")))
        .collect();
    let mut sorted = released.clone();
    sorted.sort();
    assert_eq!(sorted, module_names(), "every built module, discovered");

    for row in &rows {
        let name = module_image_name(row["module"].as_str().unwrap().trim_end_matches(".wasm"));
        let digest = row["digest"].as_str().unwrap();
        let image = row["image"].as_str().unwrap();
        assert_eq!(image, format!("{target}/{name}:0.1.0-test"));
        let stored = registry
            .manifest(&format!("meshguard/{name}"), "0.1.0-test")
            .unwrap();
        assert_eq!(
            stored.digest, digest,
            "{name}: the registry holds what the table says"
        );
        assert!(stdout.contains(row["module"].as_str().unwrap()), "{stdout}");
        assert!(
            stdout
                .lines()
                .any(|line| line.contains(digest) && line.ends_with(image)),
            "the table has {name}'s size, digest and image:\n{stdout}"
        );
        assert!(out.join("images").join(&name).join("index.json").is_file());
    }

    let plugins = wasmplugins(&out.join("istio"));
    assert_eq!(
        plugins.len(),
        wasmplugins(&workspace_root().join("istio")).len()
    );
    for (file, plugin, url, sha256) in plugins {
        let name = url
            .rsplit('/')
            .next()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string();
        let row = rows
            .iter()
            .find(|row| {
                row["image"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/{name}:0.1.0-test"))
            })
            .unwrap_or_else(|| {
                panic!(
                    "{}: {plugin} pulls {url}, which was not released",
                    file.display()
                )
            });
        let digest = row["digest"].as_str().unwrap();
        assert_eq!(
            url,
            format!("oci://{target}/{name}:0.1.0-test@{digest}"),
            "{}",
            file.display()
        );
        assert_eq!(format!("sha256:{sha256}"), digest, "{}", file.display());
    }

    // The wasmplugin-source policy, with the release registry approved instead of the sample's,
    // admits every rendered WasmPlugin: each is pinned, and pulls from where it was pushed.
    let constraint = out.join("approved-here.yaml");
    let sample = std::fs::read_to_string(
        workspace_root()
            .join("gatekeeper/wasmplugin-source/samples/oci-and-sha256/constraint.yaml"),
    )
    .unwrap();
    std::fs::write(
        &constraint,
        sample.replace(
            "- registry.example.com",
            &format!("- {}", registry.address()),
        ),
    )
    .unwrap();
    let check = Command::new(meshguard())
        .args(["policy", "check", "-f"])
        .arg(out.join("istio"))
        .args([
            "--policies",
            "gatekeeper/wasmplugin-source/template.yaml",
            "--policies",
        ])
        .arg(&constraint)
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let report = ok(&check);
    assert!(report.contains(" 0 violations"), "{report}");

    // Run again from the same commit: the same digests, nothing moved.
    let again = ok(&xtask(&[
        "release",
        "--registry",
        &target,
        "--version",
        "0.1.0-test",
        "--out",
        out.to_str().unwrap(),
    ]));
    for row in &rows {
        assert!(again.contains(row["digest"].as_str().unwrap()), "{again}");
    }
}

/// What keeps the committed manifests truthful: rendering them for the registry the sample
/// constraint approves, without a push, must reproduce `istio/` exactly, and the result must pass
/// `meshguard policy check` against the repository's own policies.
#[test]
fn committed_manifests_are_what_the_release_renders_and_pass_our_policy() {
    let out = scratch("pinned");
    let run = xtask(&[
        "release",
        "--registry",
        "registry.example.com/meshguard",
        "--version",
        env!("CARGO_PKG_VERSION"),
        "--no-push",
        "--out",
        out.to_str().unwrap(),
    ]);
    ok(&run);
    let rendered = out.join("istio");
    let committed = workspace_root().join("istio");
    assert_eq!(yaml_files(&rendered), yaml_files(&committed));
    for file in yaml_files(&committed) {
        let want = std::fs::read_to_string(rendered.join(&file)).unwrap();
        let have = std::fs::read_to_string(committed.join(&file)).unwrap();
        assert!(
            want == have,
            "istio/{} does not pin the images this commit builds; run `cargo xtask \
             pin-manifests` and commit the result\n--- committed\n{have}\n--- rendered\n{want}",
            file.display()
        );
    }

    let check = Command::new(meshguard())
        .args(["policy", "check", "-f"])
        .arg(&rendered)
        .args(["--policies", "gatekeeper/"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    let report = ok(&check);
    assert!(report.contains(" 0 violations"), "{report}");
}
