//! What packaging checks about a module before it becomes an image.
//!
//! A registry stores any bytes, and Istio's agent only checks the magic number after it has
//! pulled them (`isValidWasmBinary` in istio `pkg/wasm/cache.go`): a text file, a truncated
//! build or a WebAssembly component would be published, pinned, pulled by every sidecar and
//! only then refused by Envoy. So a module is checked where it is packaged: the `\0asm` magic
//! and core-module version, full validation (wasmparser, the same parser wasmtime uses), and a
//! `proxy_abi_version_*` export, without which Envoy refuses to start the VM. The ABI version
//! also goes into the oci variant's runtime config.

use sha2::{Digest as _, Sha256};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

use crate::error::{Error, Result};

/// The WebAssembly magic number.
const MAGIC: &[u8; 4] = b"\0asm";
/// The binary format version of a core module (components use another).
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
/// Prefix of the export that tells a proxy-wasm host which ABI the module speaks.
const ABI_EXPORT_PREFIX: &str = "proxy_abi_version_";

/// A checked proxy-wasm module, ready to package.
#[derive(Debug, Clone)]
pub struct WasmModule {
    name: String,
    bytes: Vec<u8>,
    sha256: String,
    abi_version: String,
}

impl WasmModule {
    /// Checks `bytes` (the module's file `name` is used in messages) and keeps them.
    pub fn inspect(name: impl Into<String>, bytes: Vec<u8>) -> Result<Self> {
        let name = name.into();
        check_header(&name, &bytes)?;
        Validator::new_with_features(WasmFeatures::default())
            .validate_all(&bytes)
            .map_err(|err| Error::InvalidWasm {
                name: name.clone(),
                reason: err.to_string(),
            })?;
        let abi_version =
            abi_version(&bytes).ok_or_else(|| Error::NotProxyWasm { name: name.clone() })?;
        let sha256 = hex(&Sha256::digest(&bytes));
        Ok(Self {
            name,
            bytes,
            sha256,
            abi_version,
        })
    }

    /// Reads and checks the module at `path`.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|err| Error::io("reading", path, err))?;
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::inspect(name, bytes)
    }

    /// The module's file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The module's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Hex SHA-256 of the module itself: what Envoy's `vm_config.code.remote.sha256` checks,
    /// not what Istio's `spec.sha256` means (that is the image's manifest digest).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The proxy-wasm ABI the module exports, as `v0.2.1`.
    pub fn abi_version(&self) -> &str {
        &self.abi_version
    }
}

fn check_header(name: &str, bytes: &[u8]) -> Result<()> {
    let not_wasm = |found: String| Error::NotWasm {
        name: name.to_string(),
        found,
    };
    let Some((magic, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(not_wasm(format!(
            "it has {} bytes, fewer than a WebAssembly header",
            bytes.len()
        )));
    };
    if magic != MAGIC {
        return Err(not_wasm(format!(
            "it starts with {}, not the magic `\\0asm`",
            describe_start(bytes)
        )));
    }
    match rest.first_chunk::<4>() {
        Some(version) if *version == CORE_VERSION => Ok(()),
        Some(version) if version[2..] == [1, 0] => Err(not_wasm(
            "it is a WebAssembly component, and proxy-wasm hosts load core modules".to_string(),
        )),
        Some(version) => Err(not_wasm(format!(
            "it declares binary format version {version:02x?}, not 1"
        ))),
        None => Err(not_wasm(
            "it ends inside the WebAssembly header".to_string(),
        )),
    }
}

/// The first bytes, as text when they are printable (a YAML or JSON file passed by mistake
/// shows what it is), else as hex.
fn describe_start(bytes: &[u8]) -> String {
    let start = bytes.get(..bytes.len().min(16)).unwrap_or_default();
    let line = start
        .split(|byte| *byte == b'\n')
        .next()
        .unwrap_or_default();
    if !line.is_empty()
        && line
            .iter()
            .all(|byte| byte.is_ascii_graphic() || *byte == b' ')
    {
        format!("{:?}", String::from_utf8_lossy(line))
    } else {
        format!(
            "bytes {:02x?}",
            bytes.get(..bytes.len().min(8)).unwrap_or_default()
        )
    }
}

/// `v0.2.1` for an export `proxy_abi_version_0_2_1`.
fn abi_version(bytes: &[u8]) -> Option<String> {
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(Payload::ExportSection(exports)) = payload else {
            continue;
        };
        for export in exports.into_iter().flatten() {
            if let Some(version) = export.name.strip_prefix(ABI_EXPORT_PREFIX) {
                return Some(format!("v{}", version.replace('_', ".")));
            }
        }
    }
    None
}

/// Lowercase hex of a digest.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::tiny_module;

    #[test]
    fn a_proxy_wasm_module_is_accepted_with_its_abi_and_hash() {
        let module = WasmModule::inspect("tiny.wasm", tiny_module()).unwrap();
        assert_eq!(module.abi_version(), "v0.2.1");
        assert_eq!(module.sha256().len(), 64);
        assert_eq!(module.name(), "tiny.wasm");
    }

    #[test]
    fn files_that_are_not_wasm_are_refused_with_what_they_are() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "0 bytes, fewer than a WebAssembly header"),
            (
                b"apiVersion: v1\nkind: Pod\n",
                "starts with \"apiVersion: v1\", not the magic",
            ),
            (
                &[0x7f, b'E', b'L', b'F', 2, 1, 1, 0],
                "bytes [7f, 45, 4c, 46",
            ),
            (b"\0asm\x0d\0\x01\0", "WebAssembly component"),
            (b"\0asm\x02\0\0\0", "binary format version"),
            (b"\0asm\x01\0", "ends inside the WebAssembly header"),
        ];
        for (bytes, expected) in cases {
            let err = WasmModule::inspect("x.wasm", bytes.to_vec()).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Error::NotWasm { .. }), "{text}");
            assert!(text.contains(expected), "{text} lacks {expected}");
            assert!(
                text.starts_with("x.wasm is not a WebAssembly module"),
                "{text}"
            );
        }
    }

    #[test]
    fn a_truncated_module_does_not_validate() {
        let mut bytes = tiny_module();
        bytes.truncate(bytes.len() - 3);
        let err = WasmModule::inspect("cut.wasm", bytes).unwrap_err();
        assert!(matches!(err, Error::InvalidWasm { .. }), "{err}");
    }

    #[test]
    fn a_module_without_the_abi_export_is_not_a_filter() {
        let bytes = wat::parse_str(r#"(module (func (export "run")))"#).unwrap();
        let err = WasmModule::inspect("plain.wasm", bytes).unwrap_err();
        assert!(matches!(err, Error::NotProxyWasm { .. }), "{err}");
    }
}
