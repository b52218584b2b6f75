//! `meshguard-admission-webhook`: serve the validating webhook, or audit manifests once.
//!
//! ```text
//! meshguard-admission-webhook serve --config /etc/meshguard/webhook.yaml
//! meshguard-admission-webhook serve --cert tls.crt --key tls.key --policies gatekeeper/
//! meshguard-admission-webhook audit --policies gatekeeper/ --objects manifests/
//! ```

use clap::Parser;
use meshguard_admission_webhook::cli::{AuditArgs, Cli, Command, ServeArgs};
use meshguard_policy_engine::{Inventory, PolicySet, document};

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn audit(args: &AuditArgs) -> anyhow::Result<bool> {
    let policies = PolicySet::load_paths(&args.policies)?;
    let docs = document::read_paths(&args.objects)?;
    let inventory = Inventory::from_documents(&docs)?;
    let objects: Vec<&serde_json::Value> = docs.iter().map(|d| &d.value).collect();
    let report = meshguard_admission_webhook::audit::audit(
        &policies,
        objects,
        &inventory,
        std::time::Duration::from_secs(10),
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&meshguard_admission_webhook::audit::report_json(&report))?
    );
    Ok(report.total() == 0 && report.errors.is_empty())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(&args).map(|()| true),
        Command::Audit(args) => audit(&args),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let settings = args.settings()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let listener = meshguard_admission_webhook::bind(&settings).await?;
        let addr = listener.local_addr()?;
        tracing::info!(listen = %addr, "meshguard admission webhook serving");
        meshguard_admission_webhook::run(settings, listener, shutdown_signal()).await?;
        Ok(())
    });
    // The grace period is over (or every request is answered): connections still open and
    // evaluations past their deadline are abandoned, and the process exits now.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    tracing::info!("meshguard admission webhook stopped");
    result
}
