//! API keys for the OpenAI-compatible endpoint: issued by admins, stored only as the SHA-256 of the key.

use serde::{Deserialize, Serialize};

use crate::{decode, encode, key, now_ms, trees, Store, StoreError};

/// One issued key (the key itself is shown once, when it is issued, and never stored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Unique id.
    pub id: u64,
    /// What it is for ("eval harness", a person's name).
    pub name: String,
    /// The first characters of the key, to tell keys apart in lists.
    pub prefix: String,
    /// Who issued it.
    pub created_by: String,
    /// When (ms since the epoch).
    pub created_ms: u64,
    /// Revoked keys are refused.
    pub revoked: bool,
}

impl Store {
    /// Stores a new key under the hash of its secret. Durable on return.
    pub fn add_api_key(
        &self,
        secret_hash: &[u8],
        name: &str,
        prefix: &str,
        actor: &str,
    ) -> Result<ApiKey, StoreError> {
        let k = ApiKey {
            id: self.new_id()?,
            name: name.to_string(),
            prefix: prefix.to_string(),
            created_by: actor.to_string(),
            created_ms: now_ms(),
            revoked: false,
        };
        self.api_keys.insert(secret_hash, encode(&k))?;
        let event = self.event(actor, "api_key.add", format!("{} {name:?}", k.id))?;
        self.audit.insert(key(event.id), encode(&event))?;
        self.flush()?;
        Ok(k)
    }

    /// The live (not revoked) key stored under a secret's hash.
    pub fn api_key(&self, secret_hash: &[u8]) -> Result<Option<ApiKey>, StoreError> {
        match self.api_keys.get(secret_hash)? {
            Some(v) => {
                let k: ApiKey = decode(trees::API_KEYS, secret_hash, &v)?;
                Ok((!k.revoked).then_some(k))
            }
            None => Ok(None),
        }
    }

    /// Every key, revoked ones included, by id.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let mut all: Vec<ApiKey> = self.all(&self.api_keys, trees::API_KEYS)?;
        all.sort_by_key(|k| k.id);
        Ok(all)
    }

    /// Revokes a key by id. Durable on return.
    pub fn revoke_api_key(&self, id: u64, actor: &str) -> Result<(), StoreError> {
        for r in self.api_keys.iter() {
            let (h, v) = r?;
            let mut k: ApiKey = decode(trees::API_KEYS, &h, &v)?;
            if k.id == id {
                k.revoked = true;
                self.api_keys.insert(h, encode(&k))?;
                let event = self.event(actor, "api_key.revoke", id.to_string())?;
                self.audit.insert(key(event.id), encode(&event))?;
                self.flush()?;
                return Ok(());
            }
        }
        Err(StoreError::NotFound { what: "API key", id })
    }
}
