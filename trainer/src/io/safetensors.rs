//! The safetensors format: an 8-byte little-endian header length, a JSON header (`name → {dtype, shape,
//! data_offsets}` plus optional `__metadata__`), then the raw little-endian data. Read F32 / F16 / BF16 (as f32);
//! write F32.

use std::{collections::BTreeMap, path::Path};

use burn::tensor::{bf16, f16};
use serde::{Deserialize, Serialize};

use crate::model::weights::{HostTensor, TensorMap};

/// Why a safetensors file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// The file is not a valid safetensors file.
    #[error("{path}: {why}")]
    Format { path: String, why: String },
}

#[derive(Serialize, Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// Parses safetensors bytes; `path` is only used in error messages.
pub fn parse(bytes: &[u8], path: &str) -> Result<TensorMap, SafetensorsError> {
    let bad = |why: String| SafetensorsError::Format { path: path.into(), why };
    if bytes.len() < 8 {
        return Err(bad("shorter than its 8-byte header length".into()));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let body_start = 8usize.checked_add(n).filter(|&e| e <= bytes.len()).ok_or_else(|| {
        bad(format!("header length {n} runs past the end of the file ({} bytes)", bytes.len()))
    })?;
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_slice(&bytes[8..body_start])
        .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    let data = &bytes[body_start..];
    let mut map = TensorMap::new();
    for (name, value) in header {
        if name == "__metadata__" {
            continue;
        }
        let e: Entry = serde_json::from_value(value).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let [start, end] = e.data_offsets;
        if start > end || end > data.len() {
            return Err(bad(format!("tensor `{name}`: data_offsets [{start}, {end}] outside the data")));
        }
        let raw = &data[start..end];
        let count: usize = e.shape.iter().product();
        let width = match e.dtype.as_str() {
            "F32" => 4,
            "F16" | "BF16" => 2,
            other => {
                return Err(bad(format!("tensor `{name}`: dtype {other} is not supported (F32, F16, BF16)")))
            }
        };
        if raw.len() != count * width {
            return Err(bad(format!(
                "tensor `{name}`: {} bytes for shape {:?} of {}",
                raw.len(),
                e.shape,
                e.dtype
            )));
        }
        let values: Vec<f32> = match e.dtype.as_str() {
            "F32" => raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            "F16" => raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            _ => raw.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        };
        map.insert(name, HostTensor::new(e.shape, values));
    }
    Ok(map)
}

/// Reads one safetensors file.
pub fn read(path: &Path) -> Result<TensorMap, SafetensorsError> {
    let bytes = std::fs::read(path)
        .map_err(|error| SafetensorsError::Io { path: path.display().to_string(), error })?;
    parse(&bytes, &path.display().to_string())
}

/// Serialises tensors as F32 safetensors (names sorted, `__metadata__` = `{"format": "pt"}` as transformers
/// expects).
pub fn serialize(map: &TensorMap) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, t) in map {
        let len = t.data.len() * 4;
        header.insert(
            name.clone(),
            serde_json::to_value(Entry {
                dtype: "F32".into(),
                shape: t.shape.clone(),
                data_offsets: [offset, offset + len],
            })
            .unwrap(),
        );
        offset += len;
    }
    let mut head = serde_json::to_vec(&header).unwrap();
    // Pad the header with spaces so the data starts 8-byte aligned.
    while !(8 + head.len()).is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for t in map.values() {
        for v in &t.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Writes tensors to `path` as F32 safetensors.
pub fn write(path: &Path, map: &TensorMap) -> Result<(), SafetensorsError> {
    std::fs::write(path, serialize(map))
        .map_err(|error| SafetensorsError::Io { path: path.display().to_string(), error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_tensors_round_trip_bit_for_bit() {
        let mut map = TensorMap::new();
        map.insert(
            "a.weight".into(),
            HostTensor::new(vec![2, 3], vec![1.0, -2.5, f32::MIN_POSITIVE, 0.0, -0.0, 7e30]),
        );
        map.insert("b".into(), HostTensor::new(vec![1], vec![std::f32::consts::PI]));
        let back = parse(&serialize(&map), "mem").unwrap();
        assert_eq!(back.len(), 2);
        for (k, v) in &map {
            let b = &back[k];
            assert_eq!(b.shape, v.shape);
            let bits = |x: &Vec<f32>| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&b.data), bits(&v.data));
        }
    }

    #[test]
    fn truncated_or_corrupt_files_are_refused_with_the_reason() {
        let mut map = TensorMap::new();
        map.insert("w".into(), HostTensor::new(vec![4], vec![1.0; 4]));
        let bytes = serialize(&map);
        let err = parse(&bytes[..bytes.len() - 1], "m.safetensors").unwrap_err().to_string();
        assert!(err.contains("m.safetensors") && err.contains("`w`"), "{err}");
        let err = parse(&[1, 2, 3], "x").unwrap_err().to_string();
        assert!(err.contains("8-byte"), "{err}");
    }
}
