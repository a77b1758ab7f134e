//! The loop aligns, measured: a simulated annotator ranks the starting policy's answers by a hidden rule (more
//! MARKER tokens is better), a reward model is trained on those rankings, and then PPO (actor and critic as LoRA
//! adapters on one frozen base, the reference being that base) and, separately, DPO on the same rankings raise the
//! rule's win-rate against the starting policy from about 50% to at least 80%, with the KL to the starting policy
//! inside a budget. The critic-free methods (RLOO, GRPO, Dr. GRPO, REINFORCE++ with a group baseline) do the same
//! against the same reward model with no critic at all.

use burn::module::AutodiffModule;
use trainer::{
    backend::{default_device, Infer, Train},
    dpo::{with_reference, DpoPair, DpoTask},
    group_rl::{self, GroupConfig},
    model::{init, Llama, LlamaConfig},
    peft::{add_lora, has_adapters, without_adapters, LoraConfig},
    ppo::{self, rollout, ActorCritic, Frozen, PpoConfig, RewardShaping},
    rl::{group::Baseline, group_loss::TokenNorm, kl::KlController},
    rm::{optimizer as rm_optimizer, RankGroup, RewardModel, RmTask, RmTrainConfig},
    rng::Rng,
    sft::optimizer as policy_optimizer,
    train::{
        run::{run, RunConfig},
        schedule::Decay,
    },
};

const MARKER: u32 = 7;
const ANSWER: usize = 6;
const K: usize = 4;
const TEMPERATURE: f32 = 1.0;
/// The KL budget: nats per answer between the aligned and the starting policy.
const KL_BUDGET: f64 = 8.0;

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":24,"hidden_size":48,"intermediate_size":96,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":true}"#,
    )
    .unwrap()
}

fn prompts(rng: &mut Rng, n: usize) -> Vec<Vec<u32>> {
    (0..n).map(|_| (0..4).map(|_| rng.range(3, 24) as u32).collect()).collect()
}

/// The hidden rule.
fn rule(answer: &[u32]) -> usize {
    answer.iter().filter(|&&t| t == MARKER).count()
}

fn sampling(seed_cfg: &PpoConfig) -> PpoConfig {
    PpoConfig { temperature: TEMPERATURE, max_new_tokens: ANSWER, ..seed_cfg.clone() }
}

fn sample(policy: &Llama<Infer>, prompts: &[Vec<u32>], seed: u64) -> Vec<Vec<u32>> {
    ppo::sample(policy, prompts, &sampling(&PpoConfig::default()), seed).responses
}

/// Share of prompts where `new`'s answer beats `old`'s by the rule (ties count half).
fn win_rate(new: &Llama<Infer>, old: &Llama<Infer>, prompts: &[Vec<u32>]) -> f64 {
    let a = sample(new, prompts, 1001);
    let b = sample(old, prompts, 2002);
    a.iter()
        .zip(&b)
        .map(|(x, y)| match rule(x).cmp(&rule(y)) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        })
        .sum::<f64>()
        / prompts.len() as f64
}

/// Monte-Carlo KL(new ‖ old) per answer on `new`'s samples.
fn kl(new: &Llama<Infer>, old: &Llama<Infer>, prompts: &[Vec<u32>]) -> f64 {
    let s = ppo::sample(new, prompts, &sampling(&PpoConfig::default()), 3003);
    rollout::kl_per_answer(new, old, &s, 0, TEMPERATURE).iter().sum::<f64>() / prompts.len() as f64
}

struct World {
    base: Llama<Train>,
    groups: Vec<RankGroup>,
    pairs: Vec<DpoPair>,
    reward: RewardModel<Infer>,
    train_prompts: Vec<Vec<u32>>,
    test_prompts: Vec<Vec<u32>>,
}

/// The starting policy, the annotator's rankings of its answers and the reward model trained on them.
fn world() -> World {
    let device = default_device();
    let base = init::random::<Train>(&config(), 0.15, 3, &device);
    let mut rng = Rng::new(17);
    let train_prompts = prompts(&mut rng, 240);
    let test_prompts = prompts(&mut rng, 200);
    // The simulated annotator ranks K answers per prompt by the rule; equal counts tie.
    let base_inf = base.valid();
    let mut groups = Vec::new();
    let mut pairs = Vec::new();
    for (i, p) in train_prompts.iter().enumerate() {
        let answers = sample(&base_inf, &vec![p.clone(); K], 10 + i as u64);
        let mut order: Vec<usize> = (0..K).collect();
        order.sort_by_key(|&j| std::cmp::Reverse(rule(&answers[j])));
        let mut tiers: Vec<Vec<usize>> = Vec::new();
        for j in order {
            match tiers.last_mut() {
                Some(t) if rule(&answers[t[0]]) == rule(&answers[j]) => t.push(j),
                _ => tiers.push(vec![j]),
            }
        }
        if tiers.len() < 2 {
            continue;
        }
        let seqs: Vec<Vec<u32>> = answers.iter().map(|a| [p.as_slice(), a.as_slice()].concat()).collect();
        let g = RankGroup::from_tiers(seqs, &tiers);
        for &(b, w, _) in &g.wins {
            pairs.push(DpoPair {
                prompt: p.clone(),
                chosen: answers[b].clone(),
                rejected: answers[w].clone(),
            });
        }
        groups.push(g);
    }
    // Reward model: the starting policy's trunk plus a scalar head, trained on the rankings.
    let mut head_rng = Rng::new(4);
    let head = (0..48).map(|_| (head_rng.normal() * 0.02) as f32).collect();
    let rm = RewardModel::new(base.clone(), head, &device);
    let split = groups.len() * 9 / 10;
    let task = RmTask::<Train>::new(RmTrainConfig::default(), groups[split..].to_vec(), 32);
    let cfg = RunConfig {
        steps: 150,
        batch: 16,
        micro_batch: 16,
        lr: 3e-3,
        warmup_steps: 10,
        decay: Decay::Cosine,
        min_lr_ratio: 0.1,
        seed: 5,
        eval_every: 0,
        checkpoint_every: 0,
    };
    let out = run(&task, rm, rm_optimizer(&task.cfg), &groups[..split], &cfg, None, &mut |_| {}, &|| false)
        .unwrap();
    eprintln!("{} ranked prompts, {} pairs; reward model held-out {:?}", groups.len(), pairs.len(), out.eval);
    assert!(out.eval["accuracy"] >= 0.85, "the reward model must learn the rule first: {:?}", out.eval);
    World { base, groups, pairs, reward: out.model.valid(), train_prompts, test_prompts }
}

#[test]
fn ppo_and_dpo_raise_the_rule_win_rate_to_80_percent_within_the_kl_budget() {
    let w = world();
    let start = w.base.valid();
    let even = win_rate(&start, &start, &w.test_prompts);
    eprintln!("starting policy against itself: win-rate {even:.3}");
    assert!((0.4..=0.6).contains(&even), "the starting win-rate is about 50%: {even}");
    assert!(!w.groups.is_empty());

    // PPO: actor and critic are adapters on the same frozen base; the reference is that base.
    let device = default_device();
    let lora = |seed| LoraConfig {
        rank: 8,
        alpha: 16.0,
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            .map(String::from)
            .to_vec(),
        seed,
    };
    let actor = add_lora(w.base.clone(), &lora(1));
    let critic_trunk = add_lora(w.base.clone(), &lora(2));
    let mut model = ActorCritic { actor, critic: RewardModel::new(critic_trunk, vec![0.0; 48], &device) };
    let cfg = PpoConfig {
        temperature: TEMPERATURE,
        max_new_tokens: ANSWER,
        shaping: RewardShaping {
            beta: 0.05,
            missing_eos_penalty: None,
            score_clip: Some(10.0),
            length: trainer::rl::length::LengthControl::None,
            gamma: 1.0,
            lambda: 0.95,
            whiten_advantages: true,
        },
        kl: KlController::Adaptive { beta: 0.2, target: 4.0, horizon: 200.0 },
        epochs: 2,
        minibatches: 2,
        lr: 1e-2,
        stop_kl: Some(0.5),
        ..PpoConfig::default()
    };
    let mut optim =
        burn::optim::AdamWConfig::new().with_weight_decay(0.0).init::<Train, ActorCritic<Train>>();
    let mut kl_ctl = cfg.kl.clone();
    let mut rng = Rng::new(99);
    for it in 0..40 {
        let idx = trainer::train::split::batch_indices(w.train_prompts.len(), 32, it, 7);
        let batch: Vec<Vec<u32>> = idx.iter().map(|&i| w.train_prompts[i].clone()).collect();
        // The reference is the actor's own base with its adapters switched off: no second copy of the weights.
        let reference = without_adapters(&model.actor.valid());
        assert!(!has_adapters(&reference) && has_adapters(&model.actor));
        let frozen = Frozen { reference: &reference, reward: &w.reward };
        let (m, s) = ppo::iteration(model, &mut optim, &batch, &frozen, &cfg, &mut kl_ctl, &mut rng);
        model = m;
        if it % 5 == 0 || it == 39 {
            eprintln!(
                "ppo {it}: score {:.3} kl {:.3} β {:.4} entropy {:.3} clipfrac {:.3} ev {:.3} steps {}",
                s.score,
                s.kl,
                s.beta,
                s.update.entropy,
                s.update.clipfrac,
                s.explained_variance,
                s.update.steps
            );
        }
    }
    let aligned = model.actor.valid();
    let (wr, d) = (win_rate(&aligned, &start, &w.test_prompts), kl(&aligned, &start, &w.test_prompts));
    eprintln!("PPO: win-rate {wr:.3} against the starting policy, KL {d:.3} nats per answer");
    assert!(wr >= 0.8, "PPO win-rate {wr}");
    assert!(d <= KL_BUDGET, "PPO KL {d} over the budget {KL_BUDGET}");

    // DPO on the same rankings, reference log-probs computed once.
    let items = with_reference(&start, w.pairs.clone(), 0, 64);
    let split = items.len() * 9 / 10;
    let task = DpoTask::<Train>::new(0.1, 0, items[split..].to_vec(), 64);
    let cfg = RunConfig {
        steps: 15,
        batch: 32,
        micro_batch: 32,
        lr: 1e-3,
        warmup_steps: 2,
        decay: Decay::Cosine,
        min_lr_ratio: 0.1,
        seed: 3,
        eval_every: 0,
        checkpoint_every: 0,
    };
    let opt = policy_optimizer(&trainer::sft::SftConfig::default());
    let out = run(&task, w.base.clone(), opt, &items[..split], &cfg, None, &mut |_| {}, &|| false).unwrap();
    let dpo = out.model.valid();
    let (wr, d) = (win_rate(&dpo, &start, &w.test_prompts), kl(&dpo, &start, &w.test_prompts));
    eprintln!("DPO: held-out {:?}; win-rate {wr:.3}, KL {d:.3} nats per answer", out.eval);
    assert!(wr >= 0.8, "DPO win-rate {wr}");
    assert!(d <= KL_BUDGET, "DPO KL {d} over the budget {KL_BUDGET}");
}

/// A critic-free method from the starting policy: a LoRA adapter, the reference its own base, 40 iterations of 8
/// prompts × K = 4 answers (the 32 samples per iteration PPO gets above).
fn critic_free(w: &World, name: &str, cfg: GroupConfig) -> Llama<Infer> {
    let lora = LoraConfig {
        rank: 8,
        alpha: 16.0,
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            .map(String::from)
            .to_vec(),
        seed: 1,
    };
    let mut actor = add_lora(w.base.clone(), &lora);
    let mut optim = burn::optim::AdamWConfig::new().with_weight_decay(0.0).init::<Train, Llama<Train>>();
    let mut kl_ctl = cfg.kl.clone();
    let mut rng = Rng::new(99);
    for it in 0..40 {
        let idx = trainer::train::split::batch_indices(w.train_prompts.len(), 8, it, 7);
        let batch: Vec<Vec<u32>> = idx.iter().map(|&i| w.train_prompts[i].clone()).collect();
        let reference = without_adapters(&actor.valid());
        let frozen = Frozen { reference: &reference, reward: &w.reward };
        let (a, s) = group_rl::iteration(actor, &mut optim, &batch, &frozen, &cfg, &mut kl_ctl, &mut rng);
        actor = a;
        if it % 10 == 0 || it == 39 {
            eprintln!(
                "{name} {it}: score {:.3} kl {:.3} β {:.4} group std {:.3} flat {:.2} clipfrac {:.3} steps {}",
                s.score, s.kl, s.beta, s.group_std, s.flat_groups, s.update.clipfrac, s.update.steps
            );
        }
    }
    actor.valid()
}

#[test]
fn rloo_grpo_dr_grpo_and_reinforce_pp_raise_the_rule_win_rate_to_80_percent_without_a_critic() {
    let w = world();
    let start = w.base.valid();
    let common = |c: GroupConfig| GroupConfig {
        k: K,
        temperature: TEMPERATURE,
        max_new_tokens: ANSWER,
        kl: KlController::Adaptive { beta: 0.1, target: 3.0, horizon: 200.0 },
        epochs: 2,
        minibatches: 2,
        lr: 1e-2,
        stop_kl: Some(0.5),
        ..c
    };
    let methods = [
        ("RLOO", common(GroupConfig::rloo())),
        // The KL in the loss pulls per token, against advantages of unit scale: a larger β.
        (
            "GRPO",
            GroupConfig {
                kl: KlController::Adaptive { beta: 0.15, target: 3.0, horizon: 200.0 },
                ..common(GroupConfig::grpo())
            },
        ),
        (
            "Dr. GRPO",
            common(GroupConfig {
                baseline: Baseline::GroupMean,
                norm: TokenNorm::Constant,
                ..GroupConfig::grpo()
            }),
        ),
        (
            "REINFORCE++",
            common(GroupConfig { baseline: Baseline::GroupMeanBatchWhitened, ..GroupConfig::rloo() }),
        ),
    ];
    for (name, cfg) in methods {
        let aligned = critic_free(&w, name, cfg);
        let (wr, d) = (win_rate(&aligned, &start, &w.test_prompts), kl(&aligned, &start, &w.test_prompts));
        eprintln!("{name}: win-rate {wr:.3} against the starting policy, KL {d:.3} nats per answer");
        assert!(wr >= 0.8, "{name} win-rate {wr}");
        assert!(d <= KL_BUDGET, "{name} KL {d} over the budget {KL_BUDGET}");
    }
}
