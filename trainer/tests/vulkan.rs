//! The GPU code paths, checked against the CPU on a Vulkan device (on machines without a GPU: Mesa's lavapipe,
//! which runs the same cubecl kernels that burn-cuda generates, on the CPU). Logits equal the CPU's within 1e-4,
//! greedy generation gives the same tokens, three steps of the reward model, SFT and DPO and three PPO
//! iterations (full, LoRA, QLoRA) give the CPU's losses within 1e-3, and a run checkpointed on one device resumes
//! on the other with the same losses.
//!
//! Skipped (with a line on stderr) where there is no Vulkan adapter, unless `ALIGNBOX_REQUIRE_VULKAN` is set
//! (CI sets it: scripts/test.sh installs lavapipe), which turns a missing adapter into a failure.

use burn::{
    backend::Autodiff,
    tensor::{backend::Backend, Int, Tensor, TensorData},
};
use trainer::{
    device::{Cpu, Device, DeviceRequest, Vulkan},
    dpo::{reference_logps, DpoItem, DpoPair, DpoTask},
    generate::{generate, GenerateConfig, SamplingConfig},
    model::{init, weights, Layout, Llama, LlamaConfig},
    peft::{add_lora, add_qlora, LoraConfig},
    rm::{RankGroup, RewardModel, RmTask, RmTrainConfig},
    rng::Rng,
    sft::{Example, SftTask},
    testing::fit,
    train::run::Metrics,
};

/// The Vulkan device, or `None` (skip) when there is none and CI did not ask for one.
fn vulkan() -> Option<burn::tensor::Device<Vulkan>> {
    match DeviceRequest::Vulkan(0).resolve() {
        Ok(Device::Vulkan(i)) => Some(Device::vulkan(i)),
        Ok(other) => panic!("vulkan:0 resolved to {other}"),
        Err(e) => {
            assert!(std::env::var_os("ALIGNBOX_REQUIRE_VULKAN").is_none(), "no Vulkan device: {e}");
            eprintln!("skipping: {e}");
            None
        }
    }
}

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":64,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"rms_norm_eps":1e-5,
        "tie_word_embeddings":false}"#,
    )
    .unwrap()
}

/// The same random model (seed 5) on backend `B`.
fn model<B: Backend>(device: &B::Device) -> Llama<B> {
    weights::from_tensors::<B>(&config(), init::random_tensors(&config(), 0.1, 5), device).unwrap()
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn logits_and_greedy_generation_equal_the_cpus() {
    let Some(gpu) = vulkan() else { return };
    let cpu = Default::default();
    let seqs: Vec<i64> = vec![3, 17, 9, 40, 2, 8, 11, 60, 5, 5, 33, 1];
    let tokens = |d: &_| Tensor::<Cpu, 2, Int>::from_data(TensorData::new(seqs.clone(), [2, 6]), d);
    let a = host(model::<Cpu>(&cpu).forward(tokens(&cpu), &Layout::unpadded(2), None));
    let t = Tensor::<Vulkan, 2, Int>::from_data(TensorData::new(seqs.clone(), [2, 6]), &gpu);
    let b = host(model::<Vulkan>(&gpu).forward(t, &Layout::unpadded(2), None));
    let d = max_diff(&a, &b);
    eprintln!("logits: max |cpu − vulkan| = {d:.2e} over {} values", a.len());
    assert!(d < 1e-4, "logits differ by {d}");

    let cfg = GenerateConfig {
        max_new_tokens: 12,
        sampling: SamplingConfig { temperature: 0.0, top_k: 0, top_p: 1.0 },
        seed: 1,
        stop_ids: vec![],
        pad_id: 0,
    };
    let prompts = vec![vec![3u32, 17, 9], vec![40, 2, 8, 11, 60]];
    let on_cpu = generate(&model::<Cpu>(&cpu), &prompts, &cfg, &cpu);
    let on_gpu = generate(&model::<Vulkan>(&gpu), &prompts, &cfg, &gpu);
    assert_eq!(on_cpu.tokens, on_gpu.tokens, "greedy tokens differ");
    let lp = max_diff(&on_cpu.logprobs.concat(), &on_gpu.logprobs.concat());
    assert!(lp < 1e-4, "greedy log-probs differ by {lp}");
}

/// How the trained model is built from the shared base.
#[derive(Clone, Copy, Debug)]
enum Tuning {
    Full,
    Lora,
    Qlora,
}

fn tuned<B: Backend>(base: Llama<B>, tuning: Tuning) -> Llama<B> {
    let lora = LoraConfig { rank: 4, alpha: 8.0, seed: 3, ..LoraConfig::default() };
    match tuning {
        Tuning::Full => base,
        Tuning::Lora => add_lora(base, &lora),
        Tuning::Qlora => add_qlora(base, &lora),
    }
}

fn losses(steps: &[Metrics]) -> Vec<f64> {
    steps.iter().map(|m| m["loss"]).collect()
}

fn assert_close(what: &str, cpu: &[f64], gpu: &[f64]) {
    eprintln!("{what}: cpu {cpu:.6?}\n{what}: vulkan {gpu:.6?}");
    assert_eq!(cpu.len(), 3);
    let d = cpu.iter().zip(gpu).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(d < 1e-3, "{what}: losses differ by {d}");
    assert!(cpu[2] < cpu[0], "{what}: the loss did not fall: {cpu:?}");
}

fn rank_groups() -> Vec<RankGroup> {
    let mut rng = Rng::new(11);
    (0..8)
        .map(|_| {
            let seqs: Vec<Vec<u32>> =
                (0..3).map(|k| (0..6 + k).map(|_| rng.range(1, 64) as u32).collect()).collect();
            RankGroup::from_tiers(seqs, &[vec![1], vec![0, 2]])
        })
        .collect()
}

fn rm_steps<B: Backend>(device: &B::Device, tuning: Tuning) -> Vec<f64> {
    type T<B> = Autodiff<B>;
    let trunk = tuned(model::<T<B>>(device), tuning);
    let head: Vec<f32> = (0..32).map(|i| ((i as f32) * 0.37).sin() * 0.05).collect();
    let rm = RewardModel::new(trunk, head, device);
    let cfg = RmTrainConfig {
        lr: 1e-2,
        ties: trainer::rl::losses::TieModel::Davidson { nu: 1.0 },
        ..Default::default()
    };
    let task = RmTask::<T<B>>::new(cfg.clone(), Vec::new(), 8);
    let optim = trainer::optim::adamw::<T<B>, RewardModel<T<B>>>(0.0, 1.0);
    losses(&fit(&task, rm, optim, &rank_groups(), 3, 8, cfg.lr).1)
}

fn examples() -> Vec<Example> {
    let mut rng = Rng::new(12);
    (0..8)
        .map(|i| Example {
            prompt: (0..3 + i % 3).map(|_| rng.range(1, 64) as u32).collect(),
            answer: (0..4).map(|_| rng.range(1, 64) as u32).collect(),
        })
        .collect()
}

fn sft_steps<B: Backend>(device: &B::Device, tuning: Tuning) -> Vec<f64> {
    type T<B> = Autodiff<B>;
    let policy = tuned(model::<T<B>>(device), tuning);
    let task = SftTask::<T<B>>::new(0, Vec::new(), 8);
    let optim = trainer::optim::adamw::<T<B>, Llama<T<B>>>(0.0, 1.0);
    losses(&fit(&task, policy, optim, &examples(), 3, 8, 1e-2).1)
}

fn dpo_steps<B: Backend>(device: &B::Device, tuning: Tuning) -> Vec<f64> {
    type T<B> = Autodiff<B>;
    let reference = model::<B>(device);
    let pairs: Vec<DpoPair> = examples()
        .chunks(2)
        .map(|c| DpoPair {
            prompt: c[0].prompt.clone(),
            chosen: c[0].answer.clone(),
            rejected: c[1].answer.clone(),
        })
        .collect();
    let refs = reference_logps(&reference, &pairs, 0);
    let items: Vec<DpoItem> = pairs
        .into_iter()
        .zip(refs)
        .map(|(pair, (c, r))| DpoItem { pair, ref_chosen: c, ref_rejected: r })
        .collect();
    let policy = tuned(model::<T<B>>(device), tuning);
    let task = DpoTask::<T<B>>::new(0.5, 0, Vec::new(), 8);
    let optim = trainer::optim::adamw::<T<B>, Llama<T<B>>>(0.0, 1.0);
    losses(&fit(&task, policy, optim, &items, 3, 4, 1e-2).1)
}

#[test]
fn three_reward_model_steps_give_the_cpus_losses() {
    let Some(gpu) = vulkan() else { return };
    for tuning in [Tuning::Full, Tuning::Lora, Tuning::Qlora] {
        let what = format!("rm {tuning:?}");
        assert_close(&what, &rm_steps::<Cpu>(&Default::default(), tuning), &rm_steps::<Vulkan>(&gpu, tuning));
    }
}

#[test]
fn three_sft_steps_give_the_cpus_losses() {
    let Some(gpu) = vulkan() else { return };
    for tuning in [Tuning::Full, Tuning::Lora, Tuning::Qlora] {
        let what = format!("sft {tuning:?}");
        assert_close(
            &what,
            &sft_steps::<Cpu>(&Default::default(), tuning),
            &sft_steps::<Vulkan>(&gpu, tuning),
        );
    }
}

#[test]
fn three_dpo_steps_give_the_cpus_losses() {
    let Some(gpu) = vulkan() else { return };
    for tuning in [Tuning::Full, Tuning::Lora, Tuning::Qlora] {
        let what = format!("dpo {tuning:?}");
        assert_close(
            &what,
            &dpo_steps::<Cpu>(&Default::default(), tuning),
            &dpo_steps::<Vulkan>(&gpu, tuning),
        );
    }
}

/// Three PPO iterations (LoRA actor and critic on one base, sampled answers, adaptive KL): score, KL and policy
/// loss of each iteration.
fn ppo_iterations<B: Backend>(device: &B::Device, tuning: Tuning) -> Vec<(f64, f64, f64)> {
    use burn::module::AutodiffModule;
    use trainer::{
        ppo::{
            run::{run, PpoRunConfig},
            ActorCritic, PpoConfig,
        },
        rl::kl::KlController,
    };
    type T<B> = Autodiff<B>;
    let head: Vec<f32> = (0..32).map(|i| ((i as f32) * 0.21).cos() * 0.3).collect();
    let reward = RewardModel::new(model::<B>(device), head, device);
    let base = model::<T<B>>(device);
    // With full fine-tuning the critic is its own model; adapters share the frozen base.
    let critic_trunk = match tuning {
        Tuning::Full => {
            weights::from_tensors::<T<B>>(&config(), init::random_tensors(&config(), 0.1, 6), device).unwrap()
        }
        _ => tuned(base.clone(), tuning),
    };
    let model = ActorCritic {
        actor: tuned(base, tuning),
        critic: RewardModel::new(critic_trunk, vec![0.0; 32], device),
    };
    let reference = model.actor.valid();
    let mut rng = Rng::new(5);
    let prompts: Vec<Vec<u32>> = (0..8).map(|_| (0..3).map(|_| rng.range(3, 64) as u32).collect()).collect();
    let cfg = PpoConfig {
        temperature: 1.0,
        max_new_tokens: 5,
        stop_ids: vec![2],
        kl: KlController::Adaptive { beta: 0.1, target: 2.0, horizon: 100.0 },
        lr: 1e-3,
        epochs: 2,
        ..PpoConfig::default()
    };
    let rc = PpoRunConfig { iterations: 3, batch: 4, seed: 3, checkpoint_every: 0 };
    let optim = trainer::optim::adamw::<T<B>, ActorCritic<T<B>>>(0.0, 1.0);
    let mut out = Vec::new();
    let full = matches!(tuning, Tuning::Full).then_some(&reference);
    run(
        model,
        optim,
        &prompts,
        &reward,
        full,
        &cfg,
        &rc,
        None,
        &mut |r| out.push((r.stats.score, r.stats.kl, r.stats.update.policy_loss)),
        &|| false,
    )
    .unwrap();
    out
}

#[test]
fn three_ppo_iterations_give_the_cpus_statistics() {
    let Some(gpu) = vulkan() else { return };
    for tuning in [Tuning::Full, Tuning::Lora, Tuning::Qlora] {
        let cpu = ppo_iterations::<Cpu>(&Default::default(), tuning);
        let vk = ppo_iterations::<Vulkan>(&gpu, tuning);
        eprintln!("ppo {tuning:?}: cpu {cpu:.6?}\nppo {tuning:?}: vulkan {vk:.6?}");
        assert_eq!(cpu.len(), 3);
        for (a, b) in cpu.iter().zip(&vk) {
            for (x, y) in [(a.0, b.0), (a.1, b.1), (a.2, b.2)] {
                assert!((x - y).abs() < 1e-3, "ppo {tuning:?}: {cpu:?} vs {vk:?}");
            }
        }
    }
}

/// Reward-model steps on the shared loop with its checkpoint in `dir`: up to step `steps` (resuming from the
/// checkpoint there when there is one), on `device`. The losses of the steps this call ran.
fn rm_steps_in<B: Backend>(dir: &std::path::Path, steps: usize, device: &B::Device) -> Vec<f64> {
    type T<B> = Autodiff<B>;
    let trunk = tuned(model::<T<B>>(device), Tuning::Lora);
    let head: Vec<f32> = (0..32).map(|i| ((i as f32) * 0.37).sin() * 0.05).collect();
    let rm = RewardModel::new(trunk, head, device);
    let cfg = RmTrainConfig { lr: 1e-2, ..Default::default() };
    let task = RmTask::<T<B>>::new(cfg.clone(), Vec::new(), 8);
    let optim = trainer::optim::adamw::<T<B>, RewardModel<T<B>>>(0.0, 1.0);
    losses(&trainer::testing::fit_in(Some(dir), &task, rm, optim, &rank_groups(), steps, 8, cfg.lr).1)
}

#[test]
fn a_run_checkpointed_on_one_device_resumes_on_the_other_with_the_same_losses() {
    let Some(gpu) = vulkan() else { return };
    let cpu = Default::default();
    let straight = rm_steps_in::<Cpu>(tempfile::tempdir().unwrap().path(), 6, &cpu);
    assert_eq!(straight.len(), 6);
    // CPU → Vulkan, and Vulkan → CPU.
    let there = tempfile::tempdir().unwrap();
    let mut a = rm_steps_in::<Cpu>(there.path(), 3, &cpu);
    a.extend(rm_steps_in::<Vulkan>(there.path(), 6, &gpu));
    let back = tempfile::tempdir().unwrap();
    let mut b = rm_steps_in::<Vulkan>(back.path(), 3, &gpu);
    b.extend(rm_steps_in::<Cpu>(back.path(), 6, &cpu));
    eprintln!("straight {straight:.6?}\ncpu→vulkan {a:.6?}\nvulkan→cpu {b:.6?}");
    for resumed in [&a, &b] {
        assert_eq!(resumed.len(), 6, "the resumed run continued from step 3");
        let d = straight.iter().zip(resumed.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(d < 1e-3, "losses differ by {d}: {straight:?} vs {resumed:?}");
    }
}
