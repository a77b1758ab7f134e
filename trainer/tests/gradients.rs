//! Autodiff through the whole model: the reward model's pairwise-loss gradient equals central finite differences,
//! and padding after the last real token does not change a score.

use burn::{
    module::Param,
    tensor::{Int, Tensor, TensorData},
};
use trainer::{
    backend::{default_device, Infer, Train},
    model::{init, weights, LlamaConfig},
    rl::losses::pairwise_loss,
    rm::RewardModel,
};

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":40,"hidden_size":16,"intermediate_size":32,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":32,"rms_norm_eps":1e-5,
        "tie_word_embeddings":true}"#,
    )
    .unwrap()
}

fn head() -> Vec<f32> {
    (0..16).map(|i| ((i as f32) * 0.7).sin() * 0.5).collect()
}

fn batch<B: burn::tensor::backend::Backend>(device: &B::Device) -> (Tensor<B, 2, Int>, Vec<usize>) {
    // Two right-padded sequences: the better one (5 tokens) and the worse one (7 tokens).
    let ids: Vec<i64> = vec![3, 9, 17, 4, 22, 0, 0, 5, 30, 12, 8, 1, 19, 27];
    (Tensor::from_data(TensorData::new(ids, [2, 7]), device), vec![5, 7])
}

fn loss_with(map: weights::TensorMap) -> f64 {
    let device = default_device();
    let trunk = weights::from_tensors::<Infer>(&config(), map, &device).unwrap();
    let rm = RewardModel::new(trunk, head(), &device);
    let (tokens, lengths) = batch::<Infer>(&device);
    let scores = rm.forward(tokens, &lengths);
    let better = scores.clone().narrow(0, 0, 1);
    let worse = scores.narrow(0, 1, 1);
    pairwise_loss(better, worse, 0.0).loss.into_data().to_vec::<f32>().unwrap()[0] as f64
}

#[test]
fn reward_model_gradients_match_finite_differences() {
    let device = default_device();
    let tensors = init::random_tensors(&config(), 0.3, 11);
    let trunk = weights::from_tensors::<Train>(&config(), tensors.clone(), &device).unwrap();
    let rm = RewardModel::new(trunk, head(), &device);
    let (tokens, lengths) = batch::<Train>(&device);
    let scores = rm.forward(tokens, &lengths);
    let loss = pairwise_loss(scores.clone().narrow(0, 0, 1), scores.narrow(0, 1, 1), 0.0).loss;
    let grads = loss.backward();

    // (HF name, row, column) of elements to check, and the module parameter holding each ([d_in, d_out] layout).
    let q = &rm.trunk.layers[0].self_attn.q_proj.weight;
    let down = &rm.trunk.layers[1].mlp.down_proj.weight;
    let checks: [(&str, usize, usize, &Param<Tensor<Train, 2>>); 4] = [
        ("model.layers.0.self_attn.q_proj.weight", 3, 5, q),
        ("model.layers.0.self_attn.q_proj.weight", 12, 0, q),
        ("model.layers.1.mlp.down_proj.weight", 7, 20, down),
        ("model.layers.1.mlp.down_proj.weight", 0, 31, down),
    ];
    for (name, row, col, param) in checks {
        let g = param.grad(&grads).expect("gradient");
        let d_out = g.dims()[1];
        let analytic = g.into_data().to_vec::<f32>().unwrap()[col * d_out + row] as f64;
        let h = 1e-2;
        let bump = |delta: f32| {
            let mut m = tensors.clone();
            let t = m.get_mut(name).unwrap();
            let cols = t.shape[1];
            t.data[row * cols + col] += delta;
            loss_with(m)
        };
        let numeric = (bump(h as f32) - bump(-h as f32)) / (2.0 * h);
        let tol = 2e-3 + 2e-2 * numeric.abs();
        eprintln!("{name}[{row},{col}]: autodiff {analytic:.6} finite {numeric:.6}");
        assert!(
            (analytic - numeric).abs() < tol,
            "{name}[{row},{col}]: autodiff {analytic:.6} vs finite {numeric:.6}"
        );
        assert!(
            analytic.abs() > 1e-6,
            "{name}[{row},{col}]: gradient is zero, the check would prove nothing"
        );
    }
    // The embedding gets gradient only on rows of tokens that occur.
    let emb = rm.trunk.embed_tokens.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
    let row_norm = |r: usize| emb[r * 16..(r + 1) * 16].iter().map(|x| x.abs()).sum::<f32>();
    assert!(row_norm(9) > 0.0 && row_norm(39) == 0.0);
}

#[test]
fn padding_after_the_last_real_token_does_not_change_the_score() {
    let device = default_device();
    let trunk = init::random::<Infer>(&config(), 0.3, 5, &device);
    let rm = RewardModel::new(trunk, head(), &device);
    let short = Tensor::<Infer, 2, Int>::from_data(TensorData::new(vec![3i64, 9, 17], [1, 3]), &device);
    let padded =
        Tensor::<Infer, 2, Int>::from_data(TensorData::new(vec![3i64, 9, 17, 0, 0, 0], [1, 6]), &device);
    let a = rm.forward(short, &[3]).into_data().to_vec::<f32>().unwrap()[0];
    let b = rm.forward(padded, &[3]).into_data().to_vec::<f32>().unwrap()[0];
    assert!((a - b).abs() < 1e-5, "{a} vs {b}");
}
