//! Generation and scoring with the Q8 model: the same sampling, stopping and streaming as
//! [`crate::generate::generate_with`], but each sequence has its own cache and positions (no padding), prompts
//! are prefilled in blocks and the decode steps of a batch are one forward.

use super::model::{QuantLlama, SeqCache, Step};
use crate::{
    generate::{sampling, score::TokenScore, GenerateConfig, Generated},
    rng::Rng,
};

/// Prompt tokens forwarded at once in a prefill (bounds the activations in memory).
pub const PREFILL_BLOCK: usize = 256;

/// Prefills `prompt` into `cache` in blocks; the logits after its last token.
fn prefill(model: &QuantLlama, prompt: &[u32], cache: &mut SeqCache) -> Vec<f32> {
    let mut last = Vec::new();
    for block in prompt.chunks(PREFILL_BLOCK) {
        last = model.forward(&mut [Step { tokens: block, cache }], false).pop().expect("one row");
    }
    last
}

/// Continuations of `prompts`, calling `on_token(sequence, token)` for each sampled token; stops early when it
/// returns false. Sampling draws from one stream in the order of [`crate::generate::generate_with`] (sequence by
/// sequence at every step), so a seed gives the same choices on both paths wherever the logits agree.
pub fn generate(
    model: &QuantLlama,
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
    // A prompt asked for again (K candidates of one prompt) copies the first one's cache instead of a prefill.
    let mut caches: Vec<SeqCache> = Vec::with_capacity(b);
    let mut logits: Vec<Vec<f32>> = Vec::with_capacity(b);
    for (i, p) in prompts.iter().enumerate() {
        if let Some(j) = prompts[..i].iter().position(|q| q == p) {
            caches.push(caches[j].clone());
            logits.push(logits[j].clone());
        } else {
            let mut cache = model.new_cache();
            logits.push(prefill(model, p, &mut cache));
            caches.push(cache);
        }
    }
    let mut rng = Rng::new(cfg.seed);
    for step in 0..cfg.max_new_tokens {
        let mut go_on = true;
        let mut next: Vec<(usize, u32)> = Vec::new();
        for (i, row) in logits.iter().enumerate() {
            if out.finished[i] {
                continue;
            }
            let (tok, lp) = sampling::sample(row, &cfg.sampling, &mut rng);
            out.tokens[i].push(tok);
            out.logprobs[i].push(lp);
            if cfg.stop_ids.contains(&tok) {
                out.finished[i] = true;
            } else {
                next.push((i, tok));
            }
            go_on &= on_token(i, tok);
        }
        if !go_on || next.is_empty() || step + 1 == cfg.max_new_tokens {
            break;
        }
        // One decode forward for every running sequence.
        let toks: Vec<[u32; 1]> = next.iter().map(|&(_, t)| [t]).collect();
        let mut refs: Vec<Option<&mut SeqCache>> = caches.iter_mut().map(Some).collect();
        let mut steps: Vec<Step<'_>> = next
            .iter()
            .zip(&toks)
            .map(|(&(i, _), t)| Step { tokens: t, cache: refs[i].take().expect("one step per sequence") })
            .collect();
        let fresh = model.forward(&mut steps, false);
        for (&(i, _), l) in next.iter().zip(fresh) {
            logits[i] = l;
        }
    }
    out
}

/// Scores `ids` (at least one token): the log-probability of each token after the first given the ones before,
/// with the `top` most likely tokens at each position (as [`crate::generate::score::score`]).
pub fn score(model: &QuantLlama, ids: &[u32], top: usize) -> Vec<TokenScore> {
    assert!(!ids.is_empty(), "score: no tokens");
    let mut cache = model.new_cache();
    let mut out = vec![TokenScore { id: ids[0], logprob: None, top: Vec::new() }];
    let mut p = 0;
    for block in ids.chunks(PREFILL_BLOCK) {
        for row in model.forward(&mut [Step { tokens: block, cache: &mut cache }], true) {
            p += 1;
            let Some(&id) = ids.get(p) else { break };
            let logp = log_softmax(&row);
            out.push(TokenScore {
                id,
                logprob: Some(logp[id as usize]),
                top: crate::generate::score::top_k(&logp, top),
            });
        }
    }
    out
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f32>().ln();
    row.iter().map(|x| x - lse).collect()
}
