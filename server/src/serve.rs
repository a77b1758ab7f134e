//! `alignbox serve`: lock the data directory, open the store, serve until Ctrl-C / SIGTERM, flush.

use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    cli::ServeArgs,
    datadir::DataDir,
    router::{self, AppState},
    site::Site,
};

/// Runs the server to completion.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let data = DataDir::lock(&args.data_dir)?;
    let db = sled::open(data.store_path())
        .with_context(|| format!("opening the store in {}", data.store_path().display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(serve(args, &data, db.clone()));
    let flushed = db.flush().context("flushing the store on shutdown");
    tracing::info!(bytes = flushed.as_ref().ok(), "store flushed, bye");
    result.and(flushed.map(|_| ()))
}

async fn serve(args: ServeArgs, data: &DataDir, db: sled::Db) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    let site = Site { root: args.site_root.clone() };
    if !site.has_client() {
        tracing::warn!(
            "the client bundle was not built: pages render but are not interactive; build with scripts/build.sh \
             or pass --site-root"
        );
    }
    let ctx = app::ssr::ServerContext { db, started: Instant::now(), backend: trainer::backend::name() };
    let state = AppState { leptos: router::leptos_options(addr), ctx, site };
    let app = router::build(state);
    tracing::info!(%addr, data_dir = %data.root().display(), backend = trainer::backend::name(), "serving");
    // The one line on stdout: scripts and tests read the address from it.
    println!("alignbox listening on http://{addr}");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("server error")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
