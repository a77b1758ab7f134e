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

/// The exports directory of a data directory.
pub fn exports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("exports")
}

/// Every file under `dir`, relative to `root`.
pub fn files_under(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            files_under(root, &p, out)?;
        } else {
            out.push(p.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

/// Every bundle (name, files relative to it), by name.
pub fn bundles(data_dir: &Path) -> Vec<(String, Vec<String>)> {
    let root = exports_dir(data_dir);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root) else { return out };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !types::names::safe_name(&name) || !e.path().is_dir() {
            continue;
        }
        let mut files = Vec::new();
        if files_under(&e.path(), &e.path(), &mut files).is_ok() {
            let mut files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            files.sort();
            out.push((name, files));
        }
    }
    out.sort();
    out
}

/// The file `rel` of bundle `name`, if it exists inside the exports directory (no `..`, no links out).
pub fn resolve(data_dir: &Path, name: &str, rel: &str) -> Option<PathBuf> {
    if !types::names::safe_name(name) || rel.split('/').any(|c| !types::names::safe_name(c)) {
        return None;
    }
    let root = exports_dir(data_dir).canonicalize().ok()?;
    let path = root.join(name).join(rel).canonicalize().ok()?;
    (path.starts_with(&root) && path.is_file()).then_some(path)
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

#[cfg(test)]
mod export_tests {
    use super::*;

    #[test]
    fn names_and_paths_cannot_leave_the_exports_directory() {
        assert!(types::names::safe_name("policy-v2.1_x"));
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "x y", "ü"] {
            assert!(!types::names::safe_name(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("exports/b/model")).unwrap();
        std::fs::write(dir.path().join("exports/b/model/config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        assert!(resolve(dir.path(), "b", "model/config.json").is_some());
        assert!(resolve(dir.path(), "b", "../../secret").is_none());
        assert!(resolve(dir.path(), "..", "secret").is_none());
        assert!(resolve(dir.path(), "b", "model").is_none(), "directories are not files");
        assert_eq!(bundles(dir.path()), vec![("b".to_string(), vec!["model/config.json".to_string()])]);
    }
}
