//! `meshguard policy check`: manifests against the templates and constraints, as `gator test`
//! does, before anything reaches the cluster.
//!
//! Manifests come from files, folders (recursively) or standard input (`-`: what `kustomize
//! build` or `helm template` print), as multi-document YAML or JSON (objects or lists).
//! Templates and constraints come from `--policies` (default `gatekeeper/` when it exists) and
//! from the manifests themselves. Every other object is reviewed at gator's enforcement point
//! with the reviewed objects (and `--inventory`) as `data.inventory`, as gator test does, so a
//! Deployment and its PodDisruptionBudget in one release are checked together. `deny`
//! violations fail the run (exit 1), `warn` ones only with `--strict`, `dryrun` ones never.

mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use meshguard_policy_engine::constraint::is_constraint;
use meshguard_policy_engine::template::is_template;
use meshguard_policy_engine::{
    self as engine, Constraint, EnforcementAction, EnforcementPoint, Inventory, PolicySet,
    ReviewOptions,
};

use crate::Outcome;
use crate::policy::docs::{self, Document};
use crate::policy::loading::{
    LoadedTemplate, add_inventory_file, check_parameters, compile_template, engine_documents,
    is_admission_review, review_request,
};
use crate::policy::verify::is_suite;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Violations grouped by object, then a summary.
    Pretty,
    /// One JSON document.
    Json,
    /// SARIF 2.1.0, for code scanning dashboards.
    Sarif,
    /// GitHub Actions workflow commands (annotations on the manifest lines).
    Github,
}

/// Arguments of `policy check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifests to check: files, folders, or `-` for standard input (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Folders or files with ConstraintTemplates and constraints (default: gatekeeper/).
    #[arg(long, value_name = "DIR")]
    pub policies: Vec<PathBuf>,
    /// Extra objects for data.inventory (referential policies), besides the checked ones.
    #[arg(long, value_name = "FILE|DIR")]
    pub inventory: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
    /// Fail on `warn` violations too.
    #[arg(long)]
    pub strict: bool,
}

/// One violation of one object.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where the object is.
    pub file: String,
    /// Its first line.
    pub line: usize,
    /// Its document index.
    pub document: usize,
    /// `Kind namespace/name`.
    pub object: String,
    /// `Kind/name` of the constraint.
    pub constraint: String,
    /// The constraint's name (Gatekeeper's message prefix).
    pub constraint_name: String,
    /// The actions at gator's enforcement point.
    pub actions: Vec<EnforcementAction>,
    /// `msg`.
    pub message: String,
    /// `details`.
    pub details: serde_json::Value,
    /// Whether this finding fails the run.
    pub fails: bool,
}

/// What was checked.
#[derive(Debug, Default)]
pub struct Summary {
    /// Objects reviewed.
    pub objects: usize,
    /// Constraints loaded.
    pub constraints: usize,
}

/// Runs the check and prints the report.
pub fn run(args: Args) -> anyhow::Result<Outcome> {
    let mut objects = Vec::new();
    for path in &args.files {
        objects.extend(read_manifests(path)?);
    }
    let policy_paths = if args.policies.is_empty() && Path::new("gatekeeper").is_dir() {
        vec![PathBuf::from("gatekeeper")]
    } else {
        args.policies.clone()
    };
    let mut policy_docs = Vec::new();
    for root in &policy_paths {
        for file in docs::collect_files(root, &docs::is_manifest)? {
            let found = engine_documents(&file).map_err(anyhow::Error::msg)?;
            policy_docs.extend(
                found
                    .into_iter()
                    .filter(|d| is_template(d) || is_constraint(d)),
            );
        }
    }
    let mut reviewed = Vec::new();
    for doc in objects {
        if is_template_json(&doc.value) || is_constraint_json(&doc.value) {
            policy_docs.push(engine::Document {
                location: engine::Location {
                    source: doc.file.clone(),
                    document: doc.index,
                    line: doc.line,
                },
                value: doc.value.clone(),
                text: String::new(),
            });
        } else if !is_suite(&doc.value) {
            reviewed.push(doc);
        }
    }
    let set = build_policy_set(&policy_docs)?;
    let mut inventory = Inventory::new();
    for doc in reviewed.iter().filter(|d| !is_admission_review(&d.value)) {
        inventory
            .add(doc.value.clone())
            .map_err(|err| anyhow::anyhow!("{}: {err}", doc.position()))?;
    }
    for root in &args.inventory {
        for file in docs::collect_files(root, &docs::is_manifest)? {
            add_inventory_file(&mut inventory, &file).map_err(anyhow::Error::msg)?;
        }
    }
    let findings = review_all(&set, &inventory, &reviewed, args.strict)?;
    let summary = Summary {
        objects: reviewed.len(),
        constraints: set.constraints().count(),
    };
    let output = match args.format {
        Format::Pretty => report::pretty(&findings, &summary),
        Format::Json => report::json(&findings, &summary),
        Format::Sarif => report::sarif(&findings, &set),
        Format::Github => report::github(&findings, &summary),
    };
    print!("{output}");
    Ok(if findings.iter().any(|f| f.fails) {
        Outcome::Failure
    } else {
        Outcome::Success
    })
}

fn read_manifests(path: &Path) -> anyhow::Result<Vec<Document>> {
    if path == Path::new("-") {
        return docs::read_documents(path);
    }
    let mut out = Vec::new();
    let files = docs::collect_files(path, &docs::is_manifest)?;
    if files.is_empty() {
        bail!("{}: no .yaml, .yml or .json files found", path.display());
    }
    for file in files {
        out.extend(docs::read_documents(&file)?);
    }
    Ok(out)
}

fn is_template_json(value: &serde_json::Value) -> bool {
    value["kind"] == "ConstraintTemplate"
        && value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("templates.gatekeeper.sh/"))
}

fn is_constraint_json(value: &serde_json::Value) -> bool {
    value["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("constraints.gatekeeper.sh/"))
}

/// Compiles the templates, then adds the constraints checked against their schemas. Every
/// problem is reported at once.
fn build_policy_set(docs: &[engine::Document]) -> anyhow::Result<PolicySet> {
    let mut errors = Vec::new();
    let mut templates: BTreeMap<String, (LoadedTemplate, engine::Location)> = BTreeMap::new();
    for doc in docs.iter().filter(|d| is_template(d)) {
        match compile_template(doc) {
            Ok(loaded) => {
                let kind = loaded.template.kind.clone();
                if let Some((first, at)) = templates.get(&kind) {
                    if first.document != loaded.document {
                        errors.push(format!(
                            "{}: ConstraintTemplate for {kind} is already defined differently at {at}",
                            doc.location
                        ));
                    }
                    continue;
                }
                templates.insert(kind, (loaded, doc.location.clone()));
            }
            Err(err) => errors.push(err.message().to_string()),
        }
    }
    let mut set = PolicySet::new();
    for (loaded, _) in templates.values() {
        set.insert_template(loaded.template.clone());
    }
    for doc in docs.iter().filter(|d| is_constraint(d)) {
        let constraint = match Constraint::from_document(doc) {
            Ok(c) => c,
            Err(err) => {
                errors.push(err.to_string());
                continue;
            }
        };
        if let Some((loaded, _)) = templates.get(&constraint.id.kind)
            && let Err(err) = check_parameters(&constraint, loaded)
        {
            errors.push(err);
            continue;
        }
        if let Err(err) = set.add_constraint(constraint) {
            errors.push(err.to_string());
        }
    }
    if !errors.is_empty() {
        bail!("loading policies failed:\n  {}", errors.join("\n  "));
    }
    if set.templates().next().is_none() {
        bail!(
            "no ConstraintTemplates found; pass --policies DIR (templates and constraints), or \
             run from the repository root where gatekeeper/ holds them"
        );
    }
    Ok(set)
}

fn review_all(
    set: &PolicySet,
    inventory: &Inventory,
    objects: &[Document],
    strict: bool,
) -> anyhow::Result<Vec<Finding>> {
    let options = ReviewOptions::at(EnforcementPoint::Gator);
    let mut findings = Vec::new();
    for doc in objects {
        let request = review_request(doc).map_err(anyhow::Error::msg)?;
        let violations = set
            .review_with(&request, inventory, &options)
            .with_context(|| format!("{}: reviewing {}", doc.position(), doc.object_name()))?;
        let object = if is_admission_review(&doc.value) {
            let request = &doc.value["request"];
            let target = if request["object"].is_object() {
                &request["object"]
            } else {
                &request["oldObject"]
            };
            format!(
                "{} ({})",
                docs::object_name(target),
                request["operation"].as_str().unwrap_or("")
            )
        } else {
            doc.object_name()
        };
        for v in violations {
            let fails = v.denies() || (strict && v.warns());
            findings.push(Finding {
                file: doc.file.clone(),
                line: doc.line,
                document: doc.index,
                object: object.clone(),
                constraint: v.constraint.to_string(),
                constraint_name: v.constraint.name.clone(),
                actions: v.actions.clone(),
                message: v.message,
                details: v.details,
                fails,
            });
        }
    }
    Ok(findings)
}
