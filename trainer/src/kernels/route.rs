//! Which backends get the fused kernels, and moving tensors between a generic `B` and those concrete types.
//!
//! The model code is generic over `B: Backend`. The fused kernels exist for burn-flex only (as `Flex`, and
//! under `Autodiff` with or without checkpointing), so [`fused!`] compares `B` with those types at run time
//! (`TypeId`: a constant after inlining) and moves the primitives across with [`cast`], which is a no-op move
//! when the types are equal.

use std::{
    any::{Any, TypeId},
    cell::Cell,
    sync::Arc,
};

use burn::{
    backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing},
    tensor::{
        backend::Backend,
        ops::{BoolTensor, FloatTensor},
        Tensor, TensorPrimitive,
    },
};

/// burn-flex, the CPU backend the kernels are written for.
pub type Flex = burn::backend::Flex;
/// burn-flex under autodiff ([`crate::backend::Train`] on CPU builds).
pub type FlexAutodiff = burn::backend::Autodiff<Flex, NoCheckpointing>;
/// burn-flex under autodiff with balanced checkpointing ([`crate::backend::TrainCheckpointed`] on CPU builds).
pub type FlexAutodiffCheckpointed = burn::backend::Autodiff<Flex, BalancedCheckpointing>;

/// The fused operations, implemented for [`Flex`] (forward only) and for [`FlexAutodiff`] /
/// [`FlexAutodiffCheckpointed`] (forward + backward). Shapes are those of the public functions in
/// [`super`]; every input may be a strided view.
pub trait Fused: Backend {
    /// `x [rows, d_in] · weight [d_in, d_out]` → `[rows, d_out]`.
    fn linear(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
    /// RMSNorm over the last dimension: `x [rows…, d]`, `weight [d]`.
    fn rms_norm(x: FloatTensor<Self>, weight: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;
    /// `silu(gate) · up`, element-wise on equal shapes.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self>;
    /// RoPE: `x [b, s, h, d]`, `cos`/`sin` `[b, s, 1, d]` (not differentiated).
    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Softmax attention: `q [b, s, h, d]`, `k`/`v` `[b, t, kvh, d]`, `mask [b, 1, s, t]` (true = hidden)
    /// → `[b, s, h, d]`.
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: BoolTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
    /// `log_softmax(logits)[target]` per row: `logits [b, s, vocab]`, one target per row → `[b, s]`.
    fn token_logprobs(logits: FloatTensor<Self>, targets: Arc<Vec<usize>>) -> FloatTensor<Self>;
}

thread_local! {
    static GENERIC: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the fused kernels turned off on this thread (the model then uses burn's generic operations):
/// for tests that compare the two, and to rule the kernels out when a result looks wrong.
pub fn with_generic<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous setting, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            GENERIC.with(|g| g.set(self.0));
        }
    }
    let _restore = Restore(GENERIC.with(|g| g.replace(true)));
    f()
}

/// Whether `B` runs the fused kernels (on this thread).
pub fn available<B: Backend>() -> bool {
    if GENERIC.with(Cell::get) {
        return false;
    }
    let id = TypeId::of::<B>();
    id == TypeId::of::<Flex>()
        || id == TypeId::of::<FlexAutodiff>()
        || id == TypeId::of::<FlexAutodiffCheckpointed>()
}

/// Moves `a` into type `T`.
///
/// # Panics
/// When `A` and `T` are different types (callers check the backend first).
pub fn cast<A: 'static, T: 'static>(a: A) -> T {
    let mut slot = Some(a);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("kernels: the backend type was checked before the cast")
}

/// A float tensor's primitive.
pub fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

/// A float tensor from its primitive.
pub fn tensor<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// Runs `$body` with the type alias `$F` set to the concrete fused backend equal to `$B`.
///
/// # Panics
/// When `$B` is not one of them (check [`available`] first).
macro_rules! fused {
    ($B:ty, $F:ident => $body:expr) => {{
        use std::any::TypeId;
        let id = TypeId::of::<$B>();
        if id == TypeId::of::<$crate::kernels::route::Flex>() {
            type $F = $crate::kernels::route::Flex;
            $body
        } else if id == TypeId::of::<$crate::kernels::route::FlexAutodiff>() {
            type $F = $crate::kernels::route::FlexAutodiff;
            $body
        } else if id == TypeId::of::<$crate::kernels::route::FlexAutodiffCheckpointed>() {
            type $F = $crate::kernels::route::FlexAutodiffCheckpointed;
            $body
        } else {
            panic!("kernels: no fused kernels for this backend")
        }
    }};
}
pub(crate) use fused;
