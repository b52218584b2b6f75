//! Ships proxy-wasm modules the way Istio pulls them: as OCI images in a layout Istio's agent
//! accepts, pinned by the digest of their manifest.
//!
//! # Why
//!
//! A WasmPlugin's `url: oci://...` is fetched by the Istio agent next to every Envoy, which
//! accepts two image layouts (see [`image`]) and checks `spec.sha256`, or the `@sha256:` of the
//! url, against the digest of the image's *manifest*, not against the module's own hash. A
//! module shipped under a tag alone can change under every running mesh; one pinned by digest
//! is exactly the reviewed build, which is what the `approved-wasm-modules` policy
//! (`gatekeeper/wasmplugin-source`) requires.
//!
//! # Model
//!
//! - [`WasmModule`] checks a module before it is packaged (magic, validation, proxy-wasm ABI).
//! - [`Image::build`] packages it, deterministically: the same module gives the same digest on
//!   any machine, so a digest committed in a manifest can be checked against a rebuild.
//! - [`layout::write`] writes an OCI image layout folder; [`registry::push`] pushes with
//!   `oci-client` (anonymous or basic auth, plain HTTP only for loopback or named registries).
//! - [`wasmplugin`] prints a WasmPlugin that pins the image, or pins existing manifests.
//!
//! `meshguard filter package` is the command-line front end; `cargo xtask release` runs it for
//! every module the workspace builds.

pub mod error;
pub mod image;
pub mod layout;
pub mod module;
pub mod reference;
pub mod registry;
pub mod wasmplugin;

pub use error::{Error, Result};
pub use image::{Image, Variant};
pub use module::WasmModule;
pub use reference::ImageRef;
pub use registry::{Auth, PushOptions, Pushed};

#[cfg(test)]
pub(crate) mod test_util {
    //! Fixtures shared by the unit tests.

    use std::path::{Path, PathBuf};

    /// A minimal proxy-wasm-shaped module: the ABI marker export and a memory.
    pub fn tiny_module() -> Vec<u8> {
        wat::parse_str(
            r#"(module
                 (func (export "proxy_abi_version_0_2_1"))
                 (memory (export "memory") 1))"#,
        )
        .unwrap()
    }

    /// A folder under the system temp dir, removed on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(label: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static SEQ: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "meshguard-package-{label}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
