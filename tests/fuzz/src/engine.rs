//! The policy engine at admission: decoding what the API server sends, and evaluating a hostile
//! object against the repository's own policy set (`gatekeeper/`).
//!
//! `policy_review` is also a differential target: the webhook's configuration (bytecode VM with
//! the decision cache) must decide every object exactly as the tree interpreter without a cache
//! does. The cache keys a decision on the part of `input` each template's Rego can read, so a
//! wrong read set would show here as a stale decision for an object that differs elsewhere.

use std::sync::OnceLock;
use std::time::Duration;

use meshguard_policy_engine::regorus::Value;
use meshguard_policy_engine::{
    AdmissionRequest, EvalMode, Inventory, PolicySet, ReviewError, ReviewOptions, Violation,
};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::seeds::workspace_root;

/// Decodes a body the way the webhook does: JSON, then the `request` of an AdmissionReview (or
/// the body itself as an AdmissionRequest), into the engine's request.
pub fn decode(data: &[u8]) -> Option<AdmissionRequest> {
    let json: Json = serde_json::from_slice(data).ok()?;
    let request = json.get("request").unwrap_or(&json);
    let value = Value::deserialize(request).ok()?;
    let request = AdmissionRequest::from_value(value)
        .ok()?
        .with_delete_object();
    // Every accessor the webhook reads for its logs and exemptions.
    let _ = (request.operation(), request.namespace(), request.user());
    let _ = request.object().map(|facts| facts.is_namespace());
    Some(request)
}

/// Target `admission_review`: the webhook's decoding and the engine's own text decoders.
pub fn admission_review(data: &[u8]) {
    let _ = decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = AdmissionRequest::from_review_json(text);
        let _ = AdmissionRequest::from_json(text).map(AdmissionRequest::with_delete_object);
    }
    if let Ok(object) = serde_json::from_slice::<Json>(data) {
        let _ = AdmissionRequest::from_object(&object);
    }
}

/// The repository's policy set twice (as the webhook runs it, and the reference), and the
/// inventory its samples imply.
struct Policies {
    webhook: PolicySet,
    reference: PolicySet,
    inventory: Inventory,
}

fn policies() -> &'static Policies {
    static POLICIES: OnceLock<Policies> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let gatekeeper = workspace_root().join("gatekeeper");
        let load = || {
            PolicySet::load_paths(&[&gatekeeper])
                .unwrap_or_else(|err| panic!("loading {}: {err}", gatekeeper.display()))
        };
        Policies {
            webhook: load()
                .with_eval_mode(EvalMode::Vm)
                .with_decision_cache(true),
            reference: load()
                .with_eval_mode(EvalMode::Interpreter)
                .with_decision_cache(false),
            inventory: Inventory::new(),
        }
    })
}

/// Deadline per review: far above any real review (a few ms), so that only a runaway
/// evaluation reaches it; libFuzzer's own timeout reports anything slower as a hang.
const DEADLINE: Duration = Duration::from_secs(5);

/// Target `policy_review`: a fuzzed request against every constraint in `gatekeeper/`.
pub fn policy_review(data: &[u8]) {
    let Some(request) = decode(data) else {
        return;
    };
    let policies = policies();
    let options = ReviewOptions {
        deadline: DEADLINE,
        ..ReviewOptions::default()
    };
    let webhook = policies
        .webhook
        .review_with(&request, &policies.inventory, &options);
    let reference = policies
        .reference
        .review_with(&request, &policies.inventory, &options);
    match (webhook, reference) {
        (Ok(webhook), Ok(reference)) => assert_eq!(
            lines(&webhook),
            lines(&reference),
            "the webhook's evaluator (VM + decision cache) and the interpreter disagree"
        ),
        (Err(ReviewError::Timeout { .. }), _) | (_, Err(ReviewError::Timeout { .. })) => {}
        (Err(webhook), Err(reference)) => assert_eq!(webhook.to_string(), reference.to_string()),
        (webhook, reference) => {
            panic!("one evaluator failed: VM + cache {webhook:?}, interpreter {reference:?}")
        }
    }
}

fn lines(violations: &[Violation]) -> Vec<(String, Json)> {
    violations
        .iter()
        .map(|v| (v.gatekeeper_line(), v.details.clone()))
        .collect()
}
