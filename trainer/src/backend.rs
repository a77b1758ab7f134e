//! The compute backend this build of alignbox runs on.

/// The inference backend: burn-flex on the CPU by default, burn-cuda with the `cuda` feature.
#[cfg(not(any(feature = "cuda", feature = "ndarray")))]
pub type Infer = burn::backend::Flex<f32>;
/// The inference backend: burn-ndarray on the CPU (the `ndarray` feature, for backend comparisons).
#[cfg(all(feature = "ndarray", not(feature = "cuda")))]
pub type Infer = burn::backend::NdArray<f32>;
/// The inference backend: burn-flex on the CPU by default, burn-cuda with the `cuda` feature.
#[cfg(feature = "cuda")]
pub type Infer = burn::backend::Cuda<f32>;

/// The training backend: the inference backend with automatic differentiation.
pub type Train = burn::backend::Autodiff<Infer>;

/// The training backend with gradient checkpointing: element-wise (memory-bound) results are recomputed in the
/// backward pass instead of being kept (burn's balanced strategy).
pub type TrainCheckpointed =
    burn::backend::Autodiff<Infer, burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing>;

/// A training backend over [`Infer`]: [`Train`] or [`TrainCheckpointed`].
pub trait TrainBackend: burn::tensor::backend::AutodiffBackend<InnerBackend = Infer> {}

impl<B: burn::tensor::backend::AutodiffBackend<InnerBackend = Infer>> TrainBackend for B {}

/// A short human-readable name of the backend, shown in logs, `/healthz` and benchmark output.
pub fn name() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "ndarray") {
        "cpu-ndarray"
    } else {
        "cpu-flex"
    }
}

/// The default device of the backend.
pub fn default_device() -> burn::tensor::Device<Infer> {
    Default::default()
}
