//! A throwaway certificate authority (rcgen) for the tests, the demo and the load benchmark: a CA
//! and server certificates for `localhost`, 127.0.0.1 and the webhook's Service name. In a
//! cluster, cert-manager issues the certificate (see `deploy/certificate.yaml`).

/// A CA able to sign server certificates.
pub struct Pki {
    /// The CA certificate (PEM) that clients trust.
    pub ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    /// A fresh CA named after `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key)?;
        Ok(Self {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// (certificate PEM, key PEM) for `localhost`, 127.0.0.1 and
    /// `meshguard-admission-webhook.meshguard-system.svc`, with `common_name` as subject.
    pub fn server_cert(&self, common_name: &str) -> anyhow::Result<(String, String)> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![
            "localhost".to_string(),
            "meshguard-admission-webhook.meshguard-system.svc".to_string(),
        ])?;
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
                127, 0, 0, 1,
            ])));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}
