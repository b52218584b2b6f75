//! Cluster mode against a fake API server on loopback that serves real Kubernetes list and watch
//! JSON (the shapes kube's watcher reads from a real API server): templates, constraints of the
//! kinds they define, Namespaces and a synced kind; changes arrive as watch events; status
//! writes (merge patches of the status subresource) are recorded.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as Extract};
use axum::response::{IntoResponse, Response};
use meshguard_admission_webhook::cluster::ClusterSync;
use meshguard_admission_webhook::config::{PolicySource, Settings, SyncKind};
use meshguard_admission_webhook::http::router;
use meshguard_admission_webhook::state::State;
use meshguard_policy_engine::{AdmissionRequest, ConstraintRef};
use serde_json::{Value as Json, json};
use tokio::sync::broadcast;
use tower::ServiceExt;

#[derive(Clone, Default)]
struct FakeApi {
    lists: Arc<Mutex<HashMap<String, Vec<Json>>>>,
    watches: Arc<Mutex<HashMap<String, broadcast::Sender<Json>>>>,
    requests: Arc<Mutex<Vec<String>>>,
    patches: Arc<Mutex<Vec<(String, Json)>>>,
}

impl FakeApi {
    fn list(&self, path: &str, items: Vec<Json>) {
        self.lists.lock().unwrap().insert(path.to_string(), items);
    }

    fn sender(&self, path: &str) -> broadcast::Sender<Json> {
        self.watches
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_insert_with(|| broadcast::channel(64).0)
            .clone()
    }

    /// Sends a watch event once a watch on `path` is open.
    async fn event(&self, path: &str, kind: &str, object: Json) {
        let sender = self.sender(path);
        let deadline = Instant::now() + Duration::from_secs(10);
        while sender.receiver_count() == 0 {
            assert!(Instant::now() < deadline, "no watch on {path}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sender
            .send(json!({"type": kind, "object": object}))
            .unwrap();
    }
}

async fn handle(Extract(api): Extract<FakeApi>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    api.requests.lock().unwrap().push(format!("{path}?{query}"));
    if request.method() == axum::http::Method::PATCH {
        let content_type = request.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(content_type, "application/merge-patch+json");
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .unwrap();
        let patch: Json = serde_json::from_slice(&body).unwrap();
        api.patches.lock().unwrap().push((path.clone(), patch));
        let name = path
            .trim_end_matches("/status")
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        return axum::Json(json!({"metadata": {"name": name}})).into_response();
    }
    if query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1")
    {
        let receiver = api.sender(&path).subscribe();
        let stream = watch_stream(receiver);
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap();
    }
    let items = api.lists.lock().unwrap().get(&path).cloned();
    match items {
        Some(items) => axum::Json(json!({
            "kind": "List",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1000"},
            "items": items,
        }))
        .into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": format!("the server could not find the requested resource ({path})"),
                              "reason": "NotFound", "code": 404})),
        )
            .into_response(),
    }
}

fn watch_stream(
    receiver: broadcast::Receiver<Json>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(event) => {
                let mut line = serde_json::to_vec(&event).unwrap();
                line.push(b'\n');
                Some((Ok(line), receiver))
            }
            Err(_) => None,
        }
    })
}

fn template() -> Json {
    let docs = meshguard_policy_engine::document::read_file(&support::testdata(
        "policies/required-labels.yaml",
    ))
    .unwrap();
    let mut template = docs[0].value.clone();
    template["metadata"]["resourceVersion"] = json!("10");
    template["metadata"]["uid"] = json!("5f8f0e4a-0000-4000-8000-000000000001");
    template
}

fn constraint(name: &str, action: &str, selector: Json) -> Json {
    json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sRequiredLabels",
        "metadata": {"name": name, "resourceVersion": "20", "uid": format!("uid-{name}"), "generation": 1},
        "spec": {
            "enforcementAction": action,
            "match": {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}], "namespaceSelector": selector},
            "parameters": {"labels": ["team"]}
        },
        "status": {"totalViolations": 0}
    })
}

fn namespace(name: &str, labels: Json) -> Json {
    // List items from the API server carry no apiVersion/kind.
    json!({"metadata": {"name": name, "labels": labels, "resourceVersion": "5", "uid": format!("ns-{name}")},
           "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

fn service(name: &str) -> Json {
    json!({"metadata": {"name": name, "namespace": "commerce", "resourceVersion": "7", "uid": format!("svc-{name}"),
                        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
           "spec": {"selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}], "type": "ClusterIP"}})
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn policies_and_inventory_follow_the_cluster() {
    let api = FakeApi::default();
    api.list(
        "/apis/templates.gatekeeper.sh/v1/constrainttemplates",
        vec![template()],
    );
    api.list(
        "/apis/constraints.gatekeeper.sh/v1beta1/k8srequiredlabels",
        vec![constraint(
            "commerce-needs-team",
            "deny",
            json!({"matchLabels": {"team": "commerce"}}),
        )],
    );
    api.list(
        "/api/v1/namespaces",
        vec![
            namespace("commerce", json!({"team": "commerce"})),
            namespace("payments", json!({"team": "payments"})),
        ],
    );
    api.list("/api/v1/services", vec![service("cart")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let state = State::new(Settings {
        policies: PolicySource::Cluster,
        sync: vec![SyncKind {
            group: String::new(),
            version: "v1".into(),
            kind: "Service".into(),
        }],
        ..Settings::default()
    });
    let _sync = ClusterSync::start(state.clone(), client);

    wait_for("readiness", || state.is_ready()).await;
    let policies = state.policies();
    assert_eq!(policies.templates().count(), 1);
    assert_eq!(policies.constraints().count(), 1);
    let inventory = state.inventory();
    assert_eq!(
        inventory.len(),
        1,
        "Services are synced; Namespaces only used for matching"
    );
    let synced: Vec<&Json> = inventory.objects().collect();
    assert_eq!(synced[0]["kind"], "Service");
    assert_eq!(synced[0]["apiVersion"], "v1");
    assert!(synced[0]["metadata"].get("managedFields").is_none());
    assert_eq!(
        inventory.namespace("commerce").unwrap().labels["team"],
        "commerce"
    );

    // The namespaceSelector uses the watched Namespaces.
    let deployment = |ns: &str| {
        AdmissionRequest::from_object(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "cart", "namespace": ns}}))
        .unwrap()
    };
    let review = |ns: &str| {
        state
            .policies()
            .review(&deployment(ns), &state.inventory())
            .unwrap()
    };
    assert_eq!(review("commerce").len(), 1);
    assert_eq!(review("payments").len(), 0);

    // A constraint added in the cluster arrives as a watch event.
    api.event(
        "/apis/constraints.gatekeeper.sh/v1beta1/k8srequiredlabels",
        "ADDED",
        constraint(
            "payments-needs-team",
            "warn",
            json!({"matchLabels": {"team": "payments"}}),
        ),
    )
    .await;
    wait_for("the new constraint", || {
        state.policies().constraints().count() == 2
    })
    .await;
    let warned = review("payments");
    assert_eq!(warned.len(), 1);
    assert!(warned[0].warns());

    // A synced object arrives, and a constraint is deleted.
    let mut added = service("order");
    added["apiVersion"] = json!("v1");
    added["kind"] = json!("Service");
    api.event("/api/v1/services", "ADDED", added).await;
    wait_for("the new Service", || state.inventory().len() == 2).await;
    api.event(
        "/apis/constraints.gatekeeper.sh/v1beta1/k8srequiredlabels",
        "DELETED",
        constraint("commerce-needs-team", "deny", json!({})),
    )
    .await;
    wait_for("the deletion", || {
        state
            .policies()
            .constraint(&ConstraintRef {
                kind: "K8sRequiredLabels".into(),
                name: "commerce-needs-team".into(),
            })
            .is_none()
    })
    .await;

    // Removing the template stops its constraints.
    api.event(
        "/apis/templates.gatekeeper.sh/v1/constrainttemplates",
        "DELETED",
        template(),
    )
    .await;
    wait_for("the template removal", || {
        state.policies().templates().count() == 0
    })
    .await;
    assert_eq!(state.policies().constraints().count(), 0);

    let requests = api.requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r
            .starts_with("/apis/constraints.gatekeeper.sh/v1beta1/k8srequiredlabels?")
            && r.contains("watch=true")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn policies_from_files_with_the_inventory_from_the_cluster() {
    let api = FakeApi::default();
    api.list(
        "/api/v1/namespaces",
        vec![namespace("commerce", json!({"team": "commerce"}))],
    );
    api.list("/api/v1/services", vec![service("cart")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client =
        kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap()))
            .unwrap();
    let policies = meshguard_policy_engine::PolicySet::load_paths(&[support::testdata(
        "policies/required-labels.yaml",
    )])
    .unwrap();
    let state = State::with_policies(
        Settings {
            sync: vec![SyncKind {
                group: String::new(),
                version: "v1".into(),
                kind: "Service".into(),
            }],
            ..Settings::default()
        },
        policies,
    );
    let _sync = ClusterSync::start_inventory(state.clone(), client);
    wait_for("the synced Service", || state.inventory().len() == 1).await;
    let mut added = service("order");
    added["apiVersion"] = json!("v1");
    added["kind"] = json!("Service");
    api.event("/api/v1/services", "ADDED", added).await;
    wait_for("the new Service", || state.inventory().len() == 2).await;
    // The file policies stay; the cluster's templates and constraints are never asked for.
    assert_eq!(state.policies().templates().count(), 1);
    assert_eq!(state.policies().constraints().count(), 1);
    let requests = api.requests.lock().unwrap().clone();
    assert!(
        requests.iter().all(|r| !r.contains("gatekeeper.sh")),
        "{requests:?}"
    );
    assert!(requests.iter().any(|r| r.starts_with("/api/v1/namespaces")));
}

/// A template with a parameter schema, as the API server lists it.
fn cap_template() -> Json {
    json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "k8sreplicacap", "uid": "tmpl-cap", "resourceVersion": "11", "generation": 1},
        "spec": {
            "crd": {"spec": {"names": {"kind": "K8sReplicaCap"}, "validation": {"openAPIV3Schema": {
                "type": "object", "properties": {"maxReplicas": {"type": "integer", "minimum": 1}}}}}},
            "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego":
                "package k8sreplicacap\nviolation[{\"msg\": \"too many replicas\"}] {\n  input.review.object.spec.replicas > input.parameters.maxReplicas\n}\n"}]
        }
    })
}

fn broken_template() -> Json {
    json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "k8sbroken", "uid": "tmpl-broken", "resourceVersion": "12", "generation": 2},
        "spec": {
            "crd": {"spec": {"names": {"kind": "K8sBroken"}}},
            "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego":
                "package k8sbroken\nviolation[{\"msg\": \"x\"}] { input.review.object.spec.x == }\n"}]
        }
    })
}

fn capped(name: &str, max: Json, generation: u64, status: Json) -> Json {
    json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sReplicaCap",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": format!("3{generation}"), "generation": generation},
        "spec": {"match": {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}]}, "parameters": {"maxReplicas": max}},
        "status": status
    })
}

/// This replica's entry in a status patch.
fn entry<'p>(patches: &'p [(String, Json)], path: &str, pod: &str) -> Option<&'p Json> {
    patches
        .iter()
        .rev()
        .find(|(p, _)| p == path)
        .and_then(|(_, patch)| {
            patch["status"]["byPod"]
                .as_array()?
                .iter()
                .find(|e| e["id"] == pod)
        })
}

#[tokio::test]
async fn invalid_templates_and_constraints_are_not_enforced_and_reported_in_status() {
    let pod = "meshguard-admission-webhook-7d9f5-x2k4q";
    let other = json!({"id": "meshguard-admission-webhook-7d9f5-abcde", "enforced": false,
                       "observedGeneration": 3, "operations": ["webhook"]});
    let api = FakeApi::default();
    let templates = "/apis/templates.gatekeeper.sh/v1/constrainttemplates";
    let caps = "/apis/constraints.gatekeeper.sh/v1beta1/k8sreplicacap";
    api.list(templates, vec![cap_template(), broken_template()]);
    api.list(
        caps,
        vec![
            capped("replicas-capped", json!(50), 1, json!({})),
            capped(
                "replicas-capped-typo",
                json!("ten"),
                3,
                json!({"byPod": [other.clone()]}),
            ),
        ],
    );
    api.list(
        "/apis/constraints.gatekeeper.sh/v1beta1/k8sbroken",
        vec![json!({"metadata": {"name": "broken-one", "uid": "uid-broken-one", "resourceVersion": "40", "generation": 1}, "spec": {}})],
    );
    api.list("/api/v1/namespaces", Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client =
        kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap()))
            .unwrap();
    let state = State::new(Settings {
        policies: PolicySource::Cluster,
        pod_name: pod.into(),
        ..Settings::default()
    });
    let _sync = ClusterSync::start(state.clone(), client);
    wait_for("readiness", || state.is_ready()).await;
    wait_for("five status writes", || {
        api.patches.lock().unwrap().len() >= 5
    })
    .await;

    // Only the valid template and constraint are enforced.
    assert_eq!(state.policies().templates().count(), 1);
    assert_eq!(state.policies().constraints().count(), 1);
    // /readyz says so (through the router, as the kubelet's probe reads it), and stays 200.
    let probe = axum::http::Request::get("/readyz")
        .body(Body::empty())
        .unwrap();
    let response = router(state.clone()).oneshot(probe).await.unwrap();
    assert_eq!(response.status(), axum::http::StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.starts_with("ready: 1 templates and 1 constraints enforced\nnot enforced (3):\n"),
        "{text}"
    );
    assert!(
        text.contains("K8sReplicaCap replicas-capped-typo: "),
        "{text}"
    );

    let patches = api.patches.lock().unwrap().clone();
    let typo = format!("{caps}/replicas-capped-typo/status");
    let mine = entry(&patches, &typo, pod).expect("the invalid constraint's status");
    assert_eq!(mine["enforced"], false);
    assert_eq!(mine["observedGeneration"], 3);
    assert_eq!(mine["constraintUID"], "uid-replicas-capped-typo");
    assert_eq!(mine["errors"][0]["code"], "invalid_parameters");
    let message = mine["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.parameters.maxReplicas: \"ten\" is not of type \"integer\""),
        "{message}"
    );
    // The other replica's entry is kept; the write is conditional on the version it read.
    let (_, patch) = patches.iter().find(|(p, _)| *p == typo).unwrap();
    assert!(
        patch["status"]["byPod"]
            .as_array()
            .unwrap()
            .contains(&other)
    );
    assert_eq!(patch["metadata"]["resourceVersion"], "33");

    let valid = format!("{caps}/replicas-capped/status");
    let mine = entry(&patches, &valid, pod).expect("the valid constraint's status");
    assert_eq!(mine["enforced"], true);
    assert!(mine.get("errors").is_none(), "{mine}");

    let broken = format!("{templates}/k8sbroken/status");
    let mine = entry(&patches, &broken, pod).expect("the broken template's status");
    assert_eq!(mine["errors"][0]["code"], "ingest_error");
    assert_eq!(mine["templateUID"], "tmpl-broken");
    let orphan = "/apis/constraints.gatekeeper.sh/v1beta1/k8sbroken/broken-one/status";
    let mine = entry(&patches, orphan, pod).expect("the orphaned constraint's status");
    assert_eq!(mine["enforced"], false);
    assert_eq!(mine["errors"][0]["code"], "template_error");

    // The API server stores the entry; a constraint whose status already holds it is not
    // written again, while one whose generation moved on is.
    let mut stored = capped("replicas-capped", json!(50), 1, json!({}));
    let (_, patch) = patches.iter().rev().find(|(p, _)| *p == valid).unwrap();
    stored["status"] = patch["status"].clone();
    api.event(caps, "MODIFIED", stored).await;
    api.event(
        caps,
        "MODIFIED",
        capped(
            "replicas-capped-typo",
            json!("ten"),
            4,
            json!({"byPod": [other]}),
        ),
    )
    .await;
    let writes = |path: &str| {
        api.patches
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    };
    wait_for("the new generation's status", || writes(&typo) == 2).await;
    let patches = api.patches.lock().unwrap().clone();
    assert_eq!(
        entry(&patches, &typo, pod).unwrap()["observedGeneration"],
        4
    );
    assert_eq!(
        writes(&valid),
        1,
        "an entry the resource holds is not written again"
    );
}
