//! Pushing an image to a registry with `oci-client` (the OCI distribution API: blob uploads,
//! then the manifest under its tag).
//!
//! - **Exactly these bytes.** The manifest is pushed raw, so the registry stores, and hashes,
//!   the bytes whose digest was printed and pinned; after the push the tag is read back and its
//!   digest compared.
//! - **Tags are not moved silently.** A tag that already names another image is an error unless
//!   `force` is set; one that already names this very image is left as it is (a release that
//!   is run again, from the same commit, is a no-op).
//! - **Plain HTTP only where it cannot be intercepted**: registries on this machine (loopback,
//!   by spelling) and registries the caller names as insecure. Everything else is HTTPS with
//!   the platform's trust store (rustls, the ring provider the workspace already uses).
//! - **Anonymous or basic authentication**, as registries answer `/v2/` (Docker's token
//!   flow too, which oci-client follows for bearer challenges).

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::error::{Error, Result};
use crate::image::{Image, MANIFEST_MEDIA_TYPE};
use crate::reference::ImageRef;

/// How to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Credentials, if any.
    pub auth: Auth,
    /// Registries (`host[:port]`, exactly as in references) that may be spoken to over plain
    /// HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Move the tag even if it names another image.
    pub force: bool,
}

/// Registry credentials.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    Anonymous,
    /// HTTP basic authentication (or the token flow a registry starts from it).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Anonymous => f.write_str("Anonymous"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

impl Auth {
    fn who(&self) -> String {
        match self {
            Self::Anonymous => "anonymous access".to_string(),
            Self::Basic { username, .. } => format!("user {username}"),
        }
    }

    fn to_oci(&self) -> RegistryAuth {
        match self {
            Self::Anonymous => RegistryAuth::Anonymous,
            Self::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
        }
    }
}

/// What a push did to the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The tag is new.
    Created,
    /// The tag already named this image; nothing was uploaded.
    Unchanged,
    /// The tag named another image (`force` was set); it names this one now.
    Moved {
        /// The digest the tag named before.
        from: String,
    },
}

/// Whether `image` would be fetched over plain HTTP with `options`.
pub fn uses_plain_http(image: &ImageRef, options: &PushOptions) -> bool {
    image.is_loopback()
        || options
            .insecure_registries
            .iter()
            .any(|registry| registry == image.registry())
}

/// Pushes `image` as `target`: blobs the registry lacks, then the manifest, then checks the
/// digest the registry reports for the tag.
pub async fn push(target: &ImageRef, image: &Image, options: &PushOptions) -> Result<Pushed> {
    let session = Session::new(target, options)?;
    let existing = session.tag_digest().await?;
    let outcome = match existing {
        Some(existing) if existing == image.digest => return Ok(Pushed::Unchanged),
        Some(existing) if !options.force => {
            return Err(Error::TagExists {
                image: target.to_string(),
                existing,
                new: image.digest.clone(),
            });
        }
        Some(existing) => Pushed::Moved { from: existing },
        None => Pushed::Created,
    };
    for blob in image.blobs() {
        let action = || format!("store blob {}", blob.digest);
        let present = session
            .client
            .blob_exists(&session.reference, &blob.digest)
            .await
            .map_err(|err| session.classify(&action(), err))?;
        if !present {
            session
                .client
                .push_blob(&session.reference, blob.bytes.clone(), &blob.digest)
                .await
                .map_err(|err| session.classify(&action(), err))?;
        }
    }
    session
        .client
        .push_manifest_raw(
            &session.reference,
            image.manifest.clone(),
            http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
        )
        .await
        .map_err(|err| session.classify("store the manifest", err))?;
    match session.tag_digest().await? {
        Some(stored) if stored == image.digest => Ok(outcome),
        stored => Err(Error::Registry {
            registry: target.registry().to_string(),
            action: format!("keep the manifest under {}", target.tag()),
            reason: format!(
                "the tag names {} after the push, not {}",
                stored.as_deref().unwrap_or("nothing"),
                image.digest
            ),
        }),
    }
}

/// [`push`] on a runtime of its own, for synchronous callers (the CLI).
pub fn push_blocking(target: &ImageRef, image: &Image, options: &PushOptions) -> Result<Pushed> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Error::Registry {
            registry: target.registry().to_string(),
            action: "start the network runtime".to_string(),
            reason: err.to_string(),
        })?
        .block_on(push(target, image, options))
}

/// A client configured for one reference.
struct Session {
    client: Client,
    reference: Reference,
    registry: String,
    scheme: &'static str,
    auth: Auth,
}

impl Session {
    fn new(target: &ImageRef, options: &PushOptions) -> Result<Self> {
        // reqwest is built without a default crypto provider; the workspace's is ring. A
        // provider installed earlier (by the caller) is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let plain_http = uses_plain_http(target, options);
        let protocol = if plain_http {
            ClientProtocol::HttpsExcept(vec![target.registry().to_string()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("meshguard/", env!("CARGO_PKG_VERSION")),
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        // `Client::new` would fall back to a default (HTTPS-everywhere) client on error.
        let client = Client::try_from(config).map_err(|err| Error::Registry {
            registry: target.registry().to_string(),
            action: "set up the HTTP client".to_string(),
            reason: chain(&err),
        })?;
        Ok(Self {
            client,
            reference: target.to_oci(),
            registry: target.registry().to_string(),
            scheme: if plain_http { "http" } else { "https" },
            auth: options.auth.clone(),
        })
    }

    /// The digest the tag names now, or `None` when the tag (or the repository) is unknown.
    async fn tag_digest(&self) -> Result<Option<String>> {
        match self
            .client
            .fetch_manifest_digest(&self.reference, &self.auth.to_oci())
            .await
        {
            Ok(digest) => Ok(Some(digest)),
            Err(err) if is_not_found(&err) => Ok(None),
            Err(err) => Err(self.classify("look up the tag", err)),
        }
    }

    fn classify(&self, action: &str, err: OciDistributionError) -> Error {
        let unauthorized = |reason: String| Error::Unauthorized {
            registry: self.registry.clone(),
            who: self.auth.who(),
            reason,
        };
        match &err {
            OciDistributionError::RequestError(request)
                if request.is_connect() || request.is_timeout() =>
            {
                Error::Unreachable {
                    registry: self.registry.clone(),
                    scheme: self.scheme,
                    reason: chain(request),
                    hint: if self.scheme == "https" {
                        " (and that it serves HTTPS; name a plain-HTTP registry on a trusted \
                         network with --insecure-registry)"
                    } else {
                        ""
                    },
                }
            }
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => unauthorized(chain(&err)),
            OciDistributionError::ServerError { code, message, .. }
                if *code == 401 || *code == 403 =>
            {
                unauthorized(message.clone())
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|e| {
                    matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)
                }) =>
            {
                unauthorized(envelope.to_string())
            }
            _ => Error::Registry {
                registry: self.registry.clone(),
                action: action.to_string(),
                reason: chain(&err),
            },
        }
    }
}

fn is_not_found(err: &OciDistributionError) -> bool {
    match err {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().all(|error| {
                matches!(
                    error.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            })
        }
        _ => false,
    }
}

/// An error and its sources, `: `-separated (reqwest keeps "connection refused" two levels
/// down).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_named_registries() {
        let named = PushOptions {
            insecure_registries: vec!["registry.lab:5000".to_string()],
            ..PushOptions::default()
        };
        let cases = [
            ("127.0.0.1:5000/m/stamp:1", PushOptions::default(), true),
            ("localhost:5000/m/stamp:1", PushOptions::default(), true),
            ("registry.lab:5000/m/stamp:1", PushOptions::default(), false),
            ("registry.lab:5000/m/stamp:1", named.clone(), true),
            // Named means exactly that host and port.
            ("registry.lab/m/stamp:1", named.clone(), false),
            ("registry.lab:5001/m/stamp:1", named, false),
            ("ghcr.io/m/stamp:1", PushOptions::default(), false),
        ];
        for (reference, options, plain) in cases {
            let image = ImageRef::parse(reference).unwrap();
            assert_eq!(uses_plain_http(&image, &options), plain, "{reference}");
        }
    }

    #[test]
    fn credentials_never_reach_debug_output() {
        let auth = Auth::Basic {
            username: "ci".to_string(),
            password: "s3cret".to_string(),
        };
        let text = format!(
            "{:?}",
            PushOptions {
                auth,
                ..PushOptions::default()
            }
        );
        assert!(text.contains("ci") && !text.contains("s3cret"), "{text}");
    }
}
