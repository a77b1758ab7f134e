//! Parameter-efficient tuning on a frozen base: LoRA adapters on chosen projections, merged back for export.

use burn::{module::Module, tensor::backend::Backend};
use serde::{Deserialize, Serialize};

use crate::{
    model::{linear::Linear, llama::DecoderLayer, Llama},
    rng::Rng,
};

/// Which projections get adapters, and how big.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Adapter rank r.
    pub rank: usize,
    /// Scale numerator: the update is (alpha / r)·A·B.
    pub alpha: f64,
    /// Projection names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.
    pub targets: Vec<String>,
    /// Seed of the A initialisation.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { rank: 8, alpha: 16.0, targets: vec!["q_proj".into(), "v_proj".into()], seed: 0 }
    }
}

/// The HF names of a decoder layer's projections, in [`projections_mut`] order.
pub const PROJECTIONS: [&str; 7] =
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// A layer's seven projections (q, k, v, o, gate, up, down), mutable.
fn projections_mut<B: Backend>(layer: &mut DecoderLayer<B>) -> [&mut Linear<B>; 7] {
    let a = &mut layer.self_attn;
    let m = &mut layer.mlp;
    [
        &mut a.q_proj,
        &mut a.k_proj,
        &mut a.v_proj,
        &mut a.o_proj,
        &mut m.gate_proj,
        &mut m.up_proj,
        &mut m.down_proj,
    ]
}

/// Replaces every projection of every layer by `f(projection)` (name, layer).
fn map_projections<B: Backend>(model: &mut Llama<B>, mut f: impl FnMut(&str, Linear<B>) -> Linear<B>) {
    for layer in &mut model.layers {
        for (name, lin) in PROJECTIONS.iter().zip(projections_mut(layer)) {
            let taken = std::mem::replace(lin, placeholder(lin));
            *lin = f(name, taken);
        }
    }
}

/// Freezes every parameter of `model` and attaches fresh adapters to the targeted projections.
pub fn add_lora<B: Backend>(model: Llama<B>, cfg: &LoraConfig) -> Llama<B> {
    let mut model = model.no_grad();
    let mut rng = Rng::new(cfg.seed);
    let wants = |name: &str| cfg.targets.iter().any(|t| t == name);
    map_projections(
        &mut model,
        |name, lin| if wants(name) { lin.with_lora(cfg.rank, cfg.alpha, &mut rng) } else { lin },
    );
    model
}

/// A cheap stand-in used while a layer is moved out and back.
fn placeholder<B: Backend>(lin: &Linear<B>) -> Linear<B> {
    Linear::new(lin.weight.val(), None)
}

/// P-Tuning v2: freezes every parameter of `model` and gives each layer `n` trainable prefix keys and values
/// (normal(0, 0.02) from `seed`) that every query attends to.
pub fn add_prefix<B: Backend>(model: Llama<B>, n: usize, seed: u64) -> Llama<B> {
    assert!(n > 0, "a prefix needs at least one position");
    let mut model = model.no_grad();
    let mut rng = Rng::new(seed);
    for layer in &mut model.layers {
        let a = &mut layer.self_attn;
        let device = a.q_proj.weight.device();
        let shape = [a.num_kv_heads, n, a.head_dim];
        let mut t = || {
            let v: Vec<f32> = (0..shape.iter().product()).map(|_| (rng.normal() * 0.02) as f32).collect();
            burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(
                burn::tensor::TensorData::new(v, shape),
                &device,
            ))
        };
        a.prefix = Some(crate::model::attention::Prefix { key: t(), value: t() });
    }
    model
}

/// Keeps every projection of every layer (q, k, v, o, gate, up, down) in NF4 (QLoRA's frozen 4-bit base);
/// embeddings, norms and the output head stay in f32. Attach adapters with [`add_lora`] afterwards.
pub fn quantize_projections<B: Backend>(mut model: Llama<B>) -> Llama<B> {
    map_projections(&mut model, |_, lin| lin.quantized());
    crate::alloc::release_free_memory(); // the f32 weights just replaced
    model.no_grad()
}

/// QLoRA: the base's projections in NF4, frozen, with fresh LoRA adapters.
pub fn add_qlora<B: Backend>(model: Llama<B>, cfg: &LoraConfig) -> Llama<B> {
    add_lora(quantize_projections(model), cfg)
}

/// The same model with its adapters switched off (the frozen base, e.g. PPO's reference policy). Tensors are
/// shared with `model`, not copied.
pub fn without_adapters<B: Backend>(model: &Llama<B>) -> Llama<B> {
    let mut base = model.clone();
    for layer in &mut base.layers {
        layer.self_attn.prefix = None;
        for lin in projections_mut(layer) {
            lin.lora = None;
        }
    }
    base
}

/// Whether any projection of `model` carries an adapter.
pub fn has_adapters<B: Backend>(model: &Llama<B>) -> bool {
    model.layers.iter().any(|l| {
        let (a, m) = (&l.self_attn, &l.mlp);
        a.prefix.is_some()
            || [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_proj, &m.up_proj, &m.down_proj]
                .iter()
                .any(|lin| lin.lora.is_some())
    })
}

/// Folds every LoRA adapter into its weight (for export). P-Tuning v2 prefixes cannot be folded and stay.
pub fn merge_lora<B: Backend>(mut model: Llama<B>) -> Llama<B> {
    map_projections(&mut model, |_, lin| lin.merged());
    model
}
