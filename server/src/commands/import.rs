//! `alignbox import FILE.jsonl`: all-or-nothing JSONL imports into the store.

use std::path::Path;

use anyhow::Context;

use crate::datadir::DataDir;

/// Parses the whole file, then writes every record in one transaction.
pub fn run(file: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (_lock, store) = DataDir::open_store(data_dir)?;
    let name = file.display().to_string();
    let batch = store::import::parse(&bytes, &name, &mut || store.new_id().expect("id"))?;
    store.write_batch(&batch, "cli", "import")?;
    println!("imported {} from {name}", batch.summary());
    Ok(())
}
