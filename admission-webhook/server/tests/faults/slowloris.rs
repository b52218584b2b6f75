//! Slow and idle clients (slowloris): connections that never start TLS, never send a request,
//! send their headers a byte at a time, or their body a byte at a time. Each is closed by the
//! server once its timeout passes, and meanwhile the ordinary reviews are served as usual.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::load::{self, Plan, Summary};
use crate::{Webhook, figure, standard_mix, test_policies};

/// What a slow client does once connected.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slow {
    /// TCP only, no TLS handshake.
    TcpIdle,
    /// TLS, then nothing.
    TlsIdle,
    /// TLS, then the request headers one byte every 100 ms.
    TrickleHeaders,
    /// TLS, full headers announcing a 100 kB body, then the body one byte every 100 ms.
    TrickleBody,
}

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(meshguard_admission_webhook::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Writes `prefix` at once, then trickles `bytes` one every 100 ms, until the server closes
/// the connection; returns whether it did within `limit`.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    prefix: &[u8],
    bytes: Vec<u8>,
    limit: Duration,
) -> bool {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let prefix = prefix.to_vec();
    let writing = async move {
        if writer.write_all(&prefix).await.is_err() {
            return;
        }
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    let reading = async move {
        let mut buf = [0u8; 1024];
        // A response (408) may come first; the connection ends with EOF or an error.
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, async {
        tokio::select! {
            () = writing => {}
            () = reading => {}
        }
    })
    .await
    .is_ok()
}

/// One slow client: how long until the server closed it (None: it never did within `limit`).
async fn slow_client(
    kind: Slow,
    addr: std::net::SocketAddr,
    connector: TlsConnector,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).await.ok()?;
    let closed = match kind {
        Slow::TcpIdle => trickle(tcp, b"", Vec::new(), limit).await,
        _ => {
            let name = ServerName::try_from("localhost").ok()?;
            let tls = connector.connect(name, tcp).await.ok()?;
            let (prefix, bytes): (&[u8], Vec<u8>) = match kind {
                Slow::TrickleHeaders => (
                    b"",
                    b"POST /validate HTTP/1.1\r\nHost: meshguard\r\nContent-Type: application/json\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec(),
                ),
                Slow::TrickleBody => (
                    b"POST /validate HTTP/1.1\r\nHost: meshguard\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n",
                    vec![b' '; 1000],
                ),
                Slow::TlsIdle | Slow::TcpIdle => (b"", Vec::new()),
            };
            trickle(tls, prefix, bytes, limit).await
        }
    };
    closed.then(|| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_cut_off_and_do_not_starve_reviews() {
    let _serial = crate::serial().await;
    let timeout = Duration::from_secs(1);
    let webhook = Webhook::start(
        "slowloris",
        &test_policies(),
        "failurePolicy: Fail\nevaluationTimeout: 2s\nmaxConnections: 512\n\
         timeouts: {tlsHandshake: 1s, requestHeaders: 1s, requestBody: 1s}",
    )
    .await;
    let client = webhook.client();
    let rss_before = webhook.rss_kib();
    let connector = connector(webhook.pki.ca_pem());
    let limit = Duration::from_secs(10);
    let mut slow = Vec::new();
    for index in 0..240 {
        let kind = [
            Slow::TcpIdle,
            Slow::TlsIdle,
            Slow::TrickleHeaders,
            Slow::TrickleBody,
        ][index % 4];
        let (addr, connector) = (webhook.addr, connector.clone());
        slow.push((
            kind,
            tokio::spawn(slow_client(kind, addr, connector, limit)),
        ));
    }
    let plan = Plan::new(100.0, Duration::from_secs(4), standard_mix());
    let records = load::run(&client, &plan).await;
    let mut closed_after: Vec<(Slow, Option<Duration>)> = Vec::new();
    for (kind, task) in slow {
        closed_after.push((kind, task.await.unwrap()));
    }
    let rss_after = webhook.rss_kib();

    let summary = Summary::of(&records);
    figure(&format!(
        "slowloris: 240 slow clients beside 100 reviews/s: {}",
        summary.line()
    ));
    for kind in [
        Slow::TcpIdle,
        Slow::TlsIdle,
        Slow::TrickleHeaders,
        Slow::TrickleBody,
    ] {
        let times: Vec<f64> = closed_after
            .iter()
            .filter(|(k, _)| *k == kind)
            .filter_map(|(_, t)| t.map(|t| t.as_secs_f64()))
            .collect();
        let worst = times.iter().copied().fold(0.0, f64::max);
        figure(&format!(
            "slowloris: {kind:?}: {} of 60 closed by the server, the last after {worst:.2} s (timeout {timeout:?})",
            times.len()
        ));
    }
    figure(&format!(
        "slowloris: RSS {} MiB before, {} MiB after",
        rss_before / 1024,
        rss_after / 1024
    ));
    assert_eq!(
        summary.answered,
        records.len(),
        "{}",
        load::problems(&records)
    );
    for (kind, closed) in &closed_after {
        let closed =
            closed.unwrap_or_else(|| panic!("a {kind:?} client was never closed by the server"));
        assert!(
            closed < timeout + Duration::from_secs(4),
            "a {kind:?} client was closed only after {closed:?}"
        );
    }
    assert!(
        rss_after < rss_before + 128 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
}
