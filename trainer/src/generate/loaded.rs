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

    /// The counters of the model's continuous-batching loop, where it has one.
    fn batch_stats(&self) -> Option<&crate::qdecode::batcher::BatchStats> {
        None
    }
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

/// The Q8 CPU decoder ([`crate::qdecode`]) behind the same trait: every caller's generation joins the model's
/// one continuous-batching loop.
struct Quantized(crate::qdecode::batcher::Batcher);

impl Sampler for Quantized {
    fn config(&self) -> &LlamaConfig {
        &self.0.model.config
    }

    fn generate(
        &self,
        prompts: &[Vec<u32>],
        cfg: &GenerateConfig,
        on_token: &mut dyn FnMut(usize, u32) -> bool,
    ) -> Generated {
        self.0.generate(prompts, cfg, on_token)
    }

    fn score(&self, ids: &[u32], top: usize) -> Vec<TokenScore> {
        crate::qdecode::generate::score(&self.0.model, ids, top)
    }

    fn batch_stats(&self) -> Option<&crate::qdecode::batcher::BatchStats> {
        Some(&self.0.stats)
    }
}

/// How a loaded policy holds its weights for sampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Weights {
    /// Q8 when the device is the CPU and the model fits Q8 blocks, f32 otherwise.
    #[default]
    Auto,
    /// As trained, in f32 on the device (burn): the log-probabilities training computes.
    F32,
    /// 8-bit blocks on the CPU ([`crate::qdecode`]) whatever the device: 1.25 bytes a weight, widened to f32
    /// in registers. Models that do not fit Q8 blocks stay in f32.
    Q8,
}

impl Weights {
    /// Parses `auto`, `f32` or `q8`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "f32" => Some(Self::F32),
            "q8" => Some(Self::Q8),
            _ => None,
        }
    }

    /// `auto`, `f32` or `q8`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Q8 => "q8",
        }
    }
}

impl std::str::FromStr for Weights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("weights are auto, f32 or q8, not {s:?}"))
    }
}

impl std::fmt::Display for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored policy and its tokenizer, loaded on a device.
pub struct LoadedPolicy {
    sampler: Box<dyn Sampler>,
    /// The policy's tokenizer.
    pub tokenizer: TextTokenizer,
    /// The device it computes on.
    pub device: Device,
    /// How its weights are held (`F32` or `Q8`, never `Auto`).
    pub weights: Weights,
}

impl LoadedPolicy {
    /// Loads policy `id` of `reg` onto `device`.
    pub fn load(reg: &Registry, id: &str, device: Device) -> Result<Self, RegistryError> {
        Self::load_with(reg, id, device, Weights::F32)
    }

    /// Loads policy `id` of `reg` holding its weights as `weights`. Q8 computes on the CPU whatever `device` is
    /// (and needs a policy without a P-Tuning prefix and with widths of whole Q8 blocks: others stay in f32);
    /// `Auto` is Q8 when `device` is the CPU.
    pub fn load_with(
        reg: &Registry,
        id: &str,
        device: Device,
        weights: Weights,
    ) -> Result<Self, RegistryError> {
        let q8 = match weights {
            Weights::Auto => device == Device::Cpu,
            Weights::F32 => false,
            Weights::Q8 => true,
        };
        if q8 {
            let (model, tokenizer) = reg.load_policy::<crate::backend::Infer>(id, &Default::default())?;
            let plain = model.layers.iter().all(|l| l.self_attn.prefix.is_none());
            if plain && crate::qdecode::QuantLlama::supports(&model.config) {
                let q = crate::qdecode::QuantLlama::from_model(&model);
                drop(model); // the f32 copy goes before the loop starts
                crate::alloc::release_free_memory();
                let sampler: Box<dyn Sampler> =
                    Box::new(Quantized(crate::qdecode::batcher::Batcher::start(q)));
                return Ok(Self { sampler, tokenizer, device: Device::Cpu, weights: Weights::Q8 });
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

    /// The counters of the continuous-batching loop (Q8 weights), else `None`.
    pub fn batch_stats(&self) -> Option<&crate::qdecode::batcher::BatchStats> {
        self.sampler.batch_stats()
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
