//! SFT lowers the held-out loss on demonstrations: a tiny model learns a rule (answer = prompt tokens + 1).

use trainer::{
    backend::{default_device, Infer, Train},
    model::{init, LlamaConfig},
    rng::Rng,
    sft::{for_inference, loss, optimizer, Example, SftConfig, SftTask},
    testing::fit,
};

fn examples(rng: &mut Rng, n: usize) -> Vec<Example> {
    (0..n)
        .map(|_| {
            let prompt: Vec<u32> = (0..4).map(|_| rng.range(3, 30) as u32).collect();
            let answer = prompt.iter().map(|t| t + 1).collect();
            Example { prompt, answer }
        })
        .collect()
}

#[test]
fn sft_lowers_held_out_loss_on_demonstrations() {
    let cfg_json = r#"{"vocab_size":32,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":32,"tie_word_embeddings":true}"#;
    let config = LlamaConfig::from_json(cfg_json).unwrap();
    let device = default_device();
    let mut rng = Rng::new(9);
    let train = examples(&mut rng, 512);
    let held_out = examples(&mut rng, 64);
    let model = init::random::<Train>(&config, 0.1, 2, &device);
    let before = loss::<Infer>(&for_inference(&model), &held_out, 0, &device);
    let cfg = SftConfig { lr: 3e-3, ..Default::default() };
    let task = SftTask::<Train>::new(cfg.pad_id, Vec::new(), 32);
    let (model, steps) = fit(&task, model, optimizer(&cfg), &train, 8, 32, cfg.lr);
    assert!(steps.iter().all(|m| m["loss"].is_finite()));
    let after = loss::<Infer>(&for_inference(&model), &held_out, 0, &device);
    eprintln!("held-out answer loss {before:.3} → {after:.3}");
    assert!(after < 0.5 * before, "held-out loss {before:.3} → {after:.3}");
}
