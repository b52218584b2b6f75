//! The host's one error type. Every variant says what went wrong and, where a person can act
//! on it, what to do next.

use std::path::PathBuf;

/// Why loading, starting or driving a module failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The module file could not be read.
    #[error(
        "cannot read module {path}: {io} (build the filters with `cargo xtask build-filters`?)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        io: std::io::Error,
    },
    /// The bytes are not a WebAssembly binary at all.
    #[error(
        "{name} is not a WebAssembly binary (it does not start with the `\\0asm` magic): pass the \
         compiled .wasm module, not a text or truncated file"
    )]
    NotWasm {
        /// The module's name (file name).
        name: String,
    },
    /// wasmtime rejected the module (malformed or uses unsupported features).
    #[error("{name} is not a valid WebAssembly module: {reason}")]
    Invalid {
        /// The module's name.
        name: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The module lacks exports every proxy-wasm module has.
    #[error(
        "{name} is not a proxy-wasm module: missing export(s) {missing} (build it with a \
         proxy-wasm SDK, e.g. the Rust crate proxy-wasm 0.2, as a cdylib for wasm32-wasip1)"
    )]
    NotProxyWasm {
        /// The module's name.
        name: String,
        /// The missing export names, comma-separated.
        missing: String,
    },
    /// The module imports something no proxy-wasm host provides.
    #[error("{name} imports {import}, which no proxy-wasm host provides ({why})")]
    UnsupportedImport {
        /// The module's name.
        name: String,
        /// `module::name` of the import.
        import: String,
        /// Why it cannot be provided.
        why: String,
    },
    /// Instantiation or linking failed.
    #[error("instantiating {name} failed: {reason}")]
    Instantiate {
        /// The module's name.
        name: String,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The module trapped, ran out of fuel or memory while starting.
    #[error("{name}: {call} failed while starting the plugin: {reason}")]
    StartFailed {
        /// The module's name.
        name: String,
        /// The export that was being called.
        call: String,
        /// What happened.
        reason: String,
    },
    /// `proxy_on_vm_start` returned false.
    #[error("{name}: proxy_on_vm_start returned false (the module refused to start){logs}")]
    VmStartRejected {
        /// The module's name.
        name: String,
        /// Its error logs, preformatted (empty or a newline-led list).
        logs: String,
    },
    /// `proxy_on_configure` returned false: the filter rejected its configuration.
    #[error("the filter rejected its configuration: {message}")]
    ConfigRejected {
        /// The filter's own explanation (its error logs), or a generic note when it logged none.
        message: String,
    },
    /// A worker index out of range, an unknown stream, or similar misuse of the API.
    #[error("{0}")]
    Usage(String),
    /// A scenario or request file is invalid.
    #[error("{0}")]
    Scenario(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = HostError> = std::result::Result<T, E>;
