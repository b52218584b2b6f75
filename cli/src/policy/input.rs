//! Files and standard input for the policy commands, read with the engine's document reader (the
//! one the webhook uses), so a manifest, suite or data file means the same thing to the CLI and at
//! admission and every error names the file, the document and the line.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use meshguard_policy_engine::document::{self, Document};

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

/// Reads the documents of a file, or of standard input for `-`.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<Document>> {
    if path == Path::new("-") {
        let (name, text) = read_text(path)?;
        return Ok(document::parse_documents(&name, &text)?);
    }
    Ok(document::read_file(path)?)
}

/// The files under `path` (itself when it is a file) that `accept` takes, recursively and sorted.
pub fn files(path: &Path, accept: &dyn Fn(&Path) -> bool) -> anyhow::Result<Vec<PathBuf>> {
    document::files_under(path, accept).with_context(|| format!("cannot access {}", path.display()))
}
