//! Admin functions: accounts and API keys. All refuse annotators and operators.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// An account as the users page shows it (never the hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Whether it is disabled.
    pub disabled: bool,
}

/// Every account.
#[server(prefix = "/api", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserView>, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Admin).await?;
    let users =
        expect_context::<ServerContext>().store.users().map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(users
        .into_iter()
        .map(|u| UserView { name: u.name, role: u.role.as_str().into(), disabled: u.disabled })
        .collect())
}

/// Adds an account and returns its generated password (shown once).
#[server(prefix = "/api", endpoint = "add_user")]
pub async fn add_user(csrf: String, name: String, role: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let admin = auth::require_with_csrf(store::Role::Admin, &csrf).await?;
    let role = store::Role::parse(&role)
        .ok_or_else(|| ServerFnError::new("role must be annotator, operator or admin"))?;
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ServerFnError::new("a name has 1 to 64 characters and no spaces"));
    }
    let password = auth::random_password();
    expect_context::<ServerContext>()
        .store
        .add_user(&name, role, &auth::hash_password(&password), &admin.name)
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(password)
}

/// Disables an account (its sessions end).
#[server(prefix = "/api", endpoint = "disable_user")]
pub async fn disable_user(csrf: String, name: String) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let admin = auth::require_with_csrf(store::Role::Admin, &csrf).await?;
    let s = expect_context::<ServerContext>().store;
    let e = |e: store::StoreError| ServerFnError::new(e.to_string());
    let mut user =
        s.user_by_name(&name).map_err(e)?.ok_or_else(|| ServerFnError::new(format!("no user {name:?}")))?;
    if user.name == admin.name {
        return Err(ServerFnError::new("you cannot disable yourself"));
    }
    user.disabled = true;
    s.update_user(&user, &admin.name, "disabled").map_err(e)
}

/// An API key as the users page lists it (never the secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyView {
    /// Its id.
    pub id: u64,
    /// What it is for.
    pub name: String,
    /// The secret's first characters.
    pub prefix: String,
    /// Who issued it.
    pub created_by: String,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// Every API key of `/v1/chat/completions`.
#[server(prefix = "/api", endpoint = "list_api_keys")]
pub async fn list_api_keys() -> Result<Vec<ApiKeyView>, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Admin).await?;
    let keys =
        expect_context::<ServerContext>().store.api_keys().map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(keys
        .into_iter()
        .map(|k| ApiKeyView {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_by: k.created_by,
            revoked: k.revoked,
        })
        .collect())
}

/// Issues an API key and returns its secret (shown once; only its hash is stored).
#[server(prefix = "/api", endpoint = "issue_api_key")]
pub async fn issue_api_key(csrf: String, name: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let admin = auth::require_with_csrf(store::Role::Admin, &csrf).await?;
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > 100 {
        return Err(ServerFnError::new("a key needs a name of 1 to 100 characters"));
    }
    let secret = format!("abx-{}", auth::random_token());
    expect_context::<ServerContext>()
        .store
        .add_api_key(&auth::token_hash(&secret), &name, &secret[..10], &admin.name)
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(secret)
}

/// Revokes an API key.
#[server(prefix = "/api", endpoint = "revoke_api_key")]
pub async fn revoke_api_key(csrf: String, id: u64) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let admin = auth::require_with_csrf(store::Role::Admin, &csrf).await?;
    expect_context::<ServerContext>()
        .store
        .revoke_api_key(id, &admin.name)
        .map_err(|e| ServerFnError::new(e.to_string()))
}
