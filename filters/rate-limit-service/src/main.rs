//! `meshguard-rate-limit-service`: serve RLS v3, or check configuration files.
//!
//! ```text
//! meshguard-rate-limit-service serve --config /etc/meshguard/ratelimit --redis-url redis://redis:6379
//! meshguard-rate-limit-service check --config ratelimit.yaml
//! ```
//!
//! Exit codes: 0 success, 1 a failing check or a failed shutdown, 2 a usage or start-up error
//! (such as an invalid configuration, reported with file, line and field).

use clap::Parser;
use meshguard_rate_limit_service::cli::{CheckArgs, Cli, Command};
use meshguard_rate_limit_service::config::Config;
use meshguard_rate_limit_service::serve::serve;

fn check(args: &CheckArgs) -> i32 {
    match Config::load(&args.config) {
        Ok(config) => {
            for (domain, limits) in config.limits() {
                println!("domain {domain}: {} limits", limits.len());
                for limit in limits {
                    let rate = match limit.rate {
                        Some(rate) => {
                            format!("{} per {}", rate.requests_per_unit, rate.unit.name())
                        }
                        None => "unlimited".to_string(),
                    };
                    let shadow = if limit.shadow { " (shadow mode)" } else { "" };
                    println!("  {}: {rate}{shadow}", limit.rule);
                }
            }
            0
        }
        Err(err) => {
            eprintln!("error: {err}");
            1
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Check(args) => std::process::exit(check(&args)),
        Command::Serve(args) => args,
    };
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            std::process::exit(2);
        }
    };
    let result = runtime.block_on(async {
        // The handlers are installed before anything listens: a SIGTERM that arrives as soon
        // as the service is reachable must drain it, not kill it.
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        };
        serve(args.settings(), shutdown).await
    });
    if let Err(err) = result {
        let starting = err
            .to_string()
            .starts_with("invalid rate-limit configuration")
            || err.to_string().starts_with("binding");
        tracing::error!(error = format!("{err:#}"), "exiting");
        eprintln!("error: {err:#}");
        std::process::exit(if starting { 2 } else { 1 });
    }
}
