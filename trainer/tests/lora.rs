//! LoRA: a fresh adapter (B = 0) changes nothing, training touches only the adapters (and the reward head),
//! and merging gives the adapted model's outputs.

use burn::{
    module::{AutodiffModule, Param},
    tensor::{Int, Tensor, TensorData},
};
use trainer::{
    backend::{default_device, Infer, Train},
    model::{init, weights, Layout, LlamaConfig},
    peft::{add_lora, merge_lora, LoraConfig},
    rm::{optimizer, Pair, RankGroup, RewardModel, RmTask, RmTrainConfig},
    testing::fit,
};

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":40,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":32,"tie_word_embeddings":false}"#,
    )
    .unwrap()
}

fn tokens() -> Tensor<Infer, 2, Int> {
    Tensor::from_data(TensorData::new(vec![3i64, 9, 17, 4, 22, 8, 1, 30], [1, 8]), &default_device())
}

fn bits(t: Tensor<Infer, 3>) -> Vec<u32> {
    t.into_data().to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
}

#[test]
fn lora_with_b_zero_equals_the_base() {
    let device = default_device();
    let base = init::random::<Infer>(&config(), 0.2, 3, &device);
    let before = base.forward(tokens(), &Layout::unpadded(1), None);
    let cfg = LoraConfig {
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let adapted = add_lora(base, &cfg);
    assert!(
        adapted.layers[0].self_attn.q_proj.lora.is_some() && adapted.layers[1].mlp.down_proj.lora.is_some()
    );
    let after = adapted.forward(tokens(), &Layout::unpadded(1), None);
    assert_eq!(bits(before), bits(after));
}

fn flat(p: &Param<Tensor<Train, 2>>) -> Vec<f32> {
    p.val().into_data().to_vec::<f32>().unwrap()
}

#[test]
fn training_moves_only_the_adapters_and_the_merge_reproduces_the_adapted_model() {
    let device = default_device();
    let trunk = add_lora(init::random::<Train>(&config(), 0.2, 4, &device), &LoraConfig::default());
    let rm = RewardModel::new(trunk, vec![0.05; 32], &device);
    let q_before = flat(&rm.trunk.layers[0].self_attn.q_proj.weight);
    let b_before = flat(&rm.trunk.layers[0].self_attn.q_proj.lora.as_ref().unwrap().b);
    let embed_before = rm.trunk.embed_tokens.val().into_data().to_vec::<f32>().unwrap();
    let pairs = [
        Pair { better: vec![3, 9, 5, 5], worse: vec![3, 9, 7, 8] },
        Pair { better: vec![4, 1, 5, 2, 5], worse: vec![4, 1, 6, 2] },
    ];
    let cfg = RmTrainConfig { lr: 1e-2, ..Default::default() };
    let groups: Vec<RankGroup> = pairs.iter().map(RankGroup::from_pair).collect();
    let task = RmTask::<Train>::new(cfg.clone(), Vec::new(), 8);
    let (rm, steps) = fit(&task, rm, optimizer(&cfg), &groups, 5, 2, cfg.lr);
    let losses: Vec<f64> = steps.iter().map(|m| m["loss"]).collect();
    assert!(losses[4] < losses[0], "{losses:?}");
    assert_eq!(flat(&rm.trunk.layers[0].self_attn.q_proj.weight), q_before, "the frozen base moved");
    assert_eq!(rm.trunk.embed_tokens.val().into_data().to_vec::<f32>().unwrap(), embed_before);
    assert_ne!(
        flat(&rm.trunk.layers[0].self_attn.q_proj.lora.as_ref().unwrap().b),
        b_before,
        "the adapter did not learn"
    );

    let adapted = rm.trunk.valid();
    let out = adapted.forward(tokens(), &Layout::unpadded(1), None).into_data().to_vec::<f32>().unwrap();
    let merged = merge_lora(adapted);
    assert!(merged
        .layers
        .iter()
        .all(|l| l.self_attn.q_proj.lora.is_none() && l.self_attn.v_proj.lora.is_none()));
    let m_out = merged.forward(tokens(), &Layout::unpadded(1), None).into_data().to_vec::<f32>().unwrap();
    let diff = out.iter().zip(&m_out).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff < 1e-4, "merged differs by {diff}");
    // The merged model exports like any other: HF names, no adapter tensors.
    let map = weights::to_tensors(&merged);
    assert!(map.keys().all(|k| !k.contains("lora")));
}
