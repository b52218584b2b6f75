//! The ordinary test suite's share of fuzzing: every seed, and every input that once crashed a
//! target (`regressions/<target>/<file>`, committed with the fix), runs through its target here,
//! so a regression fails `cargo test` without a fuzzer. Also checks that the libFuzzer binaries
//! in `targets/` and [`meshguard_fuzz::TARGETS`] list the same targets.

use std::path::{Path, PathBuf};

use meshguard_fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.is_file());
    files.sort();
    files
}

#[test]
fn every_seed_runs_clean() {
    for target in TARGETS {
        let seeds = (target.seeds)();
        assert!(!seeds.is_empty(), "{} has no seeds", target.name);
        for seed in seeds {
            (target.run)(&seed);
        }
    }
}

#[test]
fn every_past_crash_runs_clean() {
    let regressions = fuzz_dir().join("regressions");
    for dir in std::fs::read_dir(&regressions).unwrap().flatten() {
        if !dir.path().is_dir() {
            continue;
        }
        let name = dir.file_name().to_string_lossy().into_owned();
        let target = meshguard_fuzz::target(&name)
            .unwrap_or_else(|| panic!("regressions/{name} names no fuzz target"));
        for input in files_in(&dir.path()) {
            eprintln!("replaying {}", input.display());
            (target.run)(&std::fs::read(&input).unwrap());
        }
    }
}

#[test]
fn the_libfuzzer_binaries_are_the_targets() {
    let targets = fuzz_dir().join("targets");
    let manifest = std::fs::read_to_string(targets.join("Cargo.toml")).unwrap();
    for target in TARGETS {
        let source = targets
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name));
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|err| panic!("{}: {err}", source.display()));
        assert!(
            text.contains(&format!("meshguard_fuzz::{}(data)", target.function)),
            "{} does not call its own target's function, meshguard_fuzz::{}",
            source.display(),
            target.function
        );
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "targets/Cargo.toml has no [[bin]] {}",
            target.name
        );
    }
    assert_eq!(
        files_in(&targets.join("fuzz_targets")).len(),
        TARGETS.len(),
        "a binary in targets/fuzz_targets is not in TARGETS"
    );
}
