//! A policy loaded on the process's run-time device: what the server keeps between requests for sampling (the
//! candidates annotators rank, the OpenAI-compatible chat API), whichever backend that device needs.

use burn::tensor::backend::Backend;

use super::{
    generate_with,
    score::{score, TokenScore},
    GenerateConfig, Generated,
};
use crate::{
    device::Device,
    model::{Llama, LlamaConfig},
    registry::{Registry, RegistryError},
    tokenizer::TextTokenizer,
};

/// Sampling from a model on one backend, with the backend's type erased.
trait Sampler: Send + Sync {
    /// The model's configuration.
    fn config(&self) -> &LlamaConfig;

    /// [`generate_with`] on the model's device.
    fn generate(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Generated;

    /// [`score`] on the model's device.
    fn score(&self, ids: &[u32], top: usize) -> Vec<TokenScore>;
}

/// A model and the device its tensors are on.
struct On<B: Backend> {
    model: Llama<B>,
    device: B::Device,
}

impl<B: Backend> Sampler for On<B>
where
    Llama<B>: Send + Sync,
{
    fn config(&self) -> &LlamaConfig {
        &self.model.config
    }

    fn generate(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Generated {
        generate_with(&self.model, prompts, cfg, &self.device, on_token)
    }

    fn score(&self, ids: &[u32], top: usize) -> Vec<TokenScore> {
        score(&self.model, ids, top, &self.device)
    }
}

/// The Q8 CPU decoder ([`crate::qdecode`]) behind the same trait.
struct Quantized(crate::qdecode::QuantLlama);

impl Sampler for Quantized {
    fn config(&self) -> &LlamaConfig {
        &self.0.config
    }

    fn generate(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Generated {
        crate::qdecode::generate::generate(&self.0, prompts, cfg, on_token)
    }

    fn score(&self, ids: &[u32], top: usize) -> Vec<TokenScore> {
        crate::qdecode::generate::score(&self.0, ids, top)
    }
}

/// How a loaded policy holds its weights for sampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Weights {
    /// As trained, in f32 on the device (burn).
    #[default]
    F32,
    /// Q8 blocks on the CPU ([`crate::qdecode`]): about 1.06 bytes a weight and int8 products.
    Q8,
}

impl Weights {
    /// Parses `f32` or `q8`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "f32" => Some(Self::F32),
            "q8" => Some(Self::Q8),
            _ => None,
        }
    }

    /// `f32` or `q8`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Q8 => "q8",
        }
    }
}

/// A stored policy and its tokenizer, loaded on a device.
pub struct LoadedPolicy {
    sampler: Box<dyn Sampler>,
    /// The policy's tokenizer.
    pub tokenizer: TextTokenizer,
    /// The device it computes on.
    pub device: Device,
    /// How its weights are held.
    pub weights: Weights,
}

impl LoadedPolicy {
    /// Loads policy `id` of `reg` onto `device`.
    pub fn load(reg: &Registry, id: &str, device: Device) -> Result<Self, RegistryError> {
        Self::load_with(reg, id, device, Weights::F32)
    }

    /// Loads policy `id` of `reg` holding its weights as `weights`. Q8 computes on the CPU whatever `device` is
    /// (and needs a policy without a P-Tuning prefix and with widths of whole Q8 blocks: others stay in f32).
    pub fn load_with(
        reg: &Registry,
        id: &str,
        device: Device,
        weights: Weights,
    ) -> Result<Self, RegistryError> {
        if weights == Weights::Q8 {
            let (model, tokenizer) = reg.load_policy::<crate::backend::Infer>(id, &Default::default())?;
            let plain = model.layers.iter().all(|l| l.self_attn.prefix.is_none());
            if plain && crate::qdecode::QuantLlama::supports(&model.config) {
                let sampler: Box<dyn Sampler> =
                    Box::new(Quantized(crate::qdecode::QuantLlama::from_model(&model)));
                return Ok(Self { sampler, tokenizer, device: Device::Cpu, weights });
            }
        }
        crate::with_backend!(device, B, dev => {
            let (model, tokenizer) = reg.load_policy::<B>(id, dev)?;
            let sampler: Box<dyn Sampler> = Box::new(On::<B> { model, device: dev.to_owned() });
            Ok(Self { sampler, tokenizer, device, weights: Weights::F32 })
        })
    }

    /// The model's configuration.
    pub fn config(&self) -> &LlamaConfig {
        self.sampler.config()
    }

    /// The ids that end an answer.
    pub fn stop_ids(&self) -> &[u32] {
        &self.config().eos_token_ids
    }

    /// Continuations of `prompts` (see [`super::generate`]).
    pub fn generate(&self, prompts: &[Vec<u32>], cfg: &GenerateConfig) -> Generated {
        self.sampler.generate(prompts, cfg, &mut |_, _| true)
    }

    /// Continuations of `prompts`, calling `on_token(row, id)` for every new token; generation stops when it
    /// returns false (see [`generate_with`]).
    pub fn generate_with(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Generated {
        self.sampler.generate(prompts, cfg, on_token)
    }

    /// Log-probabilities of `ids` (at least one) with the `top` most likely tokens at each position (see
    /// [`score`]).
    pub fn score(&self, ids: &[u32], top: usize) -> Vec<TokenScore> {
        self.sampler.score(ids, top)
    }
}
