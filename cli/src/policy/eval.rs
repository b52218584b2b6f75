//! `meshguard policy eval`: evaluate one query and print the result as JSON, for debugging a
//! policy the way `opa eval` is used: the same regorus engine, Rego v0 as Gatekeeper reads it,
//! modules loaded through the policy engine's module path (the rewrites template Rego gets).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use meshguard_policy_engine::{RegoVersion, document, rego};
use regorus::Engine;

use crate::Outcome;
use crate::policy::input::{files, read_documents, read_text};

/// Arguments of `policy eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rego files, JSON/YAML data files, or folders of them (repeatable). Data documents are
    /// merged at the root of `data`.
    #[arg(short, long = "data", value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// The input document (JSON or YAML; `-` reads standard input).
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// The query, for example `data.k8srequiredlabels.violation`.
    pub query: String,
    /// Exit 1 when the query is undefined (has no results).
    #[arg(long)]
    pub fail: bool,
    /// Read modules as Rego v1 (default: v0, as Gatekeeper reads templates).
    #[arg(long)]
    pub v1: bool,
}

/// Evaluates the query and prints `{"result": [...]}`.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let version = if args.v1 {
        RegoVersion::V1
    } else {
        RegoVersion::V0
    };
    let mut engine = rego::engine(version);
    for root in &args.data {
        let accept = |p: &Path| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("rego" | "json" | "yaml" | "yml")
            )
        };
        for file in files(root, &accept)? {
            load_file(&mut engine, &file)?;
        }
    }
    if let Some(input) = &args.input {
        let name = input.display().to_string();
        let docs = read_documents(input)?;
        let [doc] = docs.as_slice() else {
            bail!(
                "{name}: the input must be one document, found {}",
                docs.len()
            );
        };
        engine.set_input(regorus::Value::from(doc.value.clone()));
    }
    let results = engine
        .eval_query(args.query.clone(), false)
        .map_err(|err| anyhow::anyhow!("evaluating `{}`: {err:#}", args.query))?;
    let shown = serde_json::to_value(&results).context("rendering the result as JSON")?;
    let shown = if shown.get("result").is_none() {
        serde_json::json!({ "result": [] })
    } else {
        shown
    };
    println!("{}", serde_json::to_string_pretty(&shown)?);
    if args.fail && results.result.is_empty() {
        return Ok(Outcome::Failure);
    }
    Ok(Outcome::Success)
}

fn load_file(engine: &mut Engine, file: &Path) -> anyhow::Result<()> {
    if file.extension().is_some_and(|e| e == "rego") {
        let (name, text) = read_text(file)?;
        rego::add_module(engine, &name, &text)?;
        return Ok(());
    }
    let name = file.display().to_string();
    for doc in document::read_file(file)? {
        if !doc.value.is_object() {
            bail!("{}: a data document must be an object", doc.position());
        }
        engine
            .add_data(regorus::Value::from(doc.value))
            .with_context(|| format!("{name}: merging into data"))?;
    }
    Ok(())
}
