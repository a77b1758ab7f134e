//! Fused CPU kernels for the hot spots of the llama forward and backward passes on burn-flex.
//!
//! burn-flex runs each element-wise operation of a composite (RMSNorm is six of them, softmax attention a
//! dozen, with transposed copies) as its own single-threaded pass over freshly allocated memory, and its
//! autodiff graph keeps every intermediate. These kernels do RMSNorm, SwiGLU's gate, RoPE and softmax attention
//! each in one parallel pass forward and one backward, reading strided views without copies (attention's
//! products go straight to `gemm`). They serve [`Flex`](route::Flex) and burn's `Autodiff` over it; every
//! other backend (CUDA) keeps burn's generic operations, which the model calls when [`available`] is false.
//!
//! Each kernel's backward pass is checked against finite differences in its own tests, and the model with and
//! without the kernels ([`with_generic`]) is compared in `tests/kernels.rs`.

mod attention;
mod flex;
pub mod gemm;
mod linear;
mod logprobs;
mod rms_norm;
mod rope;
pub mod route;
mod swiglu;

use std::sync::Arc;

use burn::tensor::{activation::log_softmax, backend::Backend, Bool, Int, Tensor};

pub use route::{available, with_generic};
use route::{cast, float, fused, tensor, Fused};

/// Elements handled by one parallel task of an element-wise kernel.
const CHUNK: usize = 1 << 14;

/// Rows of `row_len` elements per parallel task.
fn rows_per_task(row_len: usize) -> usize {
    (CHUNK / row_len.max(1)).max(1)
}

/// A linear map without bias: `x [rows, d_in] · weight [d_in, d_out]` → `[rows, d_out]`.
///
/// # Panics
/// When `B` has no fused kernels (check [`available`]).
pub fn linear<B: Backend>(x: Tensor<B, 2>, weight: Tensor<B, 2>) -> Tensor<B, 2> {
    fused!(B, F => tensor::<B, 2>(cast(F::linear(cast(float(x)), cast(float(weight))))))
}

/// RMSNorm: `[batch, seq, d]`, weight `[d]` → `[batch, seq, d]`.
///
/// # Panics
/// When `B` has no fused kernels (check [`available`]).
pub fn rms_norm<B: Backend>(x: Tensor<B, 3>, weight: Tensor<B, 1>, eps: f64) -> Tensor<B, 3> {
    fused!(B, F => tensor::<B, 3>(cast(F::rms_norm(cast(float(x)), cast(float(weight)), eps as f32))))
}

/// `silu(gate) · up`: two `[batch, seq, ffn]` → `[batch, seq, ffn]`.
///
/// # Panics
/// When `B` has no fused kernels (check [`available`]).
pub fn swiglu<B: Backend>(gate: Tensor<B, 3>, up: Tensor<B, 3>) -> Tensor<B, 3> {
    fused!(B, F => tensor::<B, 3>(cast(F::swiglu(cast(float(gate)), cast(float(up))))))
}

/// RoPE in HF's rotate-half layout: `x [batch, seq, heads, head_dim]`, tables `[batch, seq, 1, head_dim]`.
///
/// # Panics
/// When `B` has no fused kernels (check [`available`]).
pub fn rope<B: Backend>(x: Tensor<B, 4>, cos: Tensor<B, 4>, sin: Tensor<B, 4>) -> Tensor<B, 4> {
    fused!(B, F => tensor::<B, 4>(cast(F::rope(cast(float(x)), cast(float(cos)), cast(float(sin))))))
}

/// Softmax attention with grouped key/value heads: `q [batch, s, heads, head_dim]`, `k` and `v`
/// `[batch, t, kv_heads, head_dim]`, `mask [batch, 1, s, t]` (true: the query may not see the key)
/// → `[batch, s, heads, head_dim]`. Scores are `scale · q·k`.
///
/// # Panics
/// When `B` has no fused kernels (check [`available`]).
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Tensor<B, 4, Bool>,
    scale: f64,
) -> Tensor<B, 4> {
    fused!(B, F => tensor::<B, 4>(cast(F::attention(
        cast(float(q)),
        cast(float(k)),
        cast(float(v)),
        cast(mask.into_primitive()),
        scale as f32,
    ))))
}

/// Log-probability of each target under `logits`: `[b, s, vocab]` and targets `[b, s]` → `[b, s]`
/// (`log_softmax(logits)[target]`). Backends without fused kernels take `log_softmax` and `gather`.
pub fn token_logprobs<B: Backend>(logits: Tensor<B, 3>, targets: Tensor<B, 2, Int>) -> Tensor<B, 2> {
    let [b, s, _] = logits.dims();
    if !available::<B>() {
        return log_softmax(logits, 2).gather(2, targets.reshape([b, s, 1])).reshape([b, s]);
    }
    let ids = targets.into_data().convert::<i64>().to_vec::<i64>().expect("int targets");
    let ids: Arc<Vec<usize>> = Arc::new(ids.into_iter().map(|t| t.max(0) as usize).collect());
    fused!(B, F => tensor::<B, 2>(cast(F::token_logprobs(cast(float(logits)), ids))))
}
