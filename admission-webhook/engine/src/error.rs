//! The engine's error types: what failed to load (naming file, document and field) and what failed
//! during a review (timeout, evaluation error, match error).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a document came from: a file (or a label such as `<stdin>`) and its 1-based index among
/// the YAML documents of that file, plus the line the document starts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The file, or a label for text that did not come from a file.
    pub source: String,
    /// 1-based index of the document within the file (documents are separated by `---`).
    pub document: usize,
    /// 1-based line of the file where the document starts.
    pub line: usize,
}

impl Location {
    /// A location for a document that was handed over in memory.
    pub fn inline(label: impl Into<String>) -> Self {
        Self {
            source: label.into(),
            document: 1,
            line: 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {}", self.source, self.document)?;
        if self.line > 1 {
            write!(f, ", line {}", self.line)?;
        }
        write!(f, ")")
    }
}

/// Loading templates, constraints or inventory failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or folder could not be read.
    #[error("{}: cannot read it: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A document is not valid YAML or JSON.
    #[error("{source_name}:{line}:{column}: {}{message}", document.map(|d| format!("document {d}: ")).unwrap_or_default())]
    Syntax {
        /// The file (or label).
        source_name: String,
        /// 1-based index of the document (None for a JSON file, which is read whole).
        document: Option<usize>,
        /// 1-based line in the file.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said (`invalid YAML: ...`, `invalid JSON: ...`).
        message: String,
    },
    /// A field of a template or constraint is missing or invalid.
    #[error("{location}: {what}: field `{field}`: {message}")]
    Field {
        /// The document.
        location: Location,
        /// What the document is (`ConstraintTemplate k8srequiredlabels`).
        what: String,
        /// The field path (`spec.match.labelSelector.matchExpressions[0].operator`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A template's Rego (or one of its libs) does not parse or compile.
    #[error("{source_name}:{line}: ConstraintTemplate {template}: {module}: {message}")]
    Rego {
        /// The file holding the template.
        source_name: String,
        /// The line in that file (the Rego's own line mapped into the YAML file when possible).
        line: usize,
        /// The template's name.
        template: String,
        /// `rego` or `libs[N]`, with the line inside the Rego text.
        module: String,
        /// The parser's or compiler's message.
        message: String,
    },
    /// A plain Rego module (a policy or its tests) does not parse.
    #[error("{}", if message.contains(source_name.as_str()) { format!("Rego error: {message}") } else { format!("{source_name}: Rego error: {message}") })]
    Module {
        /// The file.
        source_name: String,
        /// regorus' message (it names the line and shows it).
        message: String,
    },
    /// A constraint names a kind that no loaded template defines.
    #[error(
        "{location}: {kind} {name}: no ConstraintTemplate defines kind {kind} (load its template too)"
    )]
    UnknownKind {
        /// The constraint's document.
        location: Location,
        /// The constraint's kind.
        kind: String,
        /// The constraint's name.
        name: String,
    },
    /// A constraint's template is defined but was not loaded (its own error says why).
    #[error("{location}: {what}: not enforced: its ConstraintTemplate {template} failed to load")]
    TemplateNotLoaded {
        /// The constraint's document.
        location: Location,
        /// `K8sFoo must-have-x`.
        what: String,
        /// The template's name.
        template: String,
    },
    /// A constraint's parameters do not follow its template's schema (the API server would refuse
    /// the constraint; the webhook does not enforce it).
    #[error(
        "{location}: {what}: parameters do not follow the schema of ConstraintTemplate {template}: {}",
        problems.join("; ")
    )]
    Parameters {
        /// The constraint's document.
        location: Location,
        /// `K8sFoo must-have-x`.
        what: String,
        /// The template's name.
        template: String,
        /// Each problem, `spec.parameters.<path>: <what>`.
        problems: Vec<String>,
    },
    /// Two different documents define the same template kind or constraint.
    #[error("{location}: {what} is already defined by {first} with different content")]
    Duplicate {
        /// The second definition.
        location: Location,
        /// `ConstraintTemplate k8sfoo` or `K8sFoo must-have-x`.
        what: String,
        /// The first definition.
        first: Location,
    },
    /// Several documents failed; each error is listed.
    #[error("{}", list(.0))]
    Many(Vec<LoadError>),
}

fn list(errors: &[LoadError]) -> String {
    let mut out = format!("{} errors:", errors.len());
    for error in errors {
        out.push_str("\n  ");
        out.push_str(&error.to_string().replace('\n', "\n    "));
    }
    out
}

impl LoadError {
    /// Folds a list of errors into one (`Ok` when the list is empty).
    pub fn from_many(mut errors: Vec<LoadError>) -> Result<(), LoadError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(LoadError::Many(errors)),
        }
    }

    /// The individual errors (one for a single error).
    pub fn errors(&self) -> Vec<&LoadError> {
        match self {
            LoadError::Many(errors) => errors.iter().flat_map(LoadError::errors).collect(),
            other => vec![other],
        }
    }

    /// Where the failing document is (None for errors that are not about one document: an
    /// unreadable file, a list of errors).
    pub fn location(&self) -> Option<&Location> {
        match self {
            LoadError::Field { location, .. }
            | LoadError::UnknownKind { location, .. }
            | LoadError::Parameters { location, .. }
            | LoadError::TemplateNotLoaded { location, .. }
            | LoadError::Duplicate { location, .. } => Some(location),
            LoadError::Io { .. }
            | LoadError::Syntax { .. }
            | LoadError::Rego { .. }
            | LoadError::Module { .. }
            | LoadError::Many(_) => None,
        }
    }

    /// Whether the error is about a file as a whole (it cannot be read or parsed), rather than
    /// about one template or constraint in it.
    pub fn is_file_error(&self) -> bool {
        match self {
            LoadError::Io { .. } | LoadError::Syntax { .. } => true,
            LoadError::Many(errors) => errors.iter().any(LoadError::is_file_error),
            _ => false,
        }
    }
}

/// A review could not be completed. The webhook answers these with its failure mode.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReviewError {
    /// The request is not an AdmissionRequest the engine can review.
    #[error("malformed admission request: {0}")]
    Malformed(String),
    /// Evaluation ran past the deadline.
    #[error("evaluation of {template} exceeded the deadline of {limit:?} (elapsed {elapsed:?})")]
    Timeout {
        /// The template being evaluated when the deadline passed.
        template: String,
        /// The configured deadline.
        limit: Duration,
        /// Time spent on the review when it was stopped.
        elapsed: Duration,
    },
    /// A template's Rego failed at run time (conflicting outputs, a non-set `violation` ...).
    #[error("evaluating {template} for constraint {constraint}: {message}")]
    Evaluation {
        /// The template.
        template: String,
        /// The constraint whose parameters were used.
        constraint: String,
        /// The interpreter's message.
        message: String,
    },
    /// A constraint's match could not be decided, as Gatekeeper reports it (a namespaceSelector on
    /// a namespaced object whose Namespace is unknown).
    #[error("matching constraint {constraint}: {message}")]
    Match {
        /// The constraint.
        constraint: String,
        /// What was missing.
        message: String,
    },
}

/// An object could not be added to an [`Inventory`](crate::Inventory).
#[derive(Debug, Clone, thiserror::Error)]
#[error("inventory object: {0}")]
pub struct InventoryError(pub String);
