//! The data directory and its exclusive lock: one `serve` per directory.

use std::{
    fs::{File, OpenOptions, TryLockError},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

/// Why a data directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error(
        "the data directory {dir} is in use by another alignbox (pid {pid}); stop that one or choose another \
         --data-dir"
    )]
    InUse { dir: PathBuf, pid: String },
    /// The directory or lock file could not be created or locked.
    #[error("cannot use the data directory {dir}: {error}")]
    Io { dir: PathBuf, error: std::io::Error },
}

/// An exclusively locked data directory. The lock is released when this value is dropped (or the process dies).
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates `root` if needed and takes its lock without waiting.
    pub fn lock(root: &Path) -> Result<Self, DataDirError> {
        let io = |error| DataDirError::Io { dir: root.to_path_buf(), error };
        std::fs::create_dir_all(root).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(root.join("alignbox.lock"))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DataDirError::InUse {
                    dir: root.to_path_buf(),
                    pid: if pid.is_empty() { "unknown".into() } else { pid.into() },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { root: root.to_path_buf(), _lock: file })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Locks `root` and opens its store (for CLI commands that write it while no server runs).
    pub fn open_store(root: &Path) -> anyhow::Result<(Self, store::Store)> {
        let dir = Self::lock(root)?;
        let s = store::Store::open(&dir.store_path())?;
        Ok((dir, s))
    }

    /// Where the sled store lives.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::lock(dir.path()).unwrap();
        let err = DataDir::lock(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("in use by another alignbox"), "{msg}");
        assert!(msg.contains(&std::process::id().to_string()), "{msg}");
        drop(first);
        DataDir::lock(dir.path()).expect("lock is free again after drop");
    }
}
