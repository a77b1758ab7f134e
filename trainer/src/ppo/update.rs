//! The PPO update: several epochs over shuffled minibatches of one [`Experience`]; clipped policy loss plus
//! vf_coef × clipped value loss, one backward through actor and critic, one AdamW step; early stop when the
//! policy has moved too far (approximate KL).

use burn::optim::Optimizer;
use serde::{Deserialize, Serialize};

use super::{
    experience::Experience,
    rollout::{answer_logits, answer_logprobs, answer_values, entropy, rows_tensor, SeqBatch},
    ActorCritic, PpoConfig,
};
use crate::{
    backend::TrainBackend,
    rl::losses::{masked_mean, policy_loss, value_loss},
    rng::Rng,
    train::recompute::gradients,
};

/// Averages over the minibatches an update ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Clipped policy loss.
    pub policy_loss: f64,
    /// Clipped value loss (before vf_coef).
    pub value_loss: f64,
    /// Share of tokens whose ratio was clipped.
    pub clipfrac: f64,
    /// Share of tokens whose value was clipped.
    pub value_clipfrac: f64,
    /// ½·mean((log π − log π_old)²).
    pub approx_kl: f64,
    /// Mean per-token entropy of the policy.
    pub entropy: f64,
    /// Minibatch steps taken.
    pub steps: usize,
    /// Whether the KL early stop ended the update.
    pub early_stopped: bool,
}

use crate::rl::losses::scalar_f64 as scalar;

/// The rows of `rows` at `idx`, in that order (a minibatch of per-answer values).
pub(crate) fn select<T: Clone>(rows: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| rows[i].clone()).collect()
}

/// Runs the update and returns the trained actor-critic.
pub fn update<B: TrainBackend, O: Optimizer<ActorCritic<B>, B>>(
    mut model: ActorCritic<B>,
    optim: &mut O,
    exp: &Experience,
    batch: &SeqBatch,
    cfg: &PpoConfig,
    rng: &mut Rng,
) -> (ActorCritic<B>, UpdateStats) {
    let device = model.actor.embed_tokens.device();
    let n = exp.len();
    let mb = n.div_ceil(cfg.minibatches.max(1)).max(1);
    let mut stats = UpdateStats::default();
    'epochs: for _ in 0..cfg.epochs {
        let order = rng.permutation(n);
        for idx in order.chunks(mb) {
            let sub = batch.rows(idx);
            let t = |rows: &[Vec<f32>]| rows_tensor::<B>(&select(rows, idx), &device);
            let mask = t(&exp.mask);
            let (grads, (p_loss, v_loss, ent, pl_stats, vl_stats)) = gradients(&model, cfg.recompute, || {
                let logits = answer_logits(&model.actor, &sub, cfg.temperature);
                let ent = scalar(masked_mean(entropy(logits.clone().detach()), mask.clone()));
                let logprobs = answer_logprobs(logits, &sub);
                let pl =
                    policy_loss(logprobs, t(&exp.old_logprobs), t(&exp.advantages), mask.clone(), cfg.clip);
                let values = answer_values(&model.critic, &sub);
                let vl = value_loss(values, t(&exp.values), t(&exp.returns), mask.clone(), cfg.value_clip);
                let (p_loss, v_loss) = (scalar(pl.loss.clone()), scalar(vl.loss.clone()));
                let loss = pl.loss.add(vl.loss.mul_scalar(cfg.vf_coef));
                (loss, (p_loss, v_loss, ent, pl.stats, vl.stats))
            });
            model = optim.step(cfg.lr, model, grads);
            let stat =
                |s: &[(&str, f32)], k: &str| s.iter().find(|(n, _)| *n == k).map_or(0.0, |(_, v)| *v as f64);
            let approx_kl = stat(&pl_stats, "ppo/policy/approxkl");
            stats.policy_loss += p_loss;
            stats.value_loss += v_loss;
            stats.clipfrac += stat(&pl_stats, "ppo/policy/clipfrac");
            stats.value_clipfrac += stat(&vl_stats, "ppo/val/clipfrac");
            stats.approx_kl += approx_kl;
            stats.entropy += ent;
            stats.steps += 1;
            if cfg.stop_kl.is_some_and(|limit| approx_kl > limit) {
                stats.early_stopped = true;
                break 'epochs;
            }
        }
    }
    let k = stats.steps.max(1) as f64;
    for v in [
        &mut stats.policy_loss,
        &mut stats.value_loss,
        &mut stats.clipfrac,
        &mut stats.value_clipfrac,
        &mut stats.approx_kl,
        &mut stats.entropy,
    ] {
        *v /= k;
    }
    (model, stats)
}
