//! alignbox's durable store on sled. This crate is the only code that touches sled: it names the trees, encodes
//! keys (big-endian ids, so sled's order is id order) and values (JSON, so records can grow fields), runs schema
//! migrations, and makes every multi-tree write one transaction that is **flushed to disk before it returns** —
//! callers acknowledge a write only after that.

pub mod abtest;
pub mod agreement;
pub mod annotation;
mod durability;
pub mod export;
pub mod gold;
pub mod import;
pub mod jobs;
pub mod keys;
pub mod loop_docs;
pub mod model;
pub mod probes;
pub mod quality;
mod schema;

use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};
use sled::{
    transaction::{ConflictableTransactionError, TransactionError},
    Transactional, Tree,
};

pub use model::*;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error (I/O, corruption).
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("store: record {key} in tree {tree} is unreadable: {why}")]
    Corrupt { tree: &'static str, key: String, why: String },
    /// The data directory was written by a newer alignbox.
    #[error(
        "store schema version {found} is newer than this alignbox supports ({supported}); upgrade alignbox"
    )]
    TooNew { found: u64, supported: u64 },
    /// A referenced record does not exist.
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: u64 },
    /// The write is not allowed in the current state (explained).
    #[error("{0}")]
    Rejected(String),
}

/// The trees of the store, by name.
pub mod trees {
    /// Schema version and other store facts.
    pub const META: &str = "meta";
    /// id → [`crate::User`].
    pub const USERS: &str = "users";
    /// name → id.
    pub const USER_NAMES: &str = "user_names";
    /// sha256(token) → [`crate::Session`].
    pub const SESSIONS: &str = "sessions";
    /// id → [`crate::Prompt`].
    pub const PROMPTS: &str = "prompts";
    /// id → [`crate::Candidate`].
    pub const CANDIDATES: &str = "candidates";
    /// prompt id ‖ candidate id → ().
    pub const CANDIDATES_BY_PROMPT: &str = "candidates_by_prompt";
    /// id → [`crate::Ranking`].
    pub const RANKINGS: &str = "rankings";
    /// prompt id ‖ ranking id → ().
    pub const RANKINGS_BY_PROMPT: &str = "rankings_by_prompt";
    /// id → [`crate::Demonstration`].
    pub const DEMONSTRATIONS: &str = "demonstrations";
    /// user id ‖ prompt id → [`crate::Assignment`].
    pub const ASSIGNMENTS: &str = "assignments";
    /// prompt id → number of assignments handed out (big-endian u64); schema 2.
    pub const ASSIGN_COUNTS: &str = "assign_counts";
    /// id → [`crate::AuditEvent`].
    pub const AUDIT: &str = "audit";
    /// id → [`crate::jobs::Job`].
    pub const JOBS: &str = "jobs";
    /// job id ‖ sequence → [`crate::jobs::LogLine`] (log lines and metric events of a job).
    pub const JOB_LOG: &str = "job_log";
    /// sha256(key) → [`crate::keys::ApiKey`].
    pub const API_KEYS: &str = "api_keys";
    /// prompt id → [`crate::gold::GoldItem`].
    pub const GOLD: &str = "gold";
}

/// Big-endian key of an id.
pub fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Big-endian key of a pair of ids.
pub fn pair_key(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&a.to_be_bytes());
    k[8..].copy_from_slice(&b.to_be_bytes());
    k
}

/// A stored big-endian u64 (0 when malformed).
pub(crate) fn read_u64(v: &[u8]) -> u64 {
    u64::from_be_bytes(v.try_into().unwrap_or([0; 8]))
}

fn id_of(k: &[u8]) -> u64 {
    u64::from_be_bytes(k[k.len() - 8..].try_into().expect("8-byte id suffix"))
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialise")
}

pub(crate) fn decode<T: DeserializeOwned>(tree: &'static str, k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt { tree, key: hex(k), why: e.to_string() })
}

fn hex(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// The open store.
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    commit: std::sync::Arc<durability::GroupCommit>,
    meta: Tree,
    users: Tree,
    user_names: Tree,
    sessions: Tree,
    prompts: Tree,
    candidates: Tree,
    candidates_by_prompt: Tree,
    rankings: Tree,
    rankings_by_prompt: Tree,
    demonstrations: Tree,
    assignments: Tree,
    assign_counts: Tree,
    audit: Tree,
    jobs: Tree,
    job_log: Tree,
    api_keys: Tree,
    gold: Tree,
}

/// Turns a transaction's error into ours.
pub(crate) fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Opens the sled database at `path`. A handle dropped a moment ago in this process can keep sled's file lock
/// until its background flusher notices (one store closed and the next opened in a row: a training stage after
/// another, a test reopening its directory), so a held lock is retried for up to 10 s before it is an error.
/// Another process holding the directory is refused earlier, by the data directory's own lock.
pub fn open_db(path: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

pub(crate) fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

impl Store {
    /// Opens (or creates) the store at `path` and migrates it to the current schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::from_db(open_db(path)?)
    }

    /// Wraps an open sled database (migrating it).
    pub fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let t = |name: &str| db.open_tree(name);
        let store = Store {
            meta: t(trees::META)?,
            users: t(trees::USERS)?,
            user_names: t(trees::USER_NAMES)?,
            sessions: t(trees::SESSIONS)?,
            prompts: t(trees::PROMPTS)?,
            candidates: t(trees::CANDIDATES)?,
            candidates_by_prompt: t(trees::CANDIDATES_BY_PROMPT)?,
            rankings: t(trees::RANKINGS)?,
            rankings_by_prompt: t(trees::RANKINGS_BY_PROMPT)?,
            demonstrations: t(trees::DEMONSTRATIONS)?,
            assignments: t(trees::ASSIGNMENTS)?,
            assign_counts: t(trees::ASSIGN_COUNTS)?,
            audit: t(trees::AUDIT)?,
            jobs: t(trees::JOBS)?,
            job_log: t(trees::JOB_LOG)?,
            api_keys: t(trees::API_KEYS)?,
            gold: t(trees::GOLD)?,
            commit: Default::default(),
            db,
        };
        schema::migrate(&store.db, &store.meta)?;
        Ok(store)
    }

    /// The schema version on disk.
    pub fn schema_version(&self) -> Result<u64, StoreError> {
        schema::version(&self.meta)
    }

    /// Makes every earlier write durable (group commit: concurrent callers share one flush).
    pub fn flush(&self) -> Result<(), StoreError> {
        Ok(self.commit.sync(&self.db)?)
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// A fresh unique id (monotonic across restarts).
    pub fn new_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }

    pub(crate) fn get<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        name: &'static str,
        id: u64,
    ) -> Result<Option<T>, StoreError> {
        match tree.get(key(id))? {
            Some(v) => Ok(Some(decode(name, &key(id), &v)?)),
            None => Ok(None),
        }
    }

    pub(crate) fn all<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        name: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        tree.iter().map(|r| r.map_err(StoreError::from).and_then(|(k, v)| decode(name, &k, &v))).collect()
    }

    // ----- users and sessions -----

    /// A user by id.
    pub fn user(&self, id: u64) -> Result<Option<User>, StoreError> {
        self.get(&self.users, trees::USERS, id)
    }

    /// A user by name.
    pub fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        match self.user_names.get(name.as_bytes())? {
            Some(id) => self.user(id_of(&id)),
            None => Ok(None),
        }
    }

    /// Every user, by id.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.all(&self.users, trees::USERS)
    }

    /// Adds a user; the name must be free. Durable on return.
    pub fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        actor: &str,
    ) -> Result<User, StoreError> {
        let user = User {
            id: self.new_id()?,
            name: name.to_string(),
            role,
            password_hash: password_hash.to_string(),
            disabled: false,
            created_ms: now_ms(),
            paused: false,
        };
        let event = self.event(actor, "user.add", format!("{} as {:?}", user.name, role))?;
        (&self.users, &self.user_names, &self.audit)
            .transaction(|(users, names, audit)| {
                if names.get(user.name.as_bytes())?.is_some() {
                    return Err(abort(StoreError::Rejected(format!("user {:?} already exists", user.name))));
                }
                users.insert(&key(user.id), encode(&user))?;
                names.insert(user.name.as_bytes(), &key(user.id))?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(user)
    }

    /// Replaces a user record (role, password, disabled). Durable on return.
    pub fn update_user(&self, user: &User, actor: &str, what: &str) -> Result<(), StoreError> {
        let event = self.event(actor, "user.update", format!("{}: {what}", user.name))?;
        (&self.users, &self.audit, &self.sessions)
            .transaction(|(users, audit, _sessions)| {
                if users.get(key(user.id))?.is_none() {
                    return Err(abort(StoreError::NotFound { what: "user", id: user.id }));
                }
                users.insert(&key(user.id), encode(user))?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        if user.disabled {
            self.drop_sessions_of(user.id)?;
        }
        self.flush()?;
        Ok(())
    }

    /// Stores a session under the hash of its token. Durable on return.
    pub fn put_session(&self, token_hash: &[u8], session: &Session) -> Result<(), StoreError> {
        self.sessions.insert(token_hash, encode(session))?;
        self.flush()?;
        Ok(())
    }

    /// The session stored under a token hash.
    pub fn session(&self, token_hash: &[u8]) -> Result<Option<Session>, StoreError> {
        match self.sessions.get(token_hash)? {
            Some(v) => Ok(Some(decode(trees::SESSIONS, token_hash, &v)?)),
            None => Ok(None),
        }
    }

    /// Deletes a session. Durable on return.
    pub fn drop_session(&self, token_hash: &[u8]) -> Result<(), StoreError> {
        self.sessions.remove(token_hash)?;
        self.flush()?;
        Ok(())
    }

    /// Deletes every session of a user ("log out everywhere"; also when an account is disabled); returns how
    /// many there were. Durable on return.
    pub fn drop_sessions_of(&self, user_id: u64) -> Result<usize, StoreError> {
        let mut dropped = 0;
        for r in self.sessions.iter() {
            let (k, v) = r?;
            let s: Session = decode(trees::SESSIONS, &k, &v)?;
            if s.user_id == user_id {
                self.sessions.remove(k)?;
                dropped += 1;
            }
        }
        self.flush()?;
        Ok(dropped)
    }

    // ----- audit -----

    pub(crate) fn event(&self, actor: &str, action: &str, detail: String) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            id: self.new_id()?,
            at_ms: now_ms(),
            actor: actor.into(),
            action: action.into(),
            detail,
        })
    }

    /// Audit events, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEvent>, StoreError> {
        self.all(&self.audit, trees::AUDIT)
    }

    // ----- prompts and candidates -----

    /// A prompt by id.
    pub fn prompt(&self, id: u64) -> Result<Option<Prompt>, StoreError> {
        self.get(&self.prompts, trees::PROMPTS, id)
    }

    /// Every prompt, by id.
    pub fn prompts(&self) -> Result<Vec<Prompt>, StoreError> {
        self.all(&self.prompts, trees::PROMPTS)
    }

    /// A candidate by id.
    pub fn candidate(&self, id: u64) -> Result<Option<Candidate>, StoreError> {
        self.get(&self.candidates, trees::CANDIDATES, id)
    }

    /// The candidates of a prompt, by id.
    pub fn candidates_of(&self, prompt_id: u64) -> Result<Vec<Candidate>, StoreError> {
        let mut out = Vec::new();
        for r in self.candidates_by_prompt.scan_prefix(key(prompt_id)) {
            let (k, _) = r?;
            let id = id_of(&k);
            out.push(self.candidate(id)?.ok_or(StoreError::NotFound { what: "candidate", id })?);
        }
        Ok(out)
    }

    /// Up to `limit` prompts (oldest first) that have no candidates yet: the policy answers them.
    pub fn prompts_without_candidates(&self, limit: usize) -> Result<Vec<Prompt>, StoreError> {
        let mut out = Vec::new();
        for r in self.prompts.iter() {
            let (k, v) = r?;
            if self.candidates_by_prompt.scan_prefix(&k).next().is_none() {
                out.push(decode(trees::PROMPTS, &k, &v)?);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Rankings of a prompt, by id.
    pub fn rankings_of(&self, prompt_id: u64) -> Result<Vec<Ranking>, StoreError> {
        let mut out = Vec::new();
        for r in self.rankings_by_prompt.scan_prefix(key(prompt_id)) {
            let (k, _) = r?;
            let id = id_of(&k);
            out.push(
                self.get(&self.rankings, trees::RANKINGS, id)?
                    .ok_or(StoreError::NotFound { what: "ranking", id })?,
            );
        }
        Ok(out)
    }

    /// Every ranking, by id.
    pub fn rankings(&self) -> Result<Vec<Ranking>, StoreError> {
        self.all(&self.rankings, trees::RANKINGS)
    }

    /// A JSON document stored under `name` in the meta tree (loop settings, loop state), if any.
    pub fn meta_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.meta.get(name.as_bytes())? {
            Some(v) => Ok(Some(decode(trees::META, name.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    /// Replaces the JSON document `name` in the meta tree, with an audit event. Durable on return.
    pub fn set_meta_json<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        actor: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        let event = self.event(actor, &format!("{name}.set"), what.to_string())?;
        let bytes = encode(value);
        (&self.meta, &self.audit)
            .transaction(|(meta, audit)| {
                meta.insert(name.as_bytes(), bytes.as_slice())?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(())
    }

    /// Changes the JSON document `name` in the meta tree atomically (from `T::default()` when absent) and
    /// returns the new value. Durable on return.
    pub fn update_meta_json<T: Serialize + DeserializeOwned + Default>(
        &self,
        name: &str,
        f: impl Fn(&mut T),
    ) -> Result<T, StoreError> {
        let value = self
            .meta
            .transaction(|meta| {
                let mut v: T = match meta.get(name.as_bytes())? {
                    Some(bytes) => decode(trees::META, name.as_bytes(), &bytes).map_err(abort)?,
                    None => T::default(),
                };
                f(&mut v);
                meta.insert(name.as_bytes(), encode(&v))?;
                Ok(v)
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(value)
    }

    /// Number of stored prompts (cheap: no decoding).
    pub fn prompt_count(&self) -> usize {
        self.prompts.len()
    }

    /// Number of stored rankings (cheap: no decoding).
    pub fn ranking_count(&self) -> usize {
        self.rankings.len()
    }

    /// The annotation guidelines shown beside every item (Markdown-free plain text).
    pub fn guidelines(&self) -> Result<String, StoreError> {
        Ok(self
            .meta
            .get(b"guidelines")?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    }

    /// The version of the current guidelines: 0 before any were set, then 1, 2, … with each change.
    pub fn guidelines_version(&self) -> Result<u64, StoreError> {
        Ok(self.meta.get(b"guidelines_version")?.map_or(0, |v| read_u64(&v)))
    }

    /// The text of guidelines version `version` (each version is kept), or None.
    pub fn guidelines_at(&self, version: u64) -> Result<Option<String>, StoreError> {
        let k = [b"guidelines/".as_slice(), &key(version)].concat();
        Ok(self.meta.get(k)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Replaces the guidelines as a new version (the old text is kept under its version); returns the new
    /// version. Durable on return.
    pub fn set_guidelines(&self, text: &str, actor: &str) -> Result<u64, StoreError> {
        let version = self.guidelines_version()? + 1;
        let event =
            self.event(actor, "guidelines.set", format!("version {version}, {} bytes", text.len()))?;
        (&self.meta, &self.audit)
            .transaction(|(meta, audit)| {
                let current = meta.get(b"guidelines_version")?.map_or(0, |v| read_u64(&v));
                if current + 1 != version {
                    return Err(abort(StoreError::Rejected(
                        "the guidelines changed meanwhile: try again".into(),
                    )));
                }
                meta.insert(b"guidelines".as_slice(), text.as_bytes())?;
                meta.insert(b"guidelines_version".as_slice(), key(version).as_slice())?;
                meta.insert([b"guidelines/".as_slice(), &key(version)].concat(), text.as_bytes())?;
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(version)
    }

    /// Every demonstration, by id.
    pub fn demonstrations(&self) -> Result<Vec<Demonstration>, StoreError> {
        self.all(&self.demonstrations, trees::DEMONSTRATIONS)
    }

    /// Writes a batch of new records (an import, or generated candidates) in one transaction, with an audit
    /// event. Ids must be fresh ([`Store::new_id`]); referenced prompts and candidates must be in the batch or
    /// already stored. Nothing is written when anything fails. Durable on return.
    pub fn write_batch(&self, batch: &Batch, actor: &str, action: &str) -> Result<(), StoreError> {
        let event = self.event(actor, action, batch.summary())?;
        (
            &self.prompts,
            &self.candidates,
            &self.candidates_by_prompt,
            &self.rankings,
            &self.rankings_by_prompt,
            &self.demonstrations,
            &self.audit,
            &self.gold,
        )
            .transaction(|(prompts, candidates, cbp, rankings, rbp, demos, audit, gold)| {
                for p in &batch.prompts {
                    prompts.insert(&key(p.id), encode(p))?;
                }
                for c in &batch.candidates {
                    let known = batch.prompts.iter().any(|p| p.id == c.prompt_id)
                        || prompts.get(key(c.prompt_id))?.is_some();
                    if !known {
                        return Err(abort(StoreError::NotFound { what: "prompt", id: c.prompt_id }));
                    }
                    candidates.insert(&key(c.id), encode(c))?;
                    cbp.insert(&pair_key(c.prompt_id, c.id), &[])?;
                }
                for r in &batch.rankings {
                    for id in r.tiers.iter().flatten() {
                        let ok = batch.candidates.iter().any(|c| c.id == *id && c.prompt_id == r.prompt_id)
                            || cbp.get(pair_key(r.prompt_id, *id))?.is_some();
                        if !ok {
                            return Err(abort(StoreError::NotFound {
                                what: "candidate of that prompt",
                                id: *id,
                            }));
                        }
                    }
                    rankings.insert(&key(r.id), encode(r))?;
                    rbp.insert(&pair_key(r.prompt_id, r.id), &[])?;
                }
                for d in &batch.demonstrations {
                    demos.insert(&key(d.id), encode(d))?;
                }
                for g in &batch.gold {
                    let ids: Vec<u64> = batch
                        .candidates
                        .iter()
                        .filter(|c| c.prompt_id == g.prompt_id)
                        .map(|c| c.id)
                        .collect();
                    gold::check_order(&g.tiers, &ids).map_err(|why| {
                        abort(StoreError::Rejected(format!("gold item of prompt {}: {why}", g.prompt_id)))
                    })?;
                    gold.insert(&key(g.prompt_id), encode(g))?;
                }
                audit.insert(&key(event.id), encode(&event))?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Records to write together ([`Store::write_batch`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// New prompts.
    pub prompts: Vec<Prompt>,
    /// New candidates.
    pub candidates: Vec<Candidate>,
    /// New rankings.
    pub rankings: Vec<Ranking>,
    /// New demonstrations.
    pub demonstrations: Vec<Demonstration>,
    /// New gold items (of prompts in the batch, with their candidates in the batch).
    pub gold: Vec<gold::GoldItem>,
}

impl Batch {
    /// "3 prompts, 6 candidates, 3 rankings, 0 demonstrations".
    pub fn summary(&self) -> String {
        format!(
            "{} prompts, {} candidates, {} rankings, {} demonstrations{}",
            self.prompts.len(),
            self.candidates.len(),
            self.rankings.len(),
            self.demonstrations.len(),
            if self.gold.is_empty() { String::new() } else { format!(", {} gold items", self.gold.len()) }
        )
    }
}
