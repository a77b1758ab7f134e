//! Group commit: every writer waits until a flush that began after its write has finished, and concurrent
//! writers share flushes. One of the waiting writers (the leader) calls `sled::Db::flush` for everyone who took a
//! ticket before it started; the others sleep until it reports back. Durability is the same as one flush per
//! write; the number of fsyncs under load is far smaller.

use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Tickets handed out (each after its write).
    requested: u64,
    /// Every ticket up to this one is durable.
    completed: u64,
    /// A leader is flushing now.
    flushing: bool,
}

/// Shared by all clones of a store.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
}

impl GroupCommit {
    /// Returns once everything written before the call is on disk.
    pub(crate) fn sync(&self, db: &sled::Db) -> sled::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.completed >= ticket {
                return Ok(());
            }
            if !st.flushing {
                st.flushing = true;
                let target = st.requested;
                drop(st);
                let result = db.flush();
                st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.flushing = false;
                if result.is_ok() {
                    st.completed = st.completed.max(target);
                }
                self.done.notify_all();
                result?;
            } else {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_writers_all_return_after_a_flush_that_covers_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let gc = Arc::new(GroupCommit::default());
        let threads: Vec<_> = (0..16u64)
            .map(|i| {
                let (db, gc) = (db.clone(), gc.clone());
                std::thread::spawn(move || {
                    db.insert(i.to_be_bytes(), b"v").unwrap();
                    gc.sync(&db).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let st = gc.state.lock().unwrap();
        assert_eq!(st.requested, 16);
        assert_eq!(st.completed, 16);
        assert!(!st.flushing);
    }
}
