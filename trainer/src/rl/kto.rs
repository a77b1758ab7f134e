//! KTO (Ethayarajh et al. 2024): alignment from binary feedback — a thumbs up or down per answer, no pairs.
//! With the implicit reward r = log π(y|x) − log π_ref(y|x) and a reference point z₀ (an estimate of
//! KL(π ‖ π_ref), held constant in the gradient), a desirable answer's loss is λ_D·(1 − σ(β(r − z₀))) and an
//! undesirable one's λ_U·(1 − σ(β(z₀ − r))).

use burn::tensor::{activation::sigmoid, backend::Backend, Tensor};

use super::losses::{scalar, LossOut};

/// KTO's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KtoConfig {
    /// β: how sharply the value function saturates.
    pub beta: f64,
    /// λ_D, the weight of desirable answers.
    pub desirable_weight: f64,
    /// λ_U, the weight of undesirable answers.
    pub undesirable_weight: f64,
}

impl Default for KtoConfig {
    /// The paper's (and TRL's) defaults: β 0.1, both weights 1.
    fn default() -> Self {
        Self { beta: 0.1, desirable_weight: 1.0, undesirable_weight: 1.0 }
    }
}

/// The reference point z₀ from sequence log-probs of answers paired with *other* prompts (the paper's
/// mismatched pairs): max(0, mean(log π − log π_ref)). It is a number: no gradient flows through it.
pub fn reference_point(logps: &[f32], ref_logps: &[f32]) -> f64 {
    let n = logps.len().max(1) as f64;
    let mean = logps.iter().zip(ref_logps).map(|(a, b)| (a - b) as f64).sum::<f64>() / n;
    mean.max(0.0)
}

/// The weighted mean KTO loss. `logps`, `ref_logps`: `[n]` sequence log-probs of the answers; `desirable`: `[n]`
/// 1 for a thumbs up, 0 for a thumbs down; `z0` from [`reference_point`]. Averaged over the total weight. Stats:
/// `kto/rewards/desirable`, `kto/rewards/undesirable` (mean β·r of each kind, 0 when there is none).
pub fn kto_loss<B: Backend>(
    logps: Tensor<B, 1>,
    ref_logps: Tensor<B, 1>,
    desirable: Tensor<B, 1>,
    z0: f64,
    cfg: &KtoConfig,
) -> LossOut<B> {
    let r = logps.sub(ref_logps); // [n]
    let undesirable = desirable.clone().neg().add_scalar(1.0);
    let up = sigmoid(r.clone().sub_scalar(z0).mul_scalar(cfg.beta)).neg().add_scalar(1.0);
    let down = sigmoid(r.clone().neg().add_scalar(z0).mul_scalar(cfg.beta)).neg().add_scalar(1.0);
    let weights = desirable
        .clone()
        .mul_scalar(cfg.desirable_weight)
        .add(undesirable.clone().mul_scalar(cfg.undesirable_weight));
    let per = up
        .mul(desirable.clone())
        .mul_scalar(cfg.desirable_weight)
        .add(down.mul(undesirable.clone()).mul_scalar(cfg.undesirable_weight));
    let loss = per.sum().div(weights.sum().clamp_min(1e-12));
    let kind_mean = |mask: Tensor<B, 1>| {
        let count = scalar(mask.clone().sum());
        if count == 0.0 {
            0.0
        } else {
            scalar(r.clone().mul(mask).sum()) * cfg.beta as f32 / count
        }
    };
    let stats = vec![
        ("kto/rewards/desirable", kind_mean(desirable)),
        ("kto/rewards/undesirable", kind_mean(undesirable)),
    ];
    LossOut { loss, stats }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Infer, Train};
    use burn::tensor::TensorData;

    fn t<B: Backend>(v: &[f32]) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &B::Device::default())
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn the_loss_matches_the_formula_with_weights() {
        // r = 2 (desirable), r = −1 (undesirable), z₀ = 0.5, β = 0.5, λ_D = 1, λ_U = 1.5.
        let cfg = KtoConfig { beta: 0.5, desirable_weight: 1.0, undesirable_weight: 1.5 };
        let out = kto_loss::<Infer>(t(&[-1.0, -4.0]), t(&[-3.0, -3.0]), t(&[1.0, 0.0]), 0.5, &cfg);
        let up = 1.0 - sig(0.5 * (2.0 - 0.5));
        let down = 1.0 - sig(0.5 * (0.5 + 1.0));
        let want = (up + 1.5 * down) / 2.5;
        assert!((scalar(out.loss) as f64 - want).abs() < 1e-6);
        assert_eq!(out.stats[0], ("kto/rewards/desirable", 1.0));
        assert_eq!(out.stats[1], ("kto/rewards/undesirable", -0.5));
    }

    #[test]
    fn the_gradient_raises_liked_answers_and_lowers_disliked_ones() {
        let lp = t::<Train>(&[-2.0, -2.0]).require_grad();
        let out = kto_loss(lp.clone(), t(&[-2.0, -2.0]), t(&[1.0, 0.0]), 0.0, &KtoConfig::default());
        // At r = z₀ = 0 the loss is 1 − σ(0) = ½ for both.
        assert!((scalar(out.loss.clone()) - 0.5).abs() < 1e-6);
        let g = lp.grad(&out.loss.backward()).unwrap().into_data().to_vec::<f32>().unwrap();
        // ∂/∂r of (1 − σ(βr)) / 2 is −β·¼ / 2; of (1 − σ(−βr)) / 2 is +β·¼ / 2.
        assert!((g[0] + 0.0125).abs() < 1e-6 && (g[1] - 0.0125).abs() < 1e-6, "{g:?}");
    }

    #[test]
    fn the_reference_point_is_the_clamped_mean_log_ratio() {
        assert!((reference_point(&[-1.0, -2.0], &[-2.0, -2.0]) - 0.5).abs() < 1e-9);
        assert_eq!(reference_point(&[-3.0], &[-1.0]), 0.0);
    }
}
