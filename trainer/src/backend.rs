//! The backends the trainer names by type. Everything is generic over [`burn::tensor::backend::Backend`]; the
//! device is chosen at run time ([`crate::device`]) and [`crate::with_backend!`] picks the backend type from it.
//! The aliases here are the CPU's, used where the CPU is meant (tests, CPU benchmarks, the default device).

/// The CPU inference backend: burn-flex (burn-ndarray with the `ndarray` feature, for backend comparisons).
#[cfg(not(feature = "ndarray"))]
pub type Infer = crate::device::Cpu;
/// The CPU inference backend: burn-ndarray (the `ndarray` feature, for backend comparisons).
#[cfg(feature = "ndarray")]
pub type Infer = burn::backend::NdArray<f32>;

/// The CPU training backend: the inference backend with automatic differentiation.
pub type Train = burn::backend::Autodiff<Infer>;

/// The CPU training backend with gradient checkpointing: element-wise (memory-bound) results are recomputed in
/// the backward pass instead of being kept (burn's balanced strategy).
pub type TrainCheckpointed =
    burn::backend::Autodiff<Infer, burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing>;

/// A training backend: any backend with automatic differentiation (on any device, with or without
/// checkpointing).
pub trait TrainBackend: burn::tensor::backend::AutodiffBackend {}

impl<B: burn::tensor::backend::AutodiffBackend> TrainBackend for B {}

/// A short name of the CPU backend, shown in benchmark output.
pub fn name() -> &'static str {
    if cfg!(feature = "ndarray") {
        "cpu-ndarray"
    } else {
        "cpu-flex"
    }
}

/// The CPU device.
pub fn default_device() -> burn::tensor::Device<Infer> {
    Default::default()
}
