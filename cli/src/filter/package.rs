//! `meshguard filter package`: a built module as an OCI image Istio can pull, pinned by digest.
//!
//! A thin shell over `meshguard-filter-package`: check the module, build the image, write an
//! OCI image layout and/or push it, pin WasmPlugins. Standard output carries the one thing a
//! script wants (the manifest digest, the pinned WasmPlugin, or `--format json`); what was done
//! goes to standard error.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use meshguard_filter_package::registry::{self, uses_plain_http};
use meshguard_filter_package::wasmplugin::{self, Updated};
use meshguard_filter_package::{
    Auth, Image, ImageRef, PushOptions, Pushed, Variant, WasmModule, layout,
};

use crate::Outcome;

/// Environment variable with the registry user (instead of `--username`).
const USERNAME_ENV: &str = "MESHGUARD_REGISTRY_USERNAME";
/// Environment variable with the registry password (instead of `--password-stdin`).
const PASSWORD_ENV: &str = "MESHGUARD_REGISTRY_PASSWORD";

/// `meshguard filter package`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The digest printed is the image's manifest digest: what a WasmPlugin's `sha256` and an \
`oci://...@sha256:` url mean (not the .wasm file's own hash). The image is a pure function of \
the module, so the same module has the same digest in every registry.

Without --push the image is written as an OCI image layout (default: MODULE with the extension \
`.oci`), which OCI tools can copy to any registry without changing the digest.")]
pub struct PackageArgs {
    /// The compiled filter (a proxy-wasm .wasm module).
    module: PathBuf,
    /// The image to create: REGISTRY/REPOSITORY[:TAG] (tag `latest` if omitted).
    #[arg(long, value_name = "REF")]
    image: String,
    /// The image layout Istio pulls: `compat` (one tar+gzip layer holding plugin.wasm, any OCI
    /// tool handles it) or `oci` (the Wasm artifact layout: the raw module is a layer).
    #[arg(long, value_enum, default_value = "compat")]
    variant: VariantArg,
    /// Write an OCI image layout folder here (added to if it already is one).
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Push the image to its registry.
    #[arg(long)]
    push: bool,
    /// Move the tag if it already names a different image.
    #[arg(long, requires = "push")]
    force: bool,
    /// A registry (HOST[:PORT]) to reach over plain HTTP (repeatable). Loopback registries
    /// always are; every other registry is HTTPS.
    #[arg(long, value_name = "HOST[:PORT]", requires = "push")]
    insecure_registry: Vec<String>,
    /// Registry user for basic auth (or MESHGUARD_REGISTRY_USERNAME).
    #[arg(long, requires = "push")]
    username: Option<String>,
    /// Read the registry password from the first line of standard input (or set
    /// MESHGUARD_REGISTRY_PASSWORD).
    #[arg(long, requires = "push")]
    password_stdin: bool,
    /// Print a WasmPlugin that pins the image (instead of the digest).
    #[arg(long)]
    wasmplugin: bool,
    /// Pin the WasmPlugins that pull this image (by name) in a file or folder (repeatable).
    #[arg(long, value_name = "FILE|DIR")]
    update_wasmplugin: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "pretty")]
    format: super::Format,
}

/// `--variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum VariantArg {
    /// `module.wasm.image/variant=compat`.
    Compat,
    /// `application/vnd.module.wasm.content.layer.v1+wasm`.
    Oci,
}

impl From<VariantArg> for Variant {
    fn from(arg: VariantArg) -> Self {
        match arg {
            VariantArg::Compat => Variant::Compat,
            VariantArg::Oci => Variant::Oci,
        }
    }
}

/// Runs `filter package`.
pub fn run(args: &PackageArgs) -> anyhow::Result<Outcome> {
    let target = ImageRef::parse(&args.image)?;
    let options = if args.push {
        push_options(args)?
    } else {
        PushOptions::default()
    };
    let module = WasmModule::read(&args.module)?;
    let image = Image::build(&module, args.variant.into())?;
    eprintln!(
        "module   {} ({} bytes, proxy-wasm {}, sha256 {})",
        args.module.display(),
        module.bytes().len(),
        module.abi_version(),
        module.sha256()
    );
    eprintln!("image    {target} ({} variant)", image.variant.as_str());

    let layout_dir = match (&args.output, args.push) {
        (Some(dir), _) => Some(dir.clone()),
        (None, false) => Some(args.module.with_extension("oci")),
        (None, true) => None,
    };
    if let Some(dir) = &layout_dir {
        layout::write(dir, &image, target.tag())?;
        eprintln!("layout   {} (tag {})", dir.display(), target.tag());
    }
    let pushed = if args.push {
        let scheme = if uses_plain_http(&target, &options) {
            "http"
        } else {
            "https"
        };
        let pushed = registry::push_blocking(&target, &image, &options)?;
        let what = match &pushed {
            Pushed::Created => "new tag".to_string(),
            Pushed::Unchanged => "the tag already named this image; nothing uploaded".to_string(),
            Pushed::Moved { from } => format!("tag moved from {from}"),
        };
        eprintln!("pushed   {target} over {scheme} ({what})");
        Some(pushed)
    } else {
        None
    };
    let mut pinned = Vec::new();
    for path in &args.update_wasmplugin {
        let updated = wasmplugin::update_path(path, &target, &image.digest)?;
        if updated.is_empty() {
            eprintln!(
                "note     no WasmPlugin under {} pulls an image named `{}`",
                path.display(),
                target.name()
            );
        }
        for file in &updated {
            eprintln!(
                "pinned   {} ({} WasmPlugin{}{})",
                file.path.display(),
                file.plugins,
                if file.plugins == 1 { "" } else { "s" },
                if file.changed { "" } else { ", already pinned" }
            );
        }
        pinned.extend(updated);
    }
    eprintln!("digest   {}", image.digest);

    match args.format {
        super::Format::Json => {
            let document = json_report(
                args,
                &module,
                &target,
                &image,
                layout_dir.as_deref(),
                pushed.as_ref(),
                &pinned,
            );
            println!("{}", serde_json::to_string_pretty(&document)?);
        }
        super::Format::Pretty if args.wasmplugin => {
            print!("{}", wasmplugin::render(&target, &image.digest));
        }
        super::Format::Pretty => println!("{}", image.digest),
    }
    Ok(Outcome::Success)
}

fn push_options(args: &PackageArgs) -> anyhow::Result<PushOptions> {
    let username = args.username.clone().or_else(|| {
        std::env::var(USERNAME_ENV)
            .ok()
            .filter(|user| !user.is_empty())
    });
    let auth = match username {
        None if args.password_stdin => {
            bail!("--password-stdin needs a user: pass --username (or set {USERNAME_ENV})")
        }
        None => Auth::Anonymous,
        Some(username) => {
            let password = if args.password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .context("reading the password from standard input")?;
                line.trim_end_matches(['\n', '\r']).to_string()
            } else {
                std::env::var(PASSWORD_ENV).unwrap_or_default()
            };
            if password.is_empty() {
                bail!(
                    "no password for registry user {username}: pipe it to --password-stdin, or \
                     set {PASSWORD_ENV}"
                );
            }
            Auth::Basic { username, password }
        }
    };
    Ok(PushOptions {
        auth,
        insecure_registries: args.insecure_registry.clone(),
        force: args.force,
    })
}

fn json_report(
    args: &PackageArgs,
    module: &WasmModule,
    target: &ImageRef,
    image: &Image,
    layout: Option<&Path>,
    pushed: Option<&Pushed>,
    pinned: &[Updated],
) -> serde_json::Value {
    let blob = |blob: &meshguard_filter_package::image::Blob| {
        serde_json::json!({
            "mediaType": blob.media_type,
            "digest": blob.digest,
            "size": blob.bytes.len(),
        })
    };
    serde_json::json!({
        "module": {
            "path": args.module.display().to_string(),
            "size": module.bytes().len(),
            "sha256": module.sha256(),
            "abiVersion": module.abi_version(),
        },
        "image": target.to_string(),
        "variant": image.variant.as_str(),
        "digest": image.digest,
        "pinnedUrl": target.pinned_url(&image.digest),
        "manifestSize": image.manifest.len(),
        "config": blob(&image.config),
        "layers": image.layers.iter().map(blob).collect::<Vec<_>>(),
        "layout": layout.map(|dir| dir.display().to_string()),
        "pushed": pushed.map(|pushed| match pushed {
            Pushed::Created => serde_json::json!({"tag": "created"}),
            Pushed::Unchanged => serde_json::json!({"tag": "unchanged"}),
            Pushed::Moved { from } => serde_json::json!({"tag": "moved", "from": from}),
        }),
        "wasmPlugins": pinned.iter().map(|file| serde_json::json!({
            "path": file.path.display().to_string(),
            "plugins": file.plugins,
            "changed": file.changed,
        })).collect::<Vec<_>>(),
    })
}
