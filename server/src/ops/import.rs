//! `alignbox import FILE.jsonl` (all-or-nothing JSONL imports into the store) and `alignbox export`.

use std::path::Path;

use anyhow::Context;

use crate::datadir::DataDir;

/// Parses the whole file, then writes every record in one transaction.
pub fn run(file: &Path, limits: &store::import::ImportLimits, data_dir: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (_lock, store) = DataDir::open_store(data_dir)?;
    let name = file.display().to_string();
    let batch = store::import::parse(&bytes, &name, limits, &mut || store.new_id().expect("id"))?;
    store.write_batch(&batch, "cli", "import")?;
    println!("imported {} from {name}", batch.summary());
    Ok(())
}

/// Writes `rankings` or `pairs` JSONL to `out` (or stdout).
pub fn export(what: &str, out: Option<&Path>, data_dir: &Path) -> anyhow::Result<()> {
    let (_lock, store) = DataDir::open_store(data_dir)?;
    let text = match what {
        "rankings" => store.export_rankings()?,
        _ => store.export_pairs()?,
    };
    match out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} {what} lines to {}", text.lines().count(), path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
