//! An image written as an OCI image layout folder (image-spec `image-layout.md`): `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>`.
//!
//! A layout is an image without a registry: it can be inspected, attached to a release, and
//! copied to any registry later by OCI tools (`oras cp --from-oci-layout`, `skopeo copy oci:`),
//! which keep the manifest digest, so the WasmPlugin pin stays true. Writing into an existing
//! layout adds the image: the index entry with the same tag (`org.opencontainers.image.ref.name`)
//! is replaced, the others are kept. Files are written whole and then renamed into place, so a
//! reader never sees half a blob.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ANNOTATION_REF_NAME, DescriptorBuilder, ImageIndex, ImageIndexBuilder, MediaType,
    OciLayoutBuilder, SCHEMA_VERSION,
};

use crate::error::{Error, Result};
use crate::image::Image;

/// The layout version this crate writes.
const LAYOUT_VERSION: &str = "1.0.0";

/// Writes `image` into the layout at `dir` under `tag`, creating the folder if needed.
pub fn write(dir: &Path, image: &Image, tag: &str) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    let layout_file = dir.join("oci-layout");
    let index_file = dir.join("index.json");
    let existing = read_existing(dir, &layout_file, &index_file)?;
    fs::create_dir_all(&blobs).map_err(|err| Error::io("creating", &blobs, err))?;
    for blob in image.blobs() {
        write_atomic(&blobs.join(blob.hex()), &blob.bytes)?;
    }
    write_atomic(&blobs.join(image.digest_hex()), &image.manifest)?;

    let manifest = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(
            image
                .digest
                .parse::<oci_spec::image::Digest>()
                .map_err(|err| encode_error(&err))?,
        )
        .size(image.manifest.len() as u64)
        .annotations(
            [(ANNOTATION_REF_NAME.to_string(), tag.to_string())]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .map_err(|err| encode_error(&err))?;
    let mut manifests: Vec<_> = existing
        .map(|index| index.manifests().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| {
            entry
                .annotations()
                .as_ref()
                .and_then(|annotations| annotations.get(ANNOTATION_REF_NAME))
                .is_none_or(|name| name != tag)
        })
        .collect();
    manifests.push(manifest);
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|err| encode_error(&err))?;
    let layout = OciLayoutBuilder::default()
        .image_layout_version(LAYOUT_VERSION)
        .build()
        .map_err(|err| encode_error(&err))?;
    write_atomic(
        &layout_file,
        layout
            .to_string()
            .map_err(|err| encode_error(&err))?
            .as_bytes(),
    )?;
    write_atomic(
        &index_file,
        index
            .to_string_pretty()
            .map_err(|err| encode_error(&err))?
            .as_bytes(),
    )
}

/// The existing index, if `dir` already is a layout; an error if it holds something else.
fn read_existing(dir: &Path, layout_file: &Path, index_file: &Path) -> Result<Option<ImageIndex>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("reading", dir, err)),
    };
    if !layout_file.is_file() {
        if entries.count() == 0 {
            return Ok(None);
        }
        return Err(Error::NotALayout {
            path: dir.to_path_buf(),
            reason: "it is not empty and has no oci-layout file".to_string(),
        });
    }
    ImageIndex::from_file(index_file)
        .map(Some)
        .map_err(|err| Error::NotALayout {
            path: dir.to_path_buf(),
            reason: format!("its index.json cannot be read: {err}"),
        })
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = PathBuf::from(path);
    temporary.set_extension(format!("tmp-{}", std::process::id()));
    fs::write(&temporary, bytes).map_err(|err| Error::io("writing", &temporary, err))?;
    fs::rename(&temporary, path).map_err(|err| Error::io("writing", path, err))
}

fn encode_error(err: &dyn std::fmt::Display) -> Error {
    Error::Encode {
        what: "layout",
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Variant, sha256_digest};
    use crate::module::WasmModule;
    use crate::test_util::{TempDir, tiny_module};

    fn image(variant: Variant) -> Image {
        let module = WasmModule::inspect("tiny.wasm", tiny_module()).unwrap();
        Image::build(&module, variant).unwrap()
    }

    fn index(dir: &Path) -> serde_json::Value {
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
    }

    #[test]
    fn a_layout_holds_every_blob_under_its_digest_and_indexes_the_tag() {
        let dir = TempDir::new("layout");
        let image = image(Variant::Compat);
        write(dir.path(), &image, "0.1.0").unwrap();
        let layout: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("oci-layout")).unwrap()).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index = index(dir.path());
        assert_eq!(index["schemaVersion"], 2);
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], image.digest);
        assert_eq!(
            entry["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(entry["annotations"][ANNOTATION_REF_NAME], "0.1.0");
        let blobs = dir.path().join("blobs/sha256");
        for bytes in [&image.manifest, &image.config.bytes, &image.layers[0].bytes] {
            let digest = sha256_digest(bytes);
            let stored = fs::read(blobs.join(digest.trim_start_matches("sha256:"))).unwrap();
            assert_eq!(&stored, bytes);
        }
        assert_eq!(
            fs::read_dir(&blobs).unwrap().count(),
            3,
            "no temporary files left"
        );
    }

    #[test]
    fn writing_again_replaces_the_tag_and_keeps_other_images() {
        let dir = TempDir::new("layout");
        write(dir.path(), &image(Variant::Compat), "0.1.0").unwrap();
        write(dir.path(), &image(Variant::Oci), "0.1.0-oci").unwrap();
        write(dir.path(), &image(Variant::Oci), "0.1.0").unwrap();
        let index = index(dir.path());
        let entries: Vec<(String, String)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                (
                    entry["annotations"][ANNOTATION_REF_NAME]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    entry["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let oci = image(Variant::Oci).digest;
        assert_eq!(
            entries,
            [
                ("0.1.0-oci".to_string(), oci.clone()),
                ("0.1.0".to_string(), oci)
            ]
        );
    }

    #[test]
    fn a_folder_with_other_files_is_not_overwritten() {
        let dir = TempDir::new("layout");
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = write(dir.path(), &image(Variant::Compat), "1").unwrap_err();
        assert!(matches!(err, Error::NotALayout { .. }), "{err}");
        assert!(err.to_string().contains("has no oci-layout file"), "{err}");
    }
}
