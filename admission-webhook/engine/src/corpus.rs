//! A policy corpus: every template, every sample constraint and every sample object found under
//! some folders (the repository's `gatekeeper/`, the benchmark's larger set), loaded into one
//! [`PolicySet`].
//!
//! Why: the benchmark and the evaluator-equivalence tests need "all the policies we have" at
//! once, while gator suites load one template and one constraint at a time. Sample constraints of
//! different suite tests often share a name (`must-have-owner` in two samples), so a constraint
//! whose kind and name are already taken by a different document is renamed `<name>-2`, `-3`, ...
//! Identical copies are loaded once. Sample objects (anything that is not a template, a
//! constraint or a gator suite) are kept so every constraint can be evaluated against every
//! object.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::constraint::{Constraint, ConstraintRef, is_constraint};
use crate::document::{self, Document};
use crate::error::LoadError;
use crate::policy_set::PolicySet;
use crate::review::AdmissionRequest;
use crate::template::{Template, is_template};

/// Everything loaded from the corpus folders.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// Every template and constraint.
    pub policies: PolicySet,
    /// The sample objects (plain objects or the `request` of AdmissionReviews), labelled
    /// `source#document`.
    pub objects: Vec<(String, Json)>,
}

impl Corpus {
    /// Loads every manifest under `paths`; load errors are collected and returned together.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Self, LoadError> {
        Self::from_documents(&document::read_paths(paths)?)
    }

    /// Builds a corpus from documents (templates first, then constraints, renamed when their
    /// name is taken by a different constraint).
    pub fn from_documents(docs: &[Document]) -> Result<Self, LoadError> {
        let mut corpus = Corpus::default();
        let mut errors = Vec::new();
        for doc in docs.iter().filter(|doc| is_template(doc)) {
            if let Some(existing) = corpus.policies.template(&kind_of(doc))
                && existing.source == doc.value
            {
                continue;
            }
            match Template::from_document(doc) {
                Ok(template) => {
                    corpus.policies.insert_template(Arc::new(template));
                }
                Err(err) => errors.push(err),
            }
        }
        let mut taken: BTreeMap<ConstraintRef, Json> = BTreeMap::new();
        for doc in docs.iter().filter(|doc| is_constraint(doc)) {
            let mut constraint = match Constraint::from_document(doc) {
                Ok(constraint) => constraint,
                Err(err) => {
                    errors.push(err);
                    continue;
                }
            };
            let base = constraint.id.name.clone();
            let mut suffix = 1;
            let mut duplicate = false;
            while let Some(source) = taken.get(&constraint.id) {
                if *source == constraint.source {
                    duplicate = true;
                    break;
                }
                suffix += 1;
                constraint.id.name = format!("{base}-{suffix}");
            }
            if duplicate {
                continue;
            }
            taken.insert(constraint.id.clone(), constraint.source.clone());
            if let Err(err) = corpus.policies.add_constraint(constraint) {
                errors.push(err);
            }
        }
        LoadError::from_many(errors)?;
        for doc in docs {
            if is_template(doc) || is_constraint(doc) || doc.kind() == "Suite" {
                continue;
            }
            let label = format!("{}#{}", doc.location.source, doc.location.document);
            let object = if doc.kind() == "AdmissionReview" {
                doc.value.get("request").cloned().unwrap_or(Json::Null)
            } else {
                doc.value.clone()
            };
            corpus.objects.push((label, object));
        }
        Ok(corpus)
    }

    /// The AdmissionRequests of the sample objects that can be reviewed (objects without
    /// apiVersion/kind, such as inventory fragments, are skipped).
    pub fn requests(&self) -> Vec<(String, AdmissionRequest)> {
        self.objects
            .iter()
            .filter_map(|(label, object)| {
                let request = if object.get("uid").is_some() || object.get("operation").is_some() {
                    AdmissionRequest::from_json_value(object)
                } else {
                    AdmissionRequest::from_object(object)
                };
                request.ok().map(|request| (label.clone(), request))
            })
            .collect()
    }
}

/// The kind a template document defines (empty when it has none).
fn kind_of(doc: &Document) -> String {
    doc.value
        .pointer("/spec/crd/spec/names/kind")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string()
}
