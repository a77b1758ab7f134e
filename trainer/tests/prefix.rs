//! P-Tuning v2: per-layer trainable prefix keys and values. Cached decoding equals the full forward with a
//! prefix, a later token never changes earlier logits, training moves only the prefixes and lowers the held-out
//! loss, and a saved model keeps its prefixes beside (not inside) the HF weights.

use burn::{
    module::AutodiffModule,
    tensor::{Int, Tensor, TensorData},
};
use trainer::{
    backend::{default_device, Infer, Train},
    io,
    model::{init, Layout, Llama, LlamaConfig},
    peft::{add_prefix, has_adapters, without_adapters},
    rng::Rng,
    sft::{loss, optimizer, Example, SftConfig, SftTask},
    testing::fit,
};

fn config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{"vocab_size":32,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":32,"tie_word_embeddings":true}"#,
    )
    .unwrap()
}

fn ids(v: &[i64]) -> Tensor<Infer, 2, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), &default_device())
}

fn row(t: Tensor<Infer, 3>, pos: usize) -> Vec<f32> {
    let [_, _, v] = t.dims();
    t.slice([0..1, pos..pos + 1, 0..v]).into_data().to_vec::<f32>().unwrap()
}

#[test]
fn cached_decoding_with_a_prefix_equals_the_full_forward_and_stays_causal() {
    let m: Llama<Infer> = add_prefix(init::random::<Infer>(&config(), 0.1, 1, &default_device()), 3, 7);
    let seq = [5i64, 9, 11, 3, 17, 2];
    let full = m.forward(ids(&seq), &Layout::unpadded(1), None);
    let mut cache = m.new_cache();
    m.forward(ids(&seq[..4]), &Layout::unpadded(1), Some(&mut cache));
    let mut layout = Layout::unpadded(1);
    for (t, &tok) in seq.iter().enumerate().skip(4) {
        layout.start = cache.len;
        let step = m.forward(ids(&[tok]), &layout, Some(&mut cache));
        for (a, b) in row(step, 0).iter().zip(row(full.clone(), t)) {
            assert!((a - b).abs() < 1e-5, "position {t}: {a} vs {b}");
        }
    }
    let longer = m.forward(ids(&[5, 9, 11, 3, 17, 2, 30]), &Layout::unpadded(1), None);
    for t in 0..6 {
        for (a, b) in row(longer.clone(), t).iter().zip(row(full.clone(), t)) {
            assert!((a - b).abs() < 1e-6);
        }
    }
    // The prefix changes the model; without it the base comes back.
    let base = without_adapters(&m);
    assert!(!has_adapters(&base) && has_adapters(&m));
    assert_ne!(row(base.forward(ids(&seq), &Layout::unpadded(1), None), 5), row(full, 5));
}

fn examples(rng: &mut Rng, n: usize) -> Vec<Example> {
    (0..n)
        .map(|_| {
            let prompt: Vec<u32> = (0..4).map(|_| rng.range(3, 30) as u32).collect();
            // A fixed reply whatever the prompt: something a prefix can steer a frozen model toward.
            Example { prompt, answer: vec![7, 8, 9, 10] }
        })
        .collect()
}

#[test]
fn prefix_tuning_trains_only_the_prefixes_and_round_trips_through_an_hf_directory() {
    let device = default_device();
    let mut rng = Rng::new(9);
    let (train, held_out) = (examples(&mut rng, 256), examples(&mut rng, 64));
    let base = init::random::<Train>(&config(), 0.1, 2, &device);
    let q_before = base.layers[0].self_attn.q_proj.weight.val().into_data();
    let model = add_prefix(base, 8, 3);
    let before = loss::<Infer>(&model.valid(), &held_out, 0, &device);
    let cfg = SftConfig { lr: 3e-2, ..Default::default() };
    let task = SftTask::<Train>::new(cfg.pad_id, Vec::new(), 32);
    let (model, steps) = fit(&task, model, optimizer(&cfg), &train, 20, 32, cfg.lr);
    assert!(steps.iter().all(|m| m["loss"].is_finite()));
    let after = loss::<Infer>(&model.valid(), &held_out, 0, &device);
    eprintln!("held-out answer loss {before:.3} → {after:.3} training only the prefixes");
    assert!(after < 0.5 * before, "{before} → {after}");
    assert_eq!(model.layers[0].self_attn.q_proj.weight.val().into_data(), q_before, "the base is frozen");

    let inf = model.valid();
    let dir = tempfile::tempdir().unwrap();
    let tok = io::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama-gqa-tied"),
    )
    .unwrap()
    .tokenizer;
    io::hf::save_dir(&inf, &tok, dir.path()).unwrap();
    let weights = io::safetensors::read(&dir.path().join("model.safetensors")).unwrap();
    assert!(weights.keys().all(|k| !k.contains("prefix")), "the HF weights stay loadable by transformers");
    assert!(dir.path().join(io::hf::PREFIX_FILE).exists());
    let (back, _) = io::load(dir.path()).unwrap().into_model::<Infer>(&device, dir.path()).unwrap();
    let seq = [5i64, 9, 11, 3];
    assert_eq!(
        back.forward(ids(&seq), &Layout::unpadded(1), None).into_data(),
        inf.forward(ids(&seq), &Layout::unpadded(1), None).into_data()
    );
}
