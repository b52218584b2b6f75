//! `cargo xtask release` and `cargo xtask pin-manifests`: every module the workspace builds,
//! shipped as an OCI image and pinned in the Istio manifests, in one call.
//!
//! `release --registry HOST/PATH --version V`:
//! 1. builds the modules reproducibly (`build-filters`);
//! 2. packages each one with `meshguard filter package` (the compat variant Istio pulls) as
//!    `HOST/PATH/<name>:V`, writes it as an OCI image layout under `OUT/images/<name>/`, and
//!    pushes it (unless `--no-push`);
//! 3. renders `istio/` into `OUT/istio/` with every WasmPlugin pinned to what was pushed;
//! 4. prints a table of module, size, digest and image (also `OUT/release.json`).
//!
//! `pin-manifests` is the same without a push, for the registry the repository's own
//! `approved-wasm-modules` constraint approves and the workspace version, written into `istio/`
//! itself. Digests depend only on the modules, so the committed pins are the images this
//! commit releases; a test renders them again and compares.
//!
//! The CLI, not a library, does the packaging: a release uses the tool users use, and xtask
//! stays free of the OCI and TLS stack.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use meshguard_testkit::paths::{module_image_name, target_dir, workspace_root};

use crate::build::build_filters;
use crate::process::{cargo, describe, run};

/// `cargo xtask release`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the images go: REGISTRY/PATH (each module becomes REGISTRY/PATH/<name>:VERSION).
    #[arg(long, value_name = "HOST/PATH")]
    registry: String,
    /// The version: the tag every image gets.
    #[arg(long, value_name = "V")]
    version: String,
    /// Build, package and render, but push nothing (the images are still written as layouts).
    #[arg(long)]
    no_push: bool,
    /// Move tags that already name other images.
    #[arg(long)]
    force: bool,
    /// A registry to reach over plain HTTP (repeatable; loopback registries always are).
    #[arg(long, value_name = "HOST[:PORT]")]
    insecure_registry: Vec<String>,
    /// Where the layouts, rendered manifests and release.json go (default target/release/V).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The meshguard binary to package with (default: `cargo build -p meshguard-cli`).
    #[arg(long, value_name = "PATH")]
    cli: Option<PathBuf>,
}

/// One shipped module.
#[derive(Debug, serde::Serialize)]
struct Row {
    module: String,
    size: u64,
    digest: String,
    image: String,
    url: String,
}

/// Runs `release`.
pub fn run_release(args: &Args) -> anyhow::Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| target_dir().join("release").join(&args.version));
    let istio = out.join("istio");
    let images = out.join("images");
    let source = workspace_root().join("istio");
    if istio.canonicalize().ok() == source.canonicalize().ok() && istio.exists() {
        bail!(
            "--out {} would render over the committed istio/: pick another folder (to re-pin \
             istio/ itself, run `cargo xtask pin-manifests`)",
            out.display()
        );
    }
    for dir in [&istio, &images] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
    }
    copy_dir(&source, &istio)?;
    let options = Packaging {
        registry: args.registry.trim_end_matches('/').to_string(),
        version: args.version.clone(),
        push: !args.no_push,
        force: args.force,
        insecure_registries: args.insecure_registry.clone(),
        images: Some(images),
        wasmplugins: istio.clone(),
    };
    let rows = package_all(&options, args.cli.as_deref())?;
    check_all_pinned(&istio, &rows)?;
    fs::write(out.join("release.json"), serde_json::to_vec_pretty(&rows)?)?;
    print_table(&rows);
    println!(
        "\n{} {} image(s); Istio manifests pinned to them: {}",
        if args.no_push { "packaged" } else { "pushed" },
        rows.len(),
        istio.display()
    );
    Ok(())
}

/// Runs `pin-manifests`: pins `istio/` to this commit's images in the approved registry.
pub fn run_pin_manifests(cli: Option<&Path>) -> anyhow::Result<()> {
    let options = Packaging {
        registry: pinned_registry()?,
        version: env!("CARGO_PKG_VERSION").to_string(),
        push: false,
        force: false,
        insecure_registries: Vec::new(),
        images: None,
        wasmplugins: workspace_root().join("istio"),
    };
    let rows = package_all(&options, cli)?;
    check_all_pinned(&options.wasmplugins, &rows)?;
    print_table(&rows);
    println!("\nistio/ pins these images; commit the changes `git status istio/` shows");
    Ok(())
}

/// The registry path committed manifests name: the first registry the repository's sample
/// `approved-wasm-modules` constraint approves, with `/meshguard`.
pub fn pinned_registry() -> anyhow::Result<String> {
    let samples = workspace_root().join("gatekeeper/wasmplugin-source/samples");
    for entry in fs::read_dir(&samples).with_context(|| format!("reading {}", samples.display()))? {
        let path = entry?.path().join("constraint.yaml");
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let constraint: serde_yaml::Value =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if constraint["metadata"]["name"].as_str() == Some("approved-wasm-modules")
            && let Some(registry) = constraint["spec"]["parameters"]["registries"][0].as_str()
        {
            return Ok(format!("{}/meshguard", registry.trim_end_matches('/')));
        }
    }
    bail!(
        "no approved-wasm-modules constraint with a registry under {}",
        samples.display()
    )
}

/// What `package_all` does with each module.
struct Packaging {
    registry: String,
    version: String,
    push: bool,
    force: bool,
    insecure_registries: Vec<String>,
    /// Where to write each image's layout (`<dir>/<name>/`), if anywhere.
    images: Option<PathBuf>,
    /// The manifests to pin.
    wasmplugins: PathBuf,
}

fn package_all(options: &Packaging, cli: Option<&Path>) -> anyhow::Result<Vec<Row>> {
    let modules = build_filters()?;
    let meshguard = match cli {
        Some(path) => path.to_path_buf(),
        None => build_cli()?,
    };
    let scratch = target_dir().join("release-scratch");
    let mut rows = Vec::new();
    for (filter, path) in modules {
        let name = module_image_name(&filter.crate_name);
        let image = format!("{}/{name}:{}", options.registry, options.version);
        let layout = match &options.images {
            Some(dir) => dir.join(&name),
            None => scratch.join(&name),
        };
        let mut command = Command::new(&meshguard);
        command
            .args(["filter", "package"])
            .arg(&path)
            .args(["--image", &image, "--format", "json", "--output"])
            .arg(&layout)
            .arg("--update-wasmplugin")
            .arg(&options.wasmplugins)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        if options.push {
            command.arg("--push");
        }
        if options.force {
            command.arg("--force");
        }
        for registry in &options.insecure_registries {
            command.args(["--insecure-registry", registry]);
        }
        let output = command
            .output()
            .with_context(|| format!("running {}", describe(&command)))?;
        if !output.status.success() {
            bail!("`{}` failed ({})", describe(&command), output.status);
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("reading the report of {}", describe(&command)))?;
        rows.push(Row {
            module: format!("{}.wasm", filter.crate_name),
            size: report["module"]["size"].as_u64().unwrap_or_default(),
            digest: report["digest"].as_str().unwrap_or_default().to_string(),
            image,
            url: report["pinnedUrl"].as_str().unwrap_or_default().to_string(),
        });
    }
    let _ = fs::remove_dir_all(&scratch);
    Ok(rows)
}

/// Builds the CLI the way a developer would (`cargo build -p meshguard-cli`).
fn build_cli() -> anyhow::Result<PathBuf> {
    run(cargo().args(["build", "-p", "meshguard-cli", "--bin", "meshguard"]))?;
    Ok(target_dir().join("debug").join("meshguard"))
}

/// Every WasmPlugin under `dir` must pull one of the images just packaged, pinned: a WasmPlugin
/// for an image no module builds would otherwise ship unpinned.
fn check_all_pinned(dir: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for file in yaml_files(dir)? {
        let text = fs::read_to_string(&file)?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(document)
                .with_context(|| format!("parsing {}", file.display()))?;
            if value["kind"].as_str() != Some("WasmPlugin") {
                continue;
            }
            let url = value["spec"]["url"].as_str().unwrap_or_default();
            let name = value["metadata"]["name"].as_str().unwrap_or_default();
            let pinned = rows.iter().any(|row| {
                url == row.url
                    && value["spec"]["sha256"].as_str()
                        == Some(row.digest.trim_start_matches("sha256:"))
            });
            if !pinned {
                problems.push(format!(
                    "{}: WasmPlugin {name} pulls `{url}`, which is none of the images packaged \
                     (its last path component must name a module: {})",
                    file.display(),
                    rows.iter()
                        .map(|row| module_image_name(row.module.trim_end_matches(".wasm")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
    }
    if !problems.is_empty() {
        bail!("unpinned WasmPlugins:\n  {}", problems.join("\n  "));
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    let module_width = rows
        .iter()
        .map(|row| row.module.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<module_width$}  {:>9}  {:<71}  image",
        "module", "bytes", "digest"
    );
    for row in rows {
        println!(
            "{:<module_width$}  {:>9}  {:<71}  {}",
            row.module, row.size, row.digest, row.image
        );
    }
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(yaml_files(&path)?);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
