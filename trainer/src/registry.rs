//! Stored model versions in a data directory: `models/<id>/` holds the files in their own format (an HF
//! directory, or `model.gguf`) plus `alignbox-model.json` (the manifest with lineage); `models/default` names the
//! base policy. Imports are all-or-nothing: files are copied into a hidden temporary directory, validated by
//! loading, and only then renamed into place.

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
pub use types::VersionKind;

use crate::io::{self, LoadError, LoadedModel};

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// File-system error.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// The model could not be loaded (nothing was stored).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// No version with this id.
    #[error("no model version {0:?} (see `alignbox models list`)")]
    NotFound(String),
    /// The id is taken.
    #[error("a model version {0:?} already exists; pass another --name")]
    Exists(String),
    /// The id has characters that cannot name a directory.
    #[error("model id {0:?} may only contain letters, digits, '.', '-' and '_'")]
    BadId(String),
    /// The export target already has files.
    #[error("{0} exists and is not empty; export into a new or empty directory")]
    TargetNotEmpty(String),
    /// A manifest is malformed.
    #[error("{path}: {why}")]
    Manifest { path: String, why: String },
}

/// How a version's files are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `config.json` + safetensors + tokenizer files.
    HfDir,
    /// One llama.cpp file, `model.gguf`.
    Gguf,
}

/// The manifest of one stored version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Directory name and the id users type.
    pub id: String,
    /// What the files are.
    pub format: Format,
    /// A policy or a reward model (imports are policies).
    pub kind: VersionKind,
    /// Where it came from: the imported path, or the training run that made it.
    pub source: String,
    /// Parent versions (empty for imports).
    pub parents: Vec<String>,
    /// Number of parameters.
    pub num_params: usize,
    /// Architecture (`LlamaForCausalLM`, …).
    pub architecture: String,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// How a trained version was made (absent for imports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
}

/// What [`Registry::add_trained`] records about a new version.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The new version's id.
    pub id: String,
    /// A policy or a reward model.
    pub kind: VersionKind,
    /// The versions it was trained from.
    pub parents: Vec<String>,
    /// Number of parameters.
    pub num_params: usize,
    /// HF architecture name.
    pub architecture: String,
    /// How it was made.
    pub lineage: Lineage,
}

/// The record of a training run that produced a version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// `train rm`, `train sft`, `train pretrain`, `dpo`, `ppo`.
    pub stage: String,
    /// SHA-256 of the exact training and held-out data (tokens and comparisons), hex.
    pub data_hash: String,
    /// What the data was (counts of prompts, comparisons, examples, tokens; the split).
    pub data: serde_json::Value,
    /// The run's settings.
    pub config: serde_json::Value,
    /// Final held-out metrics.
    pub metrics: serde_json::Value,
    /// Where the run's checkpoint and metric log live.
    pub run_dir: String,
}

/// The registry rooted at `<data-dir>/models`.
#[derive(Clone, Debug)]
pub struct Registry {
    root: PathBuf,
}

const MANIFEST: &str = "alignbox-model.json";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |error| RegistryError::Io { path: path.display().to_string(), error }
}

/// A directory name derived from a file or directory name.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches(|c| c == '-' || c == '.').to_string()
}

fn check_id(id: &str) -> Result<(), RegistryError> {
    if types::names::safe_name(id) {
        Ok(())
    } else {
        Err(RegistryError::BadId(id.into()))
    }
}

impl Registry {
    /// The registry of a data directory (created on first write).
    pub fn new(data_dir: &Path) -> Self {
        Self { root: data_dir.join("models") }
    }

    /// `<data-dir>/models`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of version `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Every stored version, oldest first.
    pub fn list(&self) -> Result<Vec<ModelVersion>, RegistryError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().join(MANIFEST).is_file() {
                continue;
            }
            out.push(self.get(&name)?);
        }
        out.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        Ok(out)
    }

    /// The manifest of version `id`.
    pub fn get(&self, id: &str) -> Result<ModelVersion, RegistryError> {
        check_id(id)?;
        let path = self.dir(id).join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                RegistryError::NotFound(id.into())
            } else {
                io_err(&path)(e)
            }
        })?;
        serde_json::from_str(&text)
            .map_err(|e| RegistryError::Manifest { path: path.display().to_string(), why: e.to_string() })
    }

    /// The path to load version `id` from (its directory, or its GGUF file).
    pub fn model_path(&self, v: &ModelVersion) -> PathBuf {
        match v.format {
            Format::HfDir => self.dir(&v.id),
            Format::Gguf => self.dir(&v.id).join("model.gguf"),
        }
    }

    /// Loads version `id` from disk.
    pub fn load(&self, id: &str) -> Result<LoadedModel, RegistryError> {
        let v = self.get(id)?;
        Ok(io::load(&self.model_path(&v))?)
    }

    /// Loads version `id` as a network on `device` with its tokenizer.
    pub fn load_policy<B: burn::tensor::backend::Backend>(
        &self,
        id: &str,
        device: &B::Device,
    ) -> Result<(crate::model::Llama<B>, crate::tokenizer::TextTokenizer), RegistryError> {
        let v = self.get(id)?;
        let path = self.model_path(&v);
        let loaded = io::load(&path)?.into_model::<B>(device, &path)?;
        crate::alloc::release_free_memory(); // the file's bytes and any dequantised copies
        Ok(loaded)
    }

    /// The default base policy's id, if one is set.
    pub fn default_id(&self) -> Result<Option<String>, RegistryError> {
        let path = self.root.join("default");
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Makes `id` the default base policy.
    pub fn set_default(&self, id: &str) -> Result<(), RegistryError> {
        self.get(id)?;
        let tmp = self.root.join(".default.tmp");
        std::fs::write(&tmp, id).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, self.root.join("default")).map_err(io_err(&tmp))
    }

    /// Imports an HF directory or a GGUF file as a new policy version. Validates by loading it fully; on any
    /// error nothing is left behind.
    pub fn import(&self, source: &Path, id: Option<&str>) -> Result<ModelVersion, RegistryError> {
        let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let id = id.map(String::from).unwrap_or_else(|| slug(&stem));
        check_id(&id)?;
        if self.dir(&id).exists() {
            return Err(RegistryError::Exists(id));
        }
        // Validate before copying anything: config, tokenizer and every tensor's shape.
        let loaded = io::load(source)?;
        let config = loaded.config.clone();
        crate::model::weights::check_shapes(&config, &loaded.tensors).map_err(|source_err| {
            LoadError::Weights { path: source.display().to_string(), error: source_err }
        })?;
        drop(loaded);

        std::fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let tmp = self.root.join(format!(".import-{id}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = (|| {
            std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
            let format = if source.is_dir() {
                for entry in std::fs::read_dir(source).map_err(io_err(source))? {
                    let entry = entry.map_err(io_err(source))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let wanted =
                        name.ends_with(".json") || name.ends_with(".safetensors") || name.ends_with(".jinja");
                    if entry.path().is_file() && wanted {
                        std::fs::copy(entry.path(), tmp.join(&name)).map_err(io_err(&entry.path()))?;
                    }
                }
                Format::HfDir
            } else {
                std::fs::copy(source, tmp.join("model.gguf")).map_err(io_err(source))?;
                Format::Gguf
            };
            let version = ModelVersion {
                id: id.clone(),
                format,
                kind: VersionKind::Policy,
                source: source.display().to_string(),
                parents: Vec::new(),
                num_params: config.num_params(),
                architecture: config.architecture.clone(),
                created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                lineage: None,
            };
            let manifest = tmp.join(MANIFEST);
            std::fs::write(&manifest, serde_json::to_vec_pretty(&version).unwrap())
                .map_err(io_err(&manifest))?;
            std::fs::rename(&tmp, self.dir(&id)).map_err(io_err(&tmp))?;
            Ok(version)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Stores a trained version: `write` fills a temporary directory with the model files, then the manifest is
    /// added and the directory renamed into place (nothing is left behind on error).
    pub fn add_trained(
        &self,
        new: Trained,
        write: impl FnOnce(&Path) -> Result<(), LoadError>,
    ) -> Result<ModelVersion, RegistryError> {
        let Trained { id, kind, parents, num_params, architecture, lineage } = new;
        let id = id.as_str();
        check_id(id)?;
        if self.dir(id).exists() {
            return Err(RegistryError::Exists(id.into()));
        }
        std::fs::create_dir_all(&self.root).map_err(io_err(&self.root))?;
        let tmp = self.root.join(format!(".train-{id}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = (|| {
            std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
            write(&tmp)?;
            let version = ModelVersion {
                id: id.into(),
                format: Format::HfDir,
                kind,
                source: lineage.stage.clone(),
                parents,
                num_params,
                architecture,
                created_unix: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                lineage: Some(lineage),
            };
            let manifest = tmp.join(MANIFEST);
            std::fs::write(&manifest, serde_json::to_vec_pretty(&version).unwrap())
                .map_err(io_err(&manifest))?;
            std::fs::rename(&tmp, self.dir(id)).map_err(io_err(&tmp))?;
            Ok(version)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Loads the reward model stored as version `id`.
    pub fn load_reward_model<B: burn::tensor::backend::Backend>(
        &self,
        id: &str,
        device: &B::Device,
    ) -> Result<(crate::rm::RewardModel<B>, crate::tokenizer::TextTokenizer), RegistryError> {
        let v = self.get(id)?;
        let dir = self.model_path(&v);
        if v.kind != VersionKind::RewardModel || !io::reward::is_reward_dir(&dir) {
            return Err(RegistryError::Manifest {
                path: dir.join(MANIFEST).display().to_string(),
                why: format!("version {id:?} is a {}, not a reward model", v.kind),
            });
        }
        let loaded = io::reward::load_dir(&dir, device)?;
        crate::alloc::release_free_memory(); // as in load_policy
        Ok(loaded)
    }

    /// Exports version `id` as an HF directory at `target` (which must not exist or be empty).
    pub fn export<B: burn::tensor::backend::Backend>(
        &self,
        id: &str,
        target: &Path,
        device: &B::Device,
    ) -> Result<(), RegistryError> {
        if target.exists() && std::fs::read_dir(target).map_err(io_err(target))?.next().is_some() {
            return Err(RegistryError::TargetNotEmpty(target.display().to_string()));
        }
        let (model, tokenizer) = self.load_policy::<B>(id, device)?;
        io::hf::save_dir(&model, &tokenizer, target)?;
        Ok(())
    }
}
