//! The critic-free update: epochs over shuffled minibatches of answers, the clipped policy loss with one
//! advantage per answer (and the KL term when it is in the loss), one AdamW step per minibatch, an early stop
//! past the approximate-KL limit.

use burn::{
    optim::Optimizer,
    tensor::{Tensor, TensorData},
};
use serde::{Deserialize, Serialize};

use super::{GroupBatch, GroupConfig};
use crate::{
    backend::TrainBackend,
    model::Llama,
    ppo::{
        rollout::{answer_logits, answer_logprobs, entropy, rows_tensor, SeqBatch},
        update::select,
    },
    rl::{
        group::KlPlacement,
        group_loss::group_policy_loss,
        losses::{masked_mean, scalar_f64 as scalar},
    },
    rng::Rng,
    train::recompute::gradients,
};

/// Averages over the minibatch steps an update ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// The loss (policy term plus the KL term when it is in the loss).
    pub loss: f64,
    /// Share of tokens whose ratio was clipped.
    pub clipfrac: f64,
    /// ½·mean((log π − log π_old)²).
    pub approx_kl: f64,
    /// Mean per-token KL estimate to the reference.
    pub kl_token: f64,
    /// Mean per-token entropy.
    pub entropy: f64,
    /// Minibatch steps taken.
    pub steps: usize,
    /// Whether the approximate-KL limit ended the update.
    pub early_stopped: bool,
}

/// Runs the update with KL coefficient `beta` and returns the trained policy.
pub fn update<B: TrainBackend, O: Optimizer<Llama<B>, B>>(
    mut actor: Llama<B>,
    optim: &mut O,
    gb: &GroupBatch,
    batch: &SeqBatch,
    cfg: &GroupConfig,
    beta: f64,
    rng: &mut Rng,
) -> (Llama<B>, UpdateStats) {
    let device = actor.embed_tokens.device();
    let n = gb.advantages.len();
    let mb = n.div_ceil(cfg.minibatches.max(1)).max(1);
    let kl_term = (cfg.kl_placement == KlPlacement::Loss && beta != 0.0).then_some((beta, cfg.kl_estimator));
    let mut stats = UpdateStats::default();
    'epochs: for _ in 0..cfg.epochs.max(1) {
        let order = rng.permutation(n);
        for idx in order.chunks(mb) {
            let sub = batch.rows(idx);
            let t = |rows: &[Vec<f32>]| rows_tensor::<B>(&select(rows, idx), &device);
            let mask = t(&gb.mask);
            let adv =
                Tensor::<B, 1>::from_data(TensorData::new(select(&gb.advantages, idx), [idx.len()]), &device);
            let (grads, (loss, ent, out_stats)) = gradients(&actor, cfg.recompute, || {
                let logits = answer_logits(&actor, &sub, cfg.temperature);
                let ent = scalar(masked_mean(entropy(logits.clone().detach()), mask.clone()));
                let logprobs = answer_logprobs(logits, &sub);
                let out = group_policy_loss(
                    logprobs,
                    t(&gb.old_logprobs),
                    t(&gb.ref_logprobs),
                    adv,
                    mask.clone(),
                    cfg.clip,
                    kl_term,
                    cfg.norm,
                    cfg.max_new_tokens,
                );
                let l = scalar(out.loss.clone());
                (out.loss, (l, ent, out.stats))
            });
            actor = optim.step(cfg.lr, actor, grads);
            let stat = |k: &str| out_stats.iter().find(|(n, _)| *n == k).map_or(0.0, |(_, v)| *v as f64);
            let approx_kl = stat("policy/approxkl");
            stats.loss += loss;
            stats.clipfrac += stat("policy/clipfrac");
            stats.approx_kl += approx_kl;
            stats.kl_token += stat("kl/token");
            stats.entropy += ent;
            stats.steps += 1;
            if cfg.stop_kl.is_some_and(|limit| approx_kl > limit) {
                stats.early_stopped = true;
                break 'epochs;
            }
        }
    }
    let k = stats.steps.max(1) as f64;
    for v in
        [&mut stats.loss, &mut stats.clipfrac, &mut stats.approx_kl, &mut stats.kl_token, &mut stats.entropy]
    {
        *v /= k;
    }
    (actor, stats)
}
