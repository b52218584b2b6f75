//! The process: configuration, Redis, the gRPC and HTTP listeners, reloads and shutdown.
//!
//! Start-up fails only on what an operator must fix: an invalid configuration (with file, line
//! and field) or a listener that cannot bind. Redis is connected lazily and may be down at start.
//! A configuration change (a ConfigMap update swaps the mounted files) is picked up every
//! `reload_interval`; an invalid new version is logged, counted, and the last good one stays.
//!
//! On SIGTERM: `/readyz` fails at once, the listeners keep serving for `drain_delay` (endpoints
//! are withdrawn meanwhile), then both stop accepting, gRPC sends GOAWAY so Envoy moves to
//! another replica, and in-flight decisions finish within `shutdown_timeout`.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::config::{Config, config_files};
use crate::decide::{ConfigHandle, Decider};
use crate::grpc::Rls;
use crate::http::{Health, router};
use crate::metrics::Metrics;
use crate::store::{RedisSettings, RedisStore};

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Configuration files or folders.
    pub config_paths: Vec<PathBuf>,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// HTTP listen address.
    pub http_listen: SocketAddr,
    /// Redis.
    pub redis: RedisSettings,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// How often to look for configuration changes (zero: never).
    pub reload_interval: Duration,
    /// How long to serve on after SIGTERM while `/readyz` fails.
    pub drain_delay: Duration,
    /// How long in-flight requests may take after the drain.
    pub shutdown_timeout: Duration,
}

/// Serves until `shutdown` resolves, then drains and stops.
pub async fn serve(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let config = Config::load(&settings.config_paths).map_err(|err| {
        metrics.config_load(None);
        anyhow::anyhow!("invalid rate-limit configuration: {err}")
    })?;
    metrics.config_load(Some(config.domain_names().len()));
    log_config(&config);
    let fingerprint = fingerprint(&settings.config_paths);
    let handle = Arc::new(ConfigHandle::new(config));
    let store = RedisStore::new(&settings.redis).context("setting up the Redis connections")?;
    let decider = Arc::new(Decider::new(
        handle.clone(),
        store,
        metrics.clone(),
        settings.key_prefix.clone(),
    ));
    let grpc_listener = TcpListener::bind(settings.grpc_listen)
        .await
        .with_context(|| format!("binding the gRPC listener {}", settings.grpc_listen))?;
    let http_listener = TcpListener::bind(settings.http_listen)
        .await
        .with_context(|| format!("binding the HTTP listener {}", settings.http_listen))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    tracing::info!(
        grpc_listen = %grpc_addr,
        http_listen = %http_addr,
        redis_timeout_ms = settings.redis.timeout.as_millis() as u64,
        redis_connections = settings.redis.connections,
        "listening"
    );

    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(Rls::server(decider))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            stopped(stop_rx.clone()),
        );
    let http = axum::serve(http_listener, router(health.clone(), metrics.clone()))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let mut grpc = tokio::spawn(grpc);
    let mut http = tokio::spawn(async move { http.await });
    if !settings.reload_interval.is_zero() {
        tokio::spawn(reload_loop(
            settings.config_paths.clone(),
            settings.reload_interval,
            fingerprint,
            handle,
            metrics,
            stop_rx,
        ));
    }

    tokio::select! {
        () = shutdown => {}
        result = &mut grpc => return Err(anyhow::anyhow!("the gRPC server stopped: {result:?}")),
        result = &mut http => return Err(anyhow::anyhow!("the HTTP server stopped: {result:?}")),
    }
    health.draining.store(true, Ordering::SeqCst);
    tracing::info!(
        drain_ms = settings.drain_delay.as_millis() as u64,
        "shutting down: /readyz fails, serving on while endpoints are withdrawn"
    );
    tokio::time::sleep(settings.drain_delay).await;
    let _ = stop_tx.send(true);
    let finished = tokio::time::timeout(settings.shutdown_timeout, async {
        let grpc = grpc.await;
        let http = http.await;
        (grpc, http)
    })
    .await;
    match finished {
        Ok((Ok(Ok(())), Ok(Ok(())))) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(other) => Err(anyhow::anyhow!(
            "a listener failed while stopping: {other:?}"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "requests were still in flight after {:?}",
            settings.shutdown_timeout
        )),
    }
}

fn log_config(config: &Config) {
    for (domain, limits) in config.limits() {
        tracing::info!(domain, limits = limits.len(), "configuration loaded");
    }
}

/// A hash of the configuration files' names and contents (`None` if one cannot be read).
fn fingerprint(paths: &[PathBuf]) -> Option<u64> {
    let files = config_files(paths).ok()?;
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.hash(&mut hasher);
        std::fs::read(&file).ok()?.hash(&mut hasher);
    }
    Some(hasher.finish())
}

async fn reload_loop(
    paths: Vec<PathBuf>,
    interval: Duration,
    mut last: Option<u64>,
    handle: Arc<ConfigHandle>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let paths_for_read = paths.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&paths_for_read)).await
        else {
            continue;
        };
        if now == last {
            continue;
        }
        last = now;
        let paths_for_load = paths.clone();
        match tokio::task::spawn_blocking(move || Config::load(&paths_for_load)).await {
            Ok(Ok(config)) => {
                metrics.config_load(Some(config.domain_names().len()));
                log_config(&config);
                handle.replace(config);
            }
            Ok(Err(err)) => {
                metrics.config_load(None);
                tracing::error!(
                    error = %err,
                    "the changed rate-limit configuration is invalid; keeping the last good one"
                );
            }
            Err(_) => {}
        }
    }
}
