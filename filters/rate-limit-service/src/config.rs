//! The rate-limit configuration in envoyproxy/ratelimit's format, so that the ConfigMap of
//! Istio's global rate-limit task and of Envoy's own docs loads unchanged:
//!
//! ```yaml
//! domain: <unique domain>
//! descriptors:
//!   - key: <key, required>
//!     value: <value, optional; a trailing `*` matches by prefix>
//!     rate_limit:                 # optional
//!       unit: second | minute | hour | day | week | month | year
//!       requests_per_unit: <u32>  # 0 refuses every request
//!       unlimited: <bool>         # instead of unit and requests_per_unit
//!       name: <optional>
//!       replaces: [{name: <a limit's name>}]
//!     shadow_mode: <bool>         # decide and count, but always answer OK
//!     detailed_metric: <bool>     # per-value metrics for a key-only match
//!     descriptors: [...]          # nested, for multi-entry descriptors
//! ```
//!
//! Files are parsed once into validated types ([`Config`]); every error names the file, the
//! line and column, and the field path (`descriptors[1].rate_limit.unit`), and a file with an
//! error is refused whole. What is stricter than envoyproxy/ratelimit, and why:
//! - `requests_per_unit` must be written when a limit has a unit. envoyproxy/ratelimit reads a
//!   missing one as 0 and then refuses every request, which a typo should not do silently; write
//!   `requests_per_unit: 0` to refuse everything on purpose.
//! - Duplicate descriptors are found by (key, value), not by the concatenation `key_value`, which
//!   lets `a_b`+`c` collide with `a`+`b_c` there.
//! - Unknown fields are refused, as envoyproxy/ratelimit does.

mod raw;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshguard_rls::Unit;

use raw::{RawDescriptor, RawRoot};

/// Every loaded domain.
#[derive(Debug, Default)]
pub struct Config {
    domains: HashMap<String, Arc<Domain>>,
    files: Vec<PathBuf>,
}

/// One domain: its descriptor tree.
#[derive(Debug)]
pub struct Domain {
    /// The domain name.
    pub name: String,
    /// The file it came from.
    pub file: PathBuf,
    pub(crate) root: Level,
}

/// The descriptors at one depth of the tree.
#[derive(Debug, Default)]
pub(crate) struct Level {
    /// `key` + `value` matches.
    pub exact: HashMap<(String, String), Node>,
    /// `key` + `value*` matches, longest prefix first.
    pub wildcard: Vec<(String, String, Node)>,
    /// `key` alone: any value.
    pub default: HashMap<String, Node>,
}

/// One configured descriptor.
#[derive(Debug, Default)]
pub(crate) struct Node {
    /// Its limit, if it has one.
    pub limit: Option<Arc<Limit>>,
    /// Its nested descriptors.
    pub children: Level,
}

/// A configured limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The descriptor path as envoyproxy/ratelimit names its stats (`PATH_/productpage`,
    /// `message_type_marketing.to_number`): the `rule` label of the metrics.
    pub rule: String,
    /// The rate; `None` for an unlimited descriptor.
    pub rate: Option<Rate>,
    /// Decide and count, but always answer OK.
    pub shadow: bool,
    /// The limit's name (for `replaces`).
    pub name: Option<String>,
    /// Names of the limits this one replaces when both match a request.
    pub replaces: Vec<String>,
    /// Per-value metrics for a key-only match.
    pub detailed_metric: bool,
}

/// A rate: `requests_per_unit` per `unit`. Its GCRA burst is `requests_per_unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per unit (0 refuses every request).
    pub requests_per_unit: u32,
    /// The unit (never [`Unit::Unknown`]).
    pub unit: Unit,
}

impl Rate {
    /// The unit in microseconds.
    pub fn unit_micros(self) -> u64 {
        self.unit.seconds().unwrap_or(1).saturating_mul(1_000_000)
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or folder could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a valid configuration: bad YAML, a wrong field, or a wrong value.
    #[error("{}:{}", file.display(), at)]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Where in it, and what.
        at: Located,
    },
    /// Two files configure the same domain.
    #[error(
        "{}:{}: domain `{domain}` is already configured by {}:{}",
        second.display(), second_line, first.display(), first_line
    )]
    DuplicateDomain {
        /// The domain.
        domain: String,
        /// The file that configured it first.
        first: PathBuf,
        /// Its line there.
        first_line: u64,
        /// The file that configured it again.
        second: PathBuf,
        /// Its line there.
        second_line: u64,
    },
    /// The paths hold no configuration file.
    #[error("no rate-limit configuration (*.yaml or *.yml) found in {0}")]
    Empty(String),
}

/// An error at a place in a file: line and column (1-based), the field path, the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Line, 1-based.
    pub line: u64,
    /// Column, 1-based.
    pub column: u64,
    /// The field path, such as `descriptors[0].rate_limit.unit` (empty for the whole file).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

// === impl Config ===

impl Config {
    /// Loads every configuration in `paths`: a file, or a folder whose `*.yaml` and `*.yml`
    /// files are read in name order (hidden entries skipped, as a mounted ConfigMap's `..data`).
    pub fn load(paths: &[PathBuf]) -> Result<Self, ConfigError> {
        let files = config_files(paths)?;
        let mut config = Self::default();
        let mut lines: HashMap<String, (PathBuf, u64)> = HashMap::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
                path: file.clone(),
                source,
            })?;
            let (domain, line) = parse_domain(file, &text)?;
            if let Some((first, first_line)) = lines.get(&domain.name) {
                return Err(ConfigError::DuplicateDomain {
                    domain: domain.name.clone(),
                    first: first.clone(),
                    first_line: *first_line,
                    second: file.clone(),
                    second_line: line,
                });
            }
            lines.insert(domain.name.clone(), (file.clone(), line));
            config.domains.insert(domain.name.clone(), Arc::new(domain));
        }
        config.files = files;
        Ok(config)
    }

    /// A configuration of one file's text (tests and `check`).
    pub fn from_text(file: impl Into<PathBuf>, text: &str) -> Result<Self, ConfigError> {
        let file = file.into();
        let (domain, _) = parse_domain(&file, text)?;
        let mut config = Self::default();
        config.domains.insert(domain.name.clone(), Arc::new(domain));
        config.files.push(file);
        Ok(config)
    }

    /// The domain called `name`.
    pub fn domain(&self, name: &str) -> Option<&Arc<Domain>> {
        self.domains.get(name)
    }

    /// Domain names, sorted.
    pub fn domain_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.domains.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The files loaded.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every limit of every domain, by domain (for logs and `check`).
    pub fn limits(&self) -> BTreeMap<&str, Vec<&Limit>> {
        self.domains
            .iter()
            .map(|(name, domain)| {
                let mut limits = Vec::new();
                domain.root.collect(&mut limits);
                limits.sort_by(|a, b| a.rule.cmp(&b.rule));
                (name.as_str(), limits)
            })
            .collect()
    }
}

impl Level {
    fn collect<'a>(&'a self, out: &mut Vec<&'a Limit>) {
        let nodes = self
            .exact
            .values()
            .chain(self.wildcard.iter().map(|(_, _, node)| node))
            .chain(self.default.values());
        for node in nodes {
            if let Some(limit) = &node.limit {
                out.push(limit);
            }
            node.children.collect(out);
        }
    }
}

/// The configuration files named by `paths`, in order.
pub fn config_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    for path in paths {
        let read = |source| ConfigError::Read {
            path: path.clone(),
            source,
        };
        if !path.is_dir() {
            std::fs::metadata(path).map_err(read)?;
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read)? {
            let entry_path = entry.map_err(read)?.path();
            let name = entry_path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let yaml = entry_path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml");
            if !name.starts_with('.') && yaml && entry_path.is_file() {
                found.push(entry_path);
            }
        }
        found.sort();
        files.extend(found);
    }
    if files.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(ConfigError::Empty(names.join(", ")));
    }
    Ok(files)
}

/// Parses and validates one file; returns the domain and the line of its `domain` field.
fn parse_domain(file: &Path, text: &str) -> Result<(Domain, u64), ConfigError> {
    let invalid = |at: Located| ConfigError::Invalid {
        file: file.to_path_buf(),
        at,
    };
    let root: RawRoot = raw::parse(text).map_err(invalid)?;
    let Some(domain) = root.domain else {
        return Err(invalid(Located {
            line: 1,
            column: 1,
            field: "domain".into(),
            message: "the domain is required".into(),
        }));
    };
    let line = domain.referenced.line();
    if domain.value.is_empty() {
        return Err(invalid(Located {
            line,
            column: domain.referenced.column(),
            field: "domain".into(),
            message: "the domain must not be empty".into(),
        }));
    }
    let mut root_level = Level::default();
    build_level(&mut root_level, &root.descriptors, "descriptors", "").map_err(invalid)?;
    Ok((
        Domain {
            name: domain.value,
            file: file.to_path_buf(),
            root: root_level,
        },
        line,
    ))
}

fn build_level(
    level: &mut Level,
    descriptors: &[serde_saphyr::Spanned<RawDescriptor>],
    field: &str,
    parent_rule: &str,
) -> Result<(), Located> {
    let mut seen: HashMap<(String, Option<String>), (u64, usize)> = HashMap::new();
    for (index, spanned) in descriptors.iter().enumerate() {
        let raw = &spanned.value;
        let at = spanned.referenced;
        let here = format!("{field}[{index}]");
        let located = |field: String, message: String| Located {
            line: at.line(),
            column: at.column(),
            field,
            message,
        };
        let key = raw.key.clone().unwrap_or_default();
        if key.is_empty() {
            return Err(located(
                format!("{here}.key"),
                "every descriptor needs a non-empty key".into(),
            ));
        }
        let value = raw.value.clone().filter(|value| !value.is_empty());
        if let Some((line, first)) = seen.insert((key.clone(), value.clone()), (at.line(), index)) {
            let what = match &value {
                Some(value) => format!("key `{key}` with value `{value}`"),
                None => format!("key `{key}` without a value"),
            };
            return Err(located(
                here,
                format!(
                    "duplicate descriptor: {what} is already at {field}[{first}] (line {line})"
                ),
            ));
        }
        let segment = match &value {
            Some(value) => format!("{key}_{value}"),
            None => key.clone(),
        };
        let rule = if parent_rule.is_empty() {
            segment
        } else {
            format!("{parent_rule}.{segment}")
        };
        let limit = match &raw.rate_limit {
            Some(rate_limit) => Some(Arc::new(build_limit(
                rate_limit,
                raw,
                &format!("{here}.rate_limit"),
                rule.clone(),
            )?)),
            None => None,
        };
        let mut node = Node {
            limit,
            children: Level::default(),
        };
        build_level(
            &mut node.children,
            &raw.descriptors,
            &format!("{here}.descriptors"),
            &rule,
        )?;
        match value {
            Some(value) => match value.strip_suffix('*') {
                Some(prefix) => level.wildcard.push((key, prefix.to_string(), node)),
                None => {
                    level.exact.insert((key, value), node);
                }
            },
            None => {
                level.default.insert(key, node);
            }
        }
    }
    // The most specific wildcard first.
    level
        .wildcard
        .sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.1.cmp(&b.1)));
    Ok(())
}

fn build_limit(
    spanned: &serde_saphyr::Spanned<raw::RawRateLimit>,
    descriptor: &RawDescriptor,
    field: &str,
    rule: String,
) -> Result<Limit, Located> {
    let raw = &spanned.value;
    let at = spanned.referenced;
    let located = |field: String, message: String| Located {
        line: at.line(),
        column: at.column(),
        field,
        message,
    };
    let name = raw.name.clone().filter(|name| !name.is_empty());
    let mut replaces = Vec::new();
    for (index, replace) in raw.replaces.iter().enumerate() {
        let replace_at = replace.referenced;
        let target = replace.value.name.clone().unwrap_or_default();
        let message = if target.is_empty() {
            Some("a replaced limit needs a name".to_string())
        } else if Some(&target) == name.as_ref() {
            Some(format!("a limit cannot replace itself (`{target}`)"))
        } else {
            None
        };
        if let Some(message) = message {
            return Err(Located {
                line: replace_at.line(),
                column: replace_at.column(),
                field: format!("{field}.replaces[{index}].name"),
                message,
            });
        }
        replaces.push(target);
    }
    let rate = if raw.unlimited {
        if let Some(unit) = &raw.unit {
            return Err(Located {
                line: unit.referenced.line(),
                column: unit.referenced.column(),
                field: format!("{field}.unit"),
                message: "an unlimited limit has no unit".into(),
            });
        }
        None
    } else {
        let Some(unit) = &raw.unit else {
            return Err(located(
                format!("{field}.unit"),
                "a limit needs a unit (second, minute, hour, day, week, month or year), \
                 or `unlimited: true`"
                    .into(),
            ));
        };
        let Some(parsed) = Unit::from_name(&unit.value) else {
            return Err(Located {
                line: unit.referenced.line(),
                column: unit.referenced.column(),
                field: format!("{field}.unit"),
                message: format!(
                    "unknown unit `{}` (expected second, minute, hour, day, week, month or year)",
                    unit.value
                ),
            });
        };
        let Some(requests_per_unit) = raw.requests_per_unit else {
            return Err(located(
                format!("{field}.requests_per_unit"),
                "a limit needs requests_per_unit (write 0 to refuse every request)".into(),
            ));
        };
        Some(Rate {
            requests_per_unit,
            unit: parsed,
        })
    };
    Ok(Limit {
        rule,
        rate,
        shadow: descriptor.shadow_mode,
        name,
        replaces,
        detailed_metric: descriptor.detailed_metric,
    })
}

#[cfg(test)]
mod tests;
