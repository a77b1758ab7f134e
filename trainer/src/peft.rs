//! Parameter-efficient tuning on a frozen base: LoRA adapters on chosen projections, merged back for export.

use burn::{module::Module, tensor::backend::Backend};
use serde::{Deserialize, Serialize};

use crate::{model::Llama, rng::Rng};

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

/// Freezes every parameter of `model` and attaches fresh adapters to the targeted projections.
pub fn add_lora<B: Backend>(model: Llama<B>, cfg: &LoraConfig) -> Llama<B> {
    let mut model = model.no_grad();
    let mut rng = Rng::new(cfg.seed);
    let wants = |name: &str| cfg.targets.iter().any(|t| t == name);
    for layer in &mut model.layers {
        let a = &mut layer.self_attn;
        let m = &mut layer.mlp;
        for (name, lin) in [
            ("q_proj", &mut a.q_proj),
            ("k_proj", &mut a.k_proj),
            ("v_proj", &mut a.v_proj),
            ("o_proj", &mut a.o_proj),
            ("gate_proj", &mut m.gate_proj),
            ("up_proj", &mut m.up_proj),
            ("down_proj", &mut m.down_proj),
        ] {
            if wants(name) {
                let taken = std::mem::replace(lin, placeholder(lin));
                *lin = taken.with_lora(cfg.rank, cfg.alpha, &mut rng);
            }
        }
    }
    model
}

/// A cheap stand-in used while a layer is moved out and back.
fn placeholder<B: Backend>(lin: &crate::model::linear::Linear<B>) -> crate::model::linear::Linear<B> {
    crate::model::linear::Linear::new(lin.weight.val(), None)
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
    for layer in &mut model.layers {
        let a = &mut layer.self_attn;
        let m = &mut layer.mlp;
        for lin in [
            &mut a.q_proj,
            &mut a.k_proj,
            &mut a.v_proj,
            &mut a.o_proj,
            &mut m.gate_proj,
            &mut m.up_proj,
            &mut m.down_proj,
        ] {
            let taken = std::mem::replace(lin, placeholder(lin));
            *lin = taken.quantized();
        }
    }
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
        let a = &mut layer.self_attn;
        let m = &mut layer.mlp;
        for lin in [
            &mut a.q_proj,
            &mut a.k_proj,
            &mut a.v_proj,
            &mut a.o_proj,
            &mut m.gate_proj,
            &mut m.up_proj,
            &mut m.down_proj,
        ] {
            lin.lora = None;
        }
    }
    base
}

/// Whether any projection of `model` carries an adapter.
pub fn has_adapters<B: Backend>(model: &Llama<B>) -> bool {
    model.layers.iter().any(|l| {
        let a = &l.self_attn;
        let m = &l.mlp;
        a.prefix.is_some()
            || [&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj, &m.gate_proj, &m.up_proj, &m.down_proj]
                .iter()
                .any(|lin| lin.lora.is_some())
    })
}

/// Folds every LoRA adapter into its weight (for export). P-Tuning v2 prefixes cannot be folded and stay.
pub fn merge_lora<B: Backend>(mut model: Llama<B>) -> Llama<B> {
    for layer in &mut model.layers {
        let a = &mut layer.self_attn;
        let m = &mut layer.mlp;
        for lin in [
            &mut a.q_proj,
            &mut a.k_proj,
            &mut a.v_proj,
            &mut a.o_proj,
            &mut m.gate_proj,
            &mut m.up_proj,
            &mut m.down_proj,
        ] {
            let taken = std::mem::replace(lin, placeholder(lin));
            *lin = taken.merged();
        }
    }
    model
}
