//! The critic-free policy loss (RLOO, GRPO and their variants): PPO's clipped surrogate with one advantage per
//! answer, an optional per-token KL term to the reference, and a choice of how token losses are averaged.

use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use super::{group::KlEstimator, losses::scalar, losses::LossOut};

/// How the per-token losses of a batch of answers are averaged into one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenNorm {
    /// Mean over each answer's tokens, then over answers (GRPO's original): a long answer's tokens each weigh
    /// less, which biases the update toward long wrong answers and short right ones.
    Sequence,
    /// Sum over all tokens / number of valid tokens (DAPO's; PPO's masked mean).
    Token,
    /// Sum over all tokens / (answers × the longest allowed answer) (Dr. GRPO's): every token weighs the same
    /// whatever its answer's length.
    Constant,
}

/// d = log π − log π_ref turned into the estimator's per-token KL, `[rows, tokens]`.
fn kl_tokens<B: Backend>(d: Tensor<B, 2>, estimator: KlEstimator) -> Tensor<B, 2> {
    match estimator {
        KlEstimator::K1 => d,
        KlEstimator::K2 => d.powi_scalar(2).mul_scalar(0.5),
        KlEstimator::K3 => d.clone().neg().exp().sub_scalar(1.0).add(d),
    }
}

/// Averages `x` `[rows, tokens]` over the valid positions by `norm`; `max_tokens` is the longest allowed answer
/// (for [`TokenNorm::Constant`]).
pub fn aggregate<B: Backend>(
    x: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    norm: TokenNorm,
    max_tokens: usize,
) -> Tensor<B, 1> {
    let [rows, _] = x.dims();
    let masked = x.mul(mask.clone());
    match norm {
        TokenNorm::Sequence => {
            let per_answer = masked.sum_dim(1).div(mask.sum_dim(1).clamp_min(1.0)); // [rows, 1]
            per_answer.mean()
        }
        TokenNorm::Token => masked.sum().div(mask.sum().clamp_min(1.0)),
        TokenNorm::Constant => masked.sum().div_scalar((rows * max_tokens.max(1)) as f64),
    }
}

/// The loss of one minibatch. `logprobs` (with gradient), `old_logprobs` (the sampling policy's),
/// `ref_logprobs`, `action_mask`: `[rows, tokens]`; `advantages`: `[rows]`, one per answer. Per token:
/// max(−A·ρ, −A·clip(ρ, 1 ± ε)) with ρ = exp(log π − log π_old), plus β·kl_t when `kl` is `(β, estimator)`,
/// averaged by `norm`. Stats: `policy/clipfrac`, `policy/approxkl` (to the sampling policy), `kl/token` (the
/// estimator's mean per valid token, to the reference).
#[allow(clippy::too_many_arguments)]
pub fn group_policy_loss<B: Backend>(
    logprobs: Tensor<B, 2>,
    old_logprobs: Tensor<B, 2>,
    ref_logprobs: Tensor<B, 2>,
    advantages: Tensor<B, 1>,
    action_mask: Tensor<B, 2>,
    clip: f64,
    kl: Option<(f64, KlEstimator)>,
    norm: TokenNorm,
    max_tokens: usize,
) -> LossOut<B> {
    let [rows, tokens] = logprobs.dims();
    let adv = advantages.reshape([rows, 1]).expand([rows, tokens]);
    let log_ratio = logprobs.clone().sub(old_logprobs);
    let ratio = log_ratio.clone().exp();
    let unclipped = adv.clone().neg().mul(ratio.clone());
    let clipped = adv.neg().mul(ratio.clamp(1.0 - clip, 1.0 + clip));
    let mut per_token = unclipped.clone().max_pair(clipped.clone());
    let (estimator, beta) = kl.map_or((KlEstimator::K3, 0.0), |(b, e)| (e, b));
    let kl_t = kl_tokens(logprobs.sub(ref_logprobs), estimator);
    let kl_mean = scalar(super::losses::masked_mean(kl_t.clone().detach(), action_mask.clone()));
    if beta != 0.0 {
        per_token = per_token.add(kl_t.mul_scalar(beta));
    }
    let loss = aggregate(per_token, action_mask.clone(), norm, max_tokens);
    let clipfrac =
        scalar(super::losses::masked_mean(clipped.greater(unclipped).float(), action_mask.clone()));
    let approxkl = scalar(super::losses::masked_mean(log_ratio.powi_scalar(2).mul_scalar(0.5), action_mask));
    LossOut {
        loss,
        stats: vec![("policy/clipfrac", clipfrac), ("policy/approxkl", approxkl), ("kl/token", kl_mean)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Infer, Train};
    use burn::tensor::TensorData;

    fn t2<B: Backend>(v: &[f32], cols: usize) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len() / cols, cols]), &B::Device::default())
    }

    fn t1<B: Backend>(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &B::Device::default())
    }

    #[test]
    fn the_three_norms_average_as_documented() {
        // Row 0 has 2 valid tokens (1, 3), row 1 has 1 (5).
        let x = t2::<Infer>(&[1.0, 3.0, 5.0, 7.0], 2);
        let m = t2::<Infer>(&[1.0, 1.0, 1.0, 0.0], 2);
        let at = |n| scalar(aggregate(x.clone(), m.clone(), n, 4));
        assert!((at(TokenNorm::Sequence) - (2.0 + 5.0) / 2.0).abs() < 1e-6);
        assert!((at(TokenNorm::Token) - 9.0 / 3.0).abs() < 1e-6);
        assert!((at(TokenNorm::Constant) - 9.0 / (2.0 * 4.0)).abs() < 1e-6);
    }

    #[test]
    fn on_policy_the_loss_is_minus_the_advantage_and_its_gradient_is_the_policy_gradient() {
        // ρ = 1 on the first step: per token −A; with the k3 term at log π = log π_ref it adds 0.
        let lp = t2::<Train>(&[-1.0, -2.0, -0.5, -0.7], 2).require_grad();
        let old = t2::<Train>(&[-1.0, -2.0, -0.5, -0.7], 2);
        let mask = t2::<Train>(&[1.0, 1.0, 1.0, 0.0], 2);
        let out = group_policy_loss(
            lp.clone(),
            old.clone(),
            old,
            t1(&[2.0, -1.0]),
            mask,
            0.2,
            Some((0.1, KlEstimator::K3)),
            TokenNorm::Token,
            2,
        );
        // (−2 − 2 + 1) / 3 tokens.
        assert!((scalar(out.loss.clone()) + 1.0).abs() < 1e-6);
        let g = lp.grad(&out.loss.backward()).unwrap().into_data().to_vec::<f32>().unwrap();
        // ∂/∂log π of −A·ρ / 3 at ρ = 1 is −A / 3; the k3 term's gradient is 1 − e^{−d} = 0 at d = 0.
        let want = [-2.0 / 3.0, -2.0 / 3.0, 1.0 / 3.0, 0.0];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
    }

    #[test]
    fn the_ratio_is_clipped_and_the_kl_term_is_added_per_token() {
        // One token, A = 1, ρ = e^{0.5} ≈ 1.65 > 1.2: the clipped term max(−1.65, −1.2) = −1.2 (no gradient).
        let lp = t2::<Infer>(&[-0.5], 1);
        let old = t2::<Infer>(&[-1.0], 1);
        let reference = t2::<Infer>(&[-1.5], 1);
        let mask = t2::<Infer>(&[1.0], 1);
        let k3 = (-1.0f32).exp() - 1.0 + 1.0; // d = 1
        let out = group_policy_loss(
            lp,
            old,
            reference,
            t1(&[1.0]),
            mask,
            0.2,
            Some((0.5, KlEstimator::K3)),
            TokenNorm::Sequence,
            1,
        );
        assert!((scalar(out.loss) - (-1.2 + 0.5 * k3)).abs() < 1e-5);
        let stat = |k| out.stats.iter().find(|(n, _)| *n == k).unwrap().1;
        assert_eq!(stat("policy/clipfrac"), 1.0);
        assert!((stat("policy/approxkl") - 0.125).abs() < 1e-6);
        assert!((stat("kl/token") - k3).abs() < 1e-6);
    }
}
