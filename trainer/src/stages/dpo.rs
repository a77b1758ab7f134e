//! `train dpo`: the policy on every strict pair of the stored rankings, reference log-probs computed once from
//! the starting policy, stored as a policy version.

use burn::{module::AutodiffModule, tensor::backend::Backend};
use types::JobResult;

use super::{
    bail,
    setup::{adapter_of, on_backend, plan, setup, snapshot, train, write_adapter, Fit, Fitter},
    DpoSpec, Source, StageEnv, StageError,
};
use crate::{
    backend::TrainBackend,
    dpo::{with_reference, DpoItem, DpoTask},
    model::{weights::TensorMap, Llama},
    peft::merge_lora,
    registry::VersionKind,
    train::run::{Metrics, RunState},
};

/// DPO's fit on one backend.
struct DpoFit<'a> {
    fit: &'a Fit<'a>,
    tensors: TensorMap,
    beta: f64,
    pad: u32,
    train_items: Vec<DpoItem>,
    eval_items: Vec<DpoItem>,
}

impl<B: Backend> Fitter<B> for DpoFit<'_> {
    type Out = (Llama<B>, Metrics, RunState);

    fn fit<T: TrainBackend<InnerBackend = B>>(self, device: &T::Device) -> Result<Self::Out, StageError> {
        let fit = self.fit;
        let policy = fit.policy::<T>(self.tensors, device)?;
        let task = DpoTask::<T>::new(self.beta, self.pad, self.eval_items, 8).recomputing(fit.recompute());
        let optim = crate::optim::adamw::<T, Llama<T>>(fit.args.weight_decay, fit.args.clip);
        let (policy, metrics, state) =
            train(fit.env, &task, policy, optim, &self.train_items, fit.run, fit.run_dir)?;
        Ok((policy.valid(), metrics, state))
    }
}

/// Runs DPO on `data`'s ranked pairs (reference log-probs computed once) and stores the policy.
pub fn run(a: &DpoSpec, data: &dyn Source, env: &StageEnv) -> Result<JobResult, StageError> {
    crate::with_backend!(env.device, B, dev => run_on::<B>(a, data, env, dev))
}

fn run_on<B: Backend>(
    a: &DpoSpec,
    data: &dyn Source,
    env: &StageEnv,
    device: &B::Device,
) -> Result<JobResult, StageError> {
    let args = &a.train;
    let mut s = setup(env, args, "dpo", 1e-6)?;
    let eos = s.tokenizer.eos(&s.config.eos_token_ids);
    let data = snapshot(env, &s.run_dir, || {
        data.dpo_pairs(&s.tokenizer, eos, args.eval_fraction, args.seed, args.max_tokens)
    })?;
    if data.train.is_empty() {
        bail!("no ranked pairs to train on (rank candidates in the browser or `alignbox import` rankings)");
    }
    env.line(format!("data: {}", data.summary));
    let seq_len = data
        .train
        .iter()
        .chain(&data.eval)
        .map(|p| p.prompt.len() + p.chosen.len().max(p.rejected.len()))
        .max()
        .unwrap_or(2);
    let mut run = s.run.clone();
    plan(env, args, &s.config, &mut run, seq_len, 2, crate::memory::Head::Logits)?;
    let pad = eos.unwrap_or(0);
    // Reference log-probs of every pair, once, from the starting policy.
    let reference = crate::model::weights::from_tensors::<B>(&s.config, s.tensors.clone(), device)?;
    let train_items = with_reference(&reference, data.train.clone(), pad, run.micro_batch.max(1));
    let eval_items = with_reference(&reference, data.eval.clone(), pad, run.micro_batch.max(1));
    drop(reference);
    let fit = Fit { env, config: &s.config, args, run: &run, run_dir: &s.run_dir };
    let job = DpoFit {
        fit: &fit,
        tensors: std::mem::take(&mut s.tensors),
        beta: a.beta,
        pad,
        train_items,
        eval_items,
    };
    let (policy, metrics, state) = on_backend::<B, _>(device, job)?;
    let adapter = adapter_of(&policy, args);
    let policy: Llama<B> = merge_lora(policy);
    let config = serde_json::json!({"beta": a.beta, "run": run, "lora": args.lora_config(), "max_tokens": args.max_tokens,
            "steps_done": state.step});
    let lineage = s.lineage("train dpo", &data, config, &metrics);
    s.store(VersionKind::Policy, &[], s.config.architecture.clone(), lineage, &metrics, |dir, tok| {
        crate::io::hf::save_dir(&policy, tok, dir)?;
        write_adapter(&adapter, &s.base, dir)
    })
}
