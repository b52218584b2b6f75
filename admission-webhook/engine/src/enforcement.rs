//! Enforcement actions (`deny`, `dryrun`, `warn`) and Gatekeeper's scoped enforcement actions:
//! `enforcementAction: scoped` with `scopedEnforcementActions` choosing actions per enforcement
//! point (`validation.gatekeeper.sh` for the webhook, `audit.gatekeeper.sh`, `gator.gatekeeper.sh`
//! for shift-left tools, `*` for all).

use std::fmt;

use serde::Deserialize;

/// What happens to a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnforcementAction {
    /// Reject the request.
    Deny,
    /// Only record (log, count, audit report).
    Dryrun,
    /// Admit with a warning.
    Warn,
}

impl EnforcementAction {
    /// The name as written in a constraint.
    pub fn as_str(self) -> &'static str {
        match self {
            EnforcementAction::Deny => "deny",
            EnforcementAction::Dryrun => "dryrun",
            EnforcementAction::Warn => "warn",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "deny" => Some(EnforcementAction::Deny),
            "dryrun" => Some(EnforcementAction::Dryrun),
            "warn" => Some(EnforcementAction::Warn),
            _ => None,
        }
    }
}

impl fmt::Display for EnforcementAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a constraint is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnforcementPoint {
    /// The validating webhook (`validation.gatekeeper.sh`).
    Validation,
    /// Audit of existing objects (`audit.gatekeeper.sh`).
    Audit,
    /// Shift-left tools such as the CLI (`gator.gatekeeper.sh`).
    Gator,
}

impl EnforcementPoint {
    /// Gatekeeper's name for the point.
    pub fn name(self) -> &'static str {
        match self {
            EnforcementPoint::Validation => "validation.gatekeeper.sh",
            EnforcementPoint::Audit => "audit.gatekeeper.sh",
            EnforcementPoint::Gator => "gator.gatekeeper.sh",
        }
    }
}

/// A constraint's enforcement: one action everywhere, or actions per point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// `enforcementAction: deny|dryrun|warn` (deny when unset).
    Uniform(EnforcementAction),
    /// `enforcementAction: scoped`: (action, point names) pairs.
    Scoped(Vec<(EnforcementAction, Vec<String>)>),
}

impl Enforcement {
    /// The actions that apply at `point` (empty: the constraint is not enforced there).
    pub fn actions_at(&self, point: EnforcementPoint) -> Vec<EnforcementAction> {
        match self {
            Enforcement::Uniform(action) => vec![*action],
            Enforcement::Scoped(scoped) => {
                let mut actions: Vec<EnforcementAction> = scoped
                    .iter()
                    .filter(|(_, points)| points.iter().any(|p| p == "*" || p == point.name()))
                    .map(|(action, _)| *action)
                    .collect();
                actions.sort();
                actions.dedup();
                actions
            }
        }
    }

    /// The label used for metrics: the uniform action, or `scoped`.
    pub fn label(&self) -> &'static str {
        match self {
            Enforcement::Uniform(action) => action.as_str(),
            Enforcement::Scoped(_) => "scoped",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawScopedAction {
    action: String,
    #[serde(default)]
    enforcement_points: Vec<RawPoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoint {
    name: String,
}

/// Validates `enforcementAction` and `scopedEnforcementActions`; errors are (field, message).
pub(crate) fn parse(
    action: Option<&str>,
    scoped: Vec<RawScopedAction>,
) -> Result<Enforcement, (String, String)> {
    match action.unwrap_or("") {
        "" => Ok(Enforcement::Uniform(EnforcementAction::Deny)),
        "scoped" => {
            if scoped.is_empty() {
                return Err((
                    "spec.scopedEnforcementActions".into(),
                    "must list at least one action when enforcementAction is scoped".into(),
                ));
            }
            let mut out = Vec::new();
            for (index, entry) in scoped.into_iter().enumerate() {
                let action = EnforcementAction::parse(&entry.action).ok_or_else(|| {
                    (
                        format!("spec.scopedEnforcementActions[{index}].action"),
                        format!(
                            "unsupported value {:?} (expected deny, dryrun or warn)",
                            entry.action
                        ),
                    )
                })?;
                if entry.enforcement_points.is_empty() {
                    return Err((
                        format!("spec.scopedEnforcementActions[{index}].enforcementPoints"),
                        "must name at least one enforcement point".into(),
                    ));
                }
                out.push((
                    action,
                    entry
                        .enforcement_points
                        .into_iter()
                        .map(|p| p.name)
                        .collect(),
                ));
            }
            Ok(Enforcement::Scoped(out))
        }
        other => EnforcementAction::parse(other)
            .map(Enforcement::Uniform)
            .ok_or_else(|| {
                (
                    "spec.enforcementAction".into(),
                    format!("unsupported value {other:?} (expected deny, dryrun, warn or scoped)"),
                )
            }),
    }
}
