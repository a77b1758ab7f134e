//! The one linear layer every projection of the model uses, so that adapters (LoRA, QLoRA) can wrap all of them
//! by changing this file only.

use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, module::linear, Tensor},
};

/// `y = x · W + b` with `W` stored as `[d_in, d_out]` (burn's layout; HF stores the transpose).
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_in, d_out]`.
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`, when the layer has a bias.
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Linear<B> {
    /// Builds the layer from a weight `[d_in, d_out]` and an optional bias `[d_out]`. The weight must be
    /// contiguous: a transposed view would be copied on every forward by the CPU backend.
    pub fn new(weight_in_out: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self { weight: Param::from_tensor(weight_in_out), bias: bias.map(Param::from_tensor) }
    }

    /// The weight in HF layout `[d_out, d_in]`.
    pub fn hf_weight(&self) -> Tensor<B, 2> {
        self.weight.val().transpose()
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }

    /// `[..., d_in]` → `[..., d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }
}
