//! The object under review: an AdmissionRequest exactly as the API server sends it (or as gator
//! builds one from a plain object), which becomes `input.review` unchanged, plus the facts the
//! match criteria need, extracted once.

use std::collections::BTreeMap;

use regorus::Value;
use serde_json::Value as Json;

use crate::error::ReviewError;

/// The facts about one object (the new or the old one) that matching needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectFacts {
    /// API group (`""` for core), from the object's `apiVersion`.
    pub group: String,
    /// Version, from the object's `apiVersion`.
    pub version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

impl ObjectFacts {
    /// Reads the facts from an object (missing fields are empty).
    pub fn of(object: &Value) -> Self {
        let str_at = |v: &Value| v.as_string().map(|s| s.to_string()).unwrap_or_default();
        let (group, version) = split_api_version(&str_at(&object["apiVersion"]));
        let metadata = &object["metadata"];
        let mut labels = BTreeMap::new();
        if let Ok(map) = metadata["labels"].as_object() {
            for (key, value) in map.iter() {
                if let (Ok(key), Ok(value)) = (key.as_string(), value.as_string()) {
                    labels.insert(key.to_string(), value.to_string());
                }
            }
        }
        Self {
            group,
            version,
            kind: str_at(&object["kind"]),
            name: str_at(&metadata["name"]),
            namespace: str_at(&metadata["namespace"]),
            labels,
        }
    }

    /// Whether the object is a core Namespace.
    pub fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.group.is_empty()
    }
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((group, version)) => (group.to_string(), version.to_string()),
        None => (String::new(), api_version.to_string()),
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

/// An AdmissionRequest under review.
#[derive(Debug, Clone)]
pub struct AdmissionRequest {
    value: Value,
    operation: String,
    namespace: String,
    objects: Vec<ObjectFacts>,
}

impl AdmissionRequest {
    /// Wraps an AdmissionRequest value (the `request` field of an AdmissionReview).
    pub fn from_value(value: Value) -> Result<Self, ReviewError> {
        if value.as_object().is_err() {
            return Err(ReviewError::Malformed(
                "the admission request is not an object".into(),
            ));
        }
        // Every string (keys too) within the exponent bound: a policy may hand any of them to
        // `units.parse` or `to_number`, which regorus cannot stop once it expands the number.
        // Malformed, naming the field: the API server's quantities never come near the bound.
        meshguard_rego_compat::numbers::check_strings(&value)
            .map_err(|err| ReviewError::Malformed(format!("request.{err}")))?;
        let str_at = |v: &Value| v.as_string().map(|s| s.to_string()).unwrap_or_default();
        let operation = str_at(&value["operation"]);
        let namespace = str_at(&value["namespace"]);
        let mut objects = Vec::new();
        for field in ["object", "oldObject"] {
            let object = &value[field];
            if object.as_object().is_ok() {
                objects.push(ObjectFacts::of(object));
            }
        }
        Ok(Self {
            value,
            operation,
            namespace,
            objects,
        })
    }

    /// Parses an AdmissionRequest from JSON.
    pub fn from_json(json: &str) -> Result<Self, ReviewError> {
        Self::from_value(parse_json(json)?)
    }

    /// Parses an AdmissionReview (`admission.k8s.io/v1` or `v1beta1`) and takes its `request`.
    pub fn from_review_json(json: &str) -> Result<Self, ReviewError> {
        let review = parse_json(json)?;
        let request = review["request"].clone();
        if request == Value::Undefined {
            return Err(ReviewError::Malformed(
                "the AdmissionReview has no request".into(),
            ));
        }
        Self::from_value(request)
    }

    /// Converts an AdmissionRequest given as a JSON value.
    pub fn from_json_value(request: &Json) -> Result<Self, ReviewError> {
        Self::from_value(Value::from(request.clone()))
    }

    /// Builds the AdmissionRequest gator and Gatekeeper's audit build for a plain object: `kind`
    /// from its apiVersion/kind, `name`, `namespace` and `object`; no operation or user.
    pub fn from_object(object: &Json) -> Result<Self, ReviewError> {
        let facts = ObjectFacts::of(&Value::from(object.clone()));
        if facts.kind.is_empty() || facts.version.is_empty() {
            return Err(ReviewError::Malformed(
                "the object has no apiVersion or kind".into(),
            ));
        }
        let mut request = serde_json::json!({
            "uid": "",
            "kind": {"group": facts.group, "version": facts.version, "kind": facts.kind},
            "resource": {"group": "", "version": "", "resource": ""},
            "operation": "",
            "userInfo": {},
            "object": object,
        });
        if let Some(map) = request.as_object_mut() {
            if !facts.name.is_empty() {
                map.insert("name".into(), Json::from(facts.name.clone()));
            }
            if !facts.namespace.is_empty() {
                map.insert("namespace".into(), Json::from(facts.namespace.clone()));
            }
        }
        Self::from_json_value(&request)
    }

    /// The request to review for a manifest document, as gator and `policy check` read one: an
    /// AdmissionReview's `request` exactly as the API server sends it (for DELETE the old object
    /// becomes `object`, as Gatekeeper's webhook does), or the request gator builds for a plain
    /// object.
    pub fn from_manifest(value: &Json) -> Result<Self, ReviewError> {
        if !is_admission_review(value) {
            return Self::from_object(value);
        }
        let request = value
            .get("request")
            .filter(|r| r.is_object())
            .ok_or_else(|| ReviewError::Malformed("the AdmissionReview has no request".into()))?;
        let has = |field: &str| request.get(field).is_some_and(Json::is_object);
        if !has("object") && !has("oldObject") {
            return Err(ReviewError::Malformed(
                "the AdmissionRequest has neither an object nor an oldObject to review".into(),
            ));
        }
        Self::from_json_value(request).map(Self::with_delete_object)
    }

    /// The request as `input.review` sees it.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// `operation` (`CREATE`, `UPDATE`, `DELETE`, `CONNECT`, or "" for a plain object).
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// `namespace` of the request ("" for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The object (or, without one, the old object) facts.
    pub fn object(&self) -> Option<&ObjectFacts> {
        self.objects.first()
    }

    /// Facts of `object` and `oldObject`, in that order, for those present.
    pub fn objects(&self) -> &[ObjectFacts] {
        &self.objects
    }

    /// A string field of the request (`uid`, `name`, `userInfo.username` via
    /// [`AdmissionRequest::user`]).
    pub fn field(&self, name: &str) -> String {
        self.value[name]
            .as_string()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    /// `userInfo.username`.
    pub fn user(&self) -> String {
        self.value["userInfo"]["username"]
            .as_string()
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    /// For DELETE, Gatekeeper's webhook reviews the old object as `object`: the request is
    /// rewritten so `input.review.object` is the old object. Other operations are unchanged.
    pub fn with_delete_object(mut self) -> Self {
        if self.operation == "DELETE"
            && self.value["object"].as_object().is_err()
            && self.value["oldObject"].as_object().is_ok()
        {
            let old = self.value["oldObject"].clone();
            if let Ok(map) = self.value.as_object_mut() {
                map.insert(Value::from("object"), old);
            }
        }
        self
    }
}

/// regorus' JSON reader, after the exponent bound: it would expand `1E111111111` into a big
/// integer for minutes (found by the `policy_review` fuzz target).
fn parse_json(json: &str) -> Result<Value, ReviewError> {
    meshguard_rego_compat::numbers::check_json(json)
        .map_err(|err| ReviewError::Malformed(format!("line {}: {err}", err.line)))?;
    Value::from_json_str(json).map_err(|err| ReviewError::Malformed(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_units_parse_would_expand_is_malformed_naming_its_field() {
        // Found by the `policy_review` fuzz target: a container-limits policy's `units.parse`
        // of this memory limit ran for minutes.
        let review = r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "1", "operation": "CREATE", "object": {"spec": {"containers": [
                {"image": "cart@sha256:4e12345", "resources": {"limits": {"cpu": "2500m",
                 "memory": "5121111111E111111111Mi"}}}]}}}}"#;
        let Err(ReviewError::Malformed(why)) = AdmissionRequest::from_review_json(review) else {
            panic!("accepted a string regorus would expand for minutes");
        };
        assert!(
            why.contains("request.object.spec.containers.0.resources.limits.memory: the number"),
            "{why}"
        );
        let fine = review.replace("5121111111E111111111Mi", "512Mi");
        assert!(AdmissionRequest::from_review_json(&fine).is_ok());
    }

    #[test]
    fn a_number_with_a_huge_exponent_is_malformed_not_expanded() {
        // Found by the `policy_review` fuzz target: regorus spent 87 s on such a number.
        let review = r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "1", "operation": "CREATE",
                "object": {"spec": {"replicas": 5121111111E111111111}}}}"#;
        let Err(ReviewError::Malformed(why)) = AdmissionRequest::from_review_json(review) else {
            panic!("accepted a number regorus would expand for minutes");
        };
        assert!(
            why.starts_with("line 3: the number `5121111111E111111111`"),
            "{why}"
        );
        let fine = review.replace("E111111111", "E3");
        assert!(AdmissionRequest::from_review_json(&fine).is_ok());
    }
}
