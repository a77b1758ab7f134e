//! `GET /metrics`: Prometheus text format. Requests by status class, the job queue, job durations and
//! throughput, the data, the accepted reward model's accuracy and the latest policy evaluation.

use std::sync::atomic::{AtomicU64, Ordering};

use app::ssr::ServerContext;
use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
};
use store::jobs::JobState;

/// Requests answered, by status class (1xx … 5xx).
static REQUESTS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// Microseconds spent answering requests.
static REQUEST_MICROS: AtomicU64 = AtomicU64::new(0);
/// Chat completions answered and tokens generated for them.
pub static COMPLETIONS: AtomicU64 = AtomicU64::new(0);
/// Tokens generated for chat completions.
pub static COMPLETION_TOKENS: AtomicU64 = AtomicU64::new(0);
/// API requests admitted and not finished (waiting for a slot or generating).
pub static API_IN_FLIGHT: AtomicU64 = AtomicU64::new(0);
/// API requests refused by admission (429 or 503).
pub static API_REFUSED: AtomicU64 = AtomicU64::new(0);
/// API answers that produced a first token, and the microseconds from their generation slot to it, summed.
pub static FIRST_TOKENS: AtomicU64 = AtomicU64::new(0);
/// See [`FIRST_TOKENS`].
pub static FIRST_TOKEN_MICROS: AtomicU64 = AtomicU64::new(0);

/// Records a time to first token.
pub fn first_token(since: std::time::Instant) {
    FIRST_TOKENS.fetch_add(1, Ordering::Relaxed);
    FIRST_TOKEN_MICROS.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
}

/// Middleware counting every request.
pub async fn count(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let class = (res.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    REQUESTS[class].fetch_add(1, Ordering::Relaxed);
    REQUEST_MICROS.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    res
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', " ")
}

/// Prometheus' text format, one metric family at a time.
#[derive(Default)]
struct Text(String);

impl Text {
    fn metric(&mut self, name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>) {
        use std::fmt::Write;
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(self.0, "{name}{labels} {v}");
        }
    }
}

/// Renders the metrics.
pub fn render(ctx: &ServerContext) -> String {
    let mut o = Text::default();
    http(&mut o);
    let jobs = ctx.store.jobs().unwrap_or_default();
    job_metrics(&mut o, &jobs);
    o.metric(
        "alignbox_data",
        "gauge",
        "Stored records.",
        vec![
            ("{what=\"prompts\"}".into(), ctx.store.prompts().map_or(0, |p| p.len()) as f64),
            ("{what=\"rankings\"}".into(), ctx.store.ranking_count() as f64),
        ],
    );
    model_metrics(&mut o, ctx, &jobs);
    device_metrics(&mut o, &ctx.control.device());
    o.metric(
        "alignbox_chat_completions_total",
        "counter",
        "Chat completions answered.",
        vec![(String::new(), COMPLETIONS.load(Ordering::Relaxed) as f64)],
    );
    o.metric(
        "alignbox_chat_completion_tokens_total",
        "counter",
        "Tokens generated for chat completions.",
        vec![(String::new(), COMPLETION_TOKENS.load(Ordering::Relaxed) as f64)],
    );
    o.metric(
        "alignbox_api_requests_in_flight",
        "gauge",
        "API requests waiting for a generation slot or generating.",
        vec![(String::new(), API_IN_FLIGHT.load(Ordering::Relaxed) as f64)],
    );
    o.metric(
        "alignbox_api_refused_total",
        "counter",
        "API requests refused because the server or the key was busy (429) or no slot came in time (503).",
        vec![(String::new(), API_REFUSED.load(Ordering::Relaxed) as f64)],
    );
    decode_metrics(&mut o);
    o.0
}

/// Time to first token and the continuous-batching decode loops.
fn decode_metrics(o: &mut Text) {
    let micros = FIRST_TOKEN_MICROS.load(Ordering::Relaxed) as f64;
    o.metric(
        "alignbox_api_time_to_first_token_seconds",
        "summary",
        "Seconds from an API request getting its generation slot to its first token.",
        vec![("_sum".into(), micros / 1e6), ("_count".into(), FIRST_TOKENS.load(Ordering::Relaxed) as f64)],
    );
    let (waiting, running, steps, tokens) = crate::ops::decode_stats();
    o.metric(
        "alignbox_decode_queue_depth",
        "gauge",
        "Requests whose prompts the decode loops are still prefilling.",
        vec![(String::new(), waiting as f64)],
    );
    o.metric(
        "alignbox_decode_batch_size",
        "gauge",
        "Sequences in the decode loops' running batch.",
        vec![(String::new(), running as f64)],
    );
    o.metric(
        "alignbox_decode_steps_total",
        "counter",
        "Forwards the decode loops ran (each one token for every running sequence).",
        vec![(String::new(), steps as f64)],
    );
    o.metric(
        "alignbox_decode_tokens_total",
        "counter",
        "Tokens the decode loops sampled (the rate is tokens per second).",
        vec![(String::new(), tokens as f64)],
    );
}

fn device_metrics(o: &mut Text, d: &types::views::DeviceView) {
    let labels = format!("{{device=\"{}\",name=\"{}\"}}", label(&d.id), label(&d.name));
    o.metric("alignbox_device_info", "gauge", "The compute device (value 1).", vec![(labels.clone(), 1.0)]);
    let mut mem = Vec::new();
    if let Some(t) = d.memory_total {
        mem.push((format!("{{device=\"{}\",kind=\"total\"}}", label(&d.id)), t as f64));
    }
    if let Some(u) = d.memory_used {
        mem.push((format!("{{device=\"{}\",kind=\"used\"}}", label(&d.id)), u as f64));
    }
    o.metric("alignbox_device_memory_bytes", "gauge", "Device memory: total and in use.", mem);
}

fn http(o: &mut Text) {
    let classes = (0..5)
        .map(|i| (format!("{{class=\"{}xx\"}}", i + 1), REQUESTS[i].load(Ordering::Relaxed) as f64))
        .collect();
    o.metric("alignbox_http_requests_total", "counter", "HTTP requests answered, by status class.", classes);
    o.metric(
        "alignbox_http_request_seconds_total",
        "counter",
        "Time spent answering HTTP requests.",
        vec![(String::new(), REQUEST_MICROS.load(Ordering::Relaxed) as f64 / 1e6)],
    );
}

/// Jobs by state (the queue depth), durations and throughput by kind.
fn job_metrics(o: &mut Text, jobs: &[store::jobs::Job]) {
    let states = [JobState::Queued, JobState::Running, JobState::Done, JobState::Failed, JobState::Cancelled];
    o.metric(
        "alignbox_jobs",
        "gauge",
        "Jobs by state (queued = queue depth).",
        states
            .iter()
            .map(|s| {
                (format!("{{state=\"{}\"}}", s.name()), jobs.iter().filter(|j| j.state == *s).count() as f64)
            })
            .collect(),
    );
    let mut kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let (mut sums, mut counts, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for k in &kinds {
        let done: Vec<_> = jobs.iter().filter(|j| j.kind == *k && j.state == JobState::Done).collect();
        let secs = |j: &store::jobs::Job| {
            j.finished_ms.unwrap_or(0).saturating_sub(j.started_ms.unwrap_or(0)) as f64 / 1000.0
        };
        let l = format!("{{kind=\"{}\"}}", label(k));
        sums.push((l.clone(), done.iter().map(|j| secs(j)).sum()));
        counts.push((l.clone(), done.len() as f64));
        if let Some(last) = done.iter().rev().find(|j| j.step > 0 && secs(j) > 0.0) {
            rates.push((l, last.step as f64 / secs(last)));
        }
    }
    o.metric("alignbox_job_duration_seconds_sum", "counter", "Run time of finished jobs, by kind.", sums);
    o.metric("alignbox_job_duration_seconds_count", "counter", "Finished jobs, by kind.", counts);
    o.metric(
        "alignbox_job_steps_per_second",
        "gauge",
        "Throughput of the latest finished job of each kind.",
        rates,
    );
}

/// The accepted reward model's accuracy, the latest evaluated policy's KL and win-rate.
fn model_metrics(o: &mut Text, ctx: &ServerContext, jobs: &[store::jobs::Job]) {
    let reg = trainer::registry::Registry::new(&ctx.data_dir);
    let st = crate::r#loop::state(&ctx.store);
    let acc = st.accepted_rm.as_ref().and_then(|id| {
        let v = reg.get(id).ok()?;
        Some((format!("{{version=\"{}\"}}", label(id)), v.lineage?.metrics.get("accuracy")?.as_f64()?))
    });
    o.metric(
        "alignbox_rm_accuracy",
        "gauge",
        "Held-out accuracy of the accepted reward model.",
        acc.into_iter().collect(),
    );
    let last_eval = jobs.iter().rev().find(|j| j.kind == "eval policy" && j.state == JobState::Done);
    let eval_metric = |k: &str| -> Vec<(String, f64)> {
        last_eval
            .and_then(|j| {
                let r = j.result.as_ref()?;
                Some((format!("{{version=\"{}\"}}", label(&r.version)), r.metric(k)?))
            })
            .into_iter()
            .collect()
    };
    o.metric(
        "alignbox_policy_kl",
        "gauge",
        "KL per answer of the latest evaluated policy to the one it was compared with.",
        eval_metric("kl"),
    );
    o.metric(
        "alignbox_policy_win_rate",
        "gauge",
        "Reward-model win-rate of the latest evaluated policy.",
        eval_metric("rm_win_rate"),
    );
}

/// `GET /metrics`.
pub async fn handler(State(ctx): State<ServerContext>) -> Response {
    let body = tokio::task::spawn_blocking(move || render(&ctx)).await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
