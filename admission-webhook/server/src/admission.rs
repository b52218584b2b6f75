//! The admission decision, free of transport: decode an AdmissionReview (`admission.k8s.io/v1` or
//! `v1beta1`) with `kube::core::admission`, and turn the engine's verdict into the response
//! Gatekeeper would give, in the same API version:
//!
//! - any `deny` violation: `allowed: false`, code 403, reason Forbidden, message
//!   `[constraint-name] msg` lines joined by newlines;
//! - `warn` violations: `warnings` with the same `[constraint-name] msg` lines;
//! - `dryrun` violations: no effect on the response (logged and counted by the caller);
//! - a review that could not be completed: the failure policy (Fail denies with the reason and
//!   code 500; Ignore allows with a warning).
//!
//! It also decides which requests are admitted without evaluation ([`exemption`]), as
//! Gatekeeper's exclusions do: exempt namespaces (a Namespace object is judged by its own name)
//! and the webhook's own service account.

use kube::core::admission::{AdmissionRequest as KubeRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Status};
use meshguard_policy_engine::{AdmissionRequest, Violation};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::config::{FailurePolicy, Settings};

/// A decoded review: kube's typed request (for the response) and the engine's request (the
/// `request` object exactly as sent, which becomes `input.review`).
pub struct Decoded {
    /// kube's view (uid, apiVersion to answer with).
    pub kube: KubeRequest<DynamicObject>,
    /// The engine's view.
    pub request: AdmissionRequest,
    /// `dryRun: true` (the API server will not persist the object).
    pub dry_run: bool,
}

/// Why a request is admitted without evaluation, or None when it must be evaluated: its
/// namespace is exempt (a Namespace object is judged by its own name, as Gatekeeper's exclusion
/// does), or it comes from the webhook's own service account.
pub fn exemption(settings: &Settings, decoded: &Decoded) -> Option<&'static str> {
    let kind = &decoded.kube.kind;
    let namespace = if kind.group.is_empty() && kind.kind == "Namespace" {
        decoded.kube.name.as_str()
    } else {
        decoded.request.namespace()
    };
    if settings.is_exempt_namespace(namespace) {
        return Some("exempt namespace");
    }
    let user = decoded.request.user();
    if settings
        .service_account
        .as_deref()
        .is_some_and(|account| account == user)
    {
        return Some("own service account");
    }
    None
}

/// Decodes a request body; the error is the reason for a 400.
pub fn decode(body: &[u8]) -> Result<Decoded, String> {
    let json: Json =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let kind = json.get("kind").and_then(Json::as_str).unwrap_or("");
    let api_version = json.get("apiVersion").and_then(Json::as_str).unwrap_or("");
    if kind != "AdmissionReview" {
        return Err(format!("expected kind AdmissionReview, got {kind:?}"));
    }
    if !matches!(
        api_version,
        "admission.k8s.io/v1" | "admission.k8s.io/v1beta1"
    ) {
        return Err(format!(
            "unsupported apiVersion {api_version:?} (expected admission.k8s.io/v1 or v1beta1)"
        ));
    }
    let review = AdmissionReview::<DynamicObject>::deserialize(&json)
        .map_err(|e| format!("malformed AdmissionReview: {e}"))?;
    let kube: KubeRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_string())?;
    let request_json = json
        .get("request")
        .ok_or_else(|| "the AdmissionReview has no request".to_string())?;
    let value = meshguard_policy_engine::regorus::Value::deserialize(request_json)
        .map_err(|e| format!("malformed request: {e}"))?;
    let request = AdmissionRequest::from_value(value)
        .map_err(|e| e.to_string())?
        .with_delete_object();
    let dry_run = request_json.get("dryRun").and_then(Json::as_bool) == Some(true);
    Ok(Decoded {
        kube,
        request,
        dry_run,
    })
}

/// What the engine's verdict means for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// `[name] msg` lines of deny violations.
    pub denials: Vec<String>,
    /// `[name] msg` lines of warn violations.
    pub warnings: Vec<String>,
    /// `[name] msg` lines of dryrun violations.
    pub dryruns: Vec<String>,
}

impl Verdict {
    /// Sorts violations by their enforcement actions.
    pub fn of(violations: &[Violation]) -> Self {
        let lines = |keep: fn(&Violation) -> bool| -> Vec<String> {
            violations
                .iter()
                .filter(|v| keep(v))
                .map(Violation::gatekeeper_line)
                .collect()
        };
        let denials = lines(Violation::denies);
        Self {
            allowed: denials.is_empty(),
            denials,
            warnings: lines(Violation::warns),
            dryruns: lines(Violation::is_dryrun),
        }
    }

    /// The `admission_status` label.
    pub fn status(&self) -> &'static str {
        if self.allowed { "allow" } else { "deny" }
    }
}

/// The response for a verdict.
pub fn respond(decoded: &Decoded, verdict: &Verdict) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::from(&decoded.kube);
    if !verdict.allowed {
        let message = verdict.denials.join("\n");
        response = response.deny(&message);
        response.result = Status::failure(&message, "Forbidden").with_code(403);
    }
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings.clone());
    }
    response.into_review()
}

/// The response when the review could not be completed.
pub fn respond_failure(
    decoded: &Decoded,
    policy: FailurePolicy,
    reason: &str,
) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::from(&decoded.kube);
    match policy {
        FailurePolicy::Fail => {
            let message = format!(
                "meshguard: the request could not be reviewed ({reason}); denied by failurePolicy Fail"
            );
            response = response.deny(&message);
            response.result = Status::failure(&message, "InternalError").with_code(500);
        }
        FailurePolicy::Ignore => {
            response.warnings = Some(vec![format!(
                "meshguard: the request could not be reviewed ({reason}); admitted by failurePolicy Ignore"
            )]);
        }
    }
    response.into_review()
}

/// The response for a request admitted without evaluation (exempt namespace or service account).
pub fn respond_exempt(decoded: &Decoded) -> AdmissionReview<DynamicObject> {
    AdmissionResponse::from(&decoded.kube).into_review()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Settings;
    use meshguard_policy_engine::matching::Wildcard;

    fn decoded(kind: &str, namespace: &str, name: &str, user: &str) -> Decoded {
        let group = "";
        let review = json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "7d3f9a4e-0000-4000-8000-000000000001",
                "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": group, "version": "v1", "resource": "things"},
                "name": name, "namespace": namespace, "operation": "CREATE",
                "userInfo": {"username": user},
                "object": {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}},
                "dryRun": true,
            }
        });
        decode(&serde_json::to_vec(&review).unwrap()).unwrap()
    }

    fn settings() -> Settings {
        Settings {
            exempt_namespaces: vec![Wildcard("kube-*".into())],
            service_account: Some("system:serviceaccount:meshguard-system:webhook".into()),
            ..Settings::default()
        }
    }

    #[test]
    fn exempt_namespaces_and_the_own_service_account_skip_evaluation() {
        let settings = settings();
        let alice = "alice";
        assert_eq!(
            exemption(&settings, &decoded("ConfigMap", "kube-system", "c", alice)),
            Some("exempt namespace")
        );
        assert_eq!(
            exemption(&settings, &decoded("ConfigMap", "shop", "c", alice)),
            None
        );
        // A Namespace is judged by its own name.
        assert_eq!(
            exemption(&settings, &decoded("Namespace", "", "kube-public", alice)),
            Some("exempt namespace")
        );
        assert_eq!(
            exemption(&settings, &decoded("Namespace", "", "shop", alice)),
            None
        );
        let own = "system:serviceaccount:meshguard-system:webhook";
        assert_eq!(
            exemption(&settings, &decoded("ConfigMap", "shop", "c", own)),
            Some("own service account")
        );
    }

    #[test]
    fn dry_run_is_read_from_the_request() {
        assert!(decoded("ConfigMap", "shop", "c", "alice").dry_run);
    }
}
