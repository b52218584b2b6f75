//! The binary's command line, in the library so that the deployment manifest's container args are
//! checked against the real flags (`tests/manifests.rs`), not against a copy of them.
//!
//! ```text
//! meshguard-rate-limit-service serve --config /etc/meshguard/ratelimit --redis-url redis://redis:6379
//! meshguard-rate-limit-service check --config /etc/meshguard/ratelimit
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::serve::Settings;
use crate::store::RedisSettings;

/// `meshguard-rate-limit-service`.
#[derive(Debug, Parser)]
#[command(
    name = "meshguard-rate-limit-service",
    about = "A global rate-limit service for Envoy (RLS v3 over gRPC), counting in Redis"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve RLS v3 over gRPC, and /healthz, /readyz and /metrics over HTTP.
    Serve(ServeArgs),
    /// Validate configuration files and print their limits; exit 1 if one is invalid.
    Check(CheckArgs),
}

/// Flags of `serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration files or folders (every *.yaml / *.yml in a folder), envoyproxy/ratelimit's
    /// format; repeat for more.
    #[arg(long = "config", required = true)]
    pub config: Vec<PathBuf>,
    /// Redis to count in: redis://[user:password@]host:port[/db].
    #[arg(long)]
    pub redis_url: String,
    /// gRPC (RLS v3) listen address.
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub grpc_listen: SocketAddr,
    /// HTTP listen address for /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub http_listen: SocketAddr,
    /// The most one decision may take in Redis, connecting included; beyond it the answer is
    /// UNKNOWN. Keep it under the callers' timeout.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub redis_timeout: Duration,
    /// Multiplexed Redis connections (concurrent decisions are pipelined on each).
    #[arg(long, default_value_t = 2)]
    pub redis_connections: usize,
    /// Prefix of every Redis key this service writes.
    #[arg(long, default_value = "meshguard:rls:")]
    pub key_prefix: String,
    /// How often to look for configuration changes (a ConfigMap update); 0 turns it off.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// On SIGTERM, how long to keep serving while /readyz fails, so endpoints are withdrawn
    /// before the listeners close.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// After the drain, how long in-flight requests may take before the process exits anyway.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
}

/// Flags of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Configuration files or folders.
    #[arg(long = "config", required = true)]
    pub config: Vec<PathBuf>,
}

impl ServeArgs {
    /// The settings these flags describe.
    pub fn settings(&self) -> Settings {
        Settings {
            config_paths: self.config.clone(),
            grpc_listen: self.grpc_listen,
            http_listen: self.http_listen,
            redis: RedisSettings {
                url: self.redis_url.clone(),
                connections: self.redis_connections.max(1),
                timeout: self.redis_timeout,
            },
            key_prefix: self.key_prefix.clone(),
            reload_interval: self.reload_interval,
            drain_delay: self.drain_delay,
            shutdown_timeout: self.shutdown_timeout,
        }
    }
}

/// Parses `250ms`, `10s`, `0.1s`, `2m`, `1h` or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .ok_or_else(|| format!("`{text}` needs a unit: ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| format!("`{text}` is not a duration such as 250ms, 10s, 2m"))?;
    let seconds = match unit {
        "ms" => number / 1_000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3_600.0,
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit `{unit}` (ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("1.2.3s").is_err());
    }

    #[test]
    fn serve_needs_config_and_redis() {
        let err = Cli::try_parse_from(["x", "serve", "--redis-url", "redis://r"]).unwrap_err();
        assert!(err.to_string().contains("--config"), "{err}");
        let cli = Cli::try_parse_from([
            "x",
            "serve",
            "--config",
            "a.yaml",
            "--config",
            "dir",
            "--redis-url",
            "redis://r:6379",
            "--redis-timeout",
            "50ms",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve");
        };
        let settings = args.settings();
        assert_eq!(settings.config_paths.len(), 2);
        assert_eq!(settings.redis.timeout, Duration::from_millis(50));
        assert_eq!(settings.grpc_listen.port(), 8081);
    }
}
