//! Run checkpoints: the trained module, the optimizer's state and the run's own state (step, micro-batch, metric
//! history) in one directory, replaced atomically so that a run killed at any moment finds either the previous or
//! the new checkpoint, never a half-written one.

use std::path::{Path, PathBuf};

use burn::{
    module::AutodiffModule,
    optim::Optimizer,
    record::{BinFileRecorder, FullPrecisionSettings, Recorder},
};
use serde::{de::DeserializeOwned, Serialize};

use crate::backend::TrainBackend;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File-system error.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A record could not be written or read.
    #[error("{path}: {why}")]
    Record { path: String, why: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io { path: path.display().to_string(), error }
}

type Rec = BinFileRecorder<FullPrecisionSettings>;

/// The checkpoint directory of a run directory.
pub fn path(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint")
}

/// Writes `model`, `optim` and `state` to `run_dir/checkpoint` (atomically replacing the previous one).
pub fn save<B, M, O, S>(run_dir: &Path, model: &M, optim: &O, state: &S) -> Result<(), CheckpointError>
where
    B: TrainBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
    S: Serialize,
{
    let fresh = run_dir.join("checkpoint.new");
    let old = run_dir.join("checkpoint.old");
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh).map_err(io(&fresh))?;
    let rec = Rec::new();
    let model_path = fresh.join("model");
    rec.record(model.clone().into_record(), model_path.clone()).map_err(|e| CheckpointError::Record {
        path: model_path.display().to_string(),
        why: e.to_string(),
    })?;
    let optim_path = fresh.join("optimizer");
    rec.record(optim.to_record(), optim_path.clone()).map_err(|e| CheckpointError::Record {
        path: optim_path.display().to_string(),
        why: e.to_string(),
    })?;
    let state_path = fresh.join("state.json");
    std::fs::write(&state_path, serde_json::to_vec_pretty(state).expect("state json"))
        .map_err(io(&state_path))?;
    for f in ["model.bin", "optimizer.bin", "state.json"] {
        let p = fresh.join(f);
        std::fs::File::open(&p).and_then(|f| f.sync_all()).map_err(io(&p))?;
    }
    let current = path(run_dir);
    let _ = std::fs::remove_dir_all(&old);
    if current.exists() {
        std::fs::rename(&current, &old).map_err(io(&current))?;
    }
    std::fs::rename(&fresh, &current).map_err(io(&fresh))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Whether `run_dir` holds a checkpoint to resume from (a complete previous one counts if the swap was cut short).
pub fn exists(run_dir: &Path) -> bool {
    path(run_dir).join("state.json").exists() || run_dir.join("checkpoint.old").join("state.json").exists()
}

/// Loads the checkpoint into `model` and `optim` (built the same way as when it was saved, on any device: the
/// values go to `model`'s) and returns the state.
pub fn load<B, M, O, S>(run_dir: &Path, model: M, optim: O) -> Result<(M, O, S), CheckpointError>
where
    B: TrainBackend,
    M: AutodiffModule<B>,
    O: Optimizer<M, B>,
    S: DeserializeOwned,
{
    let mut dir = path(run_dir);
    if !dir.join("state.json").exists() {
        dir = run_dir.join("checkpoint.old");
    }
    // Onto the device the run's model was built on (a checkpoint holds plain values: it resumes on any device).
    let device: burn::tensor::Device<B> = model.devices().first().cloned().unwrap_or_default();
    let rec = Rec::new();
    let model_path = dir.join("model");
    let record = rec.load(model_path.clone(), &device).map_err(|e| CheckpointError::Record {
        path: model_path.display().to_string(),
        why: e.to_string(),
    })?;
    let model = model.load_record(record);
    let optim_path = dir.join("optimizer");
    let record = rec.load(optim_path.clone(), &device).map_err(|e| CheckpointError::Record {
        path: optim_path.display().to_string(),
        why: e.to_string(),
    })?;
    let optim = optim.load_record(record);
    let state_path = dir.join("state.json");
    let text = std::fs::read(&state_path).map_err(io(&state_path))?;
    let state = serde_json::from_slice(&text).map_err(|e| CheckpointError::Record {
        path: state_path.display().to_string(),
        why: e.to_string(),
    })?;
    Ok((model, optim, state))
}

/// The run state stored with the checkpoint in `run_dir`, without loading the model (e.g. to rewrite a metric
/// log up to the point a resumed run continues from).
pub fn read_state<S: DeserializeOwned>(run_dir: &Path) -> Option<S> {
    [path(run_dir), run_dir.join("checkpoint.old")]
        .iter()
        .find_map(|d| std::fs::read(d.join("state.json")).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
}
