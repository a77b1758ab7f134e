//! The reward model learns a hidden preference: on a synthetic task where the better answer is the one with more
//! occurrences of a marker token, a tiny model trained on pairs reaches ≥ 95% accuracy on held-out prompts.

use trainer::{
    backend::{default_device, Train},
    model::{init, LlamaConfig},
    rm::{accuracy, for_inference, optimizer, Pair, RankGroup, RewardModel, RmTask, RmTrainConfig},
    rng::Rng,
    testing::fit,
};

const MARKER: u32 = 5;

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":32,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"rms_norm_eps":1e-5,
        "tie_word_embeddings":true}"#,
    )
    .unwrap()
}

/// Pairs for `prompts` distinct prompts: answers of 6 tokens; the better one has more markers.
fn pairs(rng: &mut Rng, prompts: usize) -> Vec<Pair> {
    let mut out = Vec::new();
    for _ in 0..prompts {
        let prompt: Vec<u32> = (0..4).map(|_| rng.range(6, 32) as u32).collect();
        let answer = |rng: &mut Rng, markers: usize| {
            let mut a: Vec<u32> = (0..6).map(|_| rng.range(6, 32) as u32).collect();
            for _ in 0..markers {
                let at = rng.range(0, 6) as usize;
                a[at] = MARKER;
            }
            a
        };
        let k_better = rng.range(1, 4) as usize;
        let k_worse = rng.range(0, k_better as u64) as usize;
        let (mut b, mut w) = (prompt.clone(), prompt);
        b.extend(answer(rng, k_better));
        w.extend(answer(rng, k_worse));
        let count = |s: &[u32]| s[4..].iter().filter(|&&t| t == MARKER).count();
        if count(&b) > count(&w) {
            out.push(Pair { better: b, worse: w });
        }
    }
    out
}

#[test]
fn the_reward_model_learns_a_hidden_rule_to_95_percent_held_out_accuracy() {
    let device = default_device();
    let mut rng = Rng::new(42);
    let train = pairs(&mut rng, 600);
    let held_out = pairs(&mut rng, 200);
    let trunk = init::random::<Train>(&config(), 0.1, 1, &device);
    let head: Vec<f32> = (0..32).map(|_| (rng.normal() * 0.1) as f32).collect();
    let model = RewardModel::new(trunk, head, &device);
    let cfg = RmTrainConfig { lr: 3e-3, ..RmTrainConfig::default() };
    let before = accuracy(&for_inference(&model), &held_out, 0, 64);
    let groups: Vec<RankGroup> = train.iter().map(RankGroup::from_pair).collect();
    let task = RmTask::<Train>::new(cfg.clone(), Vec::new(), 64);
    let (model, steps) = fit(&task, model, optimizer(&cfg), &groups, 4, 16, cfg.lr);
    for (i, m) in steps.iter().enumerate() {
        assert!(m["loss"].is_finite(), "step {i}: loss {}", m["loss"]);
    }
    let last = steps.last();
    let after = accuracy(&for_inference(&model), &held_out, 0, 64);
    eprintln!("held-out accuracy {before:.3} → {after:.3}; last step {last:?}");
    assert!(after >= 0.95, "held-out accuracy {after:.3} (was {before:.3})");
}
