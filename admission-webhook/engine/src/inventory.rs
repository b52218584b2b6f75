//! The inventory: existing cluster objects that templates read as `data.inventory`, in
//! Gatekeeper's layout:
//!
//! ```text
//! data.inventory.cluster[groupVersion][kind][name]
//! data.inventory.namespace[namespace][groupVersion][kind][name]
//! ```
//!
//! (`groupVersion` is `v1` for the core group, `apps/v1` otherwise.) Namespaces are also kept
//! for `namespaceSelector` matching; a Namespace can be known for matching only (Gatekeeper's
//! webhook looks Namespaces up even when they are not synced into `data.inventory`).
//!
//! Every change gives the inventory a new id, which lets the engine cache per-template engines
//! that hold this inventory as data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use regorus::Value;
use serde_json::Value as Json;

use crate::document::{self, Document};
use crate::error::{InventoryError, LoadError};
use crate::matching::NamespaceFacts;
use crate::review::ObjectFacts;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

type Objects = BTreeMap<String, BTreeMap<String, BTreeMap<String, Json>>>;

/// Existing objects available to templates and to namespace matching.
#[derive(Debug)]
pub struct Inventory {
    id: u64,
    cluster: Objects,
    namespaced: BTreeMap<String, Objects>,
    namespaces: BTreeMap<String, NamespaceFacts>,
    value: OnceLock<Value>,
}

impl Default for Inventory {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Inventory {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            cluster: self.cluster.clone(),
            namespaced: self.namespaced.clone(),
            namespaces: self.namespaces.clone(),
            value: self.value.clone(),
        }
    }
}

impl Inventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self {
            id: next_id(),
            cluster: BTreeMap::new(),
            namespaced: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            value: OnceLock::new(),
        }
    }

    /// An inventory holding every object of the given documents.
    pub fn from_documents(docs: &[Document]) -> Result<Self, LoadError> {
        let mut inventory = Self::new();
        let mut errors = Vec::new();
        for doc in docs {
            if let Err(err) = inventory.add(doc.value.clone()) {
                errors.push(LoadError::Field {
                    location: doc.location.clone(),
                    what: "inventory object".into(),
                    field: "metadata".into(),
                    message: err.0,
                });
            }
        }
        LoadError::from_many(errors)?;
        Ok(inventory)
    }

    /// An inventory holding every object in the manifest files under `paths`.
    pub fn load_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Self, LoadError> {
        Self::from_documents(&document::read_paths(paths)?)
    }

    /// Identifies this content: equal ids mean equal content.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn changed(&mut self) {
        self.id = next_id();
        self.value = OnceLock::new();
    }

    /// Adds (or replaces) an object; it needs `apiVersion`, `kind` and `metadata.name`.
    pub fn add(&mut self, object: Json) -> Result<(), InventoryError> {
        let facts = ObjectFacts::of(&Value::from(object.clone()));
        if facts.version.is_empty() || facts.kind.is_empty() || facts.name.is_empty() {
            return Err(InventoryError(
                "an inventory object needs apiVersion, kind and metadata.name".into(),
            ));
        }
        let gv = group_version(&facts);
        if facts.is_namespace() {
            self.namespaces.insert(
                facts.name.clone(),
                NamespaceFacts {
                    labels: facts.labels.clone(),
                },
            );
        }
        let bucket = if facts.namespace.is_empty() {
            &mut self.cluster
        } else {
            self.namespaced.entry(facts.namespace.clone()).or_default()
        };
        bucket
            .entry(gv)
            .or_default()
            .entry(facts.kind.clone())
            .or_default()
            .insert(facts.name.clone(), object);
        self.changed();
        Ok(())
    }

    /// Removes an object; returns whether it was present.
    pub fn remove(&mut self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let bucket = if namespace.is_empty() {
            Some(&mut self.cluster)
        } else {
            self.namespaced.get_mut(namespace)
        };
        let removed = bucket
            .and_then(|b| b.get_mut(api_version))
            .and_then(|kinds| kinds.get_mut(kind))
            .and_then(|names| names.remove(name))
            .is_some();
        if kind == "Namespace" && api_version == "v1" && namespace.is_empty() {
            self.namespaces.remove(name);
        }
        if removed {
            self.changed();
        }
        removed
    }

    /// Makes a Namespace known for `namespaceSelector` matching without adding it to
    /// `data.inventory`.
    pub fn add_namespace_for_matching(&mut self, name: &str, labels: BTreeMap<String, String>) {
        self.namespaces
            .insert(name.to_string(), NamespaceFacts { labels });
        self.changed();
    }

    /// The facts of a known Namespace.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceFacts> {
        self.namespaces.get(name)
    }

    /// Number of objects in `data.inventory`.
    pub fn len(&self) -> usize {
        self.objects().count()
    }

    /// Whether `data.inventory` is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every object in `data.inventory`.
    pub fn objects(&self) -> impl Iterator<Item = &Json> {
        let cluster = self
            .cluster
            .values()
            .flat_map(|kinds| kinds.values().flat_map(|names| names.values()));
        let namespaced = self.namespaced.values().flat_map(|objects| {
            objects
                .values()
                .flat_map(|kinds| kinds.values().flat_map(|names| names.values()))
        });
        cluster.chain(namespaced)
    }

    /// `data.inventory` as a Rego value (built once per content).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            let json = serde_json::json!({
                "cluster": self.cluster,
                "namespace": self.namespaced,
            });
            Value::from(json)
        })
    }
}

fn group_version(facts: &ObjectFacts) -> String {
    if facts.group.is_empty() {
        facts.version.clone()
    } else {
        format!("{}/{}", facts.group, facts.version)
    }
}
