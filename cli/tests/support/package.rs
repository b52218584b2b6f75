//! Running `meshguard filter package` and reading what it pushed: the helpers of
//! `filter_package.rs`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use meshguard_testkit::paths::{module_image_name, target_dir};
use sha2::{Digest as _, Sha256};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn package(args: &[&str]) -> Output {
    package_with_stdin(args, None)
}

pub fn package_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshguard"))
        .args(["filter", "package"])
        .args(args)
        .env_remove("MESHGUARD_REGISTRY_USERNAME")
        .env_remove("MESHGUARD_REGISTRY_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the meshguard binary runs");
    {
        use std::io::Write as _;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("meshguard finishes")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Asserts a non-zero exit and an error naming each of `texts`; returns stderr.
pub fn fails(out: &Output, texts: &[&str]) -> String {
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "must fail:\n{stderr}");
    assert!(
        stderr.lines().any(|line| line.starts_with("error: ")),
        "{stderr}"
    );
    for expected in texts {
        assert!(
            stderr.contains(expected),
            "stderr lacks {expected:?}:\n{stderr}"
        );
    }
    stderr
}

/// Every module `cargo xtask build-filters` wrote, as (image name, path): the image name is the
/// crate name without `meshguard_`, kebab-case, as the release names them.
pub fn modules() -> Vec<(String, PathBuf)> {
    let dir = target_dir().join("filters");
    let mut modules: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| {
            panic!(
                "{}: {err}; build the filters with `cargo xtask build-filters`",
                dir.display()
            )
        })
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (module_image_name(&stem), path)
        })
        .collect();
    modules.sort();
    assert!(
        modules.len() >= 5,
        "expected every filter in {}: {modules:?}",
        dir.display()
    );
    modules
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = target_dir()
        .join("tmp/cli-package-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The files of a tar+gzip layer.
pub fn untar(gzipped: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_end(&mut tar)
        .expect("the layer is gzip");
    tar::Archive::new(tar.as_slice())
        .entries()
        .expect("the layer is a tar")
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}
