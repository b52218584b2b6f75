//! WasmPlugins that pin an image: a new one printed, or existing manifests updated in place.
//!
//! A pinned WasmPlugin carries the digest twice, as Istio reads it: `url:
//! oci://REGISTRY/REPOSITORY:TAG@sha256:HEX` (the agent pulls by that digest) and `sha256: HEX`
//! (the agent checks the pulled manifest against it). Both are the *manifest* digest.
//!
//! # Editing text, checked by parsing
//!
//! The repository's manifests are mostly comments that explain each setting, and no maintained
//! Rust YAML library writes a document back with its comments. So the update is a narrow text
//! edit: in each WasmPlugin document whose url names the image (by its last path component,
//! so a pin follows an image to another registry), the `url:` line of `spec` gets the new value
//! and a `sha256:` line is replaced or added below it. The edited document is then parsed
//! again and must equal the original in everything but those two fields, or nothing is
//! written: a layout the edit does not understand (a flow-style spec, a multi-line url) is an
//! error that says to edit the file by hand, never a silently wrong manifest.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use crate::error::{Error, Result};
use crate::reference::{ImageRef, image_name};

/// A new WasmPlugin that pulls `image` pinned at `digest` (`sha256:HEX`).
pub fn render(image: &ImageRef, digest: &str) -> String {
    format!(
        "apiVersion: extensions.istio.io/v1alpha1\n\
         kind: WasmPlugin\n\
         metadata:\n  name: {name}\n\
         spec:\n  \
           # Add a selector (or targetRefs), the phase, and the filter's pluginConfig.\n  \
           url: {url}\n  \
           sha256: {hex}\n  \
           imagePullPolicy: IfNotPresent\n",
        name = image.name(),
        url = image.pinned_url(digest),
        hex = digest.trim_start_matches("sha256:"),
    )
}

/// What one file update did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// The file.
    pub path: PathBuf,
    /// WasmPlugins in it that pull the image (now pinned).
    pub plugins: usize,
    /// Whether the file's text changed.
    pub changed: bool,
}

/// Pins every WasmPlugin that pulls an image named like `image` in `path`: a file (which must
/// hold at least one), or a folder searched recursively for `*.yaml`/`*.yml` (which may hold
/// none). Returns the files that hold such WasmPlugins.
pub fn update_path(path: &Path, image: &ImageRef, digest: &str) -> Result<Vec<Updated>> {
    if path.is_dir() {
        let mut updated = Vec::new();
        for file in yaml_files(path)? {
            let result = update_file(&file, image, digest)?;
            if result.plugins > 0 {
                updated.push(result);
            }
        }
        return Ok(updated);
    }
    let result = update_file(path, image, digest)?;
    if result.plugins == 0 {
        return Err(Error::WasmPlugin {
            path: path.to_path_buf(),
            reason: format!(
                "no WasmPlugin in it pulls an image named `{}` (its spec.url must end in \
                 /{}[:TAG][@DIGEST])",
                image.name(),
                image.name()
            ),
        });
    }
    Ok(vec![result])
}

fn update_file(path: &Path, image: &ImageRef, digest: &str) -> Result<Updated> {
    let text = fs::read_to_string(path).map_err(|err| Error::io("reading", path, err))?;
    let (updated, plugins) =
        update_text(&text, image, digest).map_err(|reason| Error::WasmPlugin {
            path: path.to_path_buf(),
            reason,
        })?;
    let changed = updated != text;
    if changed {
        let mut temporary = path.to_path_buf();
        temporary.set_extension("yaml.tmp");
        fs::write(&temporary, &updated).map_err(|err| Error::io("writing", &temporary, err))?;
        fs::rename(&temporary, path).map_err(|err| Error::io("writing", path, err))?;
    }
    Ok(Updated {
        path: path.to_path_buf(),
        plugins,
        changed,
    })
}

/// Pins the matching WasmPlugins of a multi-document YAML text; returns the new text and how
/// many WasmPlugins matched.
pub fn update_text(
    text: &str,
    image: &ImageRef,
    digest: &str,
) -> std::result::Result<(String, usize), String> {
    let url = image.pinned_url(digest);
    let hex = digest.trim_start_matches("sha256:");
    let mut out = String::with_capacity(text.len() + 128);
    let mut plugins = 0;
    for (index, document) in split_documents(text).into_iter().enumerate() {
        let original = parse(document).map_err(|err| format!("document {}: {err}", index + 1))?;
        if !pulls_image(&original, image.name()) {
            out.push_str(document);
            continue;
        }
        let edited = edit_spec(document, &url, hex)
            .map_err(|why| format!("document {}: {why}; pin it by hand", index + 1))?;
        let parsed = parse(&edited).map_err(|err| {
            format!(
                "document {}: the pinned document would not parse ({err}); pin it by hand",
                index + 1
            )
        })?;
        if parsed["spec"]["url"].as_str() != Some(url.as_str())
            || parsed["spec"]["sha256"].as_str() != Some(hex)
            || without_pin(parsed) != without_pin(original)
        {
            return Err(format!(
                "document {}: the WasmPlugin's spec is not laid out as `url:` and `sha256:` lines \
                 (flow style or multi-line values?); pin it by hand",
                index + 1
            ));
        }
        plugins += 1;
        out.push_str(&edited);
    }
    Ok((out, plugins))
}

/// The documents of a YAML stream, each with its `---` line, so that joining them gives the text.
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > start && line.trim_end() == "---" {
            documents.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents
}

fn parse(document: &str) -> std::result::Result<Value, serde_yaml::Error> {
    match serde_yaml::Deserializer::from_str(document).next() {
        Some(document) => Value::deserialize(document),
        None => Ok(Value::Null),
    }
}

fn pulls_image(document: &Value, name: &str) -> bool {
    document["kind"].as_str() == Some("WasmPlugin")
        && document["spec"]["url"]
            .as_str()
            .is_some_and(|url| image_name(url.trim_start_matches("oci://")) == name)
}

fn without_pin(mut document: Value) -> Value {
    if let Some(spec) = document.get_mut("spec").and_then(Value::as_mapping_mut) {
        spec.remove("url");
        spec.remove("sha256");
    }
    document
}

/// Replaces the value of `spec.url` and sets `spec.sha256` right below it.
fn edit_spec(document: &str, url: &str, hex: &str) -> std::result::Result<String, &'static str> {
    let lines: Vec<&str> = document.split_inclusive('\n').collect();
    let spec = lines
        .iter()
        .position(|line| line.trim_end() == "spec:")
        .ok_or("no top-level `spec:` line")?;
    let end = lines
        .iter()
        .enumerate()
        .skip(spec + 1)
        .find(|(_, line)| starts_top_level(line))
        .map_or(lines.len(), |(index, _)| index);
    let body = lines.get(spec + 1..end).unwrap_or_default();
    let indent = body
        .iter()
        .find(|line| !is_blank_or_comment(line))
        .map(|line| &line[..line.len() - line.trim_start().len()])
        .ok_or("an empty spec")?;
    let key = |line: &str, key: &str| {
        line.strip_prefix(indent)
            .is_some_and(|rest| rest.starts_with(key))
    };
    let url_at = body
        .iter()
        .position(|line| key(line, "url:"))
        .ok_or("no `url:` line in spec")?;
    let sha_at = body.iter().position(|line| key(line, "sha256:"));
    let mut out = String::with_capacity(document.len() + 100);
    for line in lines.get(..=spec).unwrap_or_default() {
        out.push_str(line);
    }
    for (index, line) in body.iter().enumerate() {
        if Some(index) == sha_at {
            continue;
        }
        if index == url_at {
            out.push_str(&format!("{indent}url: {url}{}\n", trailing_comment(line)));
            out.push_str(&format!("{indent}sha256: {hex}\n"));
            continue;
        }
        out.push_str(line);
    }
    for line in lines.get(end..).unwrap_or_default() {
        out.push_str(line);
    }
    Ok(out)
}

/// A line that starts a top-level key or a new document.
fn starts_top_level(line: &str) -> bool {
    !line.starts_with([' ', '\t', '#', '\n', '\r']) && !line.trim().is_empty()
}

fn is_blank_or_comment(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.is_empty() || trimmed.starts_with('#')
}

/// `  # why` at the end of a `key: value  # why` line (a url holds no ` #`).
fn trailing_comment(line: &str) -> &str {
    let line = line.trim_end_matches(['\n', '\r']);
    line.find(" #").map_or("", |at| &line[at..])
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|err| Error::io("reading", &dir, err))? {
            let path = entry.map_err(|err| Error::io("reading", &dir, err))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
#[path = "wasmplugin_tests.rs"]
mod tests;
