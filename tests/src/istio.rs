//! The repository's Istio manifests as data, for the filter crates' manifest tests: each of them
//! runs every configuration in `istio/<filter>/` through the filter's own parser, and all of them
//! need the same multi-document YAML reading first.

use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use crate::paths::workspace_root;

/// Every document of every `*.yaml` file in `istio/<dir>/`, in file-name order, each with its
/// file name. Panics (these are tests) when the folder is empty or a document is not YAML.
pub fn documents(dir: &str) -> Vec<(String, Value)> {
    let dir = workspace_root().join("istio").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut documents = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("reading {}: {err}", file.display()));
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|err| panic!("{name} is not valid YAML: {err}"));
            documents.push((name.clone(), value));
        }
    }
    documents
}

/// The filter configurations of an EnvoyFilter document, each with where it was found
/// (`file: configPatches[i]`): every patch must run the wasm filter in the VM `vm_id` (one VM id,
/// so all workers share the filter's state) and carry its configuration as a string.
pub fn envoy_filter_configurations(
    name: &str,
    document: &Value,
    vm_id: &str,
) -> Vec<(String, Vec<u8>)> {
    assert_eq!(
        document["apiVersion"].as_str(),
        Some("networking.istio.io/v1alpha3"),
        "{name}"
    );
    let patches = document["spec"]["configPatches"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name}: no configPatches"));
    patches
        .iter()
        .enumerate()
        .map(|(index, patch)| {
            let wasm = &patch["patch"]["value"]["typed_config"]["config"];
            assert_eq!(
                wasm["vm_config"]["vm_id"].as_str(),
                Some(vm_id),
                "{name}: one vm_id, so the workers share the filter's state"
            );
            let config = wasm["configuration"]["value"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: patch {index} has no configuration"));
            (
                format!("{name}: configPatches[{index}]"),
                config.as_bytes().to_vec(),
            )
        })
        .collect()
}
