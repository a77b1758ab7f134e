//! Host-side tensors under HF parameter names, and the conversion between them and [`Llama`].
//!
//! Every loader (safetensors, GGUF) produces a [`TensorMap`] in HF naming and layout; every exporter consumes one.

use std::collections::BTreeMap;

use burn::{
    module::Param,
    tensor::{backend::Backend, Tensor, TensorData},
};

use super::{
    attention::{Attention, Prefix},
    config::LlamaConfig,
    linear::Linear,
    llama::{DecoderLayer, Llama},
    mlp::Mlp,
    names::{layer, ATTENTION, EMBED, INPUT_NORM, LM_HEAD, MLP, NORM, POST_ATTENTION_NORM},
    norm::RmsNorm,
    rope::Rope,
};

/// A dense f32 tensor on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first (HF / PyTorch order).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor, checking that the data fills the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "data does not fill shape {shape:?}");
        Self { shape, data }
    }
}

/// Tensors by HF parameter name (`model.layers.0.self_attn.q_proj.weight`, …).
pub type TensorMap = BTreeMap<String, HostTensor>;

/// Why weights do not fit a configuration.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WeightError {
    /// A parameter the configuration needs is absent.
    #[error("weight `{0}` is missing")]
    Missing(String),
    /// A parameter has the wrong shape.
    #[error("weight `{name}` has shape {found:?}, expected {expected:?}")]
    Shape { name: String, expected: Vec<usize>, found: Vec<usize> },
    /// Parameters that belong to no part of the model (nothing is silently dropped).
    #[error("unexpected weights (not part of this configuration): {}", .0.join(", "))]
    Unexpected(Vec<String>),
}

struct Take<'a, B: Backend> {
    map: &'a mut TensorMap,
    device: &'a B::Device,
}

impl<B: Backend> Take<'_, B> {
    fn raw(&mut self, name: &str, expected: &[usize]) -> Result<HostTensor, WeightError> {
        let t = self.map.remove(name).ok_or_else(|| WeightError::Missing(name.to_string()))?;
        if t.shape != expected {
            return Err(WeightError::Shape {
                name: name.into(),
                expected: expected.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }
    fn t1(&mut self, name: &str, n: usize) -> Result<Tensor<B, 1>, WeightError> {
        let t = self.raw(name, &[n])?;
        Ok(Tensor::from_data(TensorData::new(t.data, [n]), self.device))
    }
    fn t2(&mut self, name: &str, rows: usize, cols: usize) -> Result<Tensor<B, 2>, WeightError> {
        let t = self.raw(name, &[rows, cols])?;
        Ok(Tensor::from_data(TensorData::new(t.data, [rows, cols]), self.device))
    }
    /// The P-Tuning v2 prefix of layer `p`, when its two tensors are present.
    fn prefix(&mut self, p: &str, kvh: usize, hd: usize) -> Result<Option<Prefix<B>>, WeightError> {
        let (kn, vn) = (format!("{p}.self_attn.prefix_key"), format!("{p}.self_attn.prefix_value"));
        let Some(n) = self.map.get(&kn).and_then(|t| t.shape.get(1).copied()) else {
            return match self.map.contains_key(&vn) {
                true => Err(WeightError::Missing(kn)),
                false => Ok(None),
            };
        };
        let k = self.raw(&kn, &[kvh, n, hd])?;
        let v = self.raw(&vn, &[kvh, n, hd])?;
        let t = |h: HostTensor| {
            Param::from_tensor(Tensor::from_data(TensorData::new(h.data, [kvh, n, hd]), self.device))
        };
        Ok(Some(Prefix { key: t(k), value: t(v) }))
    }
    fn linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear<B>, WeightError> {
        // HF stores [d_out, d_in]; transpose on the host so the parameter is a contiguous [d_in, d_out].
        let w = self.raw(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let mut t = vec![0f32; w.data.len()];
        for (o, row) in w.data.chunks_exact(d_in).enumerate() {
            for (i, v) in row.iter().enumerate() {
                t[i * d_out + o] = *v;
            }
        }
        let w = Tensor::from_data(TensorData::new(t, [d_in, d_out]), self.device);
        let b = if bias { Some(self.t1(&format!("{prefix}.bias"), d_out)?) } else { None };
        Ok(Linear::new(w, b))
    }
}

/// Builds the model from HF-named tensors. Consumes what it uses; anything left over is an error.
pub fn from_tensors<B: Backend>(
    config: &LlamaConfig,
    mut map: TensorMap,
    device: &B::Device,
) -> Result<Llama<B>, WeightError> {
    // Buffers some checkpoints carry that are recomputed from the config.
    map.retain(|k, _| !k.ends_with("rotary_emb.inv_freq"));
    if config.tie_word_embeddings {
        map.remove(&format!("{LM_HEAD}.weight"));
    }
    let c = config;
    let (d, f, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let (q_dim, kv_dim) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    let mut take = Take::<B> { map: &mut map, device };
    let embed_tokens = Param::from_tensor(take.t2(EMBED, v, d)?);
    let mut layers = Vec::with_capacity(c.num_layers);
    let [q_proj, k_proj, v_proj, o_proj] = ATTENTION;
    let [gate_proj, up_proj, down_proj] = MLP;
    for i in 0..c.num_layers {
        let p = layer(i);
        let self_attn = Attention {
            q_proj: take.linear(&format!("{p}.{q_proj}"), d, q_dim, c.qkv_bias)?,
            k_proj: take.linear(&format!("{p}.{k_proj}"), d, kv_dim, c.qkv_bias)?,
            v_proj: take.linear(&format!("{p}.{v_proj}"), d, kv_dim, c.qkv_bias)?,
            o_proj: take.linear(&format!("{p}.{o_proj}"), q_dim, d, false)?,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            prefix: take.prefix(&p, c.num_kv_heads, c.head_dim)?,
        };
        let mlp = Mlp {
            gate_proj: take.linear(&format!("{p}.{gate_proj}"), d, f, false)?,
            up_proj: take.linear(&format!("{p}.{up_proj}"), d, f, false)?,
            down_proj: take.linear(&format!("{p}.{down_proj}"), f, d, false)?,
        };
        layers.push(DecoderLayer {
            input_layernorm: RmsNorm::new(take.t1(&format!("{p}.{INPUT_NORM}"), d)?, c.rms_norm_eps),
            self_attn,
            post_attention_layernorm: RmsNorm::new(
                take.t1(&format!("{p}.{POST_ATTENTION_NORM}"), d)?,
                c.rms_norm_eps,
            ),
            mlp,
        });
    }
    let norm = RmsNorm::new(take.t1(NORM, d)?, c.rms_norm_eps);
    let lm_head = if c.tie_word_embeddings { None } else { Some(take.linear(LM_HEAD, d, v, false)?) };
    if !map.is_empty() {
        return Err(WeightError::Unexpected(map.into_keys().collect()));
    }
    Ok(Llama { embed_tokens, layers, norm, lm_head, config: c.clone(), rope: Rope::new(c) })
}

/// Checks names and shapes of `map` against `config` without building the model.
pub fn check_shapes(config: &LlamaConfig, map: &TensorMap) -> Result<(), WeightError> {
    let expected = super::names::expected_shapes(config);
    for (name, shape) in &expected {
        match map.get(name) {
            None => return Err(WeightError::Missing(name.clone())),
            Some(t) if &t.shape != shape => {
                return Err(WeightError::Shape {
                    name: name.clone(),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                })
            }
            _ => {}
        }
    }
    let extra: Vec<String> = map
        .keys()
        .filter(|k| !expected.contains_key(*k) && !k.ends_with("rotary_emb.inv_freq"))
        .filter(|k| !(config.tie_word_embeddings && **k == format!("{LM_HEAD}.weight")))
        .filter(|k| !is_prefix(k))
        .cloned()
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(WeightError::Unexpected(extra))
    }
}

/// A tensor copied to the host as f32.
pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> HostTensor {
    let shape = t.dims().to_vec();
    let data = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32 tensor");
    HostTensor::new(shape, data)
}

/// Whether `name` is a P-Tuning v2 prefix tensor (kept out of the HF weights file).
pub fn is_prefix(name: &str) -> bool {
    name.ends_with(".self_attn.prefix_key") || name.ends_with(".self_attn.prefix_value")
}

/// The model's parameters under HF names and layouts (the inverse of [`from_tensors`]); P-Tuning v2 prefixes as
/// `model.layers.{i}.self_attn.prefix_key` / `prefix_value` `[kv_heads, n, head_dim]`.
pub fn to_tensors<B: Backend>(model: &Llama<B>) -> TensorMap {
    let mut map = TensorMap::new();
    let put_linear = |map: &mut TensorMap, name: String, l: &Linear<B>| {
        map.insert(format!("{name}.weight"), host(l.hf_weight()));
        if let Some(b) = &l.bias {
            map.insert(format!("{name}.bias"), host(b.val()));
        }
    };
    map.insert(EMBED.into(), host(model.embed_tokens.val()));
    for (i, l) in model.layers.iter().enumerate() {
        let p = layer(i);
        let a = &l.self_attn;
        for (name, lin) in ATTENTION.iter().zip([&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj]) {
            put_linear(&mut map, format!("{p}.{name}"), lin);
        }
        for (name, lin) in MLP.iter().zip([&l.mlp.gate_proj, &l.mlp.up_proj, &l.mlp.down_proj]) {
            put_linear(&mut map, format!("{p}.{name}"), lin);
        }
        if let Some(pre) = &a.prefix {
            map.insert(format!("{p}.self_attn.prefix_key"), host(pre.key.val()));
            map.insert(format!("{p}.self_attn.prefix_value"), host(pre.value.val()));
        }
        map.insert(format!("{p}.{INPUT_NORM}"), host(l.input_layernorm.weight.val()));
        map.insert(format!("{p}.{POST_ATTENTION_NORM}"), host(l.post_attention_layernorm.weight.val()));
    }
    map.insert(NORM.into(), host(model.norm.weight.val()));
    if let Some(head) = &model.lm_head {
        put_linear(&mut map, LM_HEAD.into(), head);
    }
    map
}
