//! `cargo xtask reproducible`: the modules in `target/filters/` are exactly what this commit
//! builds anywhere else.
//!
//! A WasmPlugin pins the digest of an image, and the image is a pure function of the module
//! (`meshguard-filter-package`), so a pin in a committed manifest can only be checked, or
//! re-made by another machine, if the build is reproducible. Two checks, cheapest first:
//!
//! 1. No module contains the absolute path of anything on this machine: the workspace, the
//!    target folder, cargo's home. (Panic locations are kept even with `panic = "abort"`; a
//!    path that leaks in makes a second clone or another user's build differ.)
//! 2. A second copy of the sources, at another path, built into another target folder, gives
//!    byte-identical modules. The copy lives in `target/repro/` and keeps its file times, so a
//!    later run rebuilds only what changed; a cold run costs one more wasm build.
//!
//! `cargo xtask test` (CI) runs only the first: there the second build is already done by the
//! release test (`xtask/tests/release.rs`), which requires the committed WasmPlugins to pin
//! exactly the images that CI's fresh clone builds. Those pins were made by another build, in
//! the developer's checkout, so a module that differs between two builds or two paths fails
//! CI there, and CI spends no 200 s rebuilding every module a second time.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use meshguard_testkit::paths::{target_dir, workspace_root};

use crate::build::{FilterCrate, build_modules, cargo_home, filter_crates};
use crate::process::output;

/// Runs both checks against `target/filters/` (which `build-filters` wrote).
pub fn check() -> anyhow::Result<()> {
    let crates = filter_crates()?;
    let built = no_machine_paths(&crates)?;
    let repro = target_dir().join("repro");
    let source = repro.join("src");
    let copied = sync_sources(&workspace_root(), &source)?;
    eprintln!(
        "meshguard: building the filters again from {} ({copied} files updated)",
        source.display()
    );
    let again = build_modules(&source, &repro.join("target"), &crates)?;
    let mut differ = Vec::new();
    for ((name, first), second) in built.iter().zip(&again) {
        if *first != second.module {
            differ.push(format!(
                "{name}.wasm: {} bytes here, {} bytes from {}",
                first.len(),
                second.module.len(),
                source.display()
            ));
        }
    }
    if !differ.is_empty() {
        bail!(
            "the filters are not reproducible: a second build from another path differs:\n  {}",
            differ.join("\n  ")
        );
    }
    println!(
        "reproducible: {} modules byte-identical when built from {} into {}",
        built.len(),
        source.display(),
        repro.join("target").display()
    );
    Ok(())
}

/// Check 1 on the modules in `target/filters/` (which `build-filters` wrote); returns them by
/// name for check 2.
pub fn no_machine_paths(crates: &[FilterCrate]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let built_dir = target_dir().join("filters");
    let mut built = Vec::new();
    for filter in crates {
        let path = built_dir.join(format!("{}.wasm", filter.crate_name));
        let module = fs::read(&path).with_context(|| {
            format!(
                "reading {} (run `cargo xtask build-filters` first)",
                path.display()
            )
        })?;
        built.push((filter.crate_name.clone(), module));
    }
    let machine_paths = [workspace_root(), target_dir(), cargo_home()?];
    for (name, module) in &built {
        if let Some(path) = leaked_path(module, &machine_paths) {
            bail!(
                "{name}.wasm contains the path {} of this machine: it would differ when built \
                 elsewhere (remap it in `build::wasm_rustflags`)",
                path.display()
            );
        }
    }
    Ok(built)
}

/// The first of `paths` whose spelling appears in `module`.
fn leaked_path<'a>(module: &[u8], paths: &'a [PathBuf]) -> Option<&'a PathBuf> {
    paths.iter().find(|path| {
        let needle = path.to_string_lossy();
        let needle = needle.as_bytes();
        !needle.is_empty() && module.windows(needle.len()).any(|window| window == needle)
    })
}

/// Mirrors the files git would commit (tracked, plus untracked ones that are not ignored, so
/// uncommitted work is checked too) from `root` into `copy`, keeping modification times, and
/// removes files that are gone. Returns how many files were written.
fn sync_sources(root: &Path, copy: &Path) -> anyhow::Result<usize> {
    let listing = output(std::process::Command::new("git").current_dir(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))
    .context("listing the sources with git (the reproducibility check copies what git would)")?;
    let files: Vec<PathBuf> = listing
        .split('\0')
        .filter(|name| !name.is_empty())
        .map(PathBuf::from)
        .filter(|name| root.join(name).is_file())
        .collect();
    let mut written = 0;
    for name in &files {
        let from = root.join(name);
        let to = copy.join(name);
        let metadata = fs::metadata(&from)?;
        let modified = metadata.modified()?;
        if let Ok(existing) = fs::metadata(&to)
            && existing.len() == metadata.len()
            && existing.modified().is_ok_and(|time| time == modified)
        {
            continue;
        }
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        fs::File::options()
            .write(true)
            .open(&to)?
            .set_modified(modified)?;
        written += 1;
    }
    remove_stale(copy, copy, &files)?;
    Ok(written)
}

/// Deletes files under `dir` that are not in `keep` (paths relative to `copy`).
fn remove_stale(copy: &Path, dir: &Path, keep: &[PathBuf]) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            remove_stale(copy, &path, keep)?;
        } else if let Ok(relative) = path.strip_prefix(copy)
            && !keep.iter().any(|name| name == relative)
        {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_machine_path_in_a_module_is_found() {
        let paths = [
            PathBuf::from("/work/meshguard"),
            PathBuf::from("/home/dev/.cargo"),
        ];
        let module = b"\0asm\x01\0\0\0panicked at /home/dev/.cargo/registry/src/x.rs:1:1";
        assert_eq!(leaked_path(module, &paths), Some(&paths[1]));
        let remapped = b"\0asm\x01\0\0\0panicked at /cargo/registry/src/x.rs:1:1";
        assert_eq!(leaked_path(remapped, &paths), None);
    }
}
