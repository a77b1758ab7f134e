//! The schema version and the migrations that bring an older store up to date.

use sled::{Db, Tree};

use crate::StoreError;

/// The version this build writes.
pub const CURRENT: u64 = 2;

const KEY: &[u8] = b"schema_version";

/// The version recorded in the store (0 for a store that predates versioning or is empty).
pub fn version(meta: &Tree) -> Result<u64, StoreError> {
    Ok(meta.get(KEY)?.map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))))
}

/// One step: from `version - 1` to `version`.
type Migration = fn(&Db) -> Result<(), StoreError>;

/// Migrations by the version they produce; index 0 brings an empty store to version 1.
const MIGRATIONS: [Migration; CURRENT as usize] = [
    // 0 → 1: the first schema; the trees are opened by `Store::from_db`, nothing to convert.
    |_db| Ok(()),
    // 1 → 2: per-prompt assignment counters, so handing out an item no longer scans every assignment.
    count_assignments,
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
