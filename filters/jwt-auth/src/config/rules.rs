//! Rules and requirements: which requests need which tokens (Envoy's `RequirementRule` and
//! `JwtRequirement`, with a deny-by-default fallback Envoy does not have).

use meshguard_filter_core::route::RequestFacts;
use meshguard_filter_core::{ConfigError, RawRouteMatch, RouteMatch};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawRule {
    #[serde(rename = "match")]
    matcher: RawRouteMatch,
    requires: Option<RawRequirement>,
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

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Which requests it applies to (the shared route matcher: Envoy's `path`, `prefix` and
    /// `safe_regex` semantics, as in jwt_authn's own rules).
    pub matcher: RouteMatch,
    /// What the request needs.
    pub requirement: Requirement,
}

impl Rule {
    /// Whether this rule applies to the request.
    pub fn matches(&self, request: &dyn RequestFacts) -> bool {
        self.matcher.matches(request)
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
    let matcher = RouteMatch::try_from(raw.matcher).map_err(|err| err.within("match"))?;
    let requirement = match raw.requires {
        None => Requirement::None,
        Some(raw) => requirement(raw, providers).map_err(|err| err.within("requires"))?,
    };
    Ok(Rule {
        matcher,
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
