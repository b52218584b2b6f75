//! The TLS listener: accepts TCP connections (at most [`Limits::max_connections`] at once),
//! completes the TLS handshake and reads each request's headers within their timeouts, and
//! serves HTTP/1.1 keep-alive connections with the router.
//!
//! Slow or idle clients (slowloris) cannot pin the server: a connection that does not finish its
//! handshake, or its request headers, in time is closed (hyper's header timeout also closes a
//! kept-alive connection idle that long), and the request body has its own deadline in
//! [`crate::http`]. Past the connection bound, new connections wait in the kernel's listen
//! backlog until one closes, so memory stays bounded by the limits, whatever the load.
//!
//! On shutdown (SIGTERM) the listener is closed at once, so new connections are refused; every
//! open connection finishes the request it is serving (kept-alive connections are closed after
//! it), and the server returns when the last one has, or when the grace period runs out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// Connection limits and timeouts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers, counted from when the connection starts waiting
    /// for them (so also how long a kept-alive connection may stay idle).
    pub header_timeout: Duration,
    /// How long open connections may take to finish after shutdown begins.
    pub grace_period: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            grace_period: Duration::from_secs(15),
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then drains the open
/// connections (see the module docs).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all of them are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = stop_rx.clone();
        let open = open_tx.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _open = open;
            let tls_stream = tokio::select! {
                handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)) => {
                    match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
                _ = stop.changed() => return,
            };
            let service = TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls_stream), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    // New connections are refused from here on.
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_tx);
    let open = slots_in_use(&slots, max_connections);
    tracing::info!(
        open_connections = open,
        grace_period_ms = limits.grace_period.as_millis() as u64,
        "shutting down: listener closed, finishing open requests"
    );
    if tokio::time::timeout(limits.grace_period, open_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!(
            open_connections = slots_in_use(&slots, max_connections),
            "grace period over; closing the remaining connections"
        );
    }
    Ok(())
}

fn slots_in_use(slots: &Semaphore, max: usize) -> usize {
    max.saturating_sub(slots.available_permits())
}
