//! Layer-wise gradient checkpointing: the decoder layers of a llama trunk keep only their inputs in the forward
//! pass and are recomputed, one at a time, in the backward pass.
//!
//! [`gradients`] builds a step's loss with a recording tape on this thread. While it records, every
//! [`Llama::hidden`] without a KV cache on the training backend runs its decoder layers on the inner backend (no
//! autodiff graph, so nothing of the layers is kept but their `[batch, seq, d_model]` inputs) and hands the loss
//! a fresh leaf in place of the last layer's output. After the loss's backward pass, which reaches the head, the
//! final norm and that leaf, each layer is run again on the autodiff backend from its saved input, from the top
//! down, and back-propagated on its own with the gradient that arrived at its output (the vector-Jacobian product
//! of `sum(output · upstream)`); its input's gradient goes on to the layer below, then to the embedding.
//!
//! Peak activation memory becomes the layer inputs plus one layer's graph instead of every layer's graph, for
//! one more forward pass of the layers (the planner's [`crate::memory`] estimate with `grad_checkpointing`).
//! It works the same on every backend, including the fused CPU kernels.

use std::{any::Any, cell::RefCell};

use burn::{
    module::AutodiffModule,
    optim::{GradientsAccumulator, GradientsParams},
    tensor::{
        backend::{AutodiffBackend, Backend},
        module::embedding,
        Int, Tensor,
    },
};
use serde::{Deserialize, Serialize};

use crate::model::{attention::AttentionInputs, Layout, Llama};

/// What the backward pass keeps of the decoder layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recompute {
    /// Every intermediate of every layer (fastest, most memory).
    #[default]
    Nothing,
    /// Only each layer's input; layers are recomputed one at a time in the backward pass.
    Layers,
}

impl Recompute {
    /// `Layers` when `on`, else `Nothing` (for command-line switches).
    pub fn layers_if(on: bool) -> Self {
        if on {
            Recompute::Layers
        } else {
            Recompute::Nothing
        }
    }
}

/// One trunk forward recorded during the loss: what its backward pass needs to recompute the layers.
struct Segment<B: AutodiffBackend> {
    /// The trunk (handles to the same parameters as the trained module).
    model: Llama<B>,
    /// `[batch, seq]` token ids.
    tokens: Tensor<B, 2, Int>,
    /// Padding and start of the forward.
    layout: Layout,
    /// The input of each layer, `[batch, seq, d_model]`: the embedding's output, then each layer's output.
    inputs: Vec<Tensor<B::InnerBackend, 3>>,
    /// The leaf standing for the last layer's output in the loss, `[batch, seq, d_model]`.
    top: Tensor<B, 3>,
}

/// The recording tape of the thread's current [`gradients`] call, for backend `B`. Named with `B: Backend` (so
/// that the generic model can look it up); its `record` function exists only for autodiff backends.
struct Tape<B: Backend> {
    record: RecordFn<B>,
    segments: Vec<Box<dyn Any>>,
}

/// Records one trunk forward into the segments and returns the leaf standing for its last layer's output.
type RecordFn<B> = fn(&mut Vec<Box<dyn Any>>, &Llama<B>, Tensor<B, 2, Int>, &Layout) -> Tensor<B, 3>;

thread_local! {
    static TAPE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Clears the thread's tape when dropped (also when the loss panics, e.g. out of memory).
struct Recording;

impl Drop for Recording {
    fn drop(&mut self) {
        TAPE.with(|t| t.borrow_mut().take());
    }
}

/// Called by [`Llama::hidden`] (no cache): the last layer's output `[batch, seq, d_model]` as a leaf, with the
/// layers run without a graph, when a tape for `B` is recording on this thread; `None` otherwise.
pub(crate) fn intercept<B: Backend>(
    model: &Llama<B>,
    tokens: &Tensor<B, 2, Int>,
    layout: &Layout,
) -> Option<Tensor<B, 3>> {
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        let tape = t.as_mut()?.downcast_mut::<Tape<B>>()?;
        Some((tape.record)(&mut tape.segments, model, tokens.clone(), layout))
    })
}

fn record<B: AutodiffBackend>(
    segments: &mut Vec<Box<dyn Any>>,
    model: &Llama<B>,
    tokens: Tensor<B, 2, Int>,
    layout: &Layout,
) -> Tensor<B, 3> {
    let [b, s] = tokens.dims();
    let inner_inputs = inner(&model.attention_inputs(b, s, layout, &tokens.device()));
    let mut x = embedding(model.embed_tokens.val().inner(), tokens.clone().inner());
    let mut inputs = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        inputs.push(x.clone());
        x = layer.valid().forward(x, &inner_inputs, None);
    }
    let top = Tensor::<B, 3>::from_inner(x).require_grad();
    segments.push(Box::new(Segment {
        model: model.clone(),
        tokens,
        layout: layout.clone(),
        inputs,
        top: top.clone(),
    }));
    top
}

fn inner<B: AutodiffBackend>(a: &AttentionInputs<B>) -> AttentionInputs<B::InnerBackend> {
    AttentionInputs { cos: a.cos.clone().inner(), sin: a.sin.clone().inner(), mask: a.mask.clone().inner() }
}

/// The gradients of the loss that `loss` builds (a `[1]` tensor, with whatever else it returns) with respect
/// to every parameter of `module`. With [`Recompute::Layers`], every llama trunk the loss runs (of `module`:
/// their parameters must be `module`'s) keeps only its layer inputs and is recomputed layer by layer in the
/// backward pass; the gradients are the same up to float rounding.
pub fn gradients<B, M, S>(
    module: &M,
    recompute: Recompute,
    loss: impl FnOnce() -> (Tensor<B, 1>, S),
) -> (GradientsParams, S)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    if recompute == Recompute::Nothing {
        let (l, s) = loss();
        return (GradientsParams::from_grads(l.backward(), module), s);
    }
    let (l, s, segments) = {
        let _recording = Recording;
        TAPE.with(|t| {
            *t.borrow_mut() = Some(Box::new(Tape::<B> { record: record::<B>, segments: Vec::new() }))
        });
        let (l, s) = loss();
        let tape = TAPE.with(|t| t.borrow_mut().take()).expect("the tape records until the loss is built");
        let tape = tape.downcast::<Tape<B>>().unwrap_or_else(|_| unreachable!("the tape is for B"));
        (l, s, tape.segments)
    };
    let mut grads = l.backward();
    let mut acc = GradientsAccumulator::<M>::new();
    acc.accumulate(module, GradientsParams::from_module(&mut grads, module));
    let pending: Vec<(Segment<B>, Tensor<B::InnerBackend, 3>)> = segments
        .into_iter()
        .filter_map(|seg| {
            let seg = *seg.downcast::<Segment<B>>().unwrap_or_else(|_| unreachable!("segments are for B"));
            let g = seg.top.grad(&grads)?;
            Some((seg, g))
        })
        .collect();
    drop(grads); // the head's graph and gradients go before the layers are recomputed
    for (seg, upstream) in pending {
        backward_layers(module, &mut acc, seg, upstream);
    }
    (acc.grads(), s)
}

/// Back-propagates `upstream` (the gradient at the last layer's output) through the segment's layers, top down,
/// then into the embedding, adding each part's parameter gradients to `acc`.
fn backward_layers<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    acc: &mut GradientsAccumulator<M>,
    seg: Segment<B>,
    mut upstream: Tensor<B::InnerBackend, 3>,
) {
    let Segment { model, tokens, layout, inputs, top } = seg;
    drop(top);
    let [b, s] = tokens.dims();
    let att = model.attention_inputs(b, s, &layout, &tokens.device());
    for (layer, x) in model.layers.iter().zip(inputs).rev() {
        let x = Tensor::<B, 3>::from_inner(x).require_grad();
        let out = layer.forward(x.clone(), &att, None);
        let mut grads = (out * Tensor::from_inner(upstream)).sum().backward();
        upstream = x.grad(&grads).expect("a layer's input takes part in its output");
        acc.accumulate(module, GradientsParams::from_module(&mut grads, module));
    }
    if model.embed_tokens.is_require_grad() {
        let e = embedding(model.embed_tokens.val(), tokens);
        let mut grads = (e * Tensor::from_inner(upstream)).sum().backward();
        acc.accumulate(module, GradientsParams::from_module(&mut grads, module));
    }
}
