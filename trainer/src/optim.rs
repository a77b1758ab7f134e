//! The optimizer every training loop uses: AdamW (betas 0.9 / 0.999, eps 1e-8) after clipping the global
//! gradient norm.
//!
//! burn's own clipping (`GradientClippingConfig::Norm`) clips each parameter's gradient by that tensor's norm.
//! PyTorch's `clip_grad_norm_` (and TRL's `max_grad_norm`, DeepSpeed's `gradient_clipping`) scale all gradients
//! by one factor computed from their joint norm, which keeps the update's direction; [`ClippedAdamW`] does that.

use burn::{
    module::{AutodiffModule, ModuleVisitor, Param},
    optim::LearningRate,
    optim::{
        adaptor::OptimizerAdaptor, AdamW, AdamWConfig, GradientsParams, MultiGradientsParams, Optimizer,
    },
    tensor::{backend::AutodiffBackend, ElementConversion, Tensor},
};

use crate::backend::TrainBackend;

/// AdamW for module `M` with decoupled `weight_decay`, the gradients' global norm clipped to `clip_norm`
/// (0 turns clipping off).
pub fn adamw<B: TrainBackend, M: AutodiffModule<B>>(weight_decay: f32, clip_norm: f32) -> ClippedAdamW<M, B> {
    ClippedAdamW {
        inner: AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(weight_decay).init(),
        max_norm: (clip_norm > 0.0).then_some(clip_norm),
        last_norm: None,
    }
}

/// burn's AdamW behind global gradient-norm clipping. Its record (for checkpoints) is AdamW's.
#[derive(Clone)]
pub struct ClippedAdamW<M: AutodiffModule<B>, B: AutodiffBackend> {
    inner: OptimizerAdaptor<AdamW, M, B>,
    max_norm: Option<f32>,
    last_norm: Option<f32>,
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> ClippedAdamW<M, B> {
    /// The gradients' global L2 norm at the last step, before clipping.
    pub fn last_grad_norm(&self) -> Option<f32> {
        self.last_norm
    }
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> Optimizer<M, B> for ClippedAdamW<M, B> {
    type Record = <OptimizerAdaptor<AdamW, M, B> as Optimizer<M, B>>::Record;

    fn step(&mut self, lr: LearningRate, module: M, mut grads: GradientsParams) -> M {
        let norm = clip_grad_norm(&module, &mut grads, self.max_norm.unwrap_or(f32::INFINITY));
        self.last_norm = Some(norm);
        self.inner.step(lr, module, grads)
    }

    /// Gradients from several devices: stepped without clipping (alignbox trains on one device).
    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        self.inner.step_multi(lr, module, grads)
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(mut self, record: Self::Record) -> Self {
        self.inner = self.inner.load_record(record);
        self
    }
}

/// Scales every gradient of `module`'s parameters in `grads` by `min(1, max_norm / (‖g‖ + 1e-6))`, where
/// `‖g‖` is the L2 norm of all of them together (PyTorch's `clip_grad_norm_`). Returns `‖g‖`.
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f32,
) -> f32 {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                self.total += g.clone().mul(g).sum().into_scalar().elem::<f64>();
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f32,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads.register::<B::InnerBackend, D>(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let mut sum = SumSquares { grads, total: 0.0 };
    module.visit(&mut sum);
    let norm = sum.total.sqrt() as f32;
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        module.visit(&mut Scale { grads, factor });
    }
    norm
}

#[cfg(test)]
mod tests {
    use burn::{
        module::{Module, Param},
        optim::GradientsParams,
        tensor::{Tensor, TensorData},
    };

    use super::clip_grad_norm;
    use crate::backend::{default_device, Train};

    #[derive(Module, Debug)]
    struct Two<B: burn::tensor::backend::Backend> {
        a: Param<Tensor<B, 1>>,
        b: Param<Tensor<B, 2>>,
    }

    fn grads_of(model: &Two<Train>) -> GradientsParams {
        // loss = 3·Σa + 4·Σb over one element each: gradients 3 and 4, global norm 5.
        let loss = model.a.val().mul_scalar(3.0).sum() + model.b.val().mul_scalar(4.0).sum();
        GradientsParams::from_grads(loss.backward(), model)
    }

    fn value(grads: &GradientsParams, id: burn::module::ParamId, two_d: bool) -> f32 {
        if two_d {
            grads.get::<crate::backend::Infer, 2>(id).unwrap().into_data().to_vec::<f32>().unwrap()[0]
        } else {
            grads.get::<crate::backend::Infer, 1>(id).unwrap().into_data().to_vec::<f32>().unwrap()[0]
        }
    }

    #[test]
    fn clipping_scales_all_gradients_by_their_joint_norm() {
        let d = default_device();
        let model = Two::<Train> {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32], [1]), &d)),
            b: Param::from_tensor(Tensor::from_data(TensorData::new(vec![2.0f32], [1, 1]), &d)),
        };
        let mut grads = grads_of(&model);
        let norm = clip_grad_norm(&model, &mut grads, 1.0);
        assert!((norm - 5.0).abs() < 1e-5);
        // Both scaled by 1/5 (per-tensor clipping would give 1 and 1 instead).
        assert!((value(&grads, model.a.id, false) - 0.6).abs() < 1e-5);
        assert!((value(&grads, model.b.id, true) - 0.8).abs() < 1e-5);
        // Under the limit nothing changes.
        let mut grads = grads_of(&model);
        assert!((clip_grad_norm(&model, &mut grads, 10.0) - 5.0).abs() < 1e-5);
        assert!((value(&grads, model.a.id, false) - 3.0).abs() < 1e-6);
    }
}
