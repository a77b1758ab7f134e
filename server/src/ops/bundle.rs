//! `alignbox bundle`: a model version exported with everything needed to use and audit it, confined to
//! `<data-dir>/exports/<name>/`: the HF model (adapters merged), the adapter alone when there is one, the
//! preference data as JSONL and a lineage manifest with file checksums. Written to a temporary directory and
//! renamed into place, so a bundle is complete or absent.

use std::path::Path;
use types::{JobResult, ResultKind};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use trainer::backend::{default_device, Infer};

use super::env::Env;
use crate::cli::BundleArgs;

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
pub fn run_in(args: &BundleArgs, env: &Env) -> anyhow::Result<JobResult> {
    let name = args.name.clone().unwrap_or_else(|| args.model.clone());
    if !types::names::safe_name(&name) {
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
    let root = crate::datadir::exports_dir(&env.data_dir);
    let target = root.join(&name);
    if target.exists() {
        bail!("{} already exists: choose another --name or delete it", target.display());
    }
    let tmp = root.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> anyhow::Result<()> {
        let source = env.reg.dir(&args.model);
        if version.kind == trainer::registry::VersionKind::RewardModel {
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
        crate::datadir::files_under(&tmp, &tmp, &mut files)?;
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
            "probes": env.store.probe_report(&args.model)?,
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
    Ok(JobResult::new(name, ResultKind::Export, Default::default()))
}
