//! Loading modules: one process-wide wasmtime engine, compiled modules cached by content hash,
//! and the checks that turn "this is not a proxy-wasm module" into a clear error up front
//! instead of a confusing failure in the middle of a request.
//!
//! Compiling a filter with Cranelift costs far more than running a request through it, so a
//! test suite that builds a fresh [`crate::Plugin`] per test must not recompile: the cache
//! keys on the SHA-256 of the bytes, so every load of the same module in the process shares one
//! compiled [`wasmtime::Module`] (and its pre-linked imports).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, ExternType, InstancePre, OptLevel};

use crate::error::{HostError, Result};
use crate::vm::VmState;

/// Exports that, when present, mark a proxy-wasm ABI version Envoy accepts.
const ABI_VERSIONS: [&str; 3] = [
    "proxy_abi_version_0_2_1",
    "proxy_abi_version_0_2_0",
    "proxy_abi_version_0_1_0",
];

/// Import modules the host provides.
const HOST_MODULES: [&str; 3] = ["env", "wasi_snapshot_preview1", "wasi_unstable"];

/// The process-wide engine: fuel metering on (so a looping module fails instead of hanging),
/// Cranelift optimising for speed.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        config.cranelift_opt_level(OptLevel::Speed);
        // Config::new() with the features enabled in Cargo.toml cannot fail to build an engine;
        // fall back to the default engine rather than panicking if it ever does.
        Engine::new(&config).unwrap_or_default()
    })
}

/// A compiled proxy-wasm module, ready to instantiate into many VMs. Cheap to clone.
#[derive(Clone)]
pub struct WasmModule {
    inner: Arc<Compiled>,
}

pub(crate) struct Compiled {
    pub(crate) name: String,
    pub(crate) module: wasmtime::Module,
    pub(crate) pre: InstancePre<VmState>,
    pub(crate) abi_version: &'static str,
    pub(crate) sha256: [u8; 32],
    pub(crate) size: usize,
}

impl std::fmt::Debug for WasmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmModule")
            .field("name", &self.inner.name)
            .field("abi_version", &self.inner.abi_version)
            .field("size", &self.inner.size)
            .finish()
    }
}

/// Counters of the process-wide compiled-module cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Loads answered from the cache.
    pub hits: u64,
    /// Loads that compiled.
    pub misses: u64,
}

static HITS: AtomicU64 = AtomicU64::new(0);
static MISSES: AtomicU64 = AtomicU64::new(0);

fn cache() -> &'static Mutex<HashMap<[u8; 32], Arc<Compiled>>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Arc<Compiled>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// How often the compiled-module cache was hit and missed in this process.
pub fn cache_stats() -> CacheStats {
    CacheStats {
        hits: HITS.load(Ordering::Relaxed),
        misses: MISSES.load(Ordering::Relaxed),
    }
}

impl WasmModule {
    /// Loads and compiles a module file (cached by content).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|io| HostError::Read {
            path: path.to_path_buf(),
            io,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::from_bytes(&name, &bytes)
    }

    /// Compiles a module from its bytes (cached by content). `name` appears in errors and logs.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(compiled) = lock_cache().get(&sha256) {
            HITS.fetch_add(1, Ordering::Relaxed);
            return Ok(Self {
                inner: compiled.clone(),
            });
        }
        MISSES.fetch_add(1, Ordering::Relaxed);
        let compiled = Arc::new(compile(name, bytes, sha256)?);
        lock_cache().insert(sha256, compiled.clone());
        Ok(Self { inner: compiled })
    }

    /// Compiles without consulting or filling the cache (for measuring compile time).
    pub fn compile_uncached(name: &str, bytes: &[u8]) -> Result<Self> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        Ok(Self {
            inner: Arc::new(compile(name, bytes, sha256)?),
        })
    }

    /// The module's name (its file name when loaded from a file).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The proxy-wasm ABI version export the module declares.
    pub fn abi_version(&self) -> &'static str {
        self.inner.abi_version
    }

    /// Size of the module in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Hex SHA-256 of the module bytes.
    pub fn sha256(&self) -> String {
        self.inner
            .sha256
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Names of the module's imports as `module::name`.
    pub fn imports(&self) -> Vec<String> {
        self.inner
            .module
            .imports()
            .map(|i| format!("{}::{}", i.module(), i.name()))
            .collect()
    }

    pub(crate) fn compiled(&self) -> &Compiled {
        &self.inner
    }
}

fn lock_cache() -> std::sync::MutexGuard<'static, HashMap<[u8; 32], Arc<Compiled>>> {
    cache().lock().unwrap_or_else(PoisonError::into_inner)
}

fn compile(name: &str, bytes: &[u8], sha256: [u8; 32]) -> Result<Compiled> {
    if !bytes.starts_with(b"\0asm") {
        return Err(HostError::NotWasm {
            name: name.to_string(),
        });
    }
    let module = wasmtime::Module::new(engine(), bytes).map_err(|err| HostError::Invalid {
        name: name.to_string(),
        reason: format!("{err:#}"),
    })?;
    let abi_version = check_exports(name, &module)?;
    check_imports(name, &module)?;
    let linker = crate::hostcalls::link(&module).map_err(|err| HostError::Instantiate {
        name: name.to_string(),
        reason: format!("{err:#}"),
    })?;
    let pre = linker
        .instantiate_pre(&module)
        .map_err(|err| HostError::Instantiate {
            name: name.to_string(),
            reason: format!("{err:#}"),
        })?;
    Ok(Compiled {
        name: name.to_string(),
        module,
        pre,
        abi_version,
        sha256,
        size: bytes.len(),
    })
}

/// Envoy refuses modules without an ABI version export, memory or an allocator; so do we, by
/// name, before anything runs.
fn check_exports(name: &str, module: &wasmtime::Module) -> Result<&'static str> {
    let has = |export: &str| module.get_export(export).is_some();
    let mut missing = Vec::new();
    let abi = ABI_VERSIONS.iter().copied().find(|v| has(v));
    if abi.is_none() {
        missing.push("proxy_abi_version_0_2_1");
    }
    if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
        missing.push("memory");
    }
    if !has("proxy_on_memory_allocate") && !has("malloc") {
        missing.push("proxy_on_memory_allocate (or malloc)");
    }
    if !has("proxy_on_context_create") {
        missing.push("proxy_on_context_create");
    }
    match abi {
        Some(abi) if missing.is_empty() => Ok(abi),
        _ => Err(HostError::NotProxyWasm {
            name: name.to_string(),
            missing: missing.join(", "),
        }),
    }
}

/// Function imports from the host modules are always satisfiable (unknown ones become
/// `Unimplemented` stubs); anything else cannot be.
fn check_imports(name: &str, module: &wasmtime::Module) -> Result<()> {
    for import in module.imports() {
        let label = format!("{}::{}", import.module(), import.name());
        if !HOST_MODULES.contains(&import.module()) {
            return Err(HostError::UnsupportedImport {
                name: name.to_string(),
                import: label,
                why: "proxy-wasm hosts only provide the `env` and WASI preview 1 modules".into(),
            });
        }
        if !matches!(import.ty(), ExternType::Func(_)) {
            return Err(HostError::UnsupportedImport {
                name: name.to_string(),
                import: label,
                why: "only functions are imported from the host; the module must define its own \
                      memory, tables and globals"
                    .into(),
            });
        }
    }
    Ok(())
}
