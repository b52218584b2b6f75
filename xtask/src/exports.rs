//! Removes the exports a filter module says it never needs.
//!
//! Every export of a proxy-wasm stream callback costs a call into V8 on each request, even
//! when the SDK's default does nothing with it; Envoy skips callbacks a module does not
//! export. The shim's `export_filter!` lists the unused ones in a custom section (see
//! `meshguard_filter_shim::exports`); this step deletes those export entries and the section,
//! and copies every other section byte for byte. Function bodies stay: only the names Envoy
//! looks up go. A module without the section is left as it is.

use anyhow::{Context, bail};

/// The custom section `export_filter!` writes (`meshguard_filter_shim::exports::SECTION`).
pub const SECTION: &str = "meshguard.unused_exports";

const CUSTOM: u8 = 0;
const EXPORT: u8 = 7;

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
    // The list comes out of the module here, so the rewrite below never sees it.
    let mut unused: Vec<String> = Vec::new();
    let mut kept = Vec::new();
    for section in sections(module)? {
        match unused_list(&section)? {
            Some(names) => unused.extend(names),
            None => kept.push(section),
        }
    }
    let mut out = module.get(..8).context("truncated header")?.to_vec();
    let mut removed = Vec::new();
    for section in &kept {
        let payload = if section.id == EXPORT && !unused.is_empty() {
            let (payload, gone) = without_exports(section.payload, &unused)?;
            removed = gone;
            payload
        } else {
            section.payload.to_vec()
        };
        out.push(section.id);
        leb128(&mut out, payload.len() as u64);
        out.extend_from_slice(&payload);
    }
    Ok(Trimmed {
        module: out,
        removed,
    })
}

/// The export names listed by `section` when it is the [`SECTION`] custom section.
fn unused_list(section: &Section<'_>) -> anyhow::Result<Option<Vec<String>>> {
    if section.id != CUSTOM {
        return Ok(None);
    }
    let mut reader = Reader::new(section.payload);
    if reader.name()? != SECTION {
        return Ok(None);
    }
    let names =
        std::str::from_utf8(reader.rest()).context("the unused-exports section is not UTF-8")?;
    Ok(Some(
        names
            .lines()
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect(),
    ))
}

struct Section<'a> {
    id: u8,
    payload: &'a [u8],
}

fn sections(module: &[u8]) -> anyhow::Result<Vec<Section<'_>>> {
    if module.get(..4) != Some(b"\0asm".as_slice()) {
        bail!("not a wasm module (no \\0asm magic)");
    }
    if module.get(4..8) != Some([1u8, 0, 0, 0].as_slice()) {
        bail!("unsupported wasm binary version (only version 1 modules)");
    }
    let mut reader = Reader::new(module.get(8..).unwrap_or_default());
    let mut sections = Vec::new();
    while !reader.is_empty() {
        let id = reader.byte()?;
        let len = reader.u32()? as usize;
        let payload = reader
            .take(len)
            .with_context(|| format!("section {id} runs past the end of the module"))?;
        sections.push(Section { id, payload });
    }
    Ok(sections)
}

/// The export section without the entries named in `unused`, and the names removed.
fn without_exports(payload: &[u8], unused: &[String]) -> anyhow::Result<(Vec<u8>, Vec<String>)> {
    let mut reader = Reader::new(payload);
    let count = reader.u32()?;
    let mut kept = Vec::new();
    let mut kept_count = 0u64;
    let mut removed = Vec::new();
    for _ in 0..count {
        let start = reader.offset();
        let name = reader
            .name()
            .context("reading an export's name")?
            .to_string();
        let _kind = reader.byte()?;
        let _index = reader.u32()?;
        let entry = payload
            .get(start..reader.offset())
            .context("export entry out of bounds")?;
        if unused.contains(&name) {
            removed.push(name);
        } else {
            kept.extend_from_slice(entry);
            kept_count += 1;
        }
    }
    if !reader.is_empty() {
        bail!("the export section has bytes after its last entry");
    }
    let mut out = Vec::with_capacity(payload.len());
    leb128(&mut out, kept_count);
    out.extend_from_slice(&kept);
    Ok((out, removed))
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A bounds-checked cursor over module bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn offset(&self) -> usize {
        self.at
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }

    fn byte(&mut self) -> anyhow::Result<u8> {
        let byte = *self
            .bytes
            .get(self.at)
            .context("unexpected end of module")?;
        self.at += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> anyhow::Result<&'a [u8]> {
        let end = self.at.checked_add(len).context("length overflow")?;
        let bytes = self
            .bytes
            .get(self.at..end)
            .context("unexpected end of module")?;
        self.at = end;
        Ok(bytes)
    }

    /// An unsigned LEB128 `u32` (at most 5 bytes).
    fn u32(&mut self) -> anyhow::Result<u32> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return u32::try_from(value).context("LEB128 value over u32");
            }
        }
        bail!("LEB128 value longer than 5 bytes")
    }

    fn name(&mut self) -> anyhow::Result<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).context("a name that is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(id: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        leb128(&mut out, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    fn name(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        leb128(&mut out, text.len() as u64);
        out.extend_from_slice(text.as_bytes());
        out
    }

    fn exports(names: &[&str]) -> Vec<u8> {
        let mut payload = Vec::new();
        leb128(&mut payload, names.len() as u64);
        for export in names {
            payload.extend(name(export));
            payload.push(0); // a function
            leb128(&mut payload, 200 + export.len() as u64); // a two-byte index, per name
        }
        section(EXPORT, &payload)
    }

    fn module(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        for part in parts {
            out.extend_from_slice(part);
        }
        out
    }

    fn unused(names: &str) -> Vec<u8> {
        let mut payload = name(SECTION);
        payload.extend_from_slice(names.as_bytes());
        section(CUSTOM, &payload)
    }

    fn export_names(module: &[u8]) -> Vec<String> {
        let sections = sections(module).unwrap();
        let export = sections.iter().find(|s| s.id == EXPORT).unwrap();
        let mut reader = Reader::new(export.payload);
        let count = reader.u32().unwrap();
        (0..count)
            .map(|_| {
                let name = reader.name().unwrap().to_string();
                reader.byte().unwrap();
                reader.u32().unwrap();
                name
            })
            .collect()
    }

    #[test]
    fn removes_the_listed_exports_and_the_section_and_keeps_the_rest() {
        let types = section(1, &[0]);
        let producers = section(CUSTOM, &name("producers"));
        let input = module(&[
            types.clone(),
            exports(&[
                "memory",
                "proxy_on_log",
                "proxy_on_request_headers",
                "proxy_on_done",
            ]),
            producers.clone(),
            unused("proxy_on_done\nproxy_on_log\nproxy_on_grpc_close\n"),
        ]);
        let trimmed = remove_unused_exports(&input).unwrap();
        assert_eq!(trimmed.removed, ["proxy_on_log", "proxy_on_done"]);
        assert_eq!(
            trimmed.module,
            module(&[
                types,
                exports(&["memory", "proxy_on_request_headers"]),
                producers
            ])
        );
        assert_eq!(
            export_names(&trimmed.module),
            ["memory", "proxy_on_request_headers"]
        );
    }

    #[test]
    fn a_module_without_the_section_is_unchanged() {
        let input = module(&[section(1, &[0]), exports(&["memory", "proxy_on_log"])]);
        let trimmed = remove_unused_exports(&input).unwrap();
        assert_eq!(trimmed.module, input);
        assert!(trimmed.removed.is_empty());
    }

    #[test]
    fn the_section_may_come_before_the_exports() {
        let input = module(&[unused("proxy_on_log\n"), exports(&["a", "proxy_on_log"])]);
        let trimmed = remove_unused_exports(&input).unwrap();
        assert_eq!(export_names(&trimmed.module), ["a"]);
    }

    #[test]
    fn malformed_modules_are_errors_not_panics() {
        let good = module(&[
            exports(&["memory", "proxy_on_log"]),
            unused("proxy_on_log\n"),
        ]);
        assert!(remove_unused_exports(b"\0asm").is_err());
        assert!(remove_unused_exports(b"\0wat\x01\0\0\0").is_err());
        assert!(remove_unused_exports(b"\0asm\x02\0\0\0").is_err());
        // Every truncation of a good module fails cleanly (or, cut at a section boundary,
        // is a smaller valid one).
        for len in 0..good.len() {
            let _ = remove_unused_exports(&good[..len]);
        }
        let mut overlong = module(&[]);
        overlong.extend_from_slice(&[7, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(remove_unused_exports(&overlong).is_err());
    }
}
