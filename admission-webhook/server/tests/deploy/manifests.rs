//! Reading the deployment manifests and the Dockerfile for `tests/deploy/main.rs`: every YAML
//! document of `deploy/`, the settings the Deployment's container runs with (its args parsed by
//! the binary's own flags over the mounted ConfigMap), label selectors with the engine's
//! semantics, RBAC rules, Dockerfile instructions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use meshguard_admission_webhook::cli::{Cli, Command};
use meshguard_admission_webhook::config::Settings;
use meshguard_policy_engine::matching::{LabelSelector, Operator, Requirement};
use serde::Deserialize;
use serde_json::Value as Json;

pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every document of every manifest in deploy/, by file.
pub fn manifests() -> BTreeMap<String, Vec<Json>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(deploy_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut docs = Vec::new();
        for (index, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let doc = Json::deserialize(de)
                .unwrap_or_else(|e| panic!("{} document {index}: {e}", path.display()));
            if !doc.is_null() {
                docs.push(doc);
            }
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(name, docs);
    }
    out
}

pub struct Deploy {
    pub docs: Vec<Json>,
}

impl Deploy {
    pub fn load() -> Self {
        let files = manifests();
        let kustomization = &files["kustomization.yaml"][0];
        let listed: BTreeSet<String> = kustomization["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        let present: BTreeSet<String> = files
            .keys()
            .filter(|f| *f != "kustomization.yaml")
            .cloned()
            .collect();
        assert_eq!(listed, present, "kustomization.yaml lists every manifest");
        let docs: Vec<Json> = files
            .into_iter()
            .filter(|(f, _)| f != "kustomization.yaml")
            .flat_map(|(_, docs)| docs)
            .collect();
        for doc in &docs {
            for field in ["apiVersion", "kind"] {
                assert!(doc[field].is_string(), "{field} missing in {doc}");
            }
            assert!(doc["metadata"]["name"].is_string(), "no name in {doc}");
        }
        Self { docs }
    }

    pub fn one(&self, kind: &str) -> &Json {
        let found: Vec<&Json> = self.docs.iter().filter(|d| d["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "exactly one {kind}");
        found[0]
    }

    pub fn named(&self, kind: &str, name: &str) -> &Json {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/"))
    }

    pub fn namespace(&self) -> String {
        str(&self.one("Namespace")["metadata"]["name"])
    }

    pub fn container(&self) -> &Json {
        let containers = &self.one("Deployment")["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().unwrap().len(), 1);
        &containers[0]
    }

    /// The volume mounted at the folder holding `file`.
    pub fn volume_for(&self, file: &Path) -> (&Json, PathBuf) {
        let pod = &self.one("Deployment")["spec"]["template"]["spec"];
        let mount = self.container()["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| file.parent() == Some(Path::new(m["mountPath"].as_str().unwrap())))
            .unwrap_or_else(|| panic!("no volume is mounted at {}", file.display()));
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap_or_else(|| panic!("volume {} not declared", mount["name"]));
        let key = PathBuf::from(file.file_name().unwrap());
        (volume, key)
    }

    /// The settings the container runs with: its args parsed by the binary's own flags, over the
    /// settings file read from the mounted ConfigMap.
    pub fn settings(&self) -> Settings {
        let container = self.container();
        assert!(
            container.get("command").is_none(),
            "the image's entrypoint (the binary) is used"
        );
        let args: Vec<String> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(str)
            .collect();
        let cli = Cli::try_parse_from(
            std::iter::once("meshguard-admission-webhook".to_string()).chain(args.clone()),
        )
        .unwrap_or_else(|e| panic!("the Deployment's args {args:?} do not parse: {e}"));
        let Command::Serve(serve) = cli.command else {
            panic!("the Deployment runs `serve`")
        };
        let config = serve.config.clone().expect("--config");
        let (volume, key) = self.volume_for(&config);
        let map = self.named("ConfigMap", &str(&volume["configMap"]["name"]));
        let text = map["data"][key.to_str().unwrap()]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap has no key {}", key.display()));
        let base = Settings::from_yaml(text).unwrap_or_else(|e| panic!("config.yaml: {e}"));
        serve.apply(base).unwrap()
    }
}

pub fn str(value: &Json) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_string()
}

pub fn selector(raw: &Json) -> LabelSelector {
    let match_labels = raw["matchLabels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), str(v))).collect())
        .unwrap_or_default();
    let match_expressions = raw["matchExpressions"]
        .as_array()
        .map(|exprs| {
            exprs
                .iter()
                .map(|e| Requirement {
                    key: str(&e["key"]),
                    operator: serde_json::from_value::<Operator>(e["operator"].clone()).unwrap(),
                    values: e["values"]
                        .as_array()
                        .map(|v| v.iter().map(str).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    LabelSelector {
        match_labels,
        match_expressions,
    }
}

/// The labels the API server puts on a Namespace.
pub fn namespace_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("kubernetes.io/metadata.name".to_string(), name.to_string())])
}

/// RBAC rules as (group, resource) -> verbs.
pub fn granted(role: &Json) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                out.entry((str(group), str(resource)))
                    .or_default()
                    .extend(rule["verbs"].as_array().unwrap().iter().map(str));
            }
        }
    }
    out
}

pub fn can_list_and_watch(
    rules: &BTreeMap<(String, String), BTreeSet<String>>,
    group: &str,
    resource: &str,
) -> bool {
    let verbs = |key: (&str, &str)| rules.get(&(key.0.to_string(), key.1.to_string()));
    [verbs((group, resource)), verbs((group, "*"))]
        .into_iter()
        .flatten()
        .any(|v| v.contains("list") && v.contains("watch"))
}

/// The Dockerfile as (instruction, arguments) lines, continuations joined.
pub fn dockerfile() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile"))
        .unwrap();
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(continued) = line.strip_suffix('\\') {
            current.push_str(continued);
            continue;
        }
        current.push_str(line);
        let (instruction, rest) = current.split_once(' ').unwrap_or((&current, ""));
        lines.push((instruction.to_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    lines
}
