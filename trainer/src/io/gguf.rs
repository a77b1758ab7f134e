//! The GGUF container of llama.cpp (versions 2 and 3): metadata key/values, tensor descriptors and aligned
//! tensor data. Reading keeps the raw blocks, so a quantised base can stay quantised; [`GgufFile::dequantize`]
//! turns one tensor into f32 in PyTorch's dimension order.

use std::{collections::BTreeMap, path::Path};

use super::ggml::{dequantize, GgmlType};

/// Why a GGUF file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// The bytes are not a valid GGUF file.
    #[error("{path}: byte {offset}: {why}")]
    Format { path: String, offset: usize, why: String },
    /// A tensor uses a ggml type alignbox cannot read.
    #[error("{path}: tensor `{tensor}` has type {ty}, which alignbox cannot read (supported: {supported})")]
    UnsupportedType { path: String, tensor: String, ty: String, supported: &'static str },
    /// A metadata key is missing or has the wrong type.
    #[error("{path}: metadata `{key}`: {why}")]
    Metadata { path: String, key: String, why: String },
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value as an unsigned integer, if it is an integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) if v >= 0 => Some(v as u64),
            Value::I16(v) if v >= 0 => Some(v as u64),
            Value::I32(v) if v >= 0 => Some(v as u64),
            Value::I64(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's descriptor.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in GGUF order (innermost first).
    pub dims: Vec<usize>,
    /// Storage type.
    pub ty: GgmlType,
    /// Byte offset of its data from the start of the data section.
    pub offset: usize,
}

impl TensorInfo {
    /// Number of weights.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the tensor has no weights.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dimensions in PyTorch order (outermost first).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// A parsed GGUF file with its tensor data in memory.
#[derive(Debug)]
pub struct GgufFile {
    /// Where it was read from (for messages).
    pub path: String,
    /// Format version.
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor descriptors in file order.
    pub tensors: Vec<TensorInfo>,
    data: Vec<u8>,
    data_start: usize,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a str,
}

impl<'a> Reader<'a> {
    fn err(&self, why: impl Into<String>) -> GgufError {
        GgufError::Format { path: self.path.into(), offset: self.pos, why: why.into() }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], GgufError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.err(format!("needs {n} more bytes but the file ends")))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, GgufError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, GgufError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn len(&mut self, what: &str) -> Result<usize, GgufError> {
        let n = self.u64()?;
        if n > (self.bytes.len() - self.pos) as u64 {
            return Err(self.err(format!("{what} length {n} exceeds the file")));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.len("string")?;
        let at = self.pos;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| GgufError::Format {
            path: self.path.into(),
            offset: at,
            why: "string is not UTF-8".into(),
        })
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<Value, GgufError> {
        Ok(match ty {
            0 => Value::U8(self.u8()?),
            1 => Value::I8(self.u8()? as i8),
            2 => Value::U16(self.u16()?),
            3 => Value::I16(self.u16()? as i16),
            4 => Value::U32(self.u32()?),
            5 => Value::I32(self.u32()? as i32),
            6 => Value::F32(f32::from_bits(self.u32()?)),
            7 => Value::Bool(self.u8()? != 0),
            8 => Value::String(self.string()?),
            9 if depth < 4 => {
                let inner = self.u32()?;
                let n = self.len("array")?;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(self.value(inner, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64()?),
            11 => Value::I64(self.u64()? as i64),
            12 => Value::F64(f64::from_bits(self.u64()?)),
            other => return Err(self.err(format!("unknown metadata value type {other}"))),
        })
    }
}

impl GgufFile {
    /// Reads and parses a GGUF file.
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let bytes =
            std::fs::read(path).map_err(|error| GgufError::Io { path: path.display().to_string(), error })?;
        Self::parse(bytes, &path.display().to_string())
    }

    /// Parses GGUF bytes; `path` names the source in errors.
    pub fn parse(bytes: Vec<u8>, path: &str) -> Result<Self, GgufError> {
        let mut r = Reader { bytes: &bytes, pos: 0, path };
        if r.take(4)? != b"GGUF" {
            return Err(GgufError::Format {
                path: path.into(),
                offset: 0,
                why: "not a GGUF file (magic)".into(),
            });
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.err(format!("GGUF version {version} is not supported (2, 3)")));
        }
        let n_tensors = r.u64()?;
        let n_kv = r.u64()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let ty = r.u32()?;
            let value = r.value(ty, 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims > 4 {
                return Err(r.err(format!("tensor `{name}` has {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| r.u64().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            let ty = GgmlType::from_id(r.u32()?);
            let offset = r.u64()? as usize;
            tensors.push(TensorInfo { name, dims, ty, offset });
        }
        let alignment = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32) as usize;
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(r.err(format!("general.alignment {alignment} is not a power of two")));
        }
        let data_start = r.pos.div_ceil(alignment) * alignment;
        let file = GgufFile { path: path.into(), version, metadata, tensors, data: bytes, data_start };
        for t in &file.tensors {
            if let Some((per_block, bytes_per_block)) = t.ty.block() {
                let n = t.len();
                if n % per_block != 0 {
                    return Err(file.format(format!(
                        "tensor `{}`: {n} weights is not a whole number of blocks",
                        t.name
                    )));
                }
                let end = file.data_start + t.offset + n / per_block * bytes_per_block;
                if end > file.data.len() {
                    return Err(
                        file.format(format!("tensor `{}`: data runs past the end of the file", t.name))
                    );
                }
            }
        }
        Ok(file)
    }

    fn format(&self, why: String) -> GgufError {
        GgufError::Format { path: self.path.clone(), offset: self.data_start, why }
    }

    /// The descriptor of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw stored bytes of a tensor (blocks of its type).
    pub fn raw(&self, info: &TensorInfo) -> Result<&[u8], GgufError> {
        let (per_block, bytes_per_block) = info.ty.block().ok_or_else(|| self.unsupported(info))?;
        let start = self.data_start + info.offset;
        Ok(&self.data[start..start + info.len() / per_block * bytes_per_block])
    }

    fn unsupported(&self, info: &TensorInfo) -> GgufError {
        GgufError::UnsupportedType {
            path: self.path.clone(),
            tensor: info.name.clone(),
            ty: info.ty.name(),
            supported: GgmlType::SUPPORTED,
        }
    }

    /// Tensor `info` as f32 values in row-major PyTorch order.
    pub fn dequantize(&self, info: &TensorInfo) -> Result<Vec<f32>, GgufError> {
        Ok(dequantize(info.ty, self.raw(info)?, info.len()))
    }

    /// A metadata value, or an error naming the key.
    pub fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata.get(key).ok_or_else(|| self.meta_err(key, "missing"))
    }

    /// An integer metadata value.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get(key)?.as_u64().ok_or_else(|| self.meta_err(key, "not an unsigned integer"))
    }

    /// A string metadata value.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)?.as_str().ok_or_else(|| self.meta_err(key, "not a string"))
    }

    /// An error about metadata `key`.
    pub fn meta_err(&self, key: &str, why: impl Into<String>) -> GgufError {
        GgufError::Metadata { path: self.path.clone(), key: key.into(), why: why.into() }
    }
}

/// Writes GGUF version 3 files (metadata and tensors stored as given). Used to export and by tests.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<usize>, GgmlType, Vec<u8>)>,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn value_type(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_string(out, s),
        Value::Array(items) => {
            let inner = items.first().map_or(8, value_type);
            out.extend_from_slice(&inner.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

impl GgufWriter {
    /// Adds a metadata entry.
    pub fn meta(&mut self, key: &str, value: Value) -> &mut Self {
        self.metadata.push((key.into(), value));
        self
    }

    /// Adds a tensor: `shape` in PyTorch order, `data` already encoded as `ty`.
    pub fn tensor(&mut self, name: &str, shape: &[usize], ty: GgmlType, data: Vec<u8>) -> &mut Self {
        self.tensors.push((name.into(), shape.iter().rev().copied().collect(), ty, data));
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        const ALIGN: usize = 32;
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_string(&mut out, k);
            out.extend_from_slice(&value_type(v).to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0usize;
        for (name, dims, ty, data) in &self.tensors {
            put_string(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend_from_slice(&(*d as u64).to_le_bytes()));
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += data.len().div_ceil(ALIGN) * ALIGN;
        }
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        for (_, _, _, data) in &self.tensors {
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::ggml::quantize;

    #[test]
    fn written_files_parse_back_with_metadata_and_tensors() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 / 10.0 - 3.0).collect();
        let mut w = GgufWriter::default();
        w.meta("general.architecture", Value::String("llama".into()))
            .meta("llama.block_count", Value::U32(2))
            .meta(
                "tokenizer.ggml.tokens",
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            )
            .tensor("t.f32", &[2, 32], GgmlType::F32, quantize(GgmlType::F32, &x))
            .tensor("t.q8", &[2, 32], GgmlType::Q8_0, quantize(GgmlType::Q8_0, &x));
        let f = GgufFile::parse(w.to_bytes(), "mem.gguf").unwrap();
        assert_eq!(f.get_str("general.architecture").unwrap(), "llama");
        assert_eq!(f.get_u64("llama.block_count").unwrap(), 2);
        assert_eq!(f.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap().len(), 2);
        let t = f.tensor("t.f32").unwrap();
        assert_eq!(t.shape(), vec![2, 32]);
        assert_eq!(f.dequantize(t).unwrap(), x);
        let q = f.dequantize(f.tensor("t.q8").unwrap()).unwrap();
        assert!(q.iter().zip(&x).all(|(a, b)| (a - b).abs() < 0.03));
    }

    #[test]
    fn an_unsupported_tensor_type_is_named_in_the_error() {
        let mut w = GgufWriter::default();
        // Q4_K (type 12) is not readable by alignbox: 144 bytes per 256 weights.
        w.tensor("blk.0.ffn_up.weight", &[256], GgmlType::Other(12), vec![0; 144]);
        let f = GgufFile::parse(w.to_bytes(), "model.gguf").unwrap();
        let err = f.dequantize(f.tensor("blk.0.ffn_up.weight").unwrap()).unwrap_err().to_string();
        assert!(
            err.contains("model.gguf") && err.contains("blk.0.ffn_up.weight") && err.contains("Q4_K"),
            "{err}"
        );
    }

    #[test]
    fn truncated_files_are_refused_with_the_offset() {
        let mut w = GgufWriter::default();
        w.meta("general.name", Value::String("x".into())).tensor("t", &[32], GgmlType::F32, vec![0; 128]);
        let bytes = w.to_bytes();
        let err = GgufFile::parse(bytes[..bytes.len() - 10].to_vec(), "cut.gguf").unwrap_err().to_string();
        assert!(err.contains("cut.gguf") && err.contains("past the end"), "{err}");
        let err = GgufFile::parse(b"GGUX".to_vec(), "x.gguf").unwrap_err().to_string();
        assert!(err.contains("magic"), "{err}");
    }
}
