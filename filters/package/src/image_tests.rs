use std::io::Read as _;

use super::*;
use crate::test_util::tiny_module;

fn module() -> WasmModule {
    WasmModule::inspect("tiny.wasm", tiny_module()).unwrap()
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The files of a tar+gzip layer, with their headers.
fn untar(gzipped: &[u8]) -> Vec<(tar::Header, Vec<u8>)> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gzipped)
        .read_to_end(&mut tar)
        .unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.header().clone(), bytes)
        })
        .collect()
}

#[test]
fn compat_is_one_tar_gzip_layer_holding_exactly_plugin_wasm() {
    let image = Image::build(&module(), Variant::Compat).unwrap();
    let manifest = json(&image.manifest);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], IMAGE_CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["annotations"][VARIANT_ANNOTATION], "compat");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["mediaType"], TAR_GZIP_LAYER_MEDIA_TYPE);
    assert_eq!(layers[0]["digest"], image.layers[0].digest);
    assert_eq!(layers[0]["size"], image.layers[0].bytes.len());

    let files = untar(&image.layers[0].bytes);
    assert_eq!(files.len(), 1, "exactly one file");
    let (header, bytes) = &files[0];
    assert_eq!(header.path().unwrap().to_str(), Some(PLUGIN_FILE));
    assert_eq!(bytes, &tiny_module(), "byte-identical to the module");
    assert_eq!(header.mtime().unwrap(), 0);
    assert_eq!(header.uid().unwrap(), 0);
    assert_eq!(header.gid().unwrap(), 0);
    assert_eq!(header.mode().unwrap(), 0o644);
}

#[test]
fn compat_config_names_the_wasm_platform_and_the_uncompressed_layer() {
    let image = Image::build(&module(), Variant::Compat).unwrap();
    let config = json(&image.config.bytes);
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip1");
    assert!(config.get("created").is_none(), "no timestamp: {config}");
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(image.layers[0].bytes.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        config["rootfs"],
        serde_json::json!({"type": "layers", "diff_ids": [sha256_digest(&tar)]})
    );
}

#[test]
fn gzip_header_carries_no_time_and_a_fixed_os() {
    let image = Image::build(&module(), Variant::Compat).unwrap();
    let header = &image.layers[0].bytes[..10];
    assert_eq!(&header[..3], &[0x1f, 0x8b, 8], "gzip, deflate");
    assert_eq!(header[3], 0, "no name, comment or extra field");
    assert_eq!(&header[4..8], &[0, 0, 0, 0], "MTIME 0");
    assert_eq!(header[9], 255, "OS unknown");
}

#[test]
fn oci_variant_is_the_runtime_config_and_the_raw_module() {
    let image = Image::build(&module(), Variant::Oci).unwrap();
    let manifest = json(&image.manifest);
    assert_eq!(manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(manifest["config"]["mediaType"], WASM_CONFIG_MEDIA_TYPE);
    assert!(manifest.get("annotations").is_none(), "{manifest}");
    let media_types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["mediaType"].as_str().unwrap())
        .collect();
    // Istio's agent wants exactly two layers, the module among them.
    assert_eq!(media_types, [WASM_CONFIG_MEDIA_TYPE, WASM_LAYER_MEDIA_TYPE]);
    assert_eq!(
        manifest["layers"][1]["annotations"]["org.opencontainers.image.title"],
        PLUGIN_FILE
    );
    let layer = image.module_layer().unwrap();
    assert_eq!(layer.bytes, tiny_module(), "the raw module, byte for byte");
    assert_eq!(
        layer.hex(),
        module().sha256(),
        "so Envoy's sha256 is the layer's"
    );
    assert_eq!(
        json(&image.config.bytes),
        serde_json::json!({"type": "envoy_proxy", "abiVersions": ["v0.2.1"]})
    );
    assert_eq!(image.blobs().len(), 2, "the config is stored once");
}

#[test]
fn the_digest_is_the_manifest_hash_and_the_same_every_time() {
    for variant in [Variant::Compat, Variant::Oci] {
        let first = Image::build(&module(), variant).unwrap();
        let second = Image::build(&module(), variant).unwrap();
        assert_eq!(first.manifest, second.manifest, "{variant:?}");
        assert_eq!(first.digest, sha256_digest(&first.manifest));
        assert_eq!(first.digest_hex().len(), 64);
        assert!(!first.manifest.contains(&b' '), "compact JSON");
    }
    let compat = Image::build(&module(), Variant::Compat).unwrap();
    let oci = Image::build(&module(), Variant::Oci).unwrap();
    assert_ne!(compat.digest, oci.digest);
}

/// The exact bytes, pinned: a change here changes every digest a WasmPlugin pins, so it must be
/// deliberate (and `cargo xtask pin-manifests` must follow it).
#[test]
fn manifest_bytes_are_pinned() {
    let compat = Image::build(&module(), Variant::Compat).unwrap();
    assert_eq!(
        String::from_utf8(compat.manifest.clone()).unwrap(),
        format!(
            r#"{{"annotations":{{"module.wasm.image/variant":"compat"}},"config":{{"digest":"{}","mediaType":"application/vnd.oci.image.config.v1+json","size":{}}},"layers":[{{"digest":"{}","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{}}}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#,
            compat.config.digest,
            compat.config.bytes.len(),
            compat.layers[0].digest,
            compat.layers[0].bytes.len()
        )
    );
    assert_eq!(compat.digest, GOLDEN_COMPAT_DIGEST);
    let oci = Image::build(&module(), Variant::Oci).unwrap();
    assert_eq!(oci.digest, GOLDEN_OCI_DIGEST);
}

const GOLDEN_COMPAT_DIGEST: &str =
    "sha256:d33ee504eb4f057baeb8cbb7b6326519cbf7353fc3da5cc54a054ffdf45faf3c";
const GOLDEN_OCI_DIGEST: &str =
    "sha256:d16354afbae5fe5b89e194bae0c8dedd1442677231fdbe16dffd2dbab591ba0e";
