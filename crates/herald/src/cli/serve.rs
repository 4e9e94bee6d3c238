//! `herald serve`: load the configuration, build the server, run it until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Overrides};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "HERALD_LISTEN")]
    pub listen: Option<String>,
    /// Data directory (SQLite database, bootstrap admin key).
    #[arg(long, env = "HERALD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://…; SQLite in the data directory when absent.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file (see the README for its keys).
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
}

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        config_file: args.config,
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
    };
    let config = Config::load(&overrides)?;
    crate::telemetry::init(&config.log);
    let app = crate::app::App::build(&config).await?;
    if let Some(key) = app.bootstrap_admin_key() {
        let file = config.data_dir.join(crate::app::ADMIN_KEY_FILE);
        if config.bootstrap_api_key.is_some() {
            // The operator chose the key; it is not echoed into logs that may be kept.
            outln!(
                "Created the server admin user `admin` with the configured API key (bootstrap_api_key; also in {}).",
                file.display()
            );
        } else {
            outln!(
                "Created the server admin user `admin`. Its API key (shown once; also in {}):",
                file.display()
            );
            outln!("\n    {key}\n");
        }
    }
    let shutdown = CancellationToken::new();
    on_shutdown_signal(shutdown.clone())?;
    outln!("herald listening on http://{}", app.address());
    app.run_until_stopped(shutdown).await
}

/// Cancels `token` on SIGINT or SIGTERM. The handlers are in place when this returns, so a
/// signal sent as soon as the server says it is listening is not lost.
fn on_shutdown_signal(token: CancellationToken) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("handling SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handling SIGINT")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("shutdown requested; finishing in-flight requests");
            token.cancel();
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown requested; finishing in-flight requests");
        token.cancel();
    });
    Ok(())
}
