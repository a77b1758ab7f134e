//! Continuous batching on the 8-bit decoder: one decode loop (a thread) per loaded model runs every request's
//! sequences in one forward per step. Requests join between steps (each step also runs one prompt block of at
//! most [`PREFILL_BLOCK`] tokens of the oldest request waiting, so a long prompt does not stall the others for
//! more than a block) and leave when they finish, are cancelled, or their caller stops listening.
//!
//! Exactness: each request keeps its own sampler stream, seeded by its own config, and samples its rows in
//! order at every step, as [`super::generate::generate`] does alone; decode steps compute every row
//! independently of the others in the batch, and prompts are cut into the same blocks as alone. So a request
//! gets the tokens it would get alone, greedy or sampled.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc,
    },
    thread,
};

use super::{
    generate::PREFILL_BLOCK,
    model::{QuantLlama, SeqCache, Step},
};
use crate::{
    generate::{sampling, GenerateConfig, Generated},
    rng::Rng,
};

/// What the decode loop is doing now (read by the server's /metrics).
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Requests whose prompts are still being prefilled.
    pub waiting: AtomicUsize,
    /// Sequences in the running decode batch.
    pub running: AtomicUsize,
    /// Forwards run.
    pub steps: AtomicU64,
    /// Tokens sampled.
    pub tokens: AtomicU64,
}

/// A request: prompts (one sequence each) and how to sample them.
struct Request {
    prompts: Vec<Vec<u32>>,
    cfg: GenerateConfig,
    events: mpsc::Sender<Event>,
}

/// What the loop sends back to a request's caller.
enum Event {
    /// Sequence `row` sampled `id` with log-probability `logprob`.
    Token { row: usize, id: u32, logprob: f32 },
    /// Every sequence finished.
    Done,
}

/// The handle of a decode loop: cheap to share, the loop ends when the last handle is dropped.
pub struct Batcher {
    tx: mpsc::Sender<Request>,
    /// The model the loop runs.
    pub model: Arc<QuantLlama>,
    /// The loop's counters.
    pub stats: Arc<BatchStats>,
}

impl Batcher {
    /// Starts the decode loop of `model`.
    pub fn start(model: QuantLlama) -> Self {
        let model = Arc::new(model);
        let stats = Arc::new(BatchStats::default());
        let (tx, rx) = mpsc::channel();
        let (m, s) = (model.clone(), stats.clone());
        thread::Builder::new()
            .name("q8-decode".into())
            .spawn(move || run(&m, &s, &rx))
            .expect("spawning the decode loop");
        Self { tx, model, stats }
    }

    /// Continuations of `prompts` from the shared loop, calling `on_token(row, id)` for each new token in the
    /// caller's thread; when it returns false the request leaves the batch (the tokens so far are returned).
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Generated {
        let b = prompts.len();
        let mut out = Generated::empty(b);
        if b == 0 || cfg.max_new_tokens == 0 {
            return out;
        }
        assert!(prompts.iter().all(|p| !p.is_empty()), "every prompt needs at least one token");
        let (events, rx) = mpsc::channel();
        let req = Request { prompts: prompts.to_vec(), cfg: cfg.clone(), events };
        self.tx.send(req).expect("the decode loop runs while its handle lives");
        for ev in rx {
            match ev {
                Event::Token { row, id, logprob } => {
                    out.tokens[row].push(id);
                    out.logprobs[row].push(logprob);
                    out.finished[row] |= cfg.stop_ids.contains(&id);
                    if !on_token(row, id) {
                        break; // dropping the receiver takes the request out of the batch
                    }
                }
                Event::Done => break,
            }
        }
        out
    }
}

/// A prompt being prefilled (a request's repeated prompts are prefilled once).
struct Prefill {
    prompt: Vec<u32>,
    done: usize,
    cache: SeqCache,
    logits: Vec<f32>,
}

/// A sequence being decoded.
struct Row {
    cache: SeqCache,
    logits: Vec<f32>,
    finished: bool,
    /// The token to feed next (set after sampling, while the sequence goes on).
    next: Option<[u32; 1]>,
}

/// A request in the loop.
struct Active {
    cfg: GenerateConfig,
    rng: Rng,
    events: mpsc::Sender<Event>,
    /// The distinct prompts and, per sequence, which of them it continues.
    prefills: Vec<Prefill>,
    source: Vec<usize>,
    /// Sequences, once every prompt is prefilled.
    rows: Vec<Row>,
    /// Tokens sampled per sequence so far.
    step: usize,
    /// Whether the caller went away.
    gone: bool,
}

impl Active {
    fn new(model: &QuantLlama, req: Request) -> Self {
        let mut prefills: Vec<Prefill> = Vec::new();
        let mut source = Vec::with_capacity(req.prompts.len());
        for p in req.prompts {
            let i = prefills.iter().position(|q| q.prompt == p).unwrap_or_else(|| {
                prefills.push(Prefill { prompt: p, done: 0, cache: model.new_cache(), logits: Vec::new() });
                prefills.len() - 1
            });
            source.push(i);
        }
        let rng = Rng::new(req.cfg.seed);
        Self {
            cfg: req.cfg,
            rng,
            events: req.events,
            prefills,
            source,
            rows: Vec::new(),
            step: 0,
            gone: false,
        }
    }

    fn prefilled(&self) -> bool {
        self.prefills.iter().all(|p| p.done == p.prompt.len())
    }

    /// Turns the prefilled prompts into sequences (the last sequence of each prompt takes its cache, the
    /// others copy it).
    fn start_rows(&mut self) {
        for (i, &s) in self.source.iter().enumerate() {
            let p = &mut self.prefills[s];
            let later = self.source[i + 1..].contains(&s);
            let (cache, logits) = if later {
                (p.cache.clone(), p.logits.clone())
            } else {
                (std::mem::take(&mut p.cache), std::mem::take(&mut p.logits))
            };
            self.rows.push(Row { cache, logits, finished: false, next: None });
        }
        self.prefills.clear();
    }

    /// Samples one token for every running sequence from its logits (in row order, from the request's own
    /// stream). Returns whether the request goes on to another forward.
    fn sample(&mut self, stats: &BatchStats) -> bool {
        let last = self.step + 1 == self.cfg.max_new_tokens;
        let mut any = false;
        for (i, row) in self.rows.iter_mut().enumerate() {
            row.next = None;
            if row.finished {
                continue;
            }
            let (id, logprob) = sampling::sample(&row.logits, &self.cfg.sampling, &mut self.rng);
            stats.tokens.fetch_add(1, Ordering::Relaxed);
            self.gone |= self.events.send(Event::Token { row: i, id, logprob }).is_err();
            if self.cfg.stop_ids.contains(&id) {
                row.finished = true;
            } else if !last {
                row.next = Some([id]);
                any = true;
            }
        }
        self.step += 1;
        any && !self.gone
    }
}

/// The loop: admit requests, sample, run one forward for every sequence and prompt block, repeat; idle until a
/// request comes when there is nothing to run; ends when every handle is gone.
fn run(model: &QuantLlama, stats: &BatchStats, rx: &mpsc::Receiver<Request>) {
    let mut active: Vec<Active> = Vec::new();
    loop {
        if active.is_empty() {
            match rx.recv() {
                Ok(req) => active.push(Active::new(model, req)),
                Err(_) => return,
            }
        }
        active.extend(rx.try_iter().map(|r| Active::new(model, r)));
        // Sample every decoding request; finished or abandoned ones leave.
        active.retain_mut(|a| {
            if a.rows.is_empty() {
                return true; // still prefilling
            }
            let goes_on = a.sample(stats);
            if !goes_on && !a.gone {
                let _ = a.events.send(Event::Done);
            }
            goes_on
        });
        if !active.is_empty() {
            forward(model, stats, &mut active);
        }
        stats.waiting.store(active.iter().filter(|a| a.rows.is_empty()).count(), Ordering::Relaxed);
        stats.running.store(
            active.iter().map(|a| a.rows.iter().filter(|r| r.next.is_some()).count()).sum(),
            Ordering::Relaxed,
        );
    }
}

/// One step: a forward of one token for every decoding sequence, then a forward of the next prompt block of
/// the oldest request waiting. Blocks are cut as [`super::generate::generate`] cuts them (each prompt from its
/// start in [`PREFILL_BLOCK`]s, alone in its forward), so a prompt's cache and logits are the ones it gets alone.
fn forward(model: &QuantLlama, stats: &BatchStats, active: &mut [Active]) {
    let mut steps: Vec<Step<'_>> = Vec::new();
    let mut targets: Vec<(usize, usize)> = Vec::new();
    for (ai, a) in active.iter_mut().enumerate() {
        for (ri, row) in a.rows.iter_mut().enumerate() {
            if let Some(tok) = &row.next {
                steps.push(Step { tokens: tok, cache: &mut row.cache });
                targets.push((ai, ri));
            }
        }
    }
    if !steps.is_empty() {
        let logits = model.forward(&mut steps, false);
        drop(steps);
        stats.steps.fetch_add(1, Ordering::Relaxed);
        for ((a, r), l) in targets.into_iter().zip(logits) {
            active[a].rows[r].logits = l;
        }
    }
    let waiting = active.iter_mut().find(|a| a.rows.is_empty());
    if let Some(a) = waiting {
        if let Some(p) = a.prefills.iter_mut().find(|p| p.done < p.prompt.len()) {
            let end = (p.done + PREFILL_BLOCK).min(p.prompt.len());
            let mut step = [Step { tokens: &p.prompt[p.done..end], cache: &mut p.cache }];
            let logits = model.forward(&mut step, false).pop().expect("one row");
            stats.steps.fetch_add(1, Ordering::Relaxed);
            p.done = end;
            if end == p.prompt.len() {
                p.logits = logits;
            }
        }
        if a.prefilled() {
            a.start_rows();
        }
    }
}
