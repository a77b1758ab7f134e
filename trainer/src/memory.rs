//! The memory planner: an estimate, before a run starts, of what training or generation will hold — weights,
//! gradients, optimizer state, activations, KV cache — and the largest micro-batch that fits a budget (gradient
//! accumulation then keeps the effective batch).

use serde::{Deserialize, Serialize};

use crate::model::LlamaConfig;

/// What is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Tuning {
    /// Every parameter.
    Full,
    /// Adapters of `rank` on `targets` projections of every layer (the base is frozen).
    Lora { rank: usize, targets: Vec<String> },
    /// LoRA on a base whose projections are held in NF4 (4 bits per value plus an f32 per 64).
    QLora { rank: usize, targets: Vec<String> },
    /// P-Tuning v2: `n` trainable prefix keys and values per layer (the base is frozen).
    Prefix { n: usize },
}

/// The run to plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    /// The model.
    pub config: LlamaConfig,
    /// Full fine-tuning or LoRA.
    pub tuning: Tuning,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Sequences per micro-batch.
    pub micro_batch: usize,
    /// Recompute layer activations in the backward pass instead of keeping them.
    pub grad_checkpointing: bool,
    /// Bytes per value (4 for f32).
    pub bytes_per_value: usize,
}

/// Estimated bytes by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// Model weights.
    pub weights: usize,
    /// Gradients of the trainable parameters.
    pub gradients: usize,
    /// AdamW's two moments of the trainable parameters.
    pub optimizer: usize,
    /// Activations kept for the backward pass.
    pub activations: usize,
    /// Total.
    pub total: usize,
}

/// Trainable parameters of a tuning.
pub fn trainable_params(config: &LlamaConfig, tuning: &Tuning) -> usize {
    match tuning {
        Tuning::Full => config.num_params(),
        Tuning::Lora { rank, targets } | Tuning::QLora { rank, targets } => {
            let (d, f) = (config.hidden_size, config.intermediate_size);
            let (q, kv) = (config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim);
            let per_layer: usize = targets
                .iter()
                .map(|t| match t.as_str() {
                    "q_proj" => rank * (d + q),
                    "k_proj" | "v_proj" => rank * (d + kv),
                    "o_proj" => rank * (q + d),
                    "gate_proj" | "up_proj" | "down_proj" => rank * (d + f),
                    _ => 0,
                })
                .sum();
            per_layer * config.num_layers
        }
        Tuning::Prefix { n } => config.num_layers * 2 * config.num_kv_heads * n * config.head_dim,
    }
}

/// Values kept per token and layer for the backward pass of one decoder layer (inputs of every matmul and
/// non-linearity), plus the attention matrices per query token.
fn layer_values_per_token(c: &LlamaConfig, seq_len: usize) -> usize {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let attention = 2 * d + q + 2 * kv + q + 2 * c.num_heads * seq_len; // norms, q/k/v, context, scores + probs
    let mlp = 2 * d + 4 * f; // norm, gate, up, silu, product
    attention + mlp
}

/// The estimate for `input`.
pub fn estimate(input: &PlanInput) -> Estimate {
    let c = &input.config;
    let b = input.bytes_per_value;
    let weights = match input.tuning {
        Tuning::QLora { .. } => {
            let (d, f) = (c.hidden_size, c.intermediate_size);
            let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
            let projections = c.num_layers * (d * q + 2 * d * kv + q * d + 3 * d * f);
            (c.num_params() - projections) * b + projections.div_ceil(64) * (32 + 4)
        }
        _ => c.num_params() * b,
    };
    let trainable = trainable_params(c, &input.tuning);
    let gradients = trainable * b;
    let optimizer = 2 * trainable * b;
    let tokens = input.micro_batch * input.seq_len;
    let per_layer = layer_values_per_token(c, input.seq_len) * tokens;
    let kept_layers = if input.grad_checkpointing {
        // Layer inputs of every layer, plus one layer recomputed at a time.
        c.num_layers * c.hidden_size * tokens + per_layer
    } else {
        c.num_layers * per_layer
    };
    let logits = 2 * tokens * c.vocab_size; // logits and their softmax
    let activations = (kept_layers + logits) * b;
    Estimate {
        weights,
        gradients,
        optimizer,
        activations,
        total: weights + gradients + optimizer + activations,
    }
}

/// The largest micro-batch (≤ `max`) whose estimate fits `budget_bytes`, or `None` when not even 1 fits.
pub fn pick_micro_batch(input: &PlanInput, budget_bytes: usize, max: usize) -> Option<usize> {
    (1..=max.max(1))
        .rev()
        .find(|&mb| estimate(&PlanInput { micro_batch: mb, ..input.clone() }).total <= budget_bytes)
}

/// The memory budget: `mb` MiB when given, else 80% of the memory available now (Linux `MemAvailable`).
pub fn budget_bytes(mb: Option<usize>) -> Option<usize> {
    if let Some(mb) = mb {
        return Some(mb << 20);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize =
        info.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024 / 10 * 8)
}

/// Bytes as MiB with one decimal (`12.5 MiB`).
pub fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// "weights …, gradients …, optimizer …, activations …, total …".
pub fn describe(e: &Estimate) -> String {
    format!(
        "weights {}, gradients {}, optimizer {}, activations {}, total {}",
        mib(e.weights),
        mib(e.gradients),
        mib(e.optimizer),
        mib(e.activations),
        mib(e.total)
    )
}

/// Why no micro-batch fits.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("even one sequence of {seq_len} tokens needs about {} but the budget is {}: use --lora, a smaller --max-tokens or a larger --memory-budget-mb", mib(*.needs), mib(*.budget))]
pub struct TooLarge {
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Bytes one sequence needs.
    pub needs: usize,
    /// The budget.
    pub budget: usize,
}

/// The micro-batch in items of `seqs_per_item` sequences: `fixed`, or (None) the largest one whose estimate
/// fits `budget` (everything when there is no budget to go by); at most `items`.
pub fn fit_micro_batch(
    fixed: Option<usize>,
    budget: Option<usize>,
    input: &PlanInput,
    items: usize,
    seqs_per_item: usize,
) -> Result<usize, TooLarge> {
    let micro = match (fixed, budget) {
        (Some(m), _) => m,
        (None, Some(b)) => match pick_micro_batch(input, b, items * seqs_per_item) {
            Some(seqs) => (seqs / seqs_per_item).max(1),
            None => return Err(TooLarge { seq_len: input.seq_len, needs: estimate(input).total, budget: b }),
        },
        (None, None) => items,
    };
    Ok(micro.min(items))
}

/// What PPO holds besides the actor's training state (`actor`, the estimate of one minibatch of it): the
/// critic's trainable state and activations (its own weights too with full fine-tuning), a reference copy of
/// the policy with full fine-tuning (with adapters the frozen base is the reference), and the reward model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PpoEstimate {
    /// The actor (policy) in training.
    pub actor: usize,
    /// The critic.
    pub critic: usize,
    /// The reference policy (0: shared with the actor's frozen base).
    pub reference: usize,
    /// The reward model.
    pub reward: usize,
    /// Everything.
    pub total: usize,
}

/// PPO's memory from the actor's estimate, whether actor and critic are adapters on one frozen base, and the
/// reward model's parameter count (f32).
pub fn ppo_estimate(actor: &Estimate, adapters: bool, reward_params: usize) -> PpoEstimate {
    let reference = if adapters { 0 } else { actor.weights };
    let critic =
        actor.gradients + actor.optimizer + actor.activations + if adapters { 0 } else { actor.weights };
    let reward = reward_params * 4;
    PpoEstimate {
        actor: actor.total,
        critic,
        reference,
        reward,
        total: actor.total + critic + reference + reward,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::tiny_llama_8k;

    fn input(tuning: Tuning, mb: usize, ckpt: bool) -> PlanInput {
        PlanInput {
            config: tiny_llama_8k(),
            tuning,
            seq_len: 128,
            micro_batch: mb,
            grad_checkpointing: ckpt,
            bytes_per_value: 4,
        }
    }

    fn lora() -> Tuning {
        Tuning::Lora { rank: 8, targets: vec!["q_proj".into(), "v_proj".into()] }
    }

    #[test]
    fn full_fine_tuning_holds_weights_gradients_and_two_adam_moments() {
        let e = estimate(&input(Tuning::Full, 1, false));
        assert_eq!(e.weights, 7_358_720 * 4);
        assert_eq!(e.gradients, e.weights);
        assert_eq!(e.optimizer, 2 * e.weights);
    }

    #[test]
    fn lora_trains_a_small_fraction_and_checkpointing_cuts_activations() {
        // r 8 on q and v of 4 layers of d 256: 4 · 2 · 8 · (256 + 256) = 32 768 parameters.
        assert_eq!(trainable_params(&tiny_llama_8k(), &lora()), 32_768);
        let full = estimate(&input(Tuning::Full, 8, false));
        let adapters = estimate(&input(lora(), 8, false));
        assert!(adapters.optimizer * 100 < full.optimizer);
        let ckpt = estimate(&input(Tuning::Full, 8, true));
        assert!(ckpt.activations < full.activations);
        // With many layers the layer activations dominate the logits and checkpointing more than halves them.
        let deep = |ckpt| {
            let mut i = input(Tuning::Full, 8, ckpt);
            i.config.num_layers = 30;
            estimate(&i).activations
        };
        assert!(deep(true) < deep(false) / 2);
        assert!(estimate(&input(Tuning::Full, 16, false)).activations > full.activations);
        let q = estimate(&input(
            Tuning::QLora { rank: 8, targets: vec!["q_proj".into(), "v_proj".into()] },
            8,
            false,
        ));
        assert_eq!(q.optimizer, adapters.optimizer);
        // tiny-llama-8k: 4 layers × (4·256² + 3·256·688) = 3 162 112 projection values in NF4.
        assert_eq!(q.weights, (7_358_720 - 3_162_112) * 4 + 3_162_112 / 64 * 36);
    }

    #[test]
    fn the_planner_picks_the_largest_micro_batch_that_fits() {
        let base = input(Tuning::Full, 1, false);
        let at = |mb| estimate(&PlanInput { micro_batch: mb, ..base.clone() }).total;
        assert_eq!(pick_micro_batch(&base, at(6), 32), Some(6));
        assert_eq!(pick_micro_batch(&base, at(6) - 1, 32), Some(5));
        assert_eq!(pick_micro_batch(&base, at(1) - 1, 32), None);
        assert_eq!(pick_micro_batch(&base, usize::MAX, 32), Some(32));
    }
}
