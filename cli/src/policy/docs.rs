//! Reading Kubernetes-style documents (multi-document YAML, JSON objects and JSON lists, stdin)
//! with positions.
//!
//! Every command that reads manifests, suites or data goes through here so that an error names
//! the file, the document and the line, and so that a violation can point at the line where its
//! object starts (the SARIF and GitHub outputs need that). YAML documents are split at their
//! `---` markers before parsing: a marker at column 0 cannot occur inside a block scalar, so the
//! split is exact and gives each document's first line.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// One parsed document and where it came from.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file as the user named it (`<stdin>` for standard input).
    pub file: String,
    /// 1-based index of the document in its file (array position for JSON lists).
    pub index: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
    /// The document as JSON.
    pub value: Value,
}

impl Document {
    /// `file:line (document n)`, for messages.
    pub fn position(&self) -> String {
        format!("{}:{} (document {})", self.file, self.line, self.index)
    }

    /// `Kind namespace/name` (or `Kind name`), the way a person names a Kubernetes object.
    pub fn object_name(&self) -> String {
        object_name(&self.value)
    }
}

/// `Kind namespace/name` for a Kubernetes object (placeholders where fields are missing).
pub fn object_name(value: &Value) -> String {
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

/// A document that could not be read or parsed.
#[derive(Debug)]
pub struct DocError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based document index, when the error is inside one document.
    pub document: Option<usize>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for DocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(document) = self.document {
            write!(f, ": document {document}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DocError {}

/// Reads a file (or standard input for `-`) into documents.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<Document>> {
    let (name, text) = read_text(path)?;
    let json = path.extension().is_some_and(|ext| ext == "json");
    Ok(parse_documents(&name, &text, json)?)
}

/// Reads a file or standard input (`-`) to a string, with the name to use in messages.
pub fn read_text(path: &Path) -> anyhow::Result<(String, String)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(("<stdin>".to_string(), text));
    }
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| {
        format!("{name}: cannot read the file (does it exist and is it UTF-8?)")
    })?;
    Ok((name, text))
}

/// Parses text into documents. JSON (a single object or a list of objects) is tried first when
/// `json` is set or the text starts like JSON; everything else is multi-document YAML.
/// Empty documents are dropped; a `kind: List` is expanded into its items.
pub fn parse_documents(name: &str, text: &str, json: bool) -> Result<Vec<Document>, DocError> {
    let trimmed = text.trim_start();
    let looks_json = trimmed.starts_with('{') || trimmed.starts_with('[');
    let mut docs = if json || looks_json {
        parse_json(name, text)?
    } else {
        parse_yaml(name, text)?
    };
    docs = docs.into_iter().flat_map(expand_list).collect();
    Ok(docs)
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

fn parse_json(name: &str, text: &str) -> Result<Vec<Document>, DocError> {
    let value: Value = serde_json::from_str(text).map_err(|err| DocError {
        file: name.to_string(),
        document: None,
        line: Some(err.line()),
        column: Some(err.column()),
        message: format!("invalid JSON: {}", strip_position(&err.to_string())),
    })?;
    let start = first_content_line(text);
    Ok(match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, value)| Document {
                file: name.to_string(),
                index: i + 1,
                line: start,
                value,
            })
            .collect(),
        value => vec![Document {
            file: name.to_string(),
            index: 1,
            line: start,
            value,
        }],
    })
}

fn parse_yaml(name: &str, text: &str) -> Result<Vec<Document>, DocError> {
    let mut docs = Vec::new();
    let mut index = 0;
    for chunk in split_yaml(text) {
        if chunk.text.lines().all(is_blank_or_comment) {
            continue;
        }
        index += 1;
        let value: Value = serde_yaml::from_str(&chunk.text).map_err(|err| {
            let location = err.location();
            DocError {
                file: name.to_string(),
                document: Some(index),
                line: location.as_ref().map(|l| chunk.first_line + l.line() - 1),
                column: location.as_ref().map(|l| l.column()),
                message: format!("invalid YAML: {}", strip_position(&err.to_string())),
            }
        })?;
        if value.is_null() {
            continue;
        }
        let line = chunk.first_line
            + chunk
                .text
                .lines()
                .take_while(|l| is_blank_or_comment(l))
                .count();
        docs.push(Document {
            file: name.to_string(),
            index,
            line,
            value,
        });
    }
    Ok(docs)
}

struct Chunk {
    first_line: usize,
    text: String,
}

/// Splits YAML text at document markers, keeping each chunk's first line number.
fn split_yaml(text: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut current = Chunk {
        first_line: 1,
        text: String::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if marker || line == "..." {
            let done = std::mem::replace(
                &mut current,
                Chunk {
                    first_line: i + 2,
                    text: String::new(),
                },
            );
            if i > 0 || !done.text.is_empty() {
                chunks.push(done);
            }
            if let Some(rest) = line.strip_prefix("---").filter(|r| !r.trim().is_empty()) {
                // `--- value` starts a document on the marker line itself.
                current.first_line = i + 1;
                current.text.push_str(rest.trim_start());
                current.text.push('\n');
            }
            continue;
        }
        current.text.push_str(line);
        current.text.push('\n');
    }
    chunks.push(current);
    chunks
}

fn is_blank_or_comment(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

fn first_content_line(text: &str) -> usize {
    text.lines().take_while(|l| l.trim().is_empty()).count() + 1
}

/// Drops the ` at line L column C` positions serde adds (relative to the document's text):
/// the caller reports absolute positions.
fn strip_position(message: &str) -> String {
    static POSITION: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    match POSITION.get_or_init(|| regex::Regex::new(r" at line \d+ column \d+").ok()) {
        Some(re) => re.replace_all(message, "").into_owned(),
        None => message.to_string(),
    }
}

/// Collects the files under `path` (itself when it is a file) whose extension is accepted.
/// Directories are walked recursively in sorted order; hidden entries are skipped.
pub fn collect_files(path: &Path, accept: &dyn Fn(&Path) -> bool) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot access {}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    walk(path, accept, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, accept: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the directory", dir.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: cannot list the directory", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, accept, out)?;
        } else if accept(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether a path names a YAML or JSON file.
pub fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

#[cfg(test)]
mod tests;
