//! The engine's Rego scanner and rewrites, reachable from outside the crate for the fuzz targets
//! in `tests/fuzz` (feature `fuzzing`, off in every shipped build).
//!
//! Why a feature and not a public module: the rewrites are an implementation detail of
//! [`crate::Template`] (they compensate regorus divergences and may disappear with them), but they
//! run on the security team's Rego before regorus sees it, so a panic, a loop or a wrong edit
//! there matters as much as one in a parser. The fuzz targets drive them directly, far faster
//! than through a whole template load, and compare their output against unrewritten Rego.

use crate::read_set::ReadSet;
use crate::template::RegoVersion;
use crate::{rego_scan, rewrite, vm_rules};

/// What the rewrites made of one module, in the order [`crate::Template`] applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The module the tree interpreter compiles (divergences 1-4 and `any`/`all` compensated).
    pub interpreter: String,
    /// The module the VM compiles, or why the VM refuses the module.
    pub vm: Result<String, String>,
    /// One note per compensation of divergences 1-4 (empty: none of those constructs was found).
    pub notes: Vec<String>,
    /// `data` roots the module references, with their lines (`None`: a bare `data`).
    pub data_refs: Vec<(Option<String>, usize)>,
    /// The static `input` paths the decision cache's text scan would key on (`None`: never
    /// cached).
    pub input_paths: Option<Vec<Vec<String>>>,
}

/// Number of tokens the scanner finds in `src`.
pub fn token_count(src: &str) -> usize {
    rego_scan::tokenize(src).len()
}

/// Runs every scan and rewrite [`crate::Template`] runs on a module's source; Err when the
/// rewrites refuse the module (the template would not load).
pub fn rewrite(
    src: &str,
    version: RegoVersion,
    main_module: bool,
) -> Result<Rewritten, rewrite::RewriteError> {
    let mut each = rewrite_each(src, &[(version, main_module)])?;
    Ok(each.remove(0))
}

/// [`rewrite`] for each (syntax version, main module or lib) pair, in order: the scans and
/// rewrites that depend on neither run once.
pub fn rewrite_each(
    src: &str,
    variants: &[(RegoVersion, bool)],
) -> Result<Vec<Rewritten>, rewrite::RewriteError> {
    let data_refs: Vec<(Option<String>, usize)> = rego_scan::data_refs(src)
        .into_iter()
        .map(|data_ref| (data_ref.root, data_ref.line))
        .collect();
    let (compensated, mut notes) = rego_scan::compensate(src);
    let (semantics, opa_notes) = rewrite::opa_semantics(&compensated)?;
    notes.extend(opa_notes);
    let interpreter = rewrite::deprecated_builtins(&semantics)?;
    // The text scan (what the cache falls back to when the parse-tree analysis cannot be used).
    let reads = ReadSet::scan([src]);
    let input_paths = reads.cacheable().then_some(reads.value);
    let mut each = Vec::with_capacity(variants.len());
    for &(version, main_module) in variants {
        let vm = match vm_rules::single_value_rules(&interpreter, version, main_module)? {
            Ok((single, _)) => {
                let (tabled, _) = vm_rules::table_functions(&single, version)?;
                Ok(rewrite::vm_assignment_guards(&tabled)?)
            }
            Err(why) => Err(why),
        };
        each.push(Rewritten {
            interpreter: interpreter.clone(),
            vm,
            notes: notes.clone(),
            data_refs: data_refs.clone(),
            input_paths: input_paths.clone(),
        });
    }
    Ok(each)
}
