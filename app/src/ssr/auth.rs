//! Accounts and sessions: argon2 password hashes, random session tokens (only their SHA-256 is stored), an
//! HttpOnly SameSite=Strict cookie, a per-session CSRF token that every state-changing server function checks,
//! and role checks done on the server.

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use leptos::prelude::*;
use sha2::{Digest, Sha256};
use store::{Role, Session, User};

use super::ServerContext;

/// The session cookie's name.
pub const COOKIE: &str = "alignbox_session";
/// How long a session lives (ms): 12 hours.
pub const SESSION_MS: u64 = 12 * 3600 * 1000;

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("operating system randomness");
    let salt = SaltString::encode_b64(&bytes).expect("16-byte salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashing").to_string()
}

/// Whether `password` matches a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("operating system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a session is stored under.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A readable random password for generated accounts.
pub fn random_password() -> String {
    random_token()[..20].to_string()
}

fn err(msg: &str) -> ServerFnError {
    ServerFnError::ServerError(msg.to_string())
}

/// The session token from the request's cookies.
pub async fn request_token() -> Option<String> {
    let headers: axum::http::HeaderMap = leptos_axum::extract().await.ok()?;
    headers.get_all(axum::http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.split(';')
            .map(str::trim)
            .find_map(|kv| kv.strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')).map(String::from))
    })
}

/// The session token in a request's `Cookie` headers.
pub fn token_from_headers(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(axum::http::header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        c.split(';')
            .map(str::trim)
            .find_map(|kv| kv.strip_prefix(COOKIE).and_then(|r| r.strip_prefix('=')).map(String::from))
    })
}

/// The enabled user with a live session in a plain axum request's headers (event streams, downloads).
pub fn user_from_headers(store: &store::Store, headers: &axum::http::HeaderMap) -> Option<User> {
    session_from_headers(store, headers).map(|(u, _)| u)
}

/// The enabled user and their live session in a plain axum request's headers (uploads check its CSRF token).
pub fn session_from_headers(
    store: &store::Store,
    headers: &axum::http::HeaderMap,
) -> Option<(User, Session)> {
    let hash = token_hash(&token_from_headers(headers)?);
    let session = store.session(&hash).ok()??;
    if session.expires_ms < store::now_ms() {
        return None;
    }
    let user = store.user(session.user_id).ok()?.filter(|u| !u.disabled)?;
    Some((user, session))
}

/// Whether a request's CSRF token is the session's (compared in constant time).
pub fn csrf_matches(csrf: &str, session: &Session) -> bool {
    !csrf.is_empty() && constant_time_eq(csrf.as_bytes(), session.csrf.as_bytes())
}

/// The logged-in user and their session, if the request carries a live session of an enabled user.
pub async fn current() -> Result<Option<(User, Session)>, ServerFnError> {
    let ctx = expect_context::<ServerContext>();
    let Some(token) = request_token().await else { return Ok(None) };
    let hash = token_hash(&token);
    let Some(session) = ctx.store.session(&hash).map_err(|e| err(&e.to_string()))? else { return Ok(None) };
    if session.expires_ms < store::now_ms() {
        let _ = ctx.store.drop_session(&hash);
        return Ok(None);
    }
    match ctx.store.user(session.user_id).map_err(|e| err(&e.to_string()))? {
        Some(u) if !u.disabled => Ok(Some((u, session))),
        _ => Ok(None),
    }
}

/// The logged-in user with at least `role`, or an error (401 without a session, 403 with too small a role).
pub async fn require(role: Role) -> Result<(User, Session), ServerFnError> {
    let opts = expect_context::<leptos_axum::ResponseOptions>();
    match current().await? {
        None => {
            opts.set_status(axum::http::StatusCode::UNAUTHORIZED);
            Err(err("not logged in"))
        }
        Some((u, _)) if u.role < role => {
            opts.set_status(axum::http::StatusCode::FORBIDDEN);
            Err(err(&format!("this needs the {} role", role.as_str())))
        }
        Some(found) => Ok(found),
    }
}

/// Like [`require`], and the request's CSRF token must be the session's.
pub async fn require_with_csrf(role: Role, csrf: &str) -> Result<User, ServerFnError> {
    let (user, session) = require(role).await?;
    if !csrf_matches(csrf, &session) {
        expect_context::<leptos_axum::ResponseOptions>().set_status(axum::http::StatusCode::FORBIDDEN);
        return Err(err("missing or wrong CSRF token"));
    }
    Ok(user)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The Set-Cookie value for a session token (`None` clears the cookie).
pub fn cookie(token: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some(t) => {
            format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", SESSION_MS / 1000)
        }
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("correct horse", "garbage"));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_a_key() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a).len(), 32);
        assert_ne!(token_hash(&a), a.as_bytes());
    }
}
