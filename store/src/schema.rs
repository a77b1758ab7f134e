//! The schema version and the migrations that bring an older store up to date.

use sled::{Db, Tree};

use crate::StoreError;

/// The version this build writes.
pub const CURRENT: u64 = 3;

const KEY: &[u8] = b"schema_version";

/// The version recorded in the store (0 for a store that predates versioning or is empty).
pub fn version(meta: &Tree) -> Result<u64, StoreError> {
    Ok(meta.get(KEY)?.map_or(0, |v| crate::read_u64(&v)))
}

/// One step: from `version - 1` to `version`.
type Migration = fn(&Db) -> Result<(), StoreError>;

/// Migrations by the version they produce; index 0 brings an empty store to version 1.
const MIGRATIONS: [Migration; CURRENT as usize] = [
    // 0 → 1: the first schema; the trees are opened by `Store::from_db`, nothing to convert.
    |_db| Ok(()),
    // 1 → 2: per-prompt assignment counters, so handing out an item no longer scans every assignment.
    count_assignments,
    // 2 → 3: the loop's documents and job results are typed (`types`): each is read back through its type and
    // rewritten; a job result that no longer parses is dropped (its log keeps what it said).
    typed_documents,
];

fn count_assignments(db: &Db) -> Result<(), StoreError> {
    let assignments = db.open_tree(crate::trees::ASSIGNMENTS)?;
    let counts = db.open_tree(crate::trees::ASSIGN_COUNTS)?;
    counts.clear()?;
    let mut per_prompt = std::collections::BTreeMap::<[u8; 8], u64>::new();
    for r in assignments.iter() {
        let (k, _) = r?;
        // Key: user id ‖ prompt id.
        let prompt: [u8; 8] = k[8..16].try_into().expect("16-byte assignment key");
        *per_prompt.entry(prompt).or_default() += 1;
    }
    for (prompt, n) in per_prompt {
        counts.insert(prompt, &n.to_be_bytes())?;
    }
    Ok(())
}

fn typed_documents(db: &Db) -> Result<(), StoreError> {
    let meta = db.open_tree(crate::trees::META)?;
    // Each loop document is rewritten through its type (fields added since it was saved get their defaults).
    // An unreadable one stays as it is: readers refuse it (the loop stays paused) and an operator's next save
    // replaces it.
    fn retype<T: serde::Serialize + serde::de::DeserializeOwned>(
        meta: &Tree,
        name: &str,
    ) -> Result<(), StoreError> {
        if let Some(v) = meta.get(name.as_bytes())? {
            if let Ok(doc) = serde_json::from_slice::<T>(&v) {
                meta.insert(name.as_bytes(), serde_json::to_vec(&doc).expect("json"))?;
            }
        }
        Ok(())
    }
    retype::<types::LoopSettings>(&meta, crate::loop_docs::LOOP_SETTINGS)?;
    retype::<types::LoopState>(&meta, crate::loop_docs::LOOP_STATE)?;
    let jobs = db.open_tree(crate::trees::JOBS)?;
    for r in jobs.iter() {
        let (k, v) = r?;
        let mut job: serde_json::Value = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
            tree: crate::trees::JOBS,
            key: format!("{k:?}"),
            why: e.to_string(),
        })?;
        let Some(result) = job.get_mut("result") else { continue };
        if result.is_null() || serde_json::from_value::<types::JobResult>(result.clone()).is_ok() {
            continue;
        }
        *result = serde_json::Value::Null;
        jobs.insert(k, serde_json::to_vec(&job).expect("json"))?;
    }
    Ok(())
}

/// Applies every migration the store has not seen, recording each version as it completes.
pub fn migrate(db: &Db, meta: &Tree) -> Result<(), StoreError> {
    let found = version(meta)?;
    if found > CURRENT {
        return Err(StoreError::TooNew { found, supported: CURRENT });
    }
    for v in found..CURRENT {
        MIGRATIONS[v as usize](db)?;
        meta.insert(KEY, &(v + 1).to_be_bytes())?;
        db.flush()?;
    }
    Ok(())
}
