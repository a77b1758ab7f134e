//! A PPO run stopped after some iterations and resumed from its checkpoint (actor, critic, optimizer, KL
//! controller, generator) reproduces the uninterrupted run's iterations exactly.

use burn::module::AutodiffModule;
use trainer::{
    backend::{default_device, Train},
    model::{init, LlamaConfig},
    optim::adamw,
    peft::{add_lora, LoraConfig},
    ppo::{
        run::{run, IterationRecord, PpoRunConfig},
        ActorCritic, PpoConfig,
    },
    rl::kl::KlController,
    rm::RewardModel,
    rng::Rng,
};

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":24,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":true}"#,
    )
    .unwrap()
}

fn model() -> ActorCritic<Train> {
    let device = default_device();
    let base = init::random::<Train>(&config(), 0.15, 3, &device);
    let lora =
        |seed| LoraConfig { rank: 4, alpha: 8.0, targets: vec!["q_proj".into(), "v_proj".into()], seed };
    ActorCritic {
        actor: add_lora(base.clone(), &lora(1)),
        critic: RewardModel::new(add_lora(base, &lora(2)), vec![0.0; 32], &device),
    }
}

fn fingerprint(records: &[IterationRecord]) -> Vec<(usize, f32, f32, f32)> {
    records
        .iter()
        .map(|r| (r.iteration, r.stats.score as f32, r.stats.kl as f32, r.stats.update.policy_loss as f32))
        .collect()
}

#[test]
fn a_ppo_run_resumes_from_its_checkpoint_with_the_same_iterations() {
    let device = default_device();
    let reward = RewardModel::new(
        init::random::<Train>(&config(), 0.15, 9, &device),
        {
            let mut r = Rng::new(1);
            (0..32).map(|_| r.normal() as f32).collect()
        },
        &device,
    )
    .valid();
    let mut rng = Rng::new(5);
    let prompts: Vec<Vec<u32>> = (0..20).map(|_| (0..3).map(|_| rng.range(3, 24) as u32).collect()).collect();
    let cfg = PpoConfig {
        temperature: 1.0,
        max_new_tokens: 5,
        stop_ids: vec![2],
        kl: KlController::Adaptive { beta: 0.1, target: 2.0, horizon: 100.0 },
        lr: 1e-3,
        epochs: 2,
        ..PpoConfig::default()
    };
    let rc = PpoRunConfig { iterations: 5, batch: 6, seed: 3, checkpoint_every: 1 };
    let mut straight = Vec::new();
    run(
        model(),
        adamw(0.0, 1.0),
        &prompts,
        &reward,
        None,
        &cfg,
        &rc,
        None,
        &mut |r| straight.push(r.clone()),
        &|| false,
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let done = std::cell::Cell::new(0);
    let mut first = Vec::new();
    let (_, state, cancelled) = run(
        model(),
        adamw(0.0, 1.0),
        &prompts,
        &reward,
        None,
        &cfg,
        &rc,
        Some(dir.path()),
        &mut |r| {
            done.set(r.iteration);
            first.push(r.clone())
        },
        &|| done.get() >= 2,
    )
    .unwrap();
    assert!(cancelled);
    assert_eq!(state.iteration, 2);
    let mut second = Vec::new();
    let (_, state, cancelled) = run(
        model(),
        adamw(0.0, 1.0),
        &prompts,
        &reward,
        None,
        &cfg,
        &rc,
        Some(dir.path()),
        &mut |r| second.push(r.clone()),
        &|| false,
    )
    .unwrap();
    assert!(!cancelled);
    assert_eq!(state.history.len(), 5);
    let resumed: Vec<IterationRecord> = first.into_iter().chain(second).collect();
    assert_eq!(fingerprint(&resumed), fingerprint(&straight));
    assert_ne!(straight[0].stats.beta, straight[4].stats.beta, "the adaptive β moved and was restored");
}
