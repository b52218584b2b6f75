//! `meshguard policy check`: manifests against the templates and constraints, as `gator test`
//! does, before anything reaches the cluster.
//!
//! Manifests come from files, folders (recursively) or standard input (`-`: what `kustomize
//! build` or `helm template` print), as multi-document YAML or JSON (objects or lists).
//! Templates and constraints come from `--policies` (default `gatekeeper/` when it exists) and
//! from the manifests themselves. Every other object is reviewed at gator's enforcement point
//! with the reviewed objects (and `--inventory`) as `data.inventory`, as gator test does, so a
//! Deployment and its PodDisruptionBudget in one release are checked together. Objects are
//! reviewed on every core, and the report keeps the order of the manifests. `deny` violations
//! fail the run (exit 1), `warn` ones only with `--strict`, `dryrun` ones never.

mod report;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use meshguard_policy_engine::constraint::is_constraint;
use meshguard_policy_engine::document::{self, Document};
use meshguard_policy_engine::review::is_admission_review;
use meshguard_policy_engine::suite::is_suite;
use meshguard_policy_engine::template::is_template;
use meshguard_policy_engine::{
    AdmissionRequest, EnforcementAction, EnforcementPoint, Inventory, PolicySet, ReviewOptions,
    parallel,
};

use crate::Outcome;
use crate::policy::input;

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
        for file in input::files(root, &document::is_manifest)? {
            let found = document::read_file(&file)?;
            policy_docs.extend(
                found
                    .into_iter()
                    .filter(|d| is_template(d) || is_constraint(d)),
            );
        }
    }
    let mut reviewed = Vec::new();
    for doc in objects {
        if is_template(&doc) || is_constraint(&doc) {
            policy_docs.push(doc);
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
        for file in input::files(root, &document::is_manifest)? {
            let docs = document::read_file(&file)?;
            if docs.is_empty() {
                bail!("{}: defines no objects", file.display());
            }
            for doc in docs {
                inventory
                    .add(doc.value.clone())
                    .map_err(|err| anyhow::anyhow!("{}: {err}", doc.position()))?;
            }
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
        Format::Sarif => report::sarif(&findings, &set)?,
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
        return input::read_documents(path);
    }
    let mut out = Vec::new();
    let files = input::files(path, &document::is_manifest)?;
    if files.is_empty() {
        bail!("{}: no .yaml, .yml or .json files found", path.display());
    }
    for file in files {
        out.extend(document::read_file(&file)?);
    }
    Ok(out)
}

/// Compiles the templates and adds the constraints, whose parameters the engine checks against
/// their template's schema exactly as the webhook does. Every problem is reported at once; the
/// warnings the API server would give (pruned parameter fields) go to stderr.
fn build_policy_set(docs: &[Document]) -> anyhow::Result<PolicySet> {
    let set = match PolicySet::from_documents(docs) {
        Ok(set) => set,
        Err(err) => {
            let lines: Vec<String> = err.errors().iter().map(|e| e.to_string()).collect();
            bail!("loading policies failed:\n  {}", lines.join("\n  "));
        }
    };
    for constraint in set.constraints() {
        for warning in &constraint.warnings {
            eprintln!(
                "warning: {}: {}: {warning}",
                constraint.location,
                constraint.what()
            );
        }
    }
    if set.templates().next().is_none() {
        bail!(
            "no ConstraintTemplates found; pass --policies DIR (templates and constraints), or \
             run from the repository root where gatekeeper/ holds them"
        );
    }
    Ok(set)
}

/// Reviews every object on every core; the findings keep the manifests' order.
fn review_all(
    set: &PolicySet,
    inventory: &Inventory,
    objects: &[Document],
    strict: bool,
) -> anyhow::Result<Vec<Finding>> {
    let options = ReviewOptions::at(EnforcementPoint::Gator);
    let outcomes = parallel::map_in_order(objects, None, |doc| {
        let request = AdmissionRequest::from_manifest(&doc.value)
            .map_err(|err| anyhow::anyhow!("{}: {err}", doc.position()))?;
        set.review_with(&request, inventory, &options)
            .with_context(|| format!("{}: reviewing {}", doc.position(), doc.object_name()))
    });
    let mut findings = Vec::new();
    for (doc, outcome) in objects.iter().zip(outcomes) {
        let violations = outcome?;
        let object = if is_admission_review(&doc.value) {
            let request = &doc.value["request"];
            let target = if request["object"].is_object() {
                &request["object"]
            } else {
                &request["oldObject"]
            };
            format!(
                "{} ({})",
                document::object_name(target),
                request["operation"].as_str().unwrap_or("")
            )
        } else {
            doc.object_name()
        };
        for v in violations {
            let fails = v.denies() || (strict && v.warns());
            findings.push(Finding {
                file: doc.location.source.clone(),
                line: doc.location.line,
                document: doc.location.document,
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
