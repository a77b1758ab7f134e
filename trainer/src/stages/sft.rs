//! `train sft` (the stored demonstrations, chat template applied, loss on the answer tokens only) and
//! `train pretrain` (a text corpus in packed blocks, every token in the loss), stored as policy versions.

use burn::{module::AutodiffModule, tensor::backend::Backend};
use types::JobResult;

use super::{
    bail, corpus_documents, ensure,
    setup::{adapter_of, on_backend, plan, setup, snapshot, train, write_adapter, Fit, Fitter},
    SftSpec, Source, Split, StageEnv, StageError,
};
use crate::{
    backend::TrainBackend,
    model::{weights::TensorMap, Llama},
    peft::merge_lora,
    registry::VersionKind,
    sft::{pack, Example, SftConfig, SftTask},
    train::run::{Metrics, RunState},
};

/// The policy's supervised fit on one backend.
struct SftFit<'a> {
    fit: &'a Fit<'a>,
    tensors: TensorMap,
    cfg: &'a SftConfig,
    data: &'a Split<Example>,
}

impl<B: Backend> Fitter<B> for SftFit<'_> {
    type Out = (Llama<B>, Metrics, RunState);

    fn fit<T: TrainBackend<InnerBackend = B>>(self, device: &T::Device) -> Result<Self::Out, StageError> {
        let model = self.fit.policy::<T>(self.tensors, device)?;
        let task =
            SftTask::<T>::new(self.cfg.pad_id, self.data.eval.clone(), 8).recomputing(self.fit.recompute());
        let optim = crate::optim::adamw::<T, Llama<T>>(self.cfg.weight_decay, self.cfg.clip_norm);
        let fit = self.fit;
        let (model, metrics, state) =
            train(fit.env, &task, model, optim, &self.data.train, fit.run, fit.run_dir)?;
        Ok((model.valid(), metrics, state))
    }
}

/// Fine-tunes the policy on `data`'s demonstrations (or continues pretraining on the spec's corpus) and
/// stores it.
pub fn run(spec: &SftSpec, data: &dyn Source, env: &StageEnv) -> Result<JobResult, StageError> {
    crate::with_backend!(env.device, B, dev => run_on::<B>(spec, data, env, dev))
}

fn run_on<B: Backend>(
    spec: &SftSpec,
    data: &dyn Source,
    env: &StageEnv,
    device: &B::Device,
) -> Result<JobResult, StageError> {
    let args = &spec.train;
    let (stage_name, lineage_stage) = match &spec.corpus {
        None => ("sft", "train sft"),
        Some(_) => ("pretrain", "train pretrain"),
    };
    let mut s = setup(env, args, stage_name, 2e-5)?;
    let eos = s.tokenizer.eos(&s.config.eos_token_ids);
    let data: Split<Example> = snapshot(env, &s.run_dir, || match &spec.corpus {
        None => data.sft_examples(&s.tokenizer, eos, args.eval_fraction, args.seed, args.max_tokens),
        Some((corpus, block)) => {
            ensure!(*block >= 2, "--block must be at least 2 tokens");
            let docs = corpus_documents(corpus)?;
            let mut split = Split::default();
            let (mut train_docs, mut eval_docs) = (Vec::new(), Vec::new());
            for (i, d) in docs.iter().enumerate() {
                let ids = s.tokenizer.encode(d, false)?;
                if crate::train::split::held_out(i as u64, args.eval_fraction, args.seed) {
                    eval_docs.push(ids);
                } else {
                    train_docs.push(ids);
                }
            }
            let eos = eos.unwrap_or(0);
            split.train = pack(&train_docs, *block, eos);
            split.eval = pack(&eval_docs, *block, eos);
            split.summary = serde_json::json!({
                "corpus": corpus.display().to_string(), "documents": docs.len(), "block": block,
                "train_blocks": split.train.len(), "eval_blocks": split.eval.len(),
                "eval_fraction": args.eval_fraction, "split_seed": args.seed,
            });
            Ok(split)
        }
    })?;
    if data.train.is_empty() {
        match &spec.corpus {
            None => bail!("no demonstrations to train on (write answers in the browser or import `prompt`/`completion` JSONL)"),
            Some((corpus, _)) => bail!("{}: no text to train on", corpus.display()),
        }
    }
    env.line(format!("data: {}", data.summary));
    let seq_len =
        data.train.iter().chain(&data.eval).map(|e| e.prompt.len() + e.answer.len()).max().unwrap_or(2);
    let mut run = s.run.clone();
    plan(env, args, &s.config, &mut run, seq_len, 1, crate::memory::Head::Logits)?;
    let cfg = SftConfig {
        lr: run.lr,
        weight_decay: args.weight_decay,
        clip_norm: args.clip,
        pad_id: eos.unwrap_or(0),
    };
    let fit = Fit { env, config: &s.config, args, run: &run, run_dir: &s.run_dir };
    let job = SftFit { fit: &fit, tensors: std::mem::take(&mut s.tensors), cfg: &cfg, data: &data };
    let (model, metrics, state) = on_backend::<B, _>(device, job)?;
    let adapter = adapter_of(&model, args);
    let model: Llama<B> = merge_lora(model);
    let config = serde_json::json!({"run": run, "lora": args.lora_config(), "max_tokens": args.max_tokens,
        "weight_decay": args.weight_decay, "clip": args.clip, "steps_done": state.step});
    let lineage = s.lineage(lineage_stage, &data, config, &metrics);
    s.store(VersionKind::Policy, &[], s.config.architecture.clone(), lineage, &metrics, |dir, tok| {
        crate::io::hf::save_dir(&model, tok, dir)?;
        write_adapter(&adapter, &s.base, dir)
    })
}
