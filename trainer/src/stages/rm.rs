//! `train rm`: a reward model on the stored rankings (every ranking of K answers gives its K-choose-2
//! comparisons, each answer forwarded once; ties by the chosen model), held-out split by prompt, stored as a
//! `…ForSequenceClassification` version.

use burn::{module::AutodiffModule, tensor::backend::Backend};
use types::JobResult;

use super::{
    bail, ensure,
    setup::{on_backend, plan, setup, snapshot, train, Fit, Fitter},
    RmData, RmSpec, Source, Split, StageEnv, StageError, Ties,
};
use crate::{
    backend::TrainBackend,
    model::weights::TensorMap,
    peft::merge_lora,
    registry::VersionKind,
    rl::losses::TieModel,
    rm::{RankGroup, RewardModel, RmTask, RmTrainConfig},
    rng::Rng,
    train::run::{Metrics, RunState},
};

/// The tie model of the spec, checked.
fn tie_model(ties: Ties) -> Result<TieModel, StageError> {
    Ok(match ties {
        Ties::Exclude => TieModel::Exclude,
        Ties::Davidson(nu) => {
            let nu = nu.unwrap_or(1.0);
            ensure!(nu > 0.0, "--tie-param: Davidson needs ν > 0, got {nu}");
            TieModel::Davidson { nu }
        }
        Ties::RaoKupper(theta) => {
            let theta = theta.unwrap_or(2.0);
            ensure!(theta > 1.0, "--tie-param: Rao-Kupper needs θ > 1, got {theta}");
            TieModel::RaoKupper { theta }
        }
    })
}

/// The reward model's fit on one backend.
struct RmFit<'a> {
    fit: &'a Fit<'a>,
    tensors: TensorMap,
    head: Vec<f32>,
    cfg: &'a RmTrainConfig,
    data: &'a Split<RankGroup>,
}

impl<B: Backend> Fitter<B> for RmFit<'_> {
    type Out = (RewardModel<B>, Metrics, RunState);

    fn fit<T: TrainBackend<InnerBackend = B>>(self, device: &T::Device) -> Result<Self::Out, StageError> {
        let model = RewardModel::new(self.fit.policy::<T>(self.tensors, device)?, self.head, device);
        let task =
            RmTask::<T>::new(self.cfg.clone(), self.data.eval.clone(), 16).recomputing(self.fit.recompute());
        let optim = crate::optim::adamw::<T, RewardModel<T>>(self.cfg.weight_decay, self.cfg.clip_norm);
        let fit = self.fit;
        let (model, metrics, state) =
            train(fit.env, &task, model, optim, &self.data.train, fit.run, fit.run_dir)?;
        Ok((model.valid(), metrics, state))
    }
}

/// Trains a reward model on `data`'s rankings and stores it.
pub fn run(a: &RmSpec, data: &dyn Source, env: &StageEnv) -> Result<JobResult, StageError> {
    crate::with_backend!(env.device, B, dev => run_on::<B>(a, data, env, dev))
}

fn run_on<B: Backend>(
    a: &RmSpec,
    data: &dyn Source,
    env: &StageEnv,
    device: &B::Device,
) -> Result<JobResult, StageError> {
    let args = &a.train;
    let mut s = setup(env, args, "rm", 1e-5)?;
    let eos = s.tokenizer.eos(&s.config.eos_token_ids);
    let ties = tie_model(a.ties)?;
    let opts = RmData {
        eval_fraction: args.eval_fraction,
        seed: args.seed,
        max_tokens: args.max_tokens,
        weight_by_agreement: a.weight_by_agreement,
    };
    let data = snapshot(env, &s.run_dir, || data.rm_groups(&s.tokenizer, eos, &opts))?;
    if data.train.is_empty() {
        bail!(
            "no rankings to train on in {} (rank candidates in the browser or `alignbox import` rankings)",
            env.runs_dir.parent().unwrap_or(env.runs_dir).display()
        );
    }
    env.line(format!("data: {}", data.summary));
    let seq_len =
        data.train.iter().chain(&data.eval).flat_map(|g| g.sequences.iter().map(Vec::len)).max().unwrap_or(1);
    let k = data.train.iter().map(|g| g.sequences.len()).max().unwrap_or(2);
    let mut run = s.run.clone();
    plan(env, args, &s.config, &mut run, seq_len, k, crate::memory::Head::Reward)?;

    let mut rng = Rng::new(args.seed ^ 0x5c0e);
    let head: Vec<f32> = (0..s.config.hidden_size).map(|_| (rng.normal() * 0.02) as f32).collect();
    let cfg = RmTrainConfig {
        lr: run.lr,
        weight_decay: args.weight_decay,
        clip_norm: args.clip,
        margin: a.margin,
        ties,
        pad_id: eos.unwrap_or(0),
    };
    let fit = Fit { env, config: &s.config, args, run: &run, run_dir: &s.run_dir };
    let job = RmFit { fit: &fit, tensors: std::mem::take(&mut s.tensors), head, cfg: &cfg, data: &data };
    let (model, metrics, state) = on_backend::<B, _>(device, job)?;
    let model = RewardModel { trunk: merge_lora(model.trunk), score: model.score };
    let config = serde_json::json!({"run": run, "loss": cfg, "lora": args.lora_config(), "max_tokens": args.max_tokens,
        "weight_by_agreement": a.weight_by_agreement, "steps_done": state.step});
    let lineage = s.lineage("train rm", &data, config, &metrics);
    let arch = s.config.architecture.replace("ForCausalLM", "ForSequenceClassification");
    s.store(VersionKind::RewardModel, &[], arch, lineage, &metrics, |dir, tok| {
        crate::io::reward::save_dir(&model, tok, dir)
    })
}
