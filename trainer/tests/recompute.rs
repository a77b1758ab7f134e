//! Layer-wise gradient checkpointing (`trainer::train::recompute`) changes what the backward pass keeps, not what
//! it computes: three steps of the reward model, SFT and DPO with it give the losses (1e-5) and the trained
//! weights (1e-4) of the same steps without it (full fine-tuning with a tied embedding, an untied head, LoRA,
//! QLoRA and P-Tuning v2), on the fused CPU kernels and on burn's generic operations; three PPO iterations (actor
//! and critic in one backward pass) give the same statistics and weights.

use burn::{
    module::{Module, ModuleVisitor, Param},
    tensor::{backend::Backend, Tensor},
};
use trainer::{
    backend::{default_device, Train},
    dpo::{reference_logps, DpoItem, DpoPair, DpoTask},
    kernels::with_generic,
    model::{init, Llama, LlamaConfig},
    peft::{add_lora, add_prefix, add_qlora, LoraConfig},
    rm::{RankGroup, RewardModel, RmTask, RmTrainConfig},
    rng::Rng,
    sft::{Example, SftTask},
    testing::fit,
    train::{recompute::Recompute, run::Metrics},
};

fn config(tied: bool) -> LlamaConfig {
    LlamaConfig::from_json(&format!(
        r#"{{"vocab_size":48,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":3,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":{tied}}}"#
    ))
    .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Tuning {
    FullTied,
    FullUntied,
    Lora,
    Qlora,
    Prefix,
}

const TUNINGS: [Tuning; 5] =
    [Tuning::FullTied, Tuning::FullUntied, Tuning::Lora, Tuning::Qlora, Tuning::Prefix];

fn policy(tuning: Tuning) -> Llama<Train> {
    let tied = !matches!(tuning, Tuning::FullUntied);
    let base = init::random::<Train>(&config(tied), 0.1, 3, &default_device());
    let lora = LoraConfig { rank: 4, alpha: 8.0, seed: 2, ..LoraConfig::default() };
    match tuning {
        Tuning::FullTied | Tuning::FullUntied => base,
        Tuning::Lora => add_lora(base, &lora),
        Tuning::Qlora => add_qlora(base, &lora),
        Tuning::Prefix => add_prefix(base, 3, 4),
    }
}

/// Every float parameter of a module, in visiting order.
struct Values(Vec<Vec<f32>>);

impl<B: Backend> ModuleVisitor<B> for Values {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.val().into_data().convert::<f32>().to_vec::<f32>().unwrap());
    }
}

fn values<B: Backend, M: Module<B>>(m: &M) -> Vec<Vec<f32>> {
    let mut v = Values(Vec::new());
    m.visit(&mut v);
    v.0
}

/// Asserts equal losses (1e-5) and trained weights (1e-4), and that the loss fell.
fn assert_same(what: &str, plain: (Vec<Vec<f32>>, Vec<Metrics>), layers: (Vec<Vec<f32>>, Vec<Metrics>)) {
    let loss = |m: &[Metrics]| m.iter().map(|m| m["loss"]).collect::<Vec<_>>();
    let (a, b) = (loss(&plain.1), loss(&layers.1));
    assert_eq!(a.len(), 3, "{what}");
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{what}: losses {a:?} vs {b:?}");
    }
    assert_eq!(plain.0.len(), layers.0.len());
    let mut worst = 0.0f32;
    for (p, q) in plain.0.iter().zip(&layers.0) {
        for (x, y) in p.iter().zip(q) {
            worst = worst.max((x - y).abs());
        }
    }
    // Adam moves a weight by about lr whatever its gradient's size, so a summation order that differs in the last bit
    // (the tied embedding's two gradients) shows in weights whose gradient is near zero: 1% of one step.
    assert!(worst < 1e-4, "{what}: trained weights differ by {worst}");
    assert!(a[2] < a[0], "{what}: the loss did not fall: {a:?}");
}

fn rm_run(tuning: Tuning, recompute: Recompute) -> (Vec<Vec<f32>>, Vec<Metrics>) {
    let mut rng = Rng::new(11);
    let groups: Vec<RankGroup> = (0..6)
        .map(|_| {
            let seqs: Vec<Vec<u32>> =
                (0..3).map(|k| (0..5 + 2 * k).map(|_| rng.range(1, 48) as u32).collect()).collect();
            RankGroup::from_tiers(seqs, &[vec![1], vec![0], vec![2]])
        })
        .collect();
    let head: Vec<f32> = (0..32).map(|i| ((i as f32) * 0.37).sin() * 0.05).collect();
    let model = RewardModel::new(policy(tuning), head, &default_device());
    let cfg = RmTrainConfig { lr: 1e-2, ..Default::default() };
    let task = RmTask::<Train>::new(cfg.clone(), Vec::new(), 8).recomputing(recompute);
    let optim = trainer::optim::adamw::<Train, RewardModel<Train>>(0.0, 1.0);
    let (m, steps) = fit(&task, model, optim, &groups, 3, 6, cfg.lr);
    (values(&m), steps)
}

fn examples() -> Vec<Example> {
    let mut rng = Rng::new(12);
    (0..6)
        .map(|i| Example {
            prompt: (0..2 + i % 3).map(|_| rng.range(1, 48) as u32).collect(),
            answer: (0..3 + i % 2).map(|_| rng.range(1, 48) as u32).collect(),
        })
        .collect()
}

fn sft_run(tuning: Tuning, recompute: Recompute) -> (Vec<Vec<f32>>, Vec<Metrics>) {
    let task = SftTask::<Train>::new(0, Vec::new(), 8).recomputing(recompute);
    let optim = trainer::optim::adamw::<Train, Llama<Train>>(0.0, 1.0);
    let (m, steps) = fit(&task, policy(tuning), optim, &examples(), 3, 6, 1e-2);
    (values(&m), steps)
}

fn dpo_run(tuning: Tuning, recompute: Recompute) -> (Vec<Vec<f32>>, Vec<Metrics>) {
    use burn::module::AutodiffModule;
    let ex = examples();
    let pairs: Vec<DpoPair> = ex
        .chunks(2)
        .map(|c| DpoPair {
            prompt: c[0].prompt.clone(),
            chosen: c[0].answer.clone(),
            rejected: c[1].answer.clone(),
        })
        .collect();
    let refs = reference_logps(&policy(tuning).valid(), &pairs, 0);
    let items: Vec<DpoItem> = pairs
        .into_iter()
        .zip(refs)
        .map(|(pair, (c, r))| DpoItem { pair, ref_chosen: c, ref_rejected: r })
        .collect();
    let task = DpoTask::<Train>::new(0.5, 0, Vec::new(), 8).recomputing(recompute);
    let optim = trainer::optim::adamw::<Train, Llama<Train>>(0.0, 1.0);
    let (m, steps) = fit(&task, policy(tuning), optim, &items, 3, 3, 1e-2);
    (values(&m), steps)
}

#[test]
fn layer_wise_recomputation_trains_the_reward_model_the_same() {
    for tuning in TUNINGS {
        let what = format!("rm {tuning:?}");
        assert_same(&what, rm_run(tuning, Recompute::Nothing), rm_run(tuning, Recompute::Layers));
    }
}

#[test]
fn layer_wise_recomputation_trains_sft_the_same() {
    for tuning in TUNINGS {
        let what = format!("sft {tuning:?}");
        assert_same(&what, sft_run(tuning, Recompute::Nothing), sft_run(tuning, Recompute::Layers));
    }
}

#[test]
fn layer_wise_recomputation_trains_dpo_the_same() {
    for tuning in TUNINGS {
        let what = format!("dpo {tuning:?}");
        assert_same(&what, dpo_run(tuning, Recompute::Nothing), dpo_run(tuning, Recompute::Layers));
    }
}

#[test]
fn layer_wise_recomputation_is_the_same_on_burns_generic_operations() {
    for tuning in [Tuning::FullTied, Tuning::Lora] {
        let what = format!("generic rm {tuning:?}");
        let (a, b) = with_generic(|| (rm_run(tuning, Recompute::Nothing), rm_run(tuning, Recompute::Layers)));
        assert_same(&what, a, b);
    }
}

/// Three PPO iterations (sampled answers, two epochs of two minibatches each): each iteration's score, KL,
/// policy and value loss, and the trained actor-critic's weights.
fn ppo_run(tuning: Tuning, recompute: Recompute) -> (Vec<Vec<f32>>, Vec<[f64; 4]>) {
    use burn::module::AutodiffModule;
    use trainer::{
        ppo::{
            run::{run, PpoRunConfig},
            ActorCritic, PpoConfig,
        },
        rl::kl::KlController,
    };
    let device = default_device();
    let head: Vec<f32> = (0..32).map(|i| ((i as f32) * 0.21).cos() * 0.3).collect();
    let reward = RewardModel::new(policy(Tuning::FullTied).valid(), head, &device);
    // As the ppo stage builds them: full models apart, or two adapters of their own on one frozen base.
    let frozen = init::random::<Train>(&config(true), 0.1, 3, &device);
    let lora = |seed| LoraConfig { rank: 4, alpha: 8.0, seed, ..LoraConfig::default() };
    let (base, critic_trunk) = match tuning {
        Tuning::Lora => (add_lora(frozen.clone(), &lora(2)), add_lora(frozen, &lora(9))),
        Tuning::Qlora => (add_qlora(frozen.clone(), &lora(2)), add_qlora(frozen, &lora(9))),
        _ => (policy(tuning), init::random::<Train>(&config(true), 0.1, 6, &device)),
    };
    let model = ActorCritic { actor: base, critic: RewardModel::new(critic_trunk, vec![0.0; 32], &device) };
    let reference = model.actor.valid();
    let mut rng = Rng::new(5);
    let prompts: Vec<Vec<u32>> = (0..8).map(|_| (0..3).map(|_| rng.range(3, 48) as u32).collect()).collect();
    let cfg = PpoConfig {
        temperature: 1.0,
        max_new_tokens: 5,
        stop_ids: vec![2],
        kl: KlController::Adaptive { beta: 0.1, target: 2.0, horizon: 100.0 },
        lr: 1e-3,
        epochs: 2,
        recompute,
        ..PpoConfig::default()
    };
    let rc = PpoRunConfig { iterations: 3, batch: 4, seed: 3, checkpoint_every: 0 };
    let optim = trainer::optim::adamw::<Train, ActorCritic<Train>>(0.0, 1.0);
    let mut out = Vec::new();
    let full = matches!(tuning, Tuning::FullTied | Tuning::FullUntied).then_some(&reference);
    let (m, _, _) = run(
        model,
        optim,
        &prompts,
        &reward,
        full,
        &cfg,
        &rc,
        None,
        &mut |r| {
            let u = &r.stats.update;
            out.push([r.stats.score, r.stats.kl, u.policy_loss, u.value_loss])
        },
        &|| false,
    )
    .unwrap();
    (values(&m), out)
}

#[test]
fn layer_wise_recomputation_trains_ppo_the_same() {
    for tuning in [Tuning::FullTied, Tuning::Lora, Tuning::Qlora] {
        let (plain, layers) = (ppo_run(tuning, Recompute::Nothing), ppo_run(tuning, Recompute::Layers));
        assert_eq!(plain.1.len(), 3);
        for (a, b) in plain.1.iter().zip(&layers.1) {
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() < 1e-5, "ppo {tuning:?}: {:?} vs {:?}", plain.1, layers.1);
            }
        }
        let worst = plain
            .0
            .iter()
            .zip(&layers.0)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "ppo {tuning:?}: trained weights differ by {worst}");
    }
}
