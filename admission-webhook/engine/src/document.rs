//! The one reader of Kubernetes documents for every front end (the webhook's files mode, `meshguard
//! policy verify/check/test`, audit): multi-document YAML, JSON objects and JSON arrays, `kind:
//! List` expanded into its items, each document tagged with its file, its index and its first
//! line, so every later error (a bad field, a Rego error inside a template, a violation in SARIF)
//! can point at it.
//!
//! YAML documents are split at their `---` markers before parsing rather than by the YAML parser:
//! a marker at column 0 cannot occur inside a block scalar, so the split is exact and gives each
//! document's first line, and a Rego error inside a template is reported at its line in the YAML
//! file, not at a line of the embedded Rego text. Documents are numbered as a person counts them:
//! empty sections (a leading `---`, comments only) are skipped and not counted.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::{LoadError, Location};

/// One parsed document.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from; `line` is the first line of content (after leading comments).
    pub location: Location,
    /// Its content.
    pub value: Json,
    /// Its source text (the YAML section), used to map embedded Rego lines back into the file.
    pub text: String,
    /// The 1-based line of the file where `text` starts.
    pub text_line: usize,
}

impl Document {
    /// A document built in memory (no file).
    pub fn inline(label: impl Into<String>, value: Json) -> Self {
        Self {
            location: Location::inline(label),
            value,
            text: String::new(),
            text_line: 1,
        }
    }

    /// `apiVersion` of the document, or "".
    pub fn api_version(&self) -> &str {
        self.value
            .get("apiVersion")
            .and_then(Json::as_str)
            .unwrap_or("")
    }

    /// `kind` of the document, or "".
    pub fn kind(&self) -> &str {
        self.value.get("kind").and_then(Json::as_str).unwrap_or("")
    }

    /// `metadata.name` of the document, or "".
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(Json::as_str)
            .unwrap_or("")
    }

    /// `file:line (document n)`, for messages.
    pub fn position(&self) -> String {
        format!(
            "{}:{} (document {})",
            self.location.source, self.location.line, self.location.document
        )
    }

    /// `Kind namespace/name` (or `Kind name`), the way a person names a Kubernetes object.
    pub fn object_name(&self) -> String {
        object_name(&self.value)
    }
}

/// `Kind namespace/name` for a Kubernetes object (placeholders where fields are missing).
pub fn object_name(value: &Json) -> String {
    let kind = value["kind"].as_str().unwrap_or("<no kind>");
    let meta = &value["metadata"];
    let name = meta["name"]
        .as_str()
        .or_else(|| meta["generateName"].as_str())
        .unwrap_or("<no name>");
    match meta["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Files under `path` that `accept` takes, recursively in sorted order (hidden entries skipped);
/// a file path is returned as is.
pub fn files_under(path: &Path, accept: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>, LoadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Io { path, source }
    };
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(io(path))?
        .collect::<Result<_, _>>()
        .map_err(io(path))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let child = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if child.is_dir() {
            out.extend(files_under(&child, accept)?);
        } else if accept(&child) {
            out.push(child);
        }
    }
    Ok(out)
}

/// Files under `path` that hold manifests (`.yaml`, `.yml`, `.json`), recursively and sorted; a
/// file path is returned as is.
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    files_under(path, &is_manifest)
}

/// Whether a path names a YAML or JSON file.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads every document of one file (JSON when its extension is `.json` or its text starts like
/// JSON, multi-document YAML otherwise).
pub fn read_file(path: &Path) -> Result<Vec<Document>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let json = path.extension().is_some_and(|ext| ext == "json");
    parse(&path.display().to_string(), &text, json)
}

/// Reads every document of every manifest file under the given paths; the errors of all files
/// are collected.
pub fn read_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Document>, LoadError> {
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        for file in manifest_files(path.as_ref())? {
            match read_file(&file) {
                Ok(found) => docs.extend(found),
                Err(err) => errors.push(err),
            }
        }
    }
    LoadError::from_many(errors)?;
    Ok(docs)
}

/// Parses text into documents: JSON (an object, or an array whose items are the documents) when
/// it starts like JSON and has no `---` separator line, multi-document YAML otherwise. Empty documents are skipped; a `List`
/// (`kind: List` with `items`) is expanded into its items.
pub fn parse_documents(source_name: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    parse(source_name, text, false)
}

fn parse(source_name: &str, text: &str, json: bool) -> Result<Vec<Document>, LoadError> {
    let trimmed = text.trim_start();
    let starts_like_json = trimmed.starts_with('{') || trimmed.starts_with('[');
    // A YAML stream whose documents are written in flow style (JSON) between `---` lines, as
    // `kubectl get -o json` output joined by hand gives, is YAML: JSON has no separator line.
    let yaml_stream = !json
        && starts_like_json
        && split_documents(text)
            .iter()
            .filter(|(_, chunk)| !is_blank(chunk))
            .count()
            > 1;
    let docs = if json || (starts_like_json && !yaml_stream) {
        parse_json(source_name, text)?
    } else {
        parse_yaml(source_name, text)?
    };
    Ok(docs.into_iter().flat_map(expand_list).collect())
}

fn expand_list(doc: Document) -> Vec<Document> {
    let is_list = doc.value["kind"].as_str() == Some("List") && doc.value["items"].is_array();
    if !is_list {
        return vec![doc];
    }
    let items = doc.value["items"].as_array().cloned().unwrap_or_default();
    items
        .into_iter()
        .map(|value| Document {
            value,
            ..doc.clone()
        })
        .collect()
}

fn parse_json(source_name: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let value: Json = serde_json::from_str(text).map_err(|err| LoadError::Syntax {
        source_name: source_name.to_string(),
        document: None,
        line: err.line(),
        column: err.column(),
        message: format!("invalid JSON: {}", strip_position(&err.to_string())),
    })?;
    let line = text.lines().take_while(|l| l.trim().is_empty()).count() + 1;
    let doc = |document: usize, value: Json| Document {
        location: Location {
            source: source_name.to_string(),
            document,
            line,
        },
        value,
        text: text.to_string(),
        text_line: 1,
    };
    Ok(match value {
        Json::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, value)| doc(index + 1, value))
            .collect(),
        value => vec![doc(1, value)],
    })
}

fn parse_yaml(source_name: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut docs = Vec::new();
    let mut index = 0;
    for (start_line, chunk) in split_documents(text) {
        if is_blank(&chunk) {
            continue;
        }
        index += 1;
        let value: Json = serde_yaml::from_str(&chunk).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|loc| (loc.line(), loc.column()))
                .unwrap_or((1, 1));
            LoadError::Syntax {
                source_name: source_name.to_string(),
                document: Some(index),
                line: start_line + line.saturating_sub(1),
                column,
                message: format!("invalid YAML: {}", strip_position(&err.to_string())),
            }
        })?;
        if value.is_null() {
            continue;
        }
        let leading = chunk.lines().take_while(|line| is_blank_line(line)).count();
        docs.push(Document {
            location: Location {
                source: source_name.to_string(),
                document: index,
                line: start_line + leading,
            },
            value,
            text: chunk,
            text_line: start_line,
        });
    }
    Ok(docs)
}

/// Splits on `---` lines; returns (1-based first line, text) per section.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        let marker =
            trimmed == "---" || trimmed.starts_with("--- ") || trimmed.starts_with("---\t");
        if marker || trimmed == "..." {
            if !current.is_empty() || index > 0 {
                out.push((start, std::mem::take(&mut current)));
            }
            start = index + 2;
            let rest = trimmed.strip_prefix("---").unwrap_or("").trim();
            if marker && !rest.is_empty() && !rest.starts_with('#') {
                // `--- value` starts a document on the marker line itself.
                current.push_str(rest);
                current.push('\n');
                start = index + 1;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    out.push((start, current));
    out
}

fn is_blank_line(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

fn is_blank(chunk: &str) -> bool {
    chunk.lines().all(is_blank_line)
}

/// Drops the ` at line L column C` serde adds (relative to the section's text): the error
/// reports the absolute position itself.
fn strip_position(message: &str) -> String {
    let mut out = message.to_string();
    while let Some(at) = out.find(" at line ") {
        let rest = out.get(at + " at line ".len()..).unwrap_or("");
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let after = rest.get(digits..).unwrap_or("");
        let Some(column) = after.strip_prefix(" column ") else {
            break;
        };
        let column_digits = column.chars().take_while(char::is_ascii_digit).count();
        let end = at + " at line ".len() + digits + " column ".len() + column_digits;
        out.replace_range(at..end.min(out.len()), "");
    }
    out
}

/// Finds the 1-based line of `doc_text` where the embedded block `block` (a Rego text) starts,
/// by matching its first non-empty lines. Returns the line of the block's first line.
pub(crate) fn locate_block(doc_text: &str, block: &str) -> Option<usize> {
    let block_lines: Vec<&str> = block.lines().collect();
    let first = block_lines
        .iter()
        .position(|line| !line.trim().is_empty())?;
    let probe: Vec<&str> = block_lines
        .iter()
        .skip(first)
        .take(3)
        .map(|line| line.trim())
        .collect();
    let doc_lines: Vec<&str> = doc_text.lines().collect();
    'outer: for start in 0..doc_lines.len() {
        for (offset, want) in probe.iter().enumerate() {
            match doc_lines.get(start + offset) {
                Some(have) if have.trim() == *want => {}
                _ => continue 'outer,
            }
        }
        return (start + 1).checked_sub(first);
    }
    None
}

#[cfg(test)]
mod tests;
