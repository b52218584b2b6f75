//! A module as an OCI image, in one of the two layouts Istio's agent accepts
//! (istio `pkg/wasm/imagefetcher.go`, after the Wasm image specs of solo-io/wasm `spec/`):
//!
//! - **compat** (the default): an ordinary OCI image whose one layer
//!   (`application/vnd.oci.image.layer.v1.tar+gzip`) is a tar holding exactly `plugin.wasm`, with
//!   the manifest annotation `module.wasm.image/variant: compat`. Any OCI tool and registry
//!   handles it.
//! - **oci**: the artifact layout. The config is the runtime config
//!   (`application/vnd.module.wasm.config.v1+json`: `type: envoy_proxy` and the module's ABI
//!   version) and the module is a raw layer (`application/vnd.module.wasm.content.layer.v1+wasm`),
//!   which a registry serves byte for byte, so Envoy can fetch it directly as a blob. Istio's
//!   agent takes this layout only when the manifest lists exactly two layers (the runtime
//!   config, then the module), so the config blob is listed as the first layer too, as the
//!   spec's two-layer format has it.
//!
//! # Reproducible by construction
//!
//! The manifest digest is what a WasmPlugin pins, so an image is a pure function of the module
//! bytes and the variant: no timestamps (tar `mtime` 0, gzip `MTIME` 0, no `created` in the
//! config), fixed tar ownership and mode, a fixed gzip OS byte and level, and JSON written with
//! sorted keys and no whitespace. The same module packaged on another machine, or by the
//! release job, has the same digest; the unit tests pin the exact bytes.
//!
//! The documents are typed with `oci-spec`; its maps are `HashMap`s, so they are serialized
//! through `serde_json::Value`, whose object keys are sorted.

use std::io::Write as _;

use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, Descriptor, DescriptorBuilder, ImageConfigurationBuilder, ImageManifestBuilder,
    MediaType, Os, RootFsBuilder, SCHEMA_VERSION,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::module::{WasmModule, hex};

/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the compat variant's one layer.
pub const TAR_GZIP_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the compat variant's config.
pub const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the oci variant's runtime config.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.module.wasm.config.v1+json";
/// Media type of the oci variant's module layer (the raw .wasm).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The manifest annotation that marks a compat image.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The file the compat layer holds.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The title annotation of a layer (the file name it stands for).
const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// Which of Istio's two image layouts to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// One tar+gzip layer holding `plugin.wasm`; handled by every OCI tool.
    #[default]
    Compat,
    /// The Wasm artifact layout: runtime config plus the raw module as a layer.
    Oci,
}

impl Variant {
    /// `compat` or `oci`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compat => "compat",
            Self::Oci => "oci",
        }
    }
}

/// Content-addressed bytes: a config or a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Its media type.
    pub media_type: &'static str,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        let digest = sha256_digest(&bytes);
        Self {
            media_type,
            bytes,
            digest,
        }
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// A packaged module: its blobs and the manifest that names them.
#[derive(Debug, Clone)]
pub struct Image {
    /// The layout.
    pub variant: Variant,
    /// The config blob.
    pub config: Blob,
    /// The layers, in manifest order.
    pub layers: Vec<Blob>,
    /// The manifest, exactly as pushed and stored.
    pub manifest: Vec<u8>,
    /// `sha256:<hex>` of the manifest: what Istio's `spec.sha256` and `@sha256:` mean.
    pub digest: String,
}

impl Image {
    /// Builds the image of `module` in `variant`. Deterministic: see the module docs.
    pub fn build(module: &WasmModule, variant: Variant) -> Result<Self> {
        let (config, layers, annotation) = match variant {
            Variant::Compat => {
                let tar = plugin_tar(module.bytes())?;
                let diff_id = sha256_digest(&tar);
                let layer = Blob::new(TAR_GZIP_LAYER_MEDIA_TYPE, gzip(&tar)?);
                let config = ImageConfigurationBuilder::default()
                    .architecture(Arch::Wasm)
                    .os(Os::Other("wasip1".to_string()))
                    .rootfs(
                        RootFsBuilder::default()
                            .typ("layers")
                            .diff_ids(vec![diff_id])
                            .build()
                            .map_err(|err| encode_error("config", err))?,
                    )
                    .build()
                    .map_err(|err| encode_error("config", err))?;
                let config = Blob::new(IMAGE_CONFIG_MEDIA_TYPE, canonical_json("config", &config)?);
                (config, vec![layer], Some(Variant::Compat))
            }
            Variant::Oci => {
                let runtime = RuntimeConfig {
                    kind: "envoy_proxy",
                    abi_versions: vec![module.abi_version().to_string()],
                };
                let config = Blob::new(WASM_CONFIG_MEDIA_TYPE, canonical_json("config", &runtime)?);
                let module = Blob::new(WASM_LAYER_MEDIA_TYPE, module.bytes().to_vec());
                (config.clone(), vec![config, module], None)
            }
        };
        let titles: &[&str] = match variant {
            Variant::Compat => &[],
            Variant::Oci => &["runtime-config.json", PLUGIN_FILE],
        };
        let layer_descriptors = layers
            .iter()
            .enumerate()
            .map(|(index, layer)| descriptor(layer, titles.get(index).copied()))
            .collect::<Result<Vec<_>>>()?;
        let mut manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(&config, None)?)
            .layers(layer_descriptors);
        if let Some(variant) = annotation {
            manifest = manifest.annotations(
                [(VARIANT_ANNOTATION.to_string(), variant.as_str().to_string())]
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
        let manifest = manifest
            .build()
            .map_err(|err| encode_error("manifest", err))?;
        let manifest = canonical_json("manifest", &manifest)?;
        Ok(Self {
            variant,
            digest: sha256_digest(&manifest),
            config,
            layers,
            manifest,
        })
    }

    /// The hex part of the manifest digest (what a WasmPlugin's `sha256` holds).
    pub fn digest_hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    /// Every distinct blob (the oci variant lists its config twice), config first.
    pub fn blobs(&self) -> Vec<&Blob> {
        let mut blobs: Vec<&Blob> = Vec::new();
        for blob in std::iter::once(&self.config).chain(&self.layers) {
            if !blobs.iter().any(|seen| seen.digest == blob.digest) {
                blobs.push(blob);
            }
        }
        blobs
    }

    /// The layer that holds the module: the raw .wasm (oci) or the tar+gzip (compat).
    pub fn module_layer(&self) -> Option<&Blob> {
        self.layers.last()
    }
}

/// The oci variant's runtime config (solo-io/wasm `spec/spec.md`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(rename = "type")]
    kind: &'static str,
    abi_versions: Vec<String>,
}

fn descriptor(blob: &Blob, title: Option<&str>) -> Result<Descriptor> {
    let digest: oci_spec::image::Digest = blob
        .digest
        .parse()
        .map_err(|err| encode_error("descriptor", err))?;
    let mut builder = DescriptorBuilder::default()
        .media_type(MediaType::from(blob.media_type))
        .digest(digest)
        .size(blob.bytes.len() as u64);
    if let Some(title) = title {
        builder = builder.annotations(
            [(TITLE_ANNOTATION.to_string(), title.to_string())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    builder
        .build()
        .map_err(|err| encode_error("descriptor", err))
}

/// A tar holding exactly `plugin.wasm`: ustar, owned by 0:0, mode 0644, mtime 0.
fn plugin_tar(module: &[u8]) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header
        .set_path(PLUGIN_FILE)
        .map_err(|err| encode_error("layer", err))?;
    header.set_size(module.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder
        .append(&header, module)
        .map_err(|err| encode_error("layer", err))?;
    builder
        .into_inner()
        .map_err(|err| encode_error("layer", err))
}

/// gzip with no name, `MTIME` 0, OS byte 255 (unknown) and the best compression level.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .map_err(|err| encode_error("layer", err))?;
    encoder.finish().map_err(|err| encode_error("layer", err))
}

/// Compact JSON with sorted object keys.
fn canonical_json(what: &'static str, value: &impl Serialize) -> Result<Vec<u8>> {
    serde_json::to_value(value)
        .and_then(|value| serde_json::to_vec(&value))
        .map_err(|err| encode_error(what, err))
}

fn encode_error(what: &'static str, err: impl std::fmt::Display) -> Error {
    Error::Encode {
        what,
        reason: err.to_string(),
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
