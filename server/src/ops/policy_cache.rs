//! Policies loaded for sampling, shared by everything in the process that samples (candidates for annotators,
//! the OpenAI-compatible API): a version asked for by both is loaded once, its weights held once, and with Q8
//! weights both join the same continuous-batching decode loop. An entry lives while someone holds it.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex, Weak},
};

use trainer::{
    generate::{LoadedPolicy, Weights},
    registry::{Registry, RegistryError},
};

/// (registry root, version id, weights asked for) → the loaded policy.
type Entry = (PathBuf, String, Weights, Weak<LoadedPolicy>);

static LOADED: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Policy `id` of `reg` on the process's device with the process's sampling weights, loaded unless someone
/// already holds it.
pub fn policy(reg: &Registry, id: &str) -> Result<Arc<LoadedPolicy>, RegistryError> {
    let weights = super::compute_device::weights();
    // Held while loading, so that two callers asking at once load once.
    let mut cache = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|e| e.3.strong_count() > 0);
    let found = cache.iter().find(|e| e.0 == reg.root() && e.1 == id && e.2 == weights);
    if let Some(p) = found.and_then(|e| e.3.upgrade()) {
        return Ok(p);
    }
    let loaded = Arc::new(LoadedPolicy::load_with(reg, id, super::compute_device::current(), weights)?);
    tracing::info!(policy = %id, device = %loaded.device, weights = %loaded.weights, "policy loaded for sampling");
    cache.push((reg.root().to_path_buf(), id.to_string(), weights, Arc::downgrade(&loaded)));
    Ok(loaded)
}

/// The decode loops' counters summed over the loaded policies: (prompts waiting for their prefill, sequences
/// decoding, forwards run, tokens sampled).
pub fn decode_stats() -> (usize, usize, u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let cache = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let mut sum = (0, 0, 0, 0);
    for p in cache.iter().filter_map(|e| e.3.upgrade()) {
        if let Some(s) = p.batch_stats() {
            sum.0 += s.waiting.load(Relaxed);
            sum.1 += s.running.load(Relaxed);
            sum.2 += s.steps.load(Relaxed);
            sum.3 += s.tokens.load(Relaxed);
        }
    }
    sum
}
