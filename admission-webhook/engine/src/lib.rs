//! meshguard's policy engine: Gatekeeper ConstraintTemplates and Constraints evaluated with
//! [regorus], with Gatekeeper's semantics, so a template and constraint that work in Gatekeeper
//! behave the same here. The admission webhook and the CLI (`meshguard policy verify/check`) share
//! it; it has no server dependencies.
//!
//! # Using it
//!
//! ```
//! use meshguard_policy_engine::{AdmissionRequest, Inventory, PolicySet, document};
//!
//! let yaml = r#"
//! apiVersion: templates.gatekeeper.sh/v1
//! kind: ConstraintTemplate
//! metadata: {name: k8srequiredlabels}
//! spec:
//!   crd: {spec: {names: {kind: K8sRequiredLabels}}}
//!   targets:
//!   - target: admission.k8s.gatekeeper.sh
//!     rego: |
//!       package k8srequiredlabels
//!       violation[{"msg": msg}] {
//!         required := {l | l := input.parameters.labels[_]}
//!         provided := {l | input.review.object.metadata.labels[l]}
//!         missing := required - provided
//!         count(missing) > 0
//!         msg := sprintf("missing labels: %v", [missing])
//!       }
//! ---
//! apiVersion: constraints.gatekeeper.sh/v1beta1
//! kind: K8sRequiredLabels
//! metadata: {name: must-have-team}
//! spec:
//!   match: {kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]}
//!   parameters: {labels: ["team"]}
//! "#;
//! let docs = document::parse_documents("policies.yaml", yaml)?;
//! let policies = PolicySet::from_documents(&docs)?;
//!
//! let deployment = serde_json::json!({
//!     "apiVersion": "apps/v1", "kind": "Deployment",
//!     "metadata": {"name": "cart", "namespace": "shop"}
//! });
//! let request = AdmissionRequest::from_object(&deployment)?;
//! let violations = policies.review(&request, &Inventory::new())?;
//! assert_eq!(violations.len(), 1);
//! assert_eq!(violations[0].gatekeeper_line(), r#"[must-have-team] missing labels: {"team"}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - Load: [`PolicySet::load_paths`] (files and folders read by [`document`], multi-document
//!   YAML; other documents such as suites and samples are skipped), [`PolicySet::from_documents`]
//!   (all or nothing, the CLI's contract) or [`PolicySet::load_documents`] (what is valid, and
//!   why the rest is not enforced: the webhook's), or one document at a time with
//!   [`Template::from_document`] / [`Constraint::from_document`] and
//!   [`PolicySet::insert_template`] / [`PolicySet::add_constraint`]. A constraint's parameters
//!   are checked against its template's schema when it is added ([`schema`]). Errors
//!   ([`LoadError`]) name the file, the document and the field; a Rego error names the template,
//!   the file and the line.
//! - Suites: gator's Suite format and its runner ([`suite`]), shared by `meshguard policy
//!   verify` and this crate's tests.
//! - Review: [`AdmissionRequest`] from an AdmissionReview or AdmissionRequest JSON exactly as the
//!   API server sends it (`input.review` is that request, unchanged), or from a plain object the
//!   way gator builds one; [`PolicySet::review`] / [`PolicySet::review_with`] (enforcement point
//!   and deadline in [`ReviewOptions`]) return [`Violation`]s; [`PolicySet::audit`] reports
//!   violations per constraint for existing objects; [`PolicySet::review_all`] and audit use
//!   every core ([`parallel`]).
//! - Inventory: [`Inventory`] is `data.inventory` in Gatekeeper's layout and the Namespaces used
//!   by `namespaceSelector`.
//!
//! # Semantics
//!
//! - Templates: `templates.gatekeeper.sh` v1/v1beta1/v1alpha1; Rego v0 unless the template's
//!   `code[engine: Rego].source.version` is `"v1"`; `libs` in packages `lib.*` (read as
//!   `data.lib.*`); the Rego may read only `data.lib` and `data.inventory`; one prepared engine
//!   per template (libs of different templates may share package names); see [`template`].
//! - Constraints: `constraints.gatekeeper.sh`, any kind a loaded template defines; parameters
//!   default to `{}`; `match` as Gatekeeper documents it ([`matching`]); `enforcementAction` deny
//!   (default), dryrun, warn or scoped with enforcement points ([`enforcement`]).
//! - Evaluation: only constraints whose kinds can match the object are considered (kind index);
//!   each matching constraint evaluates `violation` on a clone of its template's prepared engine
//!   with `input = {"review": <request>, "parameters": <spec.parameters>}`; results are the
//!   `violation` entries with a `msg` (`details` defaults to `{}`); builtin errors are undefined
//!   (OPA's default); a run-time error becomes a violation carrying the error, as in Gatekeeper;
//!   the whole review has a deadline enforced by regorus' execution timer.
//! - Decision cache (on by default, [`PolicySet::set_decision_cache`]): each template keeps the
//!   decisions of recent evaluations keyed by exactly the part of `input` its decision depends
//!   on, found on the template's parse tree ([`read_set`]), and the inventory generation; a
//!   review that agrees on that part (the next replica of a ReplicaSet, a re-applied object)
//!   gets the same decision without evaluating ([`decision_cache`]). Templates calling clock,
//!   network or random builtins are never cached ([`Template::uncacheable`]).
//!   `tests/vm_equivalence.rs` checks cached decisions against uncached ones on every corpus,
//!   including renamed replicas and perturbed copies of every sample.
//!
//! # Where regorus diverges from OPA
//!
//! Template Rego, and every module `meshguard policy test` loads ([`rego`]), is rewritten before
//! regorus compiles it so it decides as OPA does; [`divergences`] has the table of divergences
//! and compensations, and minimal reproducers for the regorus bugs among them. The rewrites
//! live in the `meshguard-rego-compat` crate, shared with the proxy's authz filter (which runs
//! the same Rego on regorus' VM inside Envoy). Rewrites keep every line where it was and are
//! listed in [`Template::notes`].
//!
//! Not compensated: arithmetic on a non-number (`[] + 1`, `{1} - []`; found by the differential
//! fuzz target): OPA and regorus' VM leave the expression undefined, regorus' interpreter raises
//! an error (reported as a violation carrying it). The VM is the default; `tests/divergences.rs`
//! pins both behaviours.
//!
//! # Evaluators
//!
//! [`EvalMode::Vm`] (the default) runs regorus' bytecode VM; [`EvalMode::Interpreter`] its tree
//! interpreter ([`PolicySet::set_eval_mode`]). `tests/vm_equivalence.rs` checks both give the
//! same violations on every template, constraint and sample of `gatekeeper/` and of the
//! benchmark's larger set; a template the VM compiler refuses runs on the interpreter
//! ([`Template::vm_unavailable`]). Two VM-only rewrites keep templates on the VM and fast there:
//! complete rules with several definitions (checked for conflicts as above) and lookup-table
//! functions (`mem_multiple("Ki") = 1024000`, one clause per unit) turned into one object lookup
//! (`vm_rules` in `meshguard-rego-compat`, which the proxy's authz filter uses too).

pub mod constraint;
pub mod corpus;
pub mod decision_cache;
pub mod divergences;
pub mod document;
pub mod enforcement;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod inventory;
pub mod matching;
pub mod parallel;
pub mod policy_set;
pub mod read_set;
pub mod rego;
use meshguard_rego_compat::rego_scan;
pub mod review;
use meshguard_rego_compat::rewrite;
pub mod schema;
pub mod suite;
pub mod template;
pub mod vm;
mod vm_rules;

pub use constraint::{Constraint, ConstraintRef};
pub use corpus::Corpus;
pub use decision_cache::{CacheCounters, CacheStats};
pub use document::Document;
pub use enforcement::{Enforcement, EnforcementAction, EnforcementPoint};
pub use error::{InventoryError, LoadError, Location, ReviewError};
pub use inventory::Inventory;
pub use policy_set::{
    AuditReport, Loaded, ObjectRef, PolicySet, Rejected, ReviewOptions, Violation,
};
pub use review::AdmissionRequest;
pub use template::{RegoVersion, Template};
pub use vm::EvalMode;

/// The regorus version this engine is built on, re-exported for callers that need its types.
pub use regorus;
