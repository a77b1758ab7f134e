//! `alignbox serve`: lock the data directory, open the store, serve until Ctrl-C / SIGTERM, flush.

use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;

use super::{
    router::{self, AppState},
    site::Site,
};
use crate::{cli::ServeArgs, datadir::DataDir};

/// Runs the server to completion.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let data = DataDir::lock(&args.data.data_dir)?;
    let registry = trainer::registry::Registry::new(data.root());
    if let Some(path) = &args.default_model {
        if registry.default_id()?.is_none() {
            tracing::info!(model = %path.display(), "no base policy yet: importing the default model");
            let v = registry.import(path, None).with_context(|| format!("importing {}", path.display()))?;
            registry.set_default(&v.id)?;
        }
    }
    let policy = registry.default_id()?;
    if policy.is_none() {
        tracing::warn!("no base policy: import one with `alignbox models import` (scripts/run.sh does)");
    }
    let db = store::Store::open(&data.store_path())
        .with_context(|| format!("opening the store in {}", data.store_path().display()))?;
    crate::ops::ensure_admin(&db)?;
    let idle = (args.candidates > 0).then(|| crate::ops::SampleConfig {
        k: args.candidates.max(2),
        max_new_tokens: args.candidate_tokens,
        temperature: 0.8,
        top_p: 0.95,
    });
    let jobs = crate::jobs::Runner::spawn(data.root(), db.clone(), idle)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(serve(args, &data, db.clone(), policy));
    drop(jobs);
    let flushed = db.flush().context("flushing the store on shutdown");
    if flushed.is_ok() {
        tracing::info!("store flushed, bye");
    }
    result.and(flushed)
}

async fn serve(
    args: ServeArgs,
    data: &DataDir,
    db: store::Store,
    policy: Option<String>,
) -> anyhow::Result<()> {
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
    let ctx = app::ssr::ServerContext {
        store: db.clone(),
        started: Instant::now(),
        backend: crate::ops::device_backend(crate::ops::device()),
        policy,
        queue: store::annotation::QueuePolicy { overlap: args.overlap.max(1), gold_rate: args.gold_rate },
        secure_cookies: args.secure_cookies,
        data_dir: data.root().to_path_buf(),
        control: std::sync::Arc::new(super::control::ServerControl {
            data_dir: data.root().to_path_buf(),
            store: db.clone(),
            reg: trainer::registry::Registry::new(data.root()),
        }),
        throttle: app::ssr::throttle::LoginThrottle::new(app::ssr::throttle::ThrottleConfig {
            failures: args.login_failures as usize,
            window: std::time::Duration::from_secs(args.login_window_s),
        }),
        import_limits: store::import::ImportLimits { max_answers: args.max_answers },
        max_upload_bytes: args.max_upload_mb << 20,
    };
    let limits = super::http::admission::Limits {
        concurrent: args.api_concurrency as usize,
        queue: args.api_queue,
        per_key: args.api_per_key as usize,
        timeout: std::time::Duration::from_secs(args.api_timeout_s),
    };
    let serving = std::sync::Arc::new(super::http::openai::Serving::new(limits));
    let state = AppState { leptos: router::leptos_options(addr), ctx, site, serving };
    tracing::info!(%addr, data_dir = %data.root().display(), backend = crate::ops::device_backend(crate::ops::device()), device = %crate::ops::device(), device_name = %crate::ops::device_view().name, policy = ?state.ctx.policy, "serving");
    let app = router::build(state);
    // The one line on stdout: scripts and tests read the address from it.
    println!("alignbox listening on http://{addr}");
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server error")
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
