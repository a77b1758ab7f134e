//! The fused CPU kernels (trainer::kernels) against burn's generic operations on the same model: logits with
//! left padding, grouped-query attention and a KV cache, and the gradient of every parameter, with and without
//! checkpointing and with LoRA adapters on a frozen base.

use burn::{
    module::Param,
    tensor::{backend::AutodiffBackend, backend::Backend, Int, Tensor, TensorData},
};
use trainer::{
    backend::{default_device, Infer, Train, TrainCheckpointed},
    kernels,
    model::{init, Layout, Llama, LlamaConfig},
    peft::{add_lora, LoraConfig},
};

fn config() -> LlamaConfig {
    config_tied(false)
}

/// With `tied`, the vocabulary head is the transposed embedding (a strided view into the fused linear).
fn config_tied(tied: bool) -> LlamaConfig {
    LlamaConfig::from_json(&format!(
        r#"{{"vocab_size":48,"hidden_size":32,"intermediate_size":40,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":{tied}}}"#
    ))
    .unwrap()
}

/// Two sequences of 9 tokens, the second left-padded by 3.
fn tokens<B: Backend>() -> (Tensor<B, 2, Int>, Layout) {
    let ids: Vec<i64> = vec![3, 9, 17, 4, 22, 8, 1, 30, 12, 0, 0, 0, 5, 44, 19, 27, 2, 11];
    let t = Tensor::from_data(TensorData::new(ids, [2, 9]), &B::Device::default());
    (t, Layout { left_pad: vec![0, 3], start: 0 })
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn assert_close(what: &str, fused: &[f32], generic: &[f32], tol: f32) {
    assert_eq!(fused.len(), generic.len(), "{what}: sizes");
    let scale = generic.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
    let worst = fused.iter().zip(generic).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= tol * scale, "{what}: max |fused − generic| {worst} against max |generic| {scale}");
}

#[test]
fn fused_logits_equal_generic_logits_with_padding_and_a_cache() {
    let device = default_device();
    let model = init::random::<Infer>(&config(), 0.2, 5, &device);
    assert!(kernels::available::<Infer>());
    let (ids, layout) = tokens::<Infer>();
    let fused = values(model.forward(ids.clone(), &layout, None));
    let generic = kernels::with_generic(|| values(model.forward(ids.clone(), &layout, None)));
    assert_close("logits", &fused, &generic, 1e-5);

    // Prefill 6 tokens, then decode 3 one at a time through the cache.
    let run = |model: &Llama<Infer>| {
        let mut cache = model.new_cache();
        let mut out = values(model.forward(ids.clone().narrow(1, 0, 6), &layout, Some(&mut cache)));
        for i in 6..9 {
            let step = Layout { left_pad: layout.left_pad.clone(), start: i };
            out.extend(values(model.forward(ids.clone().narrow(1, i, 1), &step, Some(&mut cache))));
        }
        out
    };
    let fused = run(&model);
    let generic = kernels::with_generic(|| run(&model));
    assert_close("cached logits", &fused, &generic, 1e-5);
}

/// Gradients of `Σ logits · w` (w fixed) plus the log-probability of the next tokens, for every parameter that
/// has one, by name.
fn gradients<B: AutodiffBackend>(model: &Llama<B>) -> Vec<(String, Vec<f32>)> {
    let (ids, layout) = tokens::<B>();
    let logits = model.forward(ids.clone(), &layout, None);
    let n = logits.dims().iter().product::<usize>();
    let w: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
    let w = Tensor::<B, 3>::from_data(TensorData::new(w, logits.dims()), &logits.device());
    let [b, s, _] = logits.dims();
    let next = kernels::token_logprobs(logits.clone().narrow(1, 0, s - 1), ids.narrow(1, 1, s - 1));
    assert_eq!(next.dims(), [b, s - 1]);
    let grads = ((logits * w).sum() + next.sum()).backward();
    let mut out = Vec::new();
    let mut norms = Vec::new();
    let mut push = |name: String, p: &Param<Tensor<B, 2>>| {
        if let Some(g) = p.grad(&grads) {
            out.push((name, values(g)));
        }
    };
    push("embed_tokens".into(), &model.embed_tokens);
    if let Some(head) = &model.lm_head {
        push("lm_head".into(), &head.weight);
    }
    if let Some(g) = model.norm.weight.grad(&grads) {
        norms.push(("norm".into(), values(g)));
    }
    for (i, l) in model.layers.iter().enumerate() {
        let a = &l.self_attn;
        for (n, lin) in [("q", &a.q_proj), ("k", &a.k_proj), ("v", &a.v_proj), ("o", &a.o_proj)] {
            push(format!("{i}.{n}_proj"), &lin.weight);
            if let Some(lora) = &lin.lora {
                push(format!("{i}.{n}_proj.lora_a"), &lora.a);
                push(format!("{i}.{n}_proj.lora_b"), &lora.b);
            }
        }
        for (n, lin) in [("gate", &l.mlp.gate_proj), ("up", &l.mlp.up_proj), ("down", &l.mlp.down_proj)] {
            push(format!("{i}.{n}_proj"), &lin.weight);
        }
        for (n, norm) in [("input_norm", &l.input_layernorm), ("post_norm", &l.post_attention_layernorm)] {
            if let Some(g) = norm.weight.grad(&grads) {
                norms.push((format!("{i}.{n}"), values(g)));
            }
        }
    }
    out.extend(norms);
    out
}

fn compare<B: AutodiffBackend>(model: Llama<B>, expect: usize) {
    assert!(kernels::available::<B>());
    let fused = gradients(&model);
    let generic = kernels::with_generic(|| gradients(&model));
    assert_eq!(
        fused.len(),
        expect,
        "parameters with a gradient: {:?}",
        fused.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    assert_eq!(
        fused.iter().map(|g| &g.0).collect::<Vec<_>>(),
        generic.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    for ((name, f), (_, g)) in fused.iter().zip(&generic) {
        assert!(g.iter().any(|v| *v != 0.0), "{name}: zero gradient");
        assert_close(name, f, g, 2e-4);
    }
}

#[test]
fn fused_gradients_equal_generic_gradients_for_every_parameter() {
    // embed + lm_head + final norm + 2 × (4 attention + 3 mlp + 2 norms) = 21.
    compare(init::random::<Train>(&config(), 0.2, 7, &default_device()), 21);
}

#[test]
fn fused_gradients_equal_generic_gradients_with_tied_embeddings() {
    // The embedding's gradient collects the lookup's and the head's (a transposed view) parts.
    compare(init::random::<Train>(&config_tied(true), 0.2, 7, &default_device()), 20);
}

#[test]
fn fused_gradients_equal_generic_gradients_with_checkpointing() {
    compare(init::random::<TrainCheckpointed>(&config(), 0.2, 7, &default_device()), 21);
}

#[test]
fn fused_gradients_equal_generic_gradients_for_lora_on_a_frozen_base() {
    let base = init::random::<Train>(&config(), 0.2, 9, &default_device());
    let cfg = LoraConfig {
        targets: vec!["q_proj".into(), "v_proj".into()],
        rank: 4,
        alpha: 8.0,
        ..Default::default()
    };
    let mut model = add_lora(base, &cfg);
    // A trained-looking adapter (B ≠ 0), so that the adapter path carries gradient into A.
    for l in &mut model.layers {
        for lin in [&mut l.self_attn.q_proj, &mut l.self_attn.v_proj] {
            let lora = lin.lora.as_mut().unwrap();
            let b = lora.b.val();
            let n = b.dims().iter().product::<usize>();
            let vals: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.53).cos() * 0.1).collect();
            lora.b =
                Param::from_tensor(Tensor::from_data(TensorData::new(vals, b.dims()), &default_device()));
        }
    }
    // Only the adapters train: 2 layers × 2 projections × (A, B).
    compare(model, 8);
}
