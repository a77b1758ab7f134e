//! The memory planner: an estimate, before a run starts, of what training or generation will hold — weights,
//! gradients, optimizer state, activations — and the largest micro-batch that fits a budget (gradient
//! accumulation then keeps the effective batch).
//!
//! Activations are counted from what each operation's backward pass keeps, which depends on the kernels that
//! run it:
//! - [`Kernels::Fused`] (the CPU's fused kernels): RMSNorm keeps its input, attention its rotated queries and
//!   keys, values and probabilities, SwiGLU its gate and up projections, and a linear map keeps its input only
//!   when its weight trains (with a frozen base, only the inputs of the projections that carry adapters).
//! - [`Kernels::Generic`] (burn's generic operations: CUDA, wgpu): every element-wise intermediate of a
//!   composite (the norms' squares and scales, the scores and probabilities, SiLU's output) is kept as well.
//!
//! The peak is at the start of the backward pass, when every activation is alive, the head's output and its
//! gradient both exist, and few gradients have been made yet; gradients grow as activations are freed, so
//! the two are not added. Layer-wise recomputation ([`PlanInput::grad_checkpointing`]) keeps each layer's input
//! and one layer's activations at a time. `bench rm` prints the estimate beside the measured peak.

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

/// What the top of the model computes: what the loss holds besides the decoder layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Head {
    /// A scalar reward per sequence (the reward model, PPO's critic).
    Reward,
    /// Next-token logits over the vocabulary (SFT, DPO, pretraining, the PPO actor).
    Logits,
}

/// Which implementation runs the model's operations (it decides what the backward pass keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kernels {
    /// The CPU's fused kernels (RMSNorm, RoPE, attention, SwiGLU, linear, token log-probabilities).
    Fused,
    /// burn's generic operations (the GPU backends).
    Generic,
}

impl Kernels {
    /// The kernels a run on `device` uses.
    pub fn on(device: crate::device::Device) -> Self {
        match device {
            crate::device::Device::Cpu => Kernels::Fused,
            _ => Kernels::Generic,
        }
    }

    /// The kernels backend `B` runs (the fused ones where [`crate::kernels::available`]).
    pub fn of<B: burn::tensor::backend::Backend>() -> Self {
        if crate::kernels::available::<B>() {
            Kernels::Fused
        } else {
            Kernels::Generic
        }
    }
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
    /// The model's head.
    pub head: Head,
    /// The kernels that run the model.
    pub kernels: Kernels,
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

/// Whether the projection `name` has a trainable weight or adapter under `tuning`.
fn trains(tuning: &Tuning, name: &str) -> bool {
    match tuning {
        Tuning::Full => true,
        Tuning::Lora { targets, .. } | Tuning::QLora { targets, .. } => targets.iter().any(|t| t == name),
        Tuning::Prefix { .. } => false,
    }
}

/// Key positions each query attends to: the sequence plus P-Tuning v2's prefix.
fn key_positions(tuning: &Tuning, seq_len: usize) -> usize {
    match tuning {
        Tuning::Prefix { n } => seq_len + n,
        _ => seq_len,
    }
}

/// Values one decoder layer keeps per token for its backward pass.
///
/// Fused kernels: both norms' inputs (and inverse RMS), the rotated queries and keys, the values and the
/// attention probabilities, the gate and up projections, the inputs of the projections that train (the normed
/// stream for q/k/v and gate/up, the attention context for o, SwiGLU's output for down; q/k/v share one) and each
/// adapter's `x·A`. Generic operations keep every intermediate of the composites besides.
fn layer_values_per_token(c: &LlamaConfig, tuning: &Tuning, seq_len: usize, kernels: Kernels) -> usize {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let t = key_positions(tuning, seq_len);
    match kernels {
        Kernels::Fused => {
            let norms = 2 * (d + 1);
            let attention = q + 2 * kv + c.num_heads * t;
            let swiglu = 2 * f;
            let any = |names: &[&str]| names.iter().any(|n| trains(tuning, n));
            let inputs = if any(&["q_proj", "k_proj", "v_proj"]) { d } else { 0 }
                + if trains(tuning, "o_proj") { q } else { 0 }
                + if any(&["gate_proj", "up_proj"]) { d } else { 0 }
                + if trains(tuning, "down_proj") { f } else { 0 };
            let adapters = match tuning {
                Tuning::Lora { rank, targets } | Tuning::QLora { rank, targets } => rank * targets.len(),
                _ => 0,
            };
            norms + attention + swiglu + inputs + adapters
        }
        Kernels::Generic => {
            // Norms, q/k/v, the context, scores and probabilities; norm, gate, up, SiLU and the product.
            let attention = 2 * d + q + 2 * kv + q + 2 * c.num_heads * t;
            let mlp = 2 * d + 4 * f;
            attention + mlp
        }
    }
}

/// Values the head keeps per token at the start of the backward pass: the final norm's input, the head's input,
/// and for logits the logits with their gradient (the generic log-softmax keeps its exponentials too).
fn head_values_per_token(c: &LlamaConfig, head: Head, kernels: Kernels) -> usize {
    let d = c.hidden_size;
    match (head, kernels) {
        (Head::Reward, _) => 2 * d + 2,
        (Head::Logits, Kernels::Fused) => 2 * d + 1 + 2 * c.vocab_size,
        (Head::Logits, Kernels::Generic) => 2 * d + 1 + 3 * c.vocab_size,
    }
}

/// Values of one layer's projection matrices.
fn projection_values(c: &LlamaConfig) -> usize {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    d * q + 2 * d * kv + q * d + 3 * d * f
}

/// The estimate for `input`. Weights, gradients, optimizer state and activations are added: a bound for full
/// fine-tuning (gradients grow as activations are freed, but gradient accumulation keeps both).
pub fn estimate(input: &PlanInput) -> Estimate {
    let c = &input.config;
    let b = input.bytes_per_value;
    let projections = c.num_layers * projection_values(c);
    let weights = match input.tuning {
        Tuning::QLora { .. } => (c.num_params() - projections) * b + projections.div_ceil(64) * (32 + 4),
        _ => c.num_params() * b,
    };
    let trainable = trainable_params(c, &input.tuning);
    let gradients = trainable * b;
    let optimizer = 2 * trainable * b;
    let tokens = input.micro_batch * input.seq_len;
    let layer = layer_values_per_token(c, &input.tuning, input.seq_len, input.kernels) * tokens;
    let head = head_values_per_token(c, input.head, input.kernels) * tokens;
    // QLoRA dequantizes each projection at the forward; the product keeps the f32 matrix for the input's
    // gradient until the backward pass reaches it.
    let dequantized = |layers: usize| match input.tuning {
        Tuning::QLora { .. } => layers * projection_values(c),
        _ => 0,
    };
    let kept = if input.grad_checkpointing {
        // Every layer's input; then the head, or one layer recomputed with the gradients at its two ends.
        let inputs = c.num_layers * c.hidden_size * tokens;
        inputs + head.max(layer + 3 * c.hidden_size * tokens + dequantized(1))
    } else {
        c.num_layers * layer + head + dequantized(c.num_layers)
    };
    let activations = kept * b;
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

/// The memory budget: `mb` MiB when given, else 80% of what `device` has free now (the CPU and lavapipe:
/// Linux `MemAvailable`; CUDA: the driver's free memory). `None` where the device reports no free memory
/// (wgpu on a GPU): the run then starts with everything and the out-of-memory fallback halves the micro-batch.
pub fn budget_bytes(mb: Option<usize>, device: crate::device::Device) -> Option<usize> {
    if let Some(mb) = mb {
        return Some(mb << 20);
    }
    let free = device.info().memory_free?;
    Some((free / 10 * 8) as usize)
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

/// PPO's memory from the estimates of one minibatch of the actor (a logits head) and of the critic (a reward
/// head), whether both are adapters on one frozen base, and the reward model's parameter count (f32).
pub fn ppo_estimate(
    actor: &Estimate,
    critic: &Estimate,
    adapters: bool,
    reward_params: usize,
) -> PpoEstimate {
    let reference = if adapters { 0 } else { actor.weights };
    let critic =
        critic.gradients + critic.optimizer + critic.activations + if adapters { 0 } else { critic.weights };
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
            head: Head::Logits,
            kernels: Kernels::Fused,
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
    fn activations_count_what_the_fused_kernels_keep() {
        // tiny-llama-8k: d 256, ffn 688, 4 heads and 4 kv heads of 64, 4 layers, vocab 8192.
        let c = tiny_llama_8k();
        assert_eq!((c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads), (256, 688, 4, 4));
        // LoRA on q and v: norms 2·257, q + 2·kv 768, probabilities 4·128, gate + up 2·688, the normed stream 256
        // (shared by q and v), x·A 2·8.
        let lora_layer = 2 * 257 + 768 + 4 * 128 + 2 * 688 + 256 + 16;
        assert_eq!(layer_values_per_token(&c, &lora(), 128, Kernels::Fused), lora_layer);
        // Full fine-tuning keeps the inputs of o (256), gate/up (256) and down (688) too.
        let full_layer = lora_layer - 16 + 256 + 256 + 688;
        assert_eq!(layer_values_per_token(&c, &Tuning::Full, 128, Kernels::Fused), full_layer);
        let mut rm = input(lora(), 4, false);
        rm.head = Head::Reward;
        let tokens = 4 * 128;
        assert_eq!(estimate(&rm).activations, (4 * lora_layer + 2 * 256 + 2) * tokens * 4);
        // The logits head keeps the logits and their gradient.
        let lm = input(lora(), 4, false);
        assert_eq!(estimate(&lm).activations - estimate(&rm).activations, (2 * 8192 - 1) * tokens * 4);
        // Generic operations keep more; QLoRA keeps each dequantized projection until the backward pass.
        let generic = PlanInput { kernels: Kernels::Generic, ..rm.clone() };
        assert!(estimate(&generic).activations > estimate(&rm).activations);
        let q = PlanInput { tuning: Tuning::QLora { rank: 8, targets: lora_targets() }, ..rm.clone() };
        assert_eq!(estimate(&q).activations - estimate(&rm).activations, 3_162_112 * 4);
        // With recomputation: every layer's input, then one layer at a time (plus its dequantized projections).
        let ckpt = PlanInput { grad_checkpointing: true, ..q };
        let one_layer = lora_layer * tokens + 3 * 256 * tokens + 3_162_112 / 4;
        assert_eq!(estimate(&ckpt).activations, (4 * 256 * tokens + one_layer) * 4);
    }

    fn lora_targets() -> Vec<String> {
        vec!["q_proj".into(), "v_proj".into()]
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
