//! The optimizer every training loop uses: AdamW (betas 0.9 / 0.999, eps 1e-8) with gradient-norm clipping.

use burn::{
    grad_clipping::GradientClippingConfig,
    module::AutodiffModule,
    optim::{adaptor::OptimizerAdaptor, AdamW, AdamWConfig},
};

use crate::backend::TrainBackend;

/// AdamW for module `M` with decoupled `weight_decay` and gradients clipped to norm `clip_norm`.
pub fn adamw<B: TrainBackend, M: AutodiffModule<B>>(
    weight_decay: f32,
    clip_norm: f32,
) -> OptimizerAdaptor<AdamW, M, B> {
    AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(clip_norm)))
        .init()
}
