//! What `verify` and `check` share: reading templates and constraints into the policy engine,
//! checking constraint parameters against the template schema, building the request to review
//! from a file's object (a plain object as gator builds it, or an AdmissionReview as the API
//! server sends it), and inventories.

use std::path::Path;
use std::sync::Arc;

use meshguard_policy_engine::constraint::is_constraint;
use meshguard_policy_engine::template::is_template;
use meshguard_policy_engine::{self as engine, AdmissionRequest, Constraint, Inventory, Template};
use serde_json::Value as Json;

use crate::policy::docs::{self, Document};
use crate::policy::schema::validate_parameters;

/// Reads a manifest file into engine documents (which keep the text, so a Rego error inside a
/// template is reported at its line in the YAML file). The file is first read with the CLI's
/// reader, whose syntax errors name the document as well as the line.
pub fn engine_documents(path: &Path) -> Result<Vec<engine::Document>, String> {
    let (name, text) = docs::read_text(path).map_err(|err| format!("{err:#}"))?;
    let json = path.extension().is_some_and(|e| e == "json");
    docs::parse_documents(&name, &text, json).map_err(|err| err.to_string())?;
    engine::document::parse_documents(&name, &text).map_err(|err| err.to_string())
}

/// Why a template or constraint could not be set up.
#[derive(Debug, Clone)]
pub enum LoadFailure {
    /// The file is missing, unreadable, or does not hold what it should: the test is broken.
    Setup(String),
    /// The template or constraint itself is invalid (Rego, fields, parameter schema): what an
    /// `invalid: true` test expects.
    Invalid(String),
}

impl LoadFailure {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            LoadFailure::Setup(m) | LoadFailure::Invalid(m) => m,
        }
    }
}

/// A compiled template with its document (the parameter schema lives there).
#[derive(Debug, Clone)]
pub struct LoadedTemplate {
    /// The compiled template.
    pub template: Arc<Template>,
    /// The template document.
    pub document: Json,
}

/// Compiles a template document.
pub fn compile_template(doc: &engine::Document) -> Result<LoadedTemplate, LoadFailure> {
    Template::from_document(doc)
        .map(|template| LoadedTemplate {
            template: Arc::new(template),
            document: doc.value.clone(),
        })
        .map_err(|err| LoadFailure::Invalid(err.to_string()))
}

/// Reads and compiles the one ConstraintTemplate a file holds.
pub fn load_template(path: &Path) -> Result<LoadedTemplate, LoadFailure> {
    let docs = engine_documents(path).map_err(LoadFailure::Setup)?;
    let doc = single(path, &docs, "ConstraintTemplate").map_err(LoadFailure::Setup)?;
    if !is_template(doc) {
        return Err(LoadFailure::Setup(format!(
            "{}: not a ConstraintTemplate (apiVersion templates.gatekeeper.sh/v1, kind \
             ConstraintTemplate), found {} {}",
            doc.location,
            doc.api_version(),
            doc.kind()
        )));
    }
    compile_template(doc)
}

/// Reads the one constraint a file holds and checks it against its template: the kind must be
/// the template's and the parameters must follow the template's schema.
pub fn load_constraint(path: &Path, template: &LoadedTemplate) -> Result<Constraint, LoadFailure> {
    let docs = engine_documents(path).map_err(LoadFailure::Setup)?;
    let doc = single(path, &docs, "constraint").map_err(LoadFailure::Setup)?;
    if !is_constraint(doc) {
        return Err(LoadFailure::Setup(format!(
            "{}: not a constraint (apiVersion constraints.gatekeeper.sh/v1beta1), found {} {}",
            doc.location,
            doc.api_version(),
            doc.kind()
        )));
    }
    let constraint =
        Constraint::from_document(doc).map_err(|err| LoadFailure::Invalid(err.to_string()))?;
    if constraint.id.kind != template.template.kind {
        return Err(LoadFailure::Setup(format!(
            "{}: the constraint is of kind {} but the test's template defines {}",
            doc.location, constraint.id.kind, template.template.kind
        )));
    }
    check_parameters(&constraint, template).map_err(LoadFailure::Invalid)?;
    Ok(constraint)
}

/// Checks a constraint's parameters against its template's schema.
pub fn check_parameters(constraint: &Constraint, template: &LoadedTemplate) -> Result<(), String> {
    let problems = validate_parameters(&template.document, &constraint.parameters);
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}: {} {}: parameters do not follow the template's schema: {}",
        constraint.location,
        constraint.id.kind,
        constraint.id.name,
        problems.join("; ")
    ))
}

fn single<'a>(
    path: &Path,
    docs: &'a [engine::Document],
    what: &str,
) -> Result<&'a engine::Document, String> {
    match docs {
        [one] => Ok(one),
        [] => Err(format!(
            "{}: holds no document; expected one {what}",
            path.display()
        )),
        many => Err(format!(
            "{}: holds {} documents; expected exactly one {what}",
            path.display(),
            many.len()
        )),
    }
}

/// Whether a document is an AdmissionReview (`admission.k8s.io`, any version).
pub fn is_admission_review(value: &Json) -> bool {
    value["kind"].as_str() == Some("AdmissionReview")
        && value["apiVersion"].as_str().is_some_and(|v| {
            v.split_once('/')
                .is_some_and(|(group, _)| group == "admission.k8s.io")
        })
}

/// The request to review for a document: an AdmissionReview's `request` (for DELETE the old
/// object becomes `object`, as Gatekeeper's webhook does), or the request gator builds for a
/// plain object.
pub fn review_request(doc: &Document) -> Result<AdmissionRequest, String> {
    let value = &doc.value;
    if is_admission_review(value) {
        let request = value
            .get("request")
            .filter(|r| r.is_object())
            .ok_or_else(|| format!("{}: the AdmissionReview has no request", doc.position()))?;
        let has = |field: &str| request.get(field).is_some_and(Json::is_object);
        if !has("object") && !has("oldObject") {
            return Err(format!(
                "{}: the AdmissionRequest has neither an object nor an oldObject to review",
                doc.position()
            ));
        }
        return AdmissionRequest::from_json_value(request)
            .map(AdmissionRequest::with_delete_object)
            .map_err(|err| format!("{}: {err}", doc.position()));
    }
    AdmissionRequest::from_object(value).map_err(|err| format!("{}: {err}", doc.position()))
}

/// Adds the objects of a file to an inventory.
pub fn add_inventory_file(inventory: &mut Inventory, path: &Path) -> Result<usize, String> {
    let docs = docs::read_documents(path).map_err(|err| format!("{err:#}"))?;
    if docs.is_empty() {
        return Err(format!("{}: defines no objects", path.display()));
    }
    for doc in &docs {
        inventory
            .add(doc.value.clone())
            .map_err(|err| format!("{}: {err}", doc.position()))?;
    }
    Ok(docs.len())
}
