//! Cluster mode: policies and inventory from the Kubernetes API with kube watchers.
//!
//! - ConstraintTemplates (`templates.gatekeeper.sh/v1`) are watched; for each kind they define a
//!   watcher on that constraint kind (`constraints.gatekeeper.sh/v1beta1`, resource = lowercase
//!   kind, as Gatekeeper names the generated CRDs) is started, and stopped when the template goes.
//! - The kinds of the `sync` list (Gatekeeper's Config `sync.syncOnly`) are watched into
//!   `data.inventory`; Namespaces are always watched for `namespaceSelector` matching.
//! - Every watcher keeps its own store (a relist replaces it atomically); a rebuild task turns the
//!   stores into a new policy set and inventory at most every [`REBUILD_DEBOUNCE`], compiling only
//!   templates whose content changed. The webhook is ready once every watcher has listed.
//! - With policies from files, [`ClusterSync::start_inventory`] runs only the inventory side
//!   (Namespaces and the sync list), so templates that read `data.inventory` (a Deployment needs
//!   a PodDisruptionBudget) see the cluster's objects while the policies stay GitOps.
//! - A template that does not compile, or a constraint that fails validation (its fields, its
//!   parameters against the template's schema, its template failed), is not enforced. As
//!   Gatekeeper does, each replica reports every template and constraint in the resource's
//!   `status.byPod` under its pod name ([`crate::config::Settings::pod_name`]): `enforced`
//!   (constraints), `observedGeneration`, the resource's uid, and `errors` with a code
//!   (`ingest_error` for a template, `invalid_constraint`, `invalid_parameters` or
//!   `template_error` for a constraint) and the message; other replicas' entries are kept. The
//!   write is a merge patch of the status subresource carrying the `resourceVersion` it was
//!   computed from, sent only when this replica's entry changed (so a conflict is retried when
//!   the newer version arrives). The error is also logged and listed on `/readyz`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use meshguard_policy_engine::{Constraint, Document, Inventory, LoadError, PolicySet, Template};
use serde_json::Value as Json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::SyncKind;
use crate::metrics::SyncLabels;
use crate::state::{NotEnforced, State};

/// Minimum time between two rebuilds.
pub const REBUILD_DEBOUNCE: Duration = Duration::from_millis(100);

const TEMPLATES: &str = "templates";
const NAMESPACES: &str = "namespaces";

#[derive(Default)]
struct SourceStore {
    objects: BTreeMap<String, Json>,
    buffer: Option<BTreeMap<String, Json>>,
    listed: bool,
}

/// A status subresource write: this replica's `byPod` entry changed.
struct StatusUpdate {
    resource: ApiResource,
    name: String,
    patch: Json,
}

#[derive(Default)]
struct Stores {
    sources: HashMap<String, SourceStore>,
    constraint_watchers: HashMap<String, JoinHandle<()>>,
    compiled: HashMap<String, (Json, Result<Arc<Template>, String>)>,
}

/// The running cluster sync.
pub struct ClusterSync {
    state: Arc<State>,
    client: Client,
    /// Whether templates and constraints come from the cluster (else only the inventory does).
    policies: bool,
    stores: Mutex<Stores>,
    dirty: Notify,
}

fn key_of(object: &DynamicObject) -> String {
    format!(
        "{}/{}",
        object.metadata.namespace.as_deref().unwrap_or(""),
        object.metadata.name.as_deref().unwrap_or("")
    )
}

/// The object as JSON with `apiVersion` and `kind` (list items from the API server omit them).
fn to_json(object: &DynamicObject, resource: &ApiResource) -> Json {
    let mut value = serde_json::to_value(object).unwrap_or(Json::Null);
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Json::from(resource.api_version.clone()));
        map.entry("kind")
            .or_insert_with(|| Json::from(resource.kind.clone()));
    }
    value
}

impl ClusterSync {
    /// Starts watching policies and inventory; returns the sync, whose tasks run until the
    /// process ends.
    pub fn start(state: Arc<State>, client: Client) -> Arc<Self> {
        Self::start_with(state, client, true)
    }

    /// Starts watching only the inventory (Namespaces and the sync list); the policies stay
    /// those loaded from files.
    pub fn start_inventory(state: Arc<State>, client: Client) -> Arc<Self> {
        Self::start_with(state, client, false)
    }

    fn start_with(state: Arc<State>, client: Client, policies: bool) -> Arc<Self> {
        let sync = Arc::new(Self {
            state: state.clone(),
            client,
            policies,
            stores: Mutex::new(Stores::default()),
            dirty: Notify::new(),
        });
        if policies {
            sync.register(TEMPLATES);
            tokio::spawn(
                sync.clone()
                    .watch(TEMPLATES.to_string(), templates_resource()),
            );
        }
        sync.register(NAMESPACES);
        let namespaces = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        );
        tokio::spawn(sync.clone().watch(NAMESPACES.to_string(), namespaces));
        for kind in &state.settings.sync {
            let source = sync_source(kind);
            sync.register(&source);
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
                &kind.group,
                &kind.version,
                &kind.kind,
            ));
            tokio::spawn(sync.clone().watch(source, resource));
        }
        tokio::spawn(sync.clone().rebuild_loop());
        sync
    }

    fn register(&self, source: &str) {
        if let Ok(mut stores) = self.stores.lock() {
            stores.sources.entry(source.to_string()).or_default();
        }
    }

    async fn watch(self: Arc<Self>, source: String, resource: ApiResource) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => self.apply(&source, event, &resource),
                Err(e) => tracing::warn!(source = %source, error = %e, "watch error; retrying"),
            }
        }
    }

    fn apply(self: &Arc<Self>, source: &str, event: Event<DynamicObject>, resource: &ApiResource) {
        {
            let Ok(mut stores) = self.stores.lock() else {
                return;
            };
            let store = stores.sources.entry(source.to_string()).or_default();
            match event {
                Event::Apply(object) => {
                    store
                        .objects
                        .insert(key_of(&object), to_json(&object, resource));
                }
                Event::Delete(object) => {
                    store.objects.remove(&key_of(&object));
                }
                Event::Init => store.buffer = Some(BTreeMap::new()),
                Event::InitApply(object) => {
                    store
                        .buffer
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key_of(&object), to_json(&object, resource));
                }
                Event::InitDone => {
                    store.objects = store.buffer.take().unwrap_or_default();
                    store.listed = true;
                }
            }
        }
        if source == TEMPLATES {
            self.reconcile_constraint_watchers();
        }
        self.dirty.notify_one();
    }

    /// Starts a watcher for each constraint kind the templates define; stops the others.
    fn reconcile_constraint_watchers(self: &Arc<Self>) {
        let Ok(mut stores) = self.stores.lock() else {
            return;
        };
        let kinds: Vec<String> = stores
            .sources
            .get(TEMPLATES)
            .map(|store| {
                store
                    .objects
                    .values()
                    .filter_map(|t| {
                        t.pointer("/spec/crd/spec/names/kind")?
                            .as_str()
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        stores.constraint_watchers.retain(|kind, handle| {
            let keep = kinds.contains(kind);
            if !keep {
                handle.abort();
            }
            keep
        });
        let Stores {
            sources,
            constraint_watchers,
            ..
        } = &mut *stores;
        sources.retain(|source, _| {
            source
                .strip_prefix("constraints/")
                .is_none_or(|kind| kinds.iter().any(|k| k == kind))
        });
        for kind in kinds {
            if constraint_watchers.contains_key(&kind) {
                continue;
            }
            let source = format!("constraints/{kind}");
            sources.entry(source.clone()).or_default();
            let handle = tokio::spawn(self.clone().watch(source, constraint_resource(&kind)));
            constraint_watchers.insert(kind, handle);
        }
    }

    async fn rebuild_loop(self: Arc<Self>) {
        loop {
            self.dirty.notified().await;
            tokio::time::sleep(REBUILD_DEBOUNCE).await;
            let sync = self.clone();
            let updates = tokio::task::spawn_blocking(move || sync.rebuild())
                .await
                .unwrap_or_default();
            for update in updates {
                self.write_status(update).await;
            }
        }
    }

    async fn write_status(&self, update: StatusUpdate) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &update.resource);
        let patch = Patch::Merge(&update.patch);
        match api
            .patch_status(&update.name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => tracing::debug!(resource = %update.name, "status written"),
            // A newer version arrived meanwhile: its watch event rebuilds and writes again.
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!(resource = %update.name, "status conflict; retried with the next version")
            }
            Err(err) => {
                tracing::warn!(resource = %update.name, kind = %update.resource.kind, error = %err, "writing status failed")
            }
        }
    }

    /// This replica's `status.byPod` entry for a resource, and the patch that writes it when
    /// the resource does not hold it yet.
    fn status_update(
        &self,
        resource: &ApiResource,
        object: &Json,
        uid_field: &str,
        enforced: Option<bool>,
        error: Option<(&str, String)>,
    ) -> Option<StatusUpdate> {
        if !self.policies {
            return None;
        }
        let pod = self.state.settings.pod_name.as_str();
        let mut entry = serde_json::json!({
            "id": pod,
            "observedGeneration": object.pointer("/metadata/generation").cloned().unwrap_or(Json::from(0)),
            "operations": ["webhook"],
        });
        if let Some(uid) = object.pointer("/metadata/uid") {
            entry[uid_field] = uid.clone();
        }
        if let Some(enforced) = enforced {
            entry["enforced"] = Json::from(enforced);
        }
        if let Some((code, message)) = error {
            entry["errors"] = serde_json::json!([{"code": code, "message": message}]);
        }
        let current: Vec<Json> = object
            .pointer("/status/byPod")
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        if current.contains(&entry) {
            return None;
        }
        let mut by_pod: Vec<Json> = current
            .into_iter()
            .filter(|e| e.get("id").and_then(Json::as_str) != Some(pod))
            .collect();
        by_pod.push(entry);
        let name = object.pointer("/metadata/name")?.as_str()?.to_string();
        let mut patch = serde_json::json!({"status": {"byPod": by_pod}});
        if let Some(version) = object.pointer("/metadata/resourceVersion") {
            patch["metadata"] = serde_json::json!({"resourceVersion": version});
        }
        Some(StatusUpdate {
            resource: resource.clone(),
            name,
            patch,
        })
    }

    /// Builds the policy set and inventory from the stores and installs them; returns the status
    /// writes the templates and constraints need.
    fn rebuild(&self) -> Vec<StatusUpdate> {
        let Ok(mut stores) = self.stores.lock() else {
            return Vec::new();
        };
        let mut updates = Vec::new();
        let mut not_enforced = Vec::new();
        let templates_resource = templates_resource();
        let all_listed = stores.sources.values().all(|s| s.listed);
        let templates: Vec<Json> = stores
            .sources
            .get(TEMPLATES)
            .map(|s| s.objects.values().cloned().collect())
            .unwrap_or_default();
        let mut set = PolicySet::new();
        let mut fresh = HashMap::new();
        for value in templates {
            let name = value
                .pointer("/metadata/name")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string();
            let compiled = match stores.compiled.remove(&name) {
                Some((source, compiled)) if source == value => compiled,
                _ => {
                    let doc = Document::inline(format!("ConstraintTemplate {name}"), value.clone());
                    let compiled = Template::from_document(&doc)
                        .map(Arc::new)
                        .map_err(|e| e.to_string());
                    if let Err(e) = &compiled {
                        tracing::error!(template = %name, error = %e, "ConstraintTemplate rejected");
                    }
                    compiled
                }
            };
            match &compiled {
                Ok(template) => {
                    set.insert_template(template.clone());
                }
                Err(error) => not_enforced.push(NotEnforced {
                    what: format!("ConstraintTemplate {name}"),
                    template: true,
                    enforcement_action: String::new(),
                    error: error.clone(),
                }),
            }
            let error = compiled.as_ref().err().map(|e| ("ingest_error", e.clone()));
            updates.extend(self.status_update(
                &templates_resource,
                &value,
                "templateUID",
                None,
                error,
            ));
            fresh.insert(name, (value, compiled));
        }
        stores.compiled = fresh;
        let failed_templates: HashMap<String, String> = stores
            .compiled
            .iter()
            .filter(|(_, (_, compiled))| compiled.is_err())
            .filter_map(|(name, (value, _))| {
                let kind = value.pointer("/spec/crd/spec/names/kind")?.as_str()?;
                Some((kind.to_string(), name.clone()))
            })
            .collect();
        let mut inventory = Inventory::new();
        for (source, store) in &stores.sources {
            if let Some(kind) = source.strip_prefix("constraints/") {
                let resource = constraint_resource(kind);
                for value in store.objects.values() {
                    let name = value
                        .pointer("/metadata/name")
                        .and_then(Json::as_str)
                        .unwrap_or("");
                    let doc = Document::inline(format!("{kind} {name}"), value.clone());
                    let outcome =
                        Constraint::from_document(&doc).and_then(
                            |constraint| match failed_templates.get(kind) {
                                Some(template) => Err(LoadError::TemplateNotLoaded {
                                    location: constraint.location.clone(),
                                    what: constraint.what(),
                                    template: template.clone(),
                                }),
                                None => set.add_constraint(constraint),
                            },
                        );
                    let error = outcome.as_ref().err().map(|e| {
                        let code = match e {
                            LoadError::Parameters { .. } => "invalid_parameters",
                            LoadError::TemplateNotLoaded { .. } => "template_error",
                            _ => "invalid_constraint",
                        };
                        (code, e.to_string())
                    });
                    if let Some((_, message)) = &error {
                        tracing::error!(constraint = %format!("{kind} {name}"), error = %message, "not enforced: constraint rejected");
                        not_enforced.push(NotEnforced {
                            what: format!("{kind} {name}"),
                            template: false,
                            enforcement_action: value
                                .pointer("/spec/enforcementAction")
                                .and_then(Json::as_str)
                                .unwrap_or("deny")
                                .to_string(),
                            error: message.clone(),
                        });
                    }
                    updates.extend(self.status_update(
                        &resource,
                        value,
                        "constraintUID",
                        Some(error.is_none()),
                        error,
                    ));
                }
            } else if source.starts_with("sync/") {
                for value in store.objects.values() {
                    let _ = inventory.add(strip(value));
                }
            }
        }
        if let Some(namespaces) = stores.sources.get(NAMESPACES) {
            for value in namespaces.objects.values() {
                let name = value
                    .pointer("/metadata/name")
                    .and_then(Json::as_str)
                    .unwrap_or("");
                let labels = value
                    .pointer("/metadata/labels")
                    .and_then(Json::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                inventory.add_namespace_for_matching(name, labels);
            }
        }
        drop(stores);
        let synced: BTreeMap<String, usize> =
            inventory.objects().fold(BTreeMap::new(), |mut acc, o| {
                *acc.entry(o["kind"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
                acc
            });
        self.state.metrics.sync.clear();
        for (kind, count) in &synced {
            self.state
                .metrics
                .sync
                .get_or_create(&SyncLabels {
                    kind: kind.clone(),
                    status: "active",
                })
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        if self.policies {
            tracing::info!(
                templates = set.templates().count(),
                constraints = set.constraints().count(),
                inventory = inventory.len(),
                "cluster policies rebuilt"
            );
            self.state.set_loaded(set, not_enforced);
        } else {
            tracing::info!(inventory = inventory.len(), "cluster inventory rebuilt");
        }
        self.state.set_inventory(inventory);
        // Policies from files: readiness is the files' (set once they load).
        if all_listed && self.policies {
            self.state.set_ready();
        }
        updates
    }
}

fn templates_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
        "constrainttemplates",
    )
}

/// The resource of a constraint kind (Gatekeeper names the generated CRD's plural as the
/// lowercase kind).
fn constraint_resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("constraints.gatekeeper.sh", "v1beta1", kind),
        &kind.to_lowercase(),
    )
}

fn sync_source(kind: &SyncKind) -> String {
    format!("sync/{}/{}/{}", kind.group, kind.version, kind.kind)
}

/// Drops `metadata.managedFields` (bulky, never read by policies).
fn strip(value: &Json) -> Json {
    let mut value = value.clone();
    if let Some(metadata) = value.get_mut("metadata").and_then(Json::as_object_mut) {
        metadata.remove("managedFields");
    }
    value
}
