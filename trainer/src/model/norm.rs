//! Root-mean-square layer normalisation.

use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, Tensor},
};

/// `x / sqrt(mean(x²) + eps) · w` over the last dimension.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[d_model]`.
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square before the square root.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// A norm with the given weight.
    pub fn new(weight: Tensor<B, 1>, eps: f64) -> Self {
        Self { weight: Param::from_tensor(weight), eps }
    }

    /// `[batch, seq, d_model]` → `[batch, seq, d_model]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        if crate::kernels::available::<B>() {
            return crate::kernels::rms_norm(x, self.weight.val(), self.eps);
        }
        let rms = x.clone().powi_scalar(2).mean_dim(2).add_scalar(self.eps).sqrt();
        x.div(rms).mul(self.weight.val().unsqueeze::<3>())
    }
}
