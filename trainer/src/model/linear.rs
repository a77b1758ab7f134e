//! The one linear layer every projection of the model uses, so that adapters wrap all of them from here: a frozen
//! base weight plus an optional LoRA adapter (`x·W + s·(x·A)·B`, with `s = alpha / rank`).

use super::quant::Nf4Weight;
use burn::{
    module::{Module, Param},
    tensor::{backend::Backend, module::linear, Tensor},
};

/// A low-rank adapter: `Δ(x) = scale · (x·A)·B`.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// `[d_in, rank]`, random at the start.
    pub a: Param<Tensor<B, 2>>,
    /// `[rank, d_out]`, zeros at the start (so a fresh adapter changes nothing).
    pub b: Param<Tensor<B, 2>>,
    /// `alpha / rank`.
    pub scale: f64,
}

/// `y = x · W + b` (+ the adapter) with `W` stored as `[d_in, d_out]` (burn's layout; HF stores the transpose).
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_in, d_out]`; a `[1, 1]` placeholder when the weight is held in NF4 (`nf4`).
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`, when the layer has a bias.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// The LoRA adapter, when one is attached.
    pub lora: Option<Lora<B>>,
    /// The frozen weight in 4-bit NormalFloat (QLoRA), dequantized at every forward.
    pub nf4: Option<Nf4Weight<B>>,
}

impl<B: Backend> Linear<B> {
    /// Builds the layer from a weight `[d_in, d_out]` and an optional bias `[d_out]`. The weight must be
    /// contiguous: a transposed view would be copied on every forward by the CPU backend.
    pub fn new(weight_in_out: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self {
            weight: Param::from_tensor(weight_in_out),
            bias: bias.map(Param::from_tensor),
            lora: None,
            nf4: None,
        }
    }

    /// Attaches a fresh adapter of `rank` (A ~ normal(0, 1/rank) from `rng`, B = 0) and freezes the base
    /// weight and bias.
    pub fn with_lora(self, rank: usize, alpha: f64, rng: &mut crate::rng::Rng) -> Self {
        let device = self.weight.device();
        let (d_in, d_out) = (self.d_in(), self.d_out());
        let a: Vec<f32> = (0..d_in * rank).map(|_| (rng.normal() / rank as f64) as f32).collect();
        let a = Tensor::from_data(burn::tensor::TensorData::new(a, [d_in, rank]), &device);
        let b = Tensor::zeros([rank, d_out], &device);
        Self {
            weight: self.weight.set_require_grad(false),
            bias: self.bias.map(|b| b.set_require_grad(false)),
            lora: Some(Lora {
                a: Param::from_tensor(a),
                b: Param::from_tensor(b),
                scale: alpha / rank as f64,
            }),
            nf4: self.nf4,
        }
    }

    /// Moves the (frozen) weight into NF4 blocks: about 4.5 bits per value; the forward dequantizes it.
    pub fn quantized(self) -> Self {
        if self.nf4.is_some() {
            return self;
        }
        let device = self.weight.device();
        let nf4 = Nf4Weight::from_tensor(self.weight.val());
        Self {
            weight: Param::from_tensor(Tensor::zeros([1, 1], &device)).set_require_grad(false),
            bias: self.bias.map(|b| b.set_require_grad(false)),
            lora: self.lora,
            nf4: Some(nf4),
        }
    }

    /// The base weight `[d_in, d_out]` (dequantized when held in NF4).
    pub fn base_weight(&self) -> Tensor<B, 2> {
        match &self.nf4 {
            Some(q) => q.dequantize(),
            None => self.weight.val(),
        }
    }

    /// Folds the adapter into the weight (`W + scale·A·B`) and drops it: what an HF export needs.
    pub fn merged(self) -> Self {
        match self.lora {
            None if self.nf4.is_none() => self,
            _ => {
                let mut w = self.base_weight();
                if let Some(l) = self.lora {
                    w = w.add(l.a.val().matmul(l.b.val()).mul_scalar(l.scale));
                }
                Self { weight: Param::from_tensor(w), bias: self.bias, lora: None, nf4: None }
            }
        }
    }

    /// The weight in HF layout `[d_out, d_in]`.
    pub fn hf_weight(&self) -> Tensor<B, 2> {
        self.base_weight().transpose()
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.nf4.as_ref().map_or(self.weight.dims()[0], |q| q.shape[0])
    }

    /// Output width.
    pub fn d_out(&self) -> usize {
        self.nf4.as_ref().map_or(self.weight.dims()[1], |q| q.shape[1])
    }

    /// `[..., d_in]` → `[..., d_out]`. Leading dimensions are flattened so that the product is one large
    /// matrix multiplication rather than a batch of small ones.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        let x: Tensor<B, 2> = x.reshape([rows, self.d_in()]);
        let mut y = if crate::kernels::available::<B>() {
            let y = crate::kernels::linear(x.clone(), self.base_weight()); // [rows, d_out]
            match &self.bias {
                Some(b) => y.add(b.val().unsqueeze::<2>()),
                None => y,
            }
        } else {
            linear(x.clone(), self.base_weight(), self.bias.as_ref().map(|b| b.val()))
        };
        if let Some(l) = &self.lora {
            y = y.add(x.matmul(l.a.val()).matmul(l.b.val()).mul_scalar(l.scale));
        }
        let mut out = dims;
        out[D - 1] = self.d_out();
        y.reshape(out)
    }
}
