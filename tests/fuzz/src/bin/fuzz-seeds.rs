//! `fuzz-seeds <dir> [target...]`: writes each target's seed corpus (see `meshguard_fuzz::seeds`)
//! to `<dir>/<target>/`, one file per seed named by its content hash. `cargo xtask fuzz` runs it
//! before fuzzing, so the corpus always starts from the tests' current inputs.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: fuzz-seeds <dir> [target...]")?);
    let wanted: Vec<String> = args.collect();
    for target in meshguard_fuzz::TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|name| name == target.name) {
            continue;
        }
        let out = dir.join(target.name);
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let seeds = (target.seeds)();
        for seed in &seeds {
            let path = out.join(meshguard_fuzz::content_name(seed));
            std::fs::write(&path, seed).with_context(|| format!("writing {}", path.display()))?;
        }
        println!("{:<26} {:>4} seeds", target.name, seeds.len());
    }
    Ok(())
}
