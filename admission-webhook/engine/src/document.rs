//! Reading Kubernetes documents from files and folders: multi-document YAML (and JSON), each
//! document tagged with its file, index and first line so every later error can point at it.
//!
//! Documents are split on `---` lines ourselves (rather than by the YAML parser) so that the line
//! each one starts on is known: a Rego error inside a template is reported at its line in the
//! YAML file, not at a line of the embedded Rego text.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::{LoadError, Location};

/// One parsed document.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from.
    pub location: Location,
    /// Its content.
    pub value: Json,
    /// Its source text (used to map embedded Rego lines back into the file).
    pub text: String,
}

impl Document {
    /// A document built in memory (no file).
    pub fn inline(label: impl Into<String>, value: Json) -> Self {
        Self {
            location: Location::inline(label),
            value,
            text: String::new(),
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
}

/// Files under `path` that hold manifests (`.yaml`, `.yml`, `.json`), recursively and sorted; a
/// file path is returned as is.
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let child = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if child.is_dir() {
            out.extend(manifest_files(&child)?);
        } else if is_manifest(&child) {
            out.push(child);
        }
    }
    Ok(out)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads every document of one file.
pub fn read_file(path: &Path) -> Result<Vec<Document>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_documents(&path.display().to_string(), &text)
}

/// Reads every document of every manifest file under the given paths.
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

/// Parses multi-document YAML (JSON is YAML) into documents; empty documents are skipped but
/// still counted, so "document 3" is the third `---`-separated section of the file. A `List`
/// (`kind: List` with `items`) is expanded into its items.
pub fn parse_documents(source_name: &str, text: &str) -> Result<Vec<Document>, LoadError> {
    let mut docs = Vec::new();
    for (index, (start_line, chunk)) in split_documents(text).into_iter().enumerate() {
        let location = Location {
            source: source_name.to_string(),
            document: index + 1,
            line: start_line,
        };
        if is_blank(&chunk) {
            continue;
        }
        let value: Json = serde_yaml::from_str(&chunk).map_err(|err| {
            let (line, column) = err
                .location()
                .map(|loc| (loc.line(), loc.column()))
                .unwrap_or((1, 1));
            LoadError::Syntax {
                source_name: source_name.to_string(),
                line: start_line + line.saturating_sub(1),
                column,
                message: err.to_string(),
            }
        })?;
        match value {
            Json::Null => {}
            Json::Object(ref map)
                if map.get("kind").and_then(Json::as_str) == Some("List")
                    && map.get("items").is_some_and(Json::is_array) =>
            {
                if let Some(Json::Array(items)) = map.get("items") {
                    for item in items {
                        docs.push(Document {
                            location: location.clone(),
                            value: item.clone(),
                            text: chunk.clone(),
                        });
                    }
                }
            }
            value => docs.push(Document {
                location,
                value,
                text: chunk,
            }),
        }
    }
    Ok(docs)
}

/// Splits on `---` lines; returns (1-based first line, text) per document.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        let is_separator = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if is_separator {
            if !current.is_empty() || index > 0 {
                out.push((start, std::mem::take(&mut current)));
            }
            start = index + 2;
            let rest = trimmed.strip_prefix("---").unwrap_or("").trim();
            if !rest.is_empty() && !rest.starts_with('#') && trimmed != "..." {
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

fn is_blank(chunk: &str) -> bool {
    chunk.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#')
    })
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
        return Some(start + 1 - first);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_numbered_and_located() {
        let text = "# header\n---\na: 1\n---\n\n---\nb: 2\nc: 3\n";
        let docs = parse_documents("f.yaml", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].location.document, 2);
        assert_eq!(docs[0].location.line, 3);
        assert_eq!(docs[1].location.document, 4);
        assert_eq!(docs[1].location.line, 7);
        assert_eq!(docs[1].value["c"], 3);
    }

    #[test]
    fn syntax_errors_name_the_file_line() {
        let text = "a: 1\n---\nb: [1, 2\nc: 3\n";
        let err = parse_documents("f.yaml", text).unwrap_err().to_string();
        assert!(err.starts_with("f.yaml:"), "{err}");
        assert!(err.contains("invalid YAML"), "{err}");
    }

    #[test]
    fn lists_are_expanded() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"A"},{"kind":"B"}]}"#;
        let docs = parse_documents("l.json", text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].kind(), "B");
    }

    #[test]
    fn blocks_are_located() {
        let doc = "a:\n  rego: |\n    package x\n\n    violation[r] {\n";
        assert_eq!(locate_block(doc, "package x\n\nviolation[r] {\n"), Some(3));
        assert_eq!(
            locate_block(doc, "\npackage x\n\nviolation[r] {\n"),
            Some(2)
        );
    }
}
