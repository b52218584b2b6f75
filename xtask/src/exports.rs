//! Removes the exports a filter module says it never needs.
//!
//! Every export of a proxy-wasm stream callback costs a call into V8 on each request, even
//! when the SDK's default does nothing with it; Envoy skips callbacks a module does not
//! export. The shim's `export_filter!` lists the unused ones in a custom section (see
//! `meshguard_filter_shim::exports`); this step deletes those export entries and the section,
//! and copies every other section byte for byte. Function bodies stay: only the names Envoy
//! looks up go. A module without the section is left as it is.
//!
//! The module is read with `wasmparser` and written with `wasm-encoder` (the Bytecode
//! Alliance's own crates, which wasmtime uses too): sections other than the export section
//! are copied as raw sections, so nothing else can change.

use anyhow::{Context, bail};
use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
use wasmparser::{ExternalKind, Parser, Payload};

/// The custom section `export_filter!` writes (`meshguard_filter_shim::exports::SECTION`).
pub const SECTION: &str = "meshguard.unused_exports";

/// A module with its unused exports removed.
#[derive(Debug)]
pub struct Trimmed {
    /// The rewritten module.
    pub module: Vec<u8>,
    /// The export names removed, in export order.
    pub removed: Vec<String>,
}

/// Removes the exports named in the module's [`SECTION`], and the section.
pub fn remove_unused_exports(module: &[u8]) -> anyhow::Result<Trimmed> {
    // The list comes out of the module first, so the rewrite below never sees it.
    let mut unused: Vec<String> = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        if let Payload::CustomSection(section) = payload.context("reading the module")?
            && section.name() == SECTION
        {
            let names = std::str::from_utf8(section.data())
                .context("the unused-exports section is not UTF-8")?;
            unused.extend(names.lines().filter(|n| !n.is_empty()).map(String::from));
        }
    }
    let mut out = Module::new();
    let mut removed = Vec::new();
    let mut version = false;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.context("reading the module")?;
        match &payload {
            Payload::Version { encoding, .. } => {
                if *encoding != wasmparser::Encoding::Module {
                    bail!("a component, not a core wasm module");
                }
                version = true;
                continue;
            }
            Payload::CustomSection(section) if section.name() == SECTION => continue,
            Payload::ExportSection(exports) if !unused.is_empty() => {
                let mut kept = ExportSection::new();
                for export in exports.clone() {
                    let export = export.context("reading an export")?;
                    if unused.iter().any(|name| name == export.name) {
                        removed.push(export.name.to_string());
                    } else {
                        kept.export(export.name, kind(export.kind)?, export.index);
                    }
                }
                out.section(&kept);
                continue;
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            let data = module
                .get(range)
                .context("a section runs past the end of the module")?;
            out.section(&RawSection { id, data });
        }
    }
    if !version {
        bail!("not a wasm module");
    }
    Ok(Trimmed {
        module: out.finish(),
        removed,
    })
}

fn kind(kind: ExternalKind) -> anyhow::Result<ExportKind> {
    Ok(match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        other => bail!("unsupported export kind {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use wasm_encoder::{
        CodeSection, CustomSection, Function, FunctionSection, Instruction, TypeSection,
    };

    use super::*;

    /// A module with functions exported under `names`, a producers-like custom section, and
    /// (when given) the unused-exports section at `position` (0: first, 1: after the exports).
    fn module(names: &[&str], unused: Option<(&str, usize)>) -> Vec<u8> {
        let mut module = Module::new();
        let section = unused.map(|(list, at)| {
            (
                CustomSection {
                    name: SECTION.into(),
                    data: list.as_bytes().into(),
                },
                at,
            )
        });
        if let Some((section, 0)) = &section {
            module.section(section);
        }
        let mut types = TypeSection::new();
        types.ty().function([], []);
        module.section(&types);
        let mut functions = FunctionSection::new();
        for _ in names {
            functions.function(0);
        }
        module.section(&functions);
        let mut exports = ExportSection::new();
        for (index, name) in names.iter().enumerate() {
            exports.export(name, ExportKind::Func, index as u32);
        }
        module.section(&exports);
        if let Some((section, 1)) = &section {
            module.section(section);
        }
        let mut code = CodeSection::new();
        for _ in names {
            let mut body = Function::new([]);
            body.instruction(&Instruction::End);
            code.function(&body);
        }
        module.section(&code);
        module.section(&CustomSection {
            name: "producers".into(),
            data: b"rustc".as_slice().into(),
        });
        module.finish()
    }

    fn export_names(module: &[u8]) -> Vec<String> {
        Parser::new(0)
            .parse_all(module)
            .filter_map(|payload| match payload.unwrap() {
                Payload::ExportSection(exports) => Some(
                    exports
                        .into_iter()
                        .map(|e| e.unwrap().name.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn removes_the_listed_exports_and_the_section_and_keeps_the_rest() {
        let names = [
            "memory_like",
            "proxy_on_log",
            "proxy_on_request_headers",
            "proxy_on_done",
        ];
        let input = module(
            &names,
            Some(("proxy_on_done\nproxy_on_log\nproxy_on_grpc_close\n", 1)),
        );
        let trimmed = remove_unused_exports(&input).unwrap();
        assert_eq!(trimmed.removed, ["proxy_on_log", "proxy_on_done"]);
        assert_eq!(
            export_names(&trimmed.module),
            ["memory_like", "proxy_on_request_headers"]
        );
        // The section is gone and everything else is as it was: the same module without the
        // section and with only the kept exports is what comes out.
        let mut expected = Parser::new(0)
            .parse_all(&trimmed.module)
            .filter_map(|p| match p.unwrap() {
                Payload::CustomSection(c) => Some(c.name().to_string()),
                _ => None,
            })
            .collect::<Vec<_>>();
        expected.sort();
        assert_eq!(expected, ["producers"]);
        wasmparser::Validator::new()
            .validate_all(&trimmed.module)
            .expect("the trimmed module is valid");
    }

    #[test]
    fn a_module_without_the_section_is_unchanged() {
        let input = module(&["a", "proxy_on_log"], None);
        let trimmed = remove_unused_exports(&input).unwrap();
        assert_eq!(trimmed.module, input);
        assert!(trimmed.removed.is_empty());
    }

    #[test]
    fn the_section_may_come_before_the_exports() {
        let input = module(&["a", "proxy_on_log"], Some(("proxy_on_log\n", 0)));
        let trimmed = remove_unused_exports(&input).unwrap();
        assert_eq!(export_names(&trimmed.module), ["a"]);
    }

    #[test]
    fn malformed_modules_are_errors_not_panics() {
        let good = module(&["a", "proxy_on_log"], Some(("proxy_on_log\n", 1)));
        assert!(remove_unused_exports(b"\0asm").is_err());
        assert!(remove_unused_exports(b"\0wat\x01\0\0\0").is_err());
        assert!(remove_unused_exports(b"\0asm\x02\0\0\0").is_err());
        // Every truncation of a good module fails cleanly (or, cut at a section boundary, is
        // a smaller valid one).
        for len in 0..good.len() {
            let _ = remove_unused_exports(&good[..len]);
        }
        let mut overlong = Module::new().finish();
        overlong.extend_from_slice(&[7, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(remove_unused_exports(&overlong).is_err());
    }
}
