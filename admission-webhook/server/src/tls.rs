//! TLS with rustls from PEM certificate and key files, reloaded when they change on disk
//! (cert-manager rotates the Secret, the kubelet swaps the mounted files). The server's
//! certificate resolver hands out the current certificate for each new handshake, so rotation
//! never drops an open connection: connections keep the certificate they were established with.
//!
//! A half-written pair (key and certificate from different generations, unparsable PEM) is
//! rejected and the previous certificate stays in use until the next check.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider used by the server and the clients here (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and private key into a key pair rustls can serve, checking
/// that the key matches the certificate.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the certificate file");
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow::anyhow!("private key PEM: {e}"))?;
    let certified = CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| anyhow::anyhow!("certificate and key: {e}"))?;
    Ok(certified)
}

/// The `notAfter` (Unix seconds) of the first certificate of a PEM chain: the served leaf.
pub fn not_after(cert_pem: &[u8]) -> Option<i64> {
    let leaf = CertificateDer::pem_slice_iter(cert_pem).next()?.ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// The current certificate, swapped on rotation.
#[derive(Debug)]
pub struct CertStore {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<(Vec<u8>, Vec<u8>, Arc<CertifiedKey>)>,
}

impl CertStore {
    /// Loads the certificate and key files (fails if they are missing or invalid).
    pub fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Arc<Self>> {
        let cert = std::fs::read(cert_file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", cert_file.display()))?;
        let key = std::fs::read(key_file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", key_file.display()))?;
        let certified = certified_key(&cert, &key)?;
        Ok(Arc::new(Self {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new((cert, key, Arc::new(certified))),
        }))
    }

    /// Re-reads the files; swaps the certificate when they changed and parse. Returns whether a
    /// new certificate is now served.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let cert = std::fs::read(&self.cert_file)?;
        let key = std::fs::read(&self.key_file)?;
        let unchanged = self
            .current
            .read()
            .map(|current| current.0 == cert && current.1 == key)
            .unwrap_or(false);
        if unchanged {
            return Ok(false);
        }
        let certified = certified_key(&cert, &key)?;
        if let Ok(mut current) = self.current.write() {
            *current = (cert, key, Arc::new(certified));
        }
        Ok(true)
    }

    /// When the served certificate expires: its `notAfter` in Unix seconds (`None` if the
    /// leaf certificate does not parse as X.509, which [`certified_key`] would have refused).
    pub fn not_after(&self) -> Option<i64> {
        let current = self.current.read().ok()?;
        not_after(&current.0)
    }

    /// Checks the files every `interval` until the task is dropped; `expiry` is told the served
    /// certificate's `notAfter` at the start and after each reload (the certificate-expiry gauge).
    pub async fn watch(self: Arc<Self>, interval: Duration, expiry: impl Fn(Option<i64>)) {
        expiry(self.not_after());
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.reload() {
                Ok(true) => {
                    tracing::info!(cert = %self.cert_file.display(), "TLS certificate reloaded");
                    expiry(self.not_after());
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "TLS certificate not reloaded; keeping the current one")
                }
            }
        }
    }

    /// The rustls server configuration serving the current certificate (HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<ServerConfig>> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| current.2.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_after_reads_the_leaf_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["webhook".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        let pem = params.self_signed(&key).unwrap().pem();
        // 2031-05-17T00:00:00Z
        assert_eq!(not_after(pem.as_bytes()), Some(1_936_742_400));
        assert_eq!(not_after(b"not a certificate"), None);
    }
}
