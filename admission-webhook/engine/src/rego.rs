//! Plain Rego modules (`meshguard policy test`, `policy eval`) read the way template Rego is
//! read: with the same rewrites for regorus' divergences from OPA (see [`crate::divergences`]),
//! in the same syntax version and with OPA's treatment of builtin errors, so a Rego unit test
//! that passes under `opa test` passes here, and a policy decides in its tests as it decides
//! inside its template.

use regorus::Engine;

use crate::error::LoadError;
use crate::rewrite;
use crate::template::RegoVersion;

/// An engine configured as template engines are: the syntax `version`, and builtin errors
/// evaluating to undefined (OPA's default, and so Gatekeeper's).
pub fn engine(version: RegoVersion) -> Engine {
    let mut engine = Engine::new();
    engine.set_rego_v0(version == RegoVersion::V0);
    engine.set_strict_builtin_errors(false);
    engine
}

/// A module's text as the engine compiles it, and a note per rewrite applied (`line N: ...`).
/// Every rewrite keeps each line where it was, so errors, coverage and test positions still
/// point at the file's lines.
pub fn prepare(text: &str) -> (String, Vec<String>) {
    rewrite::opa_compatible(text)
}

/// Adds a module to an engine after [`prepare`]; returns the package (`data.x`) and the notes.
/// The error names the file and the line (regorus' message carries `file:line:col`).
pub fn add_module(
    engine: &mut Engine,
    source_name: &str,
    text: &str,
) -> Result<(String, Vec<String>), LoadError> {
    let (prepared, notes) = prepare(text);
    engine
        .add_policy(source_name.to_string(), prepared)
        .map(|package| (package, notes))
        .map_err(|err| LoadError::Module {
            source_name: source_name.to_string(),
            message: format!("{err:#}").trim().to_string(),
        })
}
