//! Where things live in the workspace: the built filter modules and the tools venv, and the
//! image name each module is shipped under.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// The workspace root (two levels above this crate's manifest).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// Path of a built filter module, `target/filters/<crate_name>.wasm`.
pub fn filter_module_path(crate_name: &str) -> PathBuf {
    target_dir()
        .join("filters")
        .join(format!("{crate_name}.wasm"))
}

/// A built filter module, or an error that says how to build it. Tests fail (never skip) when
/// the module is missing.
pub fn filter_module(crate_name: &str) -> anyhow::Result<PathBuf> {
    let path = filter_module_path(crate_name);
    if !path.is_file() {
        bail!(
            "filter module {} is missing: build the filters with `cargo xtask build-filters` \
             (the README's test command does this first)",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

/// The image a module ships as, by its crate name: without the `meshguard_` prefix, in
/// kebab-case (`meshguard_rate_limit` -> `rate-limit`). The all-in-one pipeline's builds keep
/// it: `meshguard` stays `meshguard`, `meshguard_with_authz` is `meshguard-with-authz` (not
/// `with-authz`). `cargo xtask release` pushes `REGISTRY/PATH/<name>:VERSION`, and WasmPlugins
/// are matched to modules by this last path component of their url.
pub fn module_image_name(crate_name: &str) -> String {
    let name = if crate_name.starts_with("meshguard_with_") {
        crate_name
    } else {
        crate_name.strip_prefix("meshguard_").unwrap_or(crate_name)
    };
    name.replace('_', "-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_names_drop_the_prefix_and_use_kebab_case() {
        for (crate_name, image) in [
            ("meshguard_rate_limit", "rate-limit"),
            ("meshguard_stamp", "stamp"),
            ("meshguard", "meshguard"),
            ("meshguard_with_authz", "meshguard-with-authz"),
            ("meshguard_authz", "authz"),
            ("meshguard_jwt_auth", "jwt-auth"),
        ] {
            assert_eq!(super::module_image_name(crate_name), image);
        }
    }
}
