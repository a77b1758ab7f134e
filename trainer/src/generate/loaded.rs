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

/// A stored policy and its tokenizer, loaded on a device.
pub struct LoadedPolicy {
    sampler: Box<dyn Sampler>,
    /// The policy's tokenizer.
    pub tokenizer: TextTokenizer,
    /// The device it computes on.
    pub device: Device,
}

impl LoadedPolicy {
    /// Loads policy `id` of `reg` onto `device`.
    pub fn load(reg: &Registry, id: &str, device: Device) -> Result<Self, RegistryError> {
        crate::with_backend!(device, B, dev => {
            let (model, tokenizer) = reg.load_policy::<B>(id, dev)?;
            let sampler: Box<dyn Sampler> = Box::new(On::<B> { model, device: dev.to_owned() });
            Ok(Self { sampler, tokenizer, device })
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
