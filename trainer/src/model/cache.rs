//! The key/value cache of incremental decoding. Not a parameter: it lives outside the module and is passed `&mut`.

use burn::tensor::{backend::Backend, Tensor};

/// Keys and values of one layer, `[batch, kv_heads, cached_len, head_dim]` each (before GQA expansion).
#[derive(Clone, Debug)]
pub struct LayerCache<B: Backend> {
    /// Cached keys.
    pub k: Tensor<B, 4>,
    /// Cached values.
    pub v: Tensor<B, 4>,
}

/// The cache of every layer plus how many positions it holds.
#[derive(Clone, Debug)]
pub struct KvCache<B: Backend> {
    /// One entry per layer, filled by the first forward.
    pub layers: Vec<Option<LayerCache<B>>>,
    /// Number of positions already cached (the same for every sequence of the batch).
    pub len: usize,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self { layers: vec![None; num_layers], len: 0 }
    }

    /// Appends the new keys/values of `layer` and returns everything cached so far for it.
    pub fn append(&mut self, layer: usize, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let entry = match self.layers[layer].take() {
            None => LayerCache { k, v },
            Some(old) => LayerCache { k: Tensor::cat(vec![old.k, k], 2), v: Tensor::cat(vec![old.v, v], 2) },
        };
        let out = (entry.k.clone(), entry.v.clone());
        self.layers[layer] = Some(entry);
        out
    }
}
