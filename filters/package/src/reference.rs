//! Image references as a release names them: `REGISTRY/REPOSITORY[:TAG]`, always with the
//! registry spelled out.
//!
//! Docker's grammar (which `oci-spec` implements, and Istio's agent uses to resolve a
//! WasmPlugin url) reads a first component without a dot, colon or `localhost` as a Docker Hub
//! repository: `127.0.0.1:5000` becomes the tag `5000` of `docker.io/library/127.0.0.1`, and
//! `meshguard/canary` becomes `docker.io/meshguard/canary`. A push to the wrong registry is
//! public and permanent, so packaging refuses both and asks for the registry by name. A digest
//! is refused too: it is what packaging computes, not an input.

use std::net::IpAddr;

use oci_spec::distribution::Reference;

use crate::error::{Error, Result};

const EXAMPLE: &str = "registry.example.com/meshguard/rate-limit:0.1.0";

/// A validated reference with an explicit registry, a repository and a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: String,
}

impl ImageRef {
    /// Parses `REGISTRY/REPOSITORY[:TAG]` (the tag defaults to `latest`, as in Docker).
    pub fn parse(text: &str) -> Result<Self> {
        let problem = |problem: &str| Error::Reference {
            reference: text.to_string(),
            problem: problem.to_string(),
            example: EXAMPLE.to_string(),
        };
        let text = text.strip_prefix("oci://").unwrap_or(text);
        if text.contains('@') {
            return Err(problem(
                "has a digest; give a tag: the digest is what packaging computes",
            ));
        }
        let Some((first, rest)) = text.split_once('/') else {
            return Err(problem("has no repository"));
        };
        if !looks_like_registry(first) {
            return Err(problem(&format!(
                "does not start with a registry host (`{first}` would be read as a Docker Hub \
                 repository)"
            )));
        }
        if rest.is_empty() || rest.starts_with(':') {
            return Err(problem("has no repository"));
        }
        let parsed: Reference = text
            .parse()
            .map_err(|err| problem(&format!("is not a valid reference ({err})")))?;
        Ok(Self {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag: parsed.tag().unwrap_or("latest").to_string(),
        })
    }

    /// `host[:port]`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path (`meshguard/rate-limit`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The image's name: the last path component of the repository (`rate-limit`). WasmPlugins
    /// are matched to images by it, so a pin follows an image from registry to registry.
    pub fn name(&self) -> &str {
        image_name(&self.repository)
    }

    /// `oci://REGISTRY/REPOSITORY:TAG@sha256:HEX`: the WasmPlugin url that pins `digest`. The
    /// tag is for people; Istio's agent resolves the digest.
    pub fn pinned_url(&self, digest: &str) -> String {
        format!("oci://{self}@{digest}")
    }

    /// Whether the registry is this machine (127.0.0.0/8, `[::1]`, `localhost`): the only
    /// registries spoken to over plain HTTP unless named as insecure.
    pub fn is_loopback(&self) -> bool {
        is_loopback_registry(&self.registry)
    }

    pub(crate) fn to_oci(&self) -> Reference {
        Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            self.tag.clone(),
        )
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// The last path component of a repository or url path, without tag or digest.
pub fn image_name(repository: &str) -> &str {
    let path = repository.split('@').next().unwrap_or(repository);
    let last = path.rsplit('/').next().unwrap_or(path);
    last.split(':').next().unwrap_or(last)
}

/// Docker's rule for a first path component that names a registry.
fn looks_like_registry(component: &str) -> bool {
    !component.is_empty()
        && (component.contains('.') || component.contains(':') || component == "localhost")
}

/// Whether `host[:port]` is a loopback address or `localhost`, by its spelling alone (no name
/// resolution, which a hostile resolver could answer with 127.0.0.1).
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(bracketed) = registry.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        registry.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_keep_registry_repository_and_tag() {
        let cases = [
            (
                "registry.example.com/meshguard/rate-limit:0.1.0",
                ("registry.example.com", "meshguard/rate-limit", "0.1.0"),
            ),
            (
                "127.0.0.1:5000/meshguard/stamp:1",
                ("127.0.0.1:5000", "meshguard/stamp", "1"),
            ),
            ("localhost/canary", ("localhost", "canary", "latest")),
            (
                "oci://ghcr.io/meshguard/jwt-auth:2.0",
                ("ghcr.io", "meshguard/jwt-auth", "2.0"),
            ),
        ];
        for (text, (registry, repository, tag)) in cases {
            let image = ImageRef::parse(text).unwrap();
            assert_eq!(
                (image.registry(), image.repository(), image.tag()),
                (registry, repository, tag),
                "{text}"
            );
        }
        let image = ImageRef::parse("registry.example.com/meshguard/rate-limit:0.1.0").unwrap();
        assert_eq!(image.name(), "rate-limit");
        assert_eq!(
            image.pinned_url("sha256:abc"),
            "oci://registry.example.com/meshguard/rate-limit:0.1.0@sha256:abc"
        );
    }

    #[test]
    fn references_without_registry_or_repository_are_refused() {
        let cases = [
            ("127.0.0.1:5000", "has no repository"),
            ("registry.example.com", "has no repository"),
            ("registry.example.com/", "has no repository"),
            ("registry.example.com/:1.0", "has no repository"),
            (
                "meshguard/canary:1.0",
                "does not start with a registry host",
            ),
            ("canary", "has no repository"),
            ("ghcr.io/meshguard/canary@sha256:0000", "has a digest"),
            ("ghcr.io/Meshguard/canary:1", "is not a valid reference"),
        ];
        for (text, expected) in cases {
            let err = ImageRef::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains(&format!("`{text}`")), "{err}");
            assert!(err.contains("e.g. registry.example.com/"), "{err}");
        }
    }

    #[test]
    fn only_loopback_registries_are_loopback() {
        for registry in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:5000",
            "LOCALHOST",
            "[::1]:5000",
        ] {
            assert!(is_loopback_registry(registry), "{registry}");
        }
        for registry in [
            "registry.example.com",
            "10.0.0.1:5000",
            "localhost.example.com",
            "127.0.0.1.nip.io",
            "[fe80::1]:5000",
            "",
        ] {
            assert!(!is_loopback_registry(registry), "{registry}");
        }
    }

    #[test]
    fn image_names_ignore_registry_tag_and_digest() {
        for text in [
            "rate-limit",
            "meshguard/rate-limit",
            "ghcr.io/meshguard/rate-limit:0.1.0",
            "registry.example.com/meshguard/rate-limit:0.1.0@sha256:00",
            "registry.example.com/meshguard/rate-limit@sha256:00",
        ] {
            assert_eq!(image_name(text), "rate-limit", "{text}");
        }
    }
}
