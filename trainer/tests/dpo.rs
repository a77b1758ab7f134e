//! DPO learns a preference from pairs: held-out implicit-reward accuracy rises from 0 (policy = reference) to
//! ≥ 90%, and the policy's own preference follows (chosen more likely than rejected).

use trainer::{
    backend::{default_device, Train},
    dpo::{evaluate, reference_logps, DpoConfig, DpoItem, DpoPair, DpoTask},
    model::{init, LlamaConfig},
    rng::Rng,
    sft::{for_inference, optimizer, SftConfig},
    testing::fit,
};

const MARKER: u32 = 5;

fn pairs(rng: &mut Rng, n: usize) -> Vec<DpoPair> {
    (0..n)
        .map(|_| {
            let prompt: Vec<u32> = (0..4).map(|_| rng.range(6, 32) as u32).collect();
            let mut chosen: Vec<u32> = (0..5).map(|_| rng.range(6, 32) as u32).collect();
            let rejected: Vec<u32> = (0..5).map(|_| rng.range(6, 32) as u32).collect();
            chosen[rng.range(0, 5) as usize] = MARKER;
            DpoPair { prompt, chosen, rejected }
        })
        .collect()
}

#[test]
fn dpo_raises_held_out_preference_accuracy() {
    let config = LlamaConfig::from_json(
        r#"{"vocab_size":32,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":32,"tie_word_embeddings":true}"#,
    )
    .unwrap();
    let device = default_device();
    let mut rng = Rng::new(3);
    let train = pairs(&mut rng, 256);
    let held_out = pairs(&mut rng, 64);
    let policy = init::random::<Train>(&config, 0.1, 8, &device);
    let reference = for_inference(&policy);
    let cfg = DpoConfig { beta: 0.1, pad_id: 0 };
    let ref_train = reference_logps(&reference, &train, 0);
    let ref_held = reference_logps(&reference, &held_out, 0);
    let (acc0, _) = evaluate(&reference, &held_out, &ref_held, &cfg);
    let items: Vec<DpoItem> = train
        .into_iter()
        .zip(ref_train)
        .map(|(pair, (c, r))| DpoItem { pair, ref_chosen: c, ref_rejected: r })
        .collect();
    let task = DpoTask::<Train>::new(cfg.beta, cfg.pad_id, Vec::new(), 32);
    let (policy, steps) = fit(&task, policy, optimizer(&SftConfig::default()), &items, 3, 32, 2e-3);
    assert!(steps.iter().all(|m| m["loss"].is_finite()));
    let (acc, margin) = evaluate(&for_inference(&policy), &held_out, &ref_held, &cfg);
    eprintln!("held-out implicit reward accuracy {acc0:.2} → {acc:.2}, mean margin {margin:.3}");
    assert_eq!(acc0, 0.0, "the policy starts equal to the reference");
    assert!(acc >= 0.9 && margin > 0.0, "accuracy {acc:.2}, margin {margin:.3}");
}
