//! A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8), the
//! registry most private registries and mirrors are built on.
//!
//! The package is installed with apt-get on first use when missing (a file lock under
//! `target/tools/` makes parallel test binaries install it once). The package's own config
//! listens on :5000 with htpasswd auth for a system service; tests never use it. Each
//! [`Registry`] writes its own config: 127.0.0.1 on a free port, filesystem storage in a fresh
//! folder under `target/registry-runs/`, anonymous access or basic auth with a fixed test user.
//! It runs in its own process group, is killed on drop, and its log is printed when the owning
//! test panics.
//!
//! [`Registry::manifest`] and [`Registry::blob`] read images back over the plain distribution
//! API (ureq, no OCI library), so what a test checks does not go through the client that
//! pushed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use crate::paths::target_dir;
use crate::process::{Process, free_port};

/// Where Debian's package puts the binary.
const BINARY: &str = "/usr/bin/docker-registry";

/// The user of a registry started with [`Registry::start_with_basic_auth`].
pub const TEST_USER: &str = "meshguard-ci";
/// Its password.
pub const TEST_PASSWORD: &str = "meshguard-test-password";
/// bcrypt (cost 4) of [`TEST_PASSWORD`], as an htpasswd file holds it.
const TEST_PASSWORD_BCRYPT: &str = "$2b$04$bA3ltqZ5P3Snhz.Ucigp.uWsXHixzUEczxVuGjmTjdj5JNNm2JwGS";

/// Returns the registry binary, installing Debian's `docker-registry` with apt-get if missing.
pub fn registry_binary() -> anyhow::Result<PathBuf> {
    let binary = PathBuf::from(BINARY);
    if binary.is_file() {
        return Ok(binary);
    }
    let tools = target_dir().join("tools");
    fs::create_dir_all(&tools).with_context(|| format!("creating {}", tools.display()))?;
    let lock = File::create(tools.join("docker-registry.lock"))?;
    lock.lock().context("locking the docker-registry install")?;
    if binary.is_file() {
        return Ok(binary);
    }
    eprintln!(
        "meshguard: installing Debian's docker-registry (the test OCI registry) with apt-get"
    );
    // Other apt users on the machine: wait for dpkg's lock instead of failing.
    let install = || {
        apt(&[
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "docker-registry",
        ])
    };
    if install().is_err() {
        apt(&["update", "-q"])?;
        install().context("installing docker-registry (needs root and Debian's package lists)")?;
    }
    if !binary.is_file() {
        bail!("docker-registry was installed but {BINARY} is missing");
    }
    Ok(binary)
}

fn apt(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .context("running apt-get (is this a Debian machine?)")?;
    if !output.status.success() {
        bail!(
            "apt-get {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A running registry on 127.0.0.1.
#[derive(Debug)]
pub struct Registry {
    process: Process,
    port: u16,
    basic_auth: bool,
}

/// A manifest as the registry serves it.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The body, byte for byte.
    pub bytes: Vec<u8>,
    /// `Content-Type`.
    pub content_type: String,
    /// `Docker-Content-Digest`: the registry's own digest of the body.
    pub digest: String,
}

impl Manifest {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.bytes).context("the manifest is not JSON")
    }
}

impl Registry {
    /// Starts a registry that allows anonymous pushes and pulls.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(false)
    }

    /// Starts a registry that requires [`TEST_USER`] / [`TEST_PASSWORD`] (HTTP basic auth).
    pub fn start_with_basic_auth() -> anyhow::Result<Self> {
        Self::start_inner(true)
    }

    fn start_inner(basic_auth: bool) -> anyhow::Result<Self> {
        let binary = registry_binary()?;
        // The port is free when chosen but may be taken before the registry binds it: try again
        // with another one when the registry exits at start-up.
        let mut last_error = anyhow!("no attempt made");
        for _ in 0..5 {
            let mut process = Process::new("registry", "registry-runs", "registry.log")?;
            let dir = process.dir().to_path_buf();
            fs::create_dir_all(dir.join("storage"))?;
            let port = free_port()?;
            let config = dir.join("config.yml");
            fs::write(&config, config_yaml(&dir, port, basic_auth))?;
            if basic_auth {
                fs::write(
                    dir.join("htpasswd"),
                    format!("{TEST_USER}:{TEST_PASSWORD_BCRYPT}\n"),
                )?;
            }
            process.spawn(Command::new(&binary).arg("serve").arg(&config))?;
            // Ready: `GET /v2/` answers as a running registry does (200, or 401 when it asks
            // for credentials).
            let ready = if basic_auth { 401 } else { 200 };
            let url = format!("http://127.0.0.1:{port}/v2/");
            match process.wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
                crate::http::get(&url, &[]).is_ok_and(|response| response.status == ready)
            }) {
                Ok(()) => {
                    return Ok(Self {
                        process,
                        port,
                        basic_auth,
                    });
                }
                Err(err) => {
                    let retry = process.log().contains("address already in use");
                    last_error = err;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The storage folder (the registry's filesystem driver root).
    pub fn storage(&self) -> PathBuf {
        self.process.dir().join("storage")
    }

    /// `GET /v2/<repository>/manifests/<reference>` accepting OCI and Docker manifests.
    pub fn manifest(&self, repository: &str, reference: &str) -> anyhow::Result<Manifest> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url());
        let response = self
            .request(&url)
            .set(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, \
                 application/vnd.docker.distribution.manifest.v2+json",
            )
            .call()
            .with_context(|| format!("GET {url}"))?;
        let content_type = response.content_type().to_string();
        let digest = response
            .header("Docker-Content-Digest")
            .with_context(|| format!("GET {url}: no Docker-Content-Digest header"))?
            .to_string();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)?;
        Ok(Manifest {
            bytes,
            content_type,
            digest,
        })
    }

    /// `GET /v2/<repository>/blobs/<digest>`: the blob's bytes.
    pub fn blob(&self, repository: &str, digest: &str) -> anyhow::Result<Vec<u8>> {
        let url = self.blob_url(repository, digest);
        let response = self
            .request(&url)
            .call()
            .with_context(|| format!("GET {url}"))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)?;
        Ok(bytes)
    }

    /// The URL of a blob, as Envoy's `remote` data source fetches it.
    pub fn blob_url(&self, repository: &str, digest: &str) -> String {
        format!("{}/v2/{repository}/blobs/{digest}", self.url())
    }

    fn request(&self, url: &str) -> ureq::Request {
        let request = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(30))
            .build()
            .get(url);
        if self.basic_auth {
            request.set("Authorization", &basic_authorization())
        } else {
            request
        }
    }
}

fn config_yaml(dir: &Path, port: u16, basic_auth: bool) -> String {
    let auth = if basic_auth {
        format!(
            "auth:\n  htpasswd:\n    realm: meshguard-test\n    path: {}\n",
            dir.join("htpasswd").display()
        )
    } else {
        String::new()
    };
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n\
         {auth}",
        storage = dir.join("storage").display(),
    )
}

/// `Basic <base64(user:password)>` for the test user.
fn basic_authorization() -> String {
    use base64::Engine as _;
    let token =
        base64::engine::general_purpose::STANDARD.encode(format!("{TEST_USER}:{TEST_PASSWORD}"));
    format!("Basic {token}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_authorization_is_base64_of_user_and_password() {
        // echo -n 'meshguard-ci:meshguard-test-password' | base64
        assert_eq!(
            super::basic_authorization(),
            "Basic bWVzaGd1YXJkLWNpOm1lc2hndWFyZC10ZXN0LXBhc3N3b3Jk"
        );
    }
}
