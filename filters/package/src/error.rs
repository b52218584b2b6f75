//! The crate's one error type. Every variant names what is wrong and, where a person can act on
//! it, what to do next: these messages are what `meshguard filter package` prints.

use std::path::PathBuf;

/// Why packaging, writing, pushing or pinning failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`reading`, `writing`).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a WebAssembly core module.
    #[error(
        "{name} is not a WebAssembly module: {found}; pass the compiled .wasm filter \
         (`cargo xtask build-filters` writes them to target/filters/)"
    )]
    NotWasm {
        /// The module's file name.
        name: String,
        /// What was found instead of the `\0asm` magic and version 1.
        found: String,
    },
    /// The module starts like WebAssembly but does not validate.
    #[error("{name} is not a valid WebAssembly module: {reason}")]
    InvalidWasm {
        /// The module's file name.
        name: String,
        /// The validator's explanation.
        reason: String,
    },
    /// The module is WebAssembly but no proxy-wasm host would load it.
    #[error(
        "{name} is a WebAssembly module but not a proxy-wasm filter: it exports no \
         `proxy_abi_version_*` function (build it with a proxy-wasm SDK as a cdylib)"
    )]
    NotProxyWasm {
        /// The module's file name.
        name: String,
    },
    /// The image reference cannot name a pushable image.
    #[error(
        "image reference `{reference}` {problem}; write REGISTRY/REPOSITORY[:TAG], e.g. {example}"
    )]
    Reference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        problem: String,
        /// A well-formed reference to copy.
        example: String,
    },
    /// A manifest or config could not be encoded (a bug: these are built from typed values).
    #[error("encoding the image {what}: {reason}")]
    Encode {
        /// Which document.
        what: &'static str,
        /// The encoder's explanation.
        reason: String,
    },
    /// A folder exists but is not an OCI image layout this crate may add to.
    #[error(
        "{path} is not an OCI image layout ({reason}); pass an empty or new folder to --output"
    )]
    NotALayout {
        /// The folder.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
    /// The registry could not be reached at all.
    #[error(
        "cannot reach the registry {registry} over {scheme}: {reason}; check the host and port{hint}"
    )]
    Unreachable {
        /// `host[:port]`.
        registry: String,
        /// `http` or `https`.
        scheme: &'static str,
        /// The connection error chain.
        reason: String,
        /// What else to check for this scheme.
        hint: &'static str,
    },
    /// The registry refused the credentials (or asked for some).
    #[error(
        "the registry {registry} refused {who} (HTTP 401/403): {reason}; pass --username and the \
         password on standard input with --password-stdin (or set MESHGUARD_REGISTRY_USERNAME and \
         MESHGUARD_REGISTRY_PASSWORD)"
    )]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// `anonymous access` or `user NAME`.
        who: String,
        /// What the registry said.
        reason: String,
    },
    /// The tag already names a different image and `--force` was not given.
    #[error(
        "{image} already exists with digest {existing}, not {new}: a released tag is not moved \
         silently; push a new tag (version), or pass --force to move it"
    )]
    TagExists {
        /// The full reference.
        image: String,
        /// The digest the tag names now.
        existing: String,
        /// The digest of the image being pushed.
        new: String,
    },
    /// The registry answered something other than what the distribution API specifies.
    #[error("the registry {registry} failed to {action}: {reason}")]
    Registry {
        /// `host[:port]`.
        registry: String,
        /// What was being done (`store blob sha256:...`, `store the manifest`).
        action: String,
        /// The registry's answer.
        reason: String,
    },
    /// A WasmPlugin file could not be updated.
    #[error("{path}: {reason}")]
    WasmPlugin {
        /// The manifest file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
