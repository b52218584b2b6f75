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
//!
//! A connection the server closes during shutdown is closed *lingering*, as nginx and Apache do:
//! TLS close_notify and a TCP FIN first, then what the client still sends is read and dropped
//! until it closes its side (for at most [`LINGER`]). Closing a socket with unread bytes makes the
//! kernel answer with a reset, and a client that had just written a review on a kept-alive
//! connection (or finished its handshake) would see `connection reset` — a review lost, for all
//! it can tell — instead of a clean close before any answer, which it can retry elsewhere.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// How long a connection closed during shutdown keeps reading what its client still sends.
const LINGER: Duration = Duration::from_secs(1);

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
            let mut stream = stream;
            let mut stopped = false;
            let handshake = {
                let accept =
                    tokio::time::timeout(limits.handshake_timeout, acceptor.accept(&mut stream));
                tokio::pin!(accept);
                let ended = tokio::select! {
                    handshake = accept.as_mut() => Some(handshake),
                    _ = stop.changed() => None,
                };
                match ended {
                    Some(handshake) => Some(handshake),
                    // A handshake under way at shutdown is given a moment to finish, so that
                    // the connection can be closed with close_notify: a client that has sent
                    // its Finished holds the connection open, and a bare FIN reads as a
                    // truncated one.
                    None => {
                        stopped = true;
                        tokio::time::timeout(LINGER, accept).await.ok()
                    }
                }
            };
            let mut tls_stream = match handshake {
                Some(Ok(Ok(s))) => s,
                Some(Ok(Err(e))) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Some(Err(_)) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
                None => {
                    linger_close(&mut stream).await;
                    return;
                }
            };
            if stopped {
                let _ = tokio::time::timeout(LINGER, tls_stream.shutdown()).await;
                drop(tls_stream);
                linger_close(&mut stream).await;
                return;
            }
            let service = TowerToHyperService::new(app);
            let mut conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(&mut tls_stream), service);
            // Polled without hyper's own shutdown of the stream, so that it can be closed
            // lingering below when the server is the one ending it.
            let mut stopping = std::pin::pin!(stop.changed());
            let result = std::future::poll_fn(|cx| {
                if !stopped && stopping.as_mut().poll(cx).is_ready() {
                    stopped = true;
                    std::pin::Pin::new(&mut conn).graceful_shutdown();
                }
                conn.poll_without_shutdown(cx)
            })
            .await;
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(conn);
            // close_notify, then the FIN; bounded, as a client that reads nothing could hold it.
            let _ = tokio::time::timeout(LINGER, tls_stream.shutdown()).await;
            drop(tls_stream);
            if stopped {
                linger_close(&mut stream).await;
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

/// Sends the FIN, then reads and drops what the client still sends until it closes its side, or
/// for [`LINGER`] at most (see the module docs).
async fn linger_close(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(1..) = stream.read(&mut sink).await {}
    })
    .await;
}

fn slots_in_use(slots: &Semaphore, max: usize) -> usize {
    max.saturating_sub(slots.available_permits())
}
