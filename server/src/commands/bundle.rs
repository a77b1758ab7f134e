//! `alignbox bundle`: a model version exported with everything needed to use and audit it, confined to
//! `<data-dir>/exports/<name>/`: the HF model (adapters merged), the adapter alone when there is one, the
//! preference data as JSONL and a lineage manifest with file checksums. Written to a temporary directory and
//! renamed into place, so a bundle is complete or absent.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use trainer::backend::{default_device, Infer};

use super::env::{Env, Produced};
use crate::cli::{BundleArgs, ProgressArg};

/// Runs `alignbox bundle` and prints the result.
pub fn run(args: BundleArgs) -> anyhow::Result<()> {
    let env = Env::cli(&args.data.data_dir, ProgressArg::Auto)?;
    run_in(&args, &env)?.print();
    Ok(())
}

/// The exports directory of a data directory.
pub fn exports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("exports")
}

/// Whether `name` is a safe single path component (what bundle names and download paths may use).
pub fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn files_under(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
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

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target).with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// Writes the bundle of `args.model`.
pub fn run_in(args: &BundleArgs, env: &Env) -> anyhow::Result<Produced> {
    let name = args.name.clone().unwrap_or_else(|| args.model.clone());
    if !safe_name(&name) {
        bail!("bundle name {name:?}: use letters, digits, '-', '_' and '.' only (it is a directory under exports/)");
    }
    let version = env.reg.get(&args.model)?;
    let flags = super::probe::export_flags(env, &args.model)?;
    let overridden = match (&args.r#override, flags.is_empty()) {
        (_, true) => None,
        (Some(reason), false) => {
            anyhow::ensure!(!reason.trim().is_empty(), "--override needs a reason");
            env.line(format!("exporting despite flagged probes ({reason}): {}", flags.join("; ")));
            Some(serde_json::json!({"reason": reason, "flags": flags}))
        }
        (None, false) => bail!(
            "export blocked by bias probes: {}. Pass --override REASON to export anyway (recorded in the manifest)",
            flags.join("; ")
        ),
    };
    let root = exports_dir(&env.data_dir);
    let target = root.join(&name);
    if target.exists() {
        bail!("{} already exists: choose another --name or delete it", target.display());
    }
    let tmp = root.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> anyhow::Result<()> {
        let source = env.reg.dir(&args.model);
        if version.kind == "reward_model" {
            env.line("copying the reward model (LlamaForSequenceClassification)");
            copy_dir(&source, &tmp.join("model"))?;
            let _ = std::fs::remove_file(tmp.join("model").join("alignbox-model.json"));
        } else {
            env.line("writing the policy as an HF directory (adapters merged)");
            env.reg.export::<Infer>(&args.model, &tmp.join("model"), &default_device())?;
        }
        if source.join("adapter").is_dir() {
            env.line("copying the LoRA adapter (PEFT layout)");
            copy_dir(&source.join("adapter"), &tmp.join("adapter"))?;
        }
        std::fs::create_dir_all(tmp.join("data"))?;
        std::fs::write(tmp.join("data/rankings.jsonl"), env.store.export_rankings()?)?;
        std::fs::write(tmp.join("data/pairs.jsonl"), env.store.export_pairs()?)?;
        // Lineage: the version and every ancestor, nearest first.
        let mut chain = Vec::new();
        let mut todo = vec![args.model.clone()];
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            match env.reg.get(&id) {
                Ok(v) => {
                    todo.extend(v.parents.iter().rev().cloned());
                    chain.push(serde_json::to_value(&v)?);
                }
                Err(_) => chain.push(serde_json::json!({"id": id, "missing": true})),
            }
        }
        let mut files = Vec::new();
        files_under(&tmp, &tmp, &mut files)?;
        files.sort();
        let mut listed = Vec::new();
        for f in &files {
            let full = tmp.join(f);
            listed.push(serde_json::json!({
                "path": f.display().to_string(),
                "bytes": std::fs::metadata(&full)?.len(),
                "sha256": sha256_file(&full)?,
            }));
        }
        let manifest = serde_json::json!({
            "bundle": name,
            "version": args.model,
            "kind": version.kind,
            "alignbox": env!("CARGO_PKG_VERSION"),
            "created_unix": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "data_hash": version.lineage.as_ref().map(|l| l.data_hash.clone()),
            "metrics": version.lineage.as_ref().map(|l| l.metrics.clone()),
            "config": version.lineage.as_ref().map(|l| l.config.clone()),
            "lineage": chain,
            "rankings": env.store.ranking_count(),
            "probes": env.store.meta_json::<serde_json::Value>(&super::probe::report_key(&args.model))?,
            "probe_override": overridden,
            "files": listed,
        });
        std::fs::write(tmp.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
        std::fs::rename(&tmp, &target)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    env.line(format!("bundle written to {}", target.display()));
    Ok(Produced { version: name, kind: "export".into(), metrics: Default::default() })
}

/// Every bundle (name, files relative to it), by name.
pub fn list(data_dir: &Path) -> Vec<(String, Vec<String>)> {
    let root = exports_dir(data_dir);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&root) else { return out };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !safe_name(&name) || !e.path().is_dir() {
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
    if !safe_name(name) || rel.split('/').any(|c| !safe_name(c)) {
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
    fn names_and_paths_cannot_leave_the_exports_directory() {
        assert!(safe_name("policy-v2.1_x"));
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "x y", "ü"] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("exports/b/model")).unwrap();
        std::fs::write(dir.path().join("exports/b/model/config.json"), "{}").unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        assert!(resolve(dir.path(), "b", "model/config.json").is_some());
        assert!(resolve(dir.path(), "b", "../../secret").is_none());
        assert!(resolve(dir.path(), "..", "secret").is_none());
        assert!(resolve(dir.path(), "b", "model").is_none(), "directories are not files");
        assert_eq!(list(dir.path()), vec![("b".to_string(), vec!["model/config.json".to_string()])]);
    }
}
