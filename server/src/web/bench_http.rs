//! `alignbox bench http`: the real router on a loopback port over a temporary store, driven by many annotators
//! at once. Every submit is durable (flushed) before it is answered, as in production.

use std::{
    sync::{Arc, Barrier, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;

use super::router;
use crate::cli::HttpBenchArgs;

/// Runs the benchmark and prints one JSON line.
pub fn run(args: HttpBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let store = store::Store::open(&dir.join("store"))?;
    let n = args.annotators.max(1);
    seed_store(&store, n, &args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let base = start_server(&runtime, &store, &dir)?;
    let shared = Shared::default();
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut threads = Vec::with_capacity(n);
    for i in 0..n {
        let (base, barrier, shared) = (base.clone(), barrier.clone(), shared.clone());
        let (rounds, think_ms) = (args.rounds, args.think_ms);
        threads.push(
            std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || annotator(i, &base, &barrier, &shared, rounds, think_ms))?,
        );
    }
    barrier.wait();
    let started = Instant::now();
    for t in threads {
        let _ = t.join();
    }
    let wall = started.elapsed().as_secs_f64();
    let mut lat = shared.latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let pct =
        |p: f64| if lat.is_empty() { f64::NAN } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
    let errors = shared.errors.lock().unwrap().clone();
    let stored = store.rankings()?.len();
    let line = serde_json::json!({
        "bench": "http",
        "annotators": n,
        "submits": lat.len(),
        "stored_rankings": stored,
        "errors": errors.len(),
        "login_errors": shared.login_errors.lock().unwrap().len(),
        "think_ms": args.think_ms,
        "first_errors": errors.iter().take(3).collect::<Vec<_>>(),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat.last().copied().unwrap_or(f64::NAN),
        "submits_per_s": lat.len() as f64 / wall,
        "peak_rss_mb": trainer::bench::peak_rss_mb(),
        "impl": "alignbox",
    });
    println!("{line}");
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Accounts (hashed like real ones) and enough items for every round of every annotator (overlap 2).
fn seed_store(store: &store::Store, n: usize, args: &HttpBenchArgs) -> anyhow::Result<()> {
    let hash = app::ssr::auth::hash_password("bench-password");
    for i in 0..n {
        store.add_user(&format!("a{i}"), store::Role::Annotator, &hash, "bench")?;
    }
    let items = n * args.rounds / 2 + n;
    let mut jsonl = String::new();
    for i in 0..items {
        let answers: Vec<String> = (0..args.k).map(|j| format!("\"answer {j} to {i}\"")).collect();
        jsonl.push_str(&format!(
            "{{\"prompt\": \"question {i}\", \"responses\": [{}]}}\n",
            answers.join(", ")
        ));
    }
    let batch = store::import::parse(jsonl.as_bytes(), "bench", &Default::default(), &mut || {
        store.new_id().expect("id")
    })?;
    store.write_batch(&batch, "bench", "import")?;
    Ok(())
}

/// The real router on a loopback port; returns its base URL.
fn start_server(
    runtime: &tokio::runtime::Runtime,
    store: &store::Store,
    dir: &std::path::Path,
) -> anyhow::Result<String> {
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let ctx = app::ssr::ServerContext {
        store: store.clone(),
        started: Instant::now(),
        backend: crate::ops::device_backend(crate::ops::device()),
        policy: None,
        queue: store::annotation::QueuePolicy::overlap(2),
        secure_cookies: false,
        data_dir: dir.to_path_buf(),
        control: std::sync::Arc::new(super::control::ServerControl {
            data_dir: dir.to_path_buf(),
            store: store.clone(),
            reg: trainer::registry::Registry::new(dir),
        }),
        throttle: Default::default(),
        import_limits: Default::default(),
        max_upload_bytes: 1 << 28,
    };
    let state = router::AppState {
        leptos: router::leptos_options(addr),
        ctx,
        site: Default::default(),
        serving: Default::default(),
    };
    let app = router::build(state);
    runtime.spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

/// What the annotator threads record.
#[derive(Clone, Default)]
struct Shared {
    latencies: Arc<Mutex<Vec<f64>>>,
    errors: Arc<Mutex<Vec<String>>>,
    login_errors: Arc<Mutex<Vec<String>>>,
}

/// One annotator: logs in before the clock starts, then `rounds` of think, next item, submit.
fn annotator(i: usize, base: &str, barrier: &Barrier, shared: &Shared, rounds: usize, think_ms: u64) {
    let agent = ureq::AgentBuilder::new().max_idle_connections_per_host(1).build();
    // Retry, as a browser would, when the accept queue overflows.
    let mut session = login(&agent, base, &format!("a{i}"));
    for attempt in 1..6 {
        if session.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200 * attempt));
        session = login(&agent, base, &format!("a{i}"));
    }
    barrier.wait();
    let Some((cookie, csrf)) = session.map_err(|e| shared.login_errors.lock().unwrap().push(e)).ok() else {
        return;
    };
    // Each annotator spends think_ms (uniform ±50%) on an item before submitting it.
    let mut rng = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut think = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let u = (rng % 10_000) as f64 / 10_000.0;
        Duration::from_micros((think_ms as f64 * 1000.0 * (0.5 + u)) as u64)
    };
    for _ in 0..rounds {
        std::thread::sleep(think());
        match one_round(&agent, base, &cookie, &csrf) {
            Ok(Some(ms)) => shared.latencies.lock().unwrap().push(ms),
            Ok(None) => break,
            Err(e) => shared.errors.lock().unwrap().push(e),
        }
    }
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("alignbox-bench-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn login(agent: &ureq::Agent, base: &str, name: &str) -> Result<(String, String), String> {
    let resp = agent
        .post(&format!("{base}/api/login"))
        .send_form(&[("name", name), ("password", "bench-password")])
        .map_err(|e| format!("login {name}: {e}"))?;
    let cookie =
        resp.header("set-cookie").ok_or("no cookie")?.split(';').next().unwrap_or_default().to_string();
    let me: serde_json::Value = resp.into_json().map_err(|e| e.to_string())?;
    Ok((cookie, me["csrf"].as_str().unwrap_or_default().to_string()))
}

/// One item: fetch it (untimed), submit a ranking (timed). `None` when the queue is empty.
fn one_round(agent: &ureq::Agent, base: &str, cookie: &str, csrf: &str) -> Result<Option<f64>, String> {
    let item: serde_json::Value = agent
        .post(&format!("{base}/api/next_item"))
        .set("cookie", cookie)
        .send_form(&[])
        .map_err(|e| format!("next_item: {e}"))?
        .into_json()
        .map_err(|e| e.to_string())?;
    if item.is_null() {
        return Ok(None);
    }
    let ids: Vec<Vec<u64>> = item["candidates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_u64())
        .map(|id| vec![id])
        .collect();
    let body = serde_json::json!({"csrf": csrf, "submission": {"prompt_id": item["prompt_id"], "tiers": ids,
        "skipped": null, "flags": [], "better_answer": null, "time_spent_ms": 1000}});
    let t = Instant::now();
    agent
        .post(&format!("{base}/api/submit_ranking"))
        .set("cookie", cookie)
        .send_json(body)
        .map_err(|e| format!("submit: {e}"))?;
    Ok(Some(t.elapsed().as_secs_f64() * 1000.0))
}
