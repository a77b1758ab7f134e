//! Logging in and out, and who is logged in.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The logged-in user as the UI sees them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Me {
    /// Login name.
    pub name: String,
    /// `annotator`, `operator` or `admin`.
    pub role: String,
    /// The CSRF token to send with every state-changing call.
    pub csrf: String,
}

/// Checks a name and password; on success sets the session cookie and returns the user.
#[server(prefix = "/api", endpoint = "login")]
pub async fn login(name: String, password: String) -> Result<Me, ServerFnError> {
    use crate::ssr::{auth, throttle::Subject, ServerContext};
    let ctx = expect_context::<ServerContext>();
    let opts = expect_context::<leptos_axum::ResponseOptions>();
    let address = leptos_axum::extract::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .await
        .ok()
        .map(|axum::extract::ConnectInfo(a)| a.ip());
    let account = Subject::account(&name);
    let subjects: Vec<Subject> =
        std::iter::once(account.clone()).chain(address.map(Subject::Address)).collect();
    let refuse = |r: crate::ssr::throttle::Refused| {
        opts.set_status(axum::http::StatusCode::TOO_MANY_REQUESTS);
        opts.insert_header(axum::http::header::RETRY_AFTER, r.retry_after_s.into());
        ServerFnError::new(format!(
            "too many failed log-ins for this account or address: try again in {} s",
            r.retry_after_s
        ))
    };
    // Past the allowed failures nothing is checked (not even the right password) until the delay is over.
    if let Err(r) = ctx.throttle.check(&subjects, store::now_ms()) {
        return Err(refuse(r));
    }
    let user = ctx.store.user_by_name(name.trim()).map_err(|e| ServerFnError::new(e.to_string()))?;
    // Verify against a dummy hash for unknown names so that timing does not reveal which names exist.
    let (ok, user) = match user {
        Some(u) => (auth::verify_password(&password, &u.password_hash) && !u.disabled, Some(u)),
        None => {
            auth::verify_password(&password, DUMMY_HASH);
            (false, None)
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        let shown = address.map_or_else(|| "unknown address".to_string(), |a| a.to_string());
        if let Some(r) = ctx.throttle.failed(&subjects, store::now_ms()) {
            tracing::warn!(
                name = name.trim(),
                address = shown,
                delay_s = r.retry_after_s,
                "log-ins throttled"
            );
            return Err(refuse(r));
        }
        tracing::info!(name = name.trim(), address = shown, "failed log-in");
        opts.set_status(axum::http::StatusCode::UNAUTHORIZED);
        return Err(ServerFnError::new("wrong name or password"));
    };
    ctx.throttle.succeeded(&account);
    let token = auth::random_token();
    let csrf = auth::random_token();
    let session = store::Session {
        user_id: user.id,
        csrf: csrf.clone(),
        expires_ms: store::now_ms() + auth::SESSION_MS,
    };
    ctx.store
        .put_session(&auth::token_hash(&token), &session)
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let cookie = auth::cookie(Some(&token), ctx.secure_cookies);
    opts.append_header(axum::http::header::SET_COOKIE, cookie.parse().expect("valid cookie header"));
    Ok(Me { name: user.name, role: user.role.as_str().into(), csrf })
}

#[cfg(feature = "ssr")]
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2i1ds1oAAAvc6vRHHUfXdjBPxzV9XK5BaCxbqa4b0p8";

/// Ends the session.
#[server(prefix = "/api", endpoint = "logout")]
pub async fn logout(csrf: String) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require_with_csrf(store::Role::Annotator, &csrf).await?;
    let ctx = expect_context::<ServerContext>();
    if let Some(token) = auth::request_token().await {
        ctx.store.drop_session(&auth::token_hash(&token)).map_err(|e| ServerFnError::new(e.to_string()))?;
    }
    let opts = expect_context::<leptos_axum::ResponseOptions>();
    opts.append_header(
        axum::http::header::SET_COOKIE,
        auth::cookie(None, ctx.secure_cookies).parse().unwrap(),
    );
    Ok(())
}

/// Ends every session of the logged-in user, on every browser ("log out everywhere"); returns how many ended.
#[server(prefix = "/api", endpoint = "logout_everywhere")]
pub async fn logout_everywhere(csrf: String) -> Result<usize, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Annotator, &csrf).await?;
    let ctx = expect_context::<ServerContext>();
    let ended = ctx.store.drop_sessions_of(user.id).map_err(|e| ServerFnError::new(e.to_string()))?;
    let opts = expect_context::<leptos_axum::ResponseOptions>();
    opts.append_header(
        axum::http::header::SET_COOKIE,
        auth::cookie(None, ctx.secure_cookies).parse().unwrap(),
    );
    Ok(ended)
}

/// The logged-in user, or `None`.
#[server(prefix = "/api", endpoint = "whoami")]
pub async fn whoami() -> Result<Option<Me>, ServerFnError> {
    Ok(crate::ssr::auth::current().await?.map(|(u, s)| Me {
        name: u.name,
        role: u.role.as_str().into(),
        csrf: s.csrf,
    }))
}
