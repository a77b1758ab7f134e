//! The SwiGLU feed-forward block.

use burn::{
    module::Module,
    tensor::{activation::silu, backend::Backend, Tensor},
};

use super::linear::Linear;

/// `down(silu(gate(x)) · up(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[d_model, ffn]`.
    pub gate_proj: Linear<B>,
    /// `[d_model, ffn]`.
    pub up_proj: Linear<B>,
    /// `[ffn, d_model]`.
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// `[batch, seq, d_model]` → `[batch, seq, d_model]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (gate, up) = (self.gate_proj.forward(x.clone()), self.up_proj.forward(x));
        let hidden = if crate::kernels::available::<B>() {
            crate::kernels::swiglu(gate, up) // [batch, seq, ffn]
        } else {
            silu(gate).mul(up)
        };
        self.down_proj.forward(hidden)
    }
}
