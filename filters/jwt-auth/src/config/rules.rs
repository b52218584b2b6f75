//! Rules and requirements: which requests need which tokens (Envoy's `RequirementRule` and
//! `JwtRequirement`, with a deny-by-default fallback Envoy does not have).

use meshguard_filter_core::ConfigError;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawRule {
    #[serde(rename = "match")]
    matcher: RawMatch,
    requires: Option<RawRequirement>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawMatch {
    path: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
}

/// Exactly one member may be set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawRequirement {
    provider: Option<String>,
    any_of: Option<Vec<RawRequirement>>,
    all_of: Option<Vec<RawRequirement>>,
    allow_missing: Option<bool>,
    allow_missing_or_failed: Option<bool>,
    none: Option<bool>,
    deny: Option<bool>,
}

/// How a rule matches the request path (the query string is ignored except by `Prefix`, as in
/// Envoy's route matching).
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// The path equals this.
    Exact(String),
    /// The path starts with this.
    Prefix(String),
    /// The whole path matches this regular expression (RE2 syntax, linear time).
    Regex(regex::Regex),
}

impl PathMatch {
    /// Whether `path` (with its query string) matches.
    pub fn matches(&self, path: &str) -> bool {
        let without_query = path.split_once('?').map_or(path, |(p, _)| p);
        match self {
            Self::Exact(exact) => without_query == exact,
            Self::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Self::Regex(regex) => regex.is_match(without_query),
        }
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Path condition.
    pub path: PathMatch,
    /// Methods (uppercase); empty matches every method.
    pub methods: Vec<String>,
    /// What the request needs.
    pub requirement: Requirement,
}

impl Rule {
    /// Whether this rule applies to the request.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.path.matches(path)
    }
}

/// What a request must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A valid token of this provider (index into the providers).
    Provider(usize),
    /// At least one of these.
    AnyOf(Vec<Requirement>),
    /// All of these.
    AllOf(Vec<Requirement>),
    /// No token is fine; a token that is present must be valid for a provider.
    AllowMissing,
    /// Anything passes; valid tokens still produce their headers.
    AllowMissingOrFailed,
    /// No authentication (public path).
    None,
    /// Always refused.
    Deny,
}

pub(crate) fn rule(raw: RawRule, providers: &[&str]) -> Result<Rule, ConfigError> {
    let m = raw.matcher;
    let set = [m.path.is_some(), m.prefix.is_some(), m.regex.is_some()]
        .iter()
        .filter(|set| **set)
        .count();
    if set != 1 {
        return Err(ConfigError::new(
            "match",
            "exactly one of `path`, `prefix` or `regex` is required",
        ));
    }
    let path = if let Some(path) = m.path {
        if !path.starts_with('/') {
            return Err(ConfigError::new("match.path", "must start with `/`"));
        }
        PathMatch::Exact(path)
    } else if let Some(prefix) = m.prefix {
        if !prefix.starts_with('/') {
            return Err(ConfigError::new("match.prefix", "must start with `/`"));
        }
        PathMatch::Prefix(prefix)
    } else {
        let pattern = m.regex.unwrap_or_default();
        // Anchored: the whole path must match, as Envoy's `safe_regex` does.
        let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|err| ConfigError::new("match.regex", err.to_string()))?;
        PathMatch::Regex(regex)
    };
    for (index, method) in m.methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ConfigError::new(
                format!("match.methods[{index}]"),
                format!("`{method}` is not an uppercase HTTP method"),
            ));
        }
    }
    let requirement = match raw.requires {
        None => Requirement::None,
        Some(raw) => requirement(raw, providers).map_err(|err| err.within("requires"))?,
    };
    Ok(Rule {
        path,
        methods: m.methods,
        requirement,
    })
}

fn list(
    field: &str,
    items: Vec<RawRequirement>,
    providers: &[&str],
) -> Result<Vec<Requirement>, ConfigError> {
    if items.is_empty() {
        return Err(ConfigError::new(
            field,
            "must list at least one requirement",
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            requirement(item, providers).map_err(|err| err.within(&format!("{field}[{index}]")))
        })
        .collect()
}

fn flag(field: &str, value: bool, requirement: Requirement) -> Result<Requirement, ConfigError> {
    if !value {
        return Err(ConfigError::new(field, "set it to true or leave it out"));
    }
    Ok(requirement)
}

pub(crate) fn requirement(
    raw: RawRequirement,
    providers: &[&str],
) -> Result<Requirement, ConfigError> {
    let set = [
        raw.provider.is_some(),
        raw.any_of.is_some(),
        raw.all_of.is_some(),
        raw.allow_missing.is_some(),
        raw.allow_missing_or_failed.is_some(),
        raw.none.is_some(),
        raw.deny.is_some(),
    ]
    .iter()
    .filter(|set| **set)
    .count();
    if set != 1 {
        return Err(ConfigError::new(
            ".",
            "exactly one of `provider`, `anyOf`, `allOf`, `allowMissing`, \
             `allowMissingOrFailed`, `none` or `deny` is required",
        ));
    }
    if let Some(name) = raw.provider {
        return providers
            .iter()
            .position(|known| *known == name)
            .map(Requirement::Provider)
            .ok_or_else(|| {
                ConfigError::new(
                    "provider",
                    format!(
                        "no provider is named `{name}` (have: {})",
                        providers.join(", ")
                    ),
                )
            });
    }
    if let Some(items) = raw.any_of {
        return list("anyOf", items, providers).map(Requirement::AnyOf);
    }
    if let Some(items) = raw.all_of {
        return list("allOf", items, providers).map(Requirement::AllOf);
    }
    if let Some(value) = raw.allow_missing {
        return flag("allowMissing", value, Requirement::AllowMissing);
    }
    if let Some(value) = raw.allow_missing_or_failed {
        return flag(
            "allowMissingOrFailed",
            value,
            Requirement::AllowMissingOrFailed,
        );
    }
    if let Some(value) = raw.none {
        return flag("none", value, Requirement::None);
    }
    flag("deny", raw.deny.unwrap_or(false), Requirement::Deny)
}
