//! A small HTTPS client that trusts a given CA, speaking to the webhook the way the API server
//! does (POST of AdmissionReview JSON over a kept-alive TLS connection). The tests, the demo and
//! the load benchmark use it; it is part of the library so all three exercise the same path.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Connects to one server, trusting one CA.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    addr: SocketAddr,
    server_name: ServerName<'static>,
}

/// A response: status, body and the certificate the server presented.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TlsClient {
    /// A client for `addr`, verifying the server certificate for `server_name` against the CA.
    pub fn new(addr: SocketAddr, ca_pem: &[u8], server_name: &str) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert.map_err(|e| anyhow::anyhow!("CA PEM: {e}"))?)?;
        }
        let mut config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Full handshakes only: every connection verifies the certificate served at that moment
        // (a resumed session would carry the certificate of the session it resumes).
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            addr,
            server_name: ServerName::try_from(server_name.to_string())?,
        })
    }

    /// Opens a kept-alive connection.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await?;
        let peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| cert.as_ref().to_vec())
            .unwrap_or_default();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Connection { sender, peer_cert })
    }

    /// One request on a fresh connection.
    pub async fn post_once(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        self.connect().await?.post(path, body).await
    }
}

/// An open connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    peer_cert: Vec<u8>,
}

impl Connection {
    /// The DER certificate the server presented on this connection.
    pub fn peer_certificate(&self) -> &[u8] {
        &self.peer_cert
    }

    /// POSTs JSON.
    pub async fn post(&mut self, path: &str, body: Vec<u8>) -> anyhow::Result<Reply> {
        let request = hyper::Request::post(path)
            .header("host", "meshguard")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        self.send(request).await
    }

    /// GETs a path.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Reply> {
        let request = hyper::Request::get(path)
            .header("host", "meshguard")
            .body(Full::new(Bytes::new()))?;
        self.send(request).await
    }

    async fn send(&mut self, request: hyper::Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes().to_vec();
        Ok(Reply { status, body })
    }
}
