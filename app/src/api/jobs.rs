//! Jobs, the loop, model versions and exports, for the operator dashboard. Every function refuses annotators;
//! state-changing ones check the CSRF token.

use leptos::prelude::*;
use types::{
    views::{Dashboard, JobDetail, JobView},
    LoopSettings,
};

#[cfg(feature = "ssr")]
fn fail(e: impl std::fmt::Display) -> ServerFnError {
    ServerFnError::new(e.to_string())
}

/// The whole dashboard.
#[server(prefix = "/api", endpoint = "dashboard")]
pub async fn load_dashboard() -> Result<Dashboard, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    let ctx = expect_context::<ServerContext>();
    ctx.control.dashboard().map_err(fail)
}

/// A job, its log and its curves.
#[server(prefix = "/api", endpoint = "job_detail")]
pub async fn load_job(id: u64) -> Result<JobDetail, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    expect_context::<ServerContext>().control.job_detail(id).map_err(fail)
}

/// The memory estimate (and the checked command) of a job before it is started.
#[server(prefix = "/api", endpoint = "estimate_job")]
pub async fn estimate_job(command: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    expect_context::<ServerContext>().control.estimate(&command).map_err(fail)
}

/// Queues a job (`train rm --steps 40`, `train ppo --reward rm-1`, `eval policy …`, `candidates`, `bundle ID`).
#[server(prefix = "/api", endpoint = "submit_job")]
pub async fn submit_job(csrf: String, command: String) -> Result<JobView, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    expect_context::<ServerContext>().control.submit(&command, &format!("user:{}", user.name)).map_err(|e| {
        let status = if e.is_invalid() {
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        } else {
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        };
        expect_context::<leptos_axum::ResponseOptions>().set_status(status);
        fail(e)
    })
}

/// Cancels a queued or running job.
#[server(prefix = "/api", endpoint = "cancel_job")]
pub async fn cancel_job(csrf: String, id: u64) -> Result<JobView, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let job = expect_context::<ServerContext>().store.cancel_job(id, &user.name).map_err(fail)?;
    Ok(crate::ssr::views::job_view(&job))
}

/// Replaces the loop's thresholds and options (not whether it is paused: see [`pause_loop`]).
#[server(input = leptos::server_fn::codec::Json, prefix = "/api", endpoint = "set_loop")]
pub async fn set_loop(csrf: String, settings: LoopSettings) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let _user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    if settings.rm_after == 0 || !(0.0..=1.0).contains(&settings.min_win_rate) || settings.kl_budget <= 0.0 {
        return Err(ServerFnError::new(
            "rm_after must be positive, min_win_rate in [0, 1] and kl_budget positive",
        ));
    }
    let ctx = expect_context::<ServerContext>();
    ctx.control.check_loop_options(&settings).map_err(fail)?;
    // Whether the loop is paused is not the form's to decide: a page opened before the sentinel paused the loop
    // would resume it by saving.
    ctx.store
        .update_loop_settings(|s| *s = LoopSettings { paused: s.paused, ..settings.clone() })
        .map_err(fail)?;
    Ok(())
}

/// Pauses (true) or resumes (false) the loop.
#[server(prefix = "/api", endpoint = "pause_loop")]
pub async fn pause_loop(csrf: String, paused: bool) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let ctx = expect_context::<ServerContext>();
    let mut s = ctx.store.loop_settings().map_err(fail)?;
    s.paused = paused;
    let what = if paused { "paused" } else { "resumed" };
    ctx.store.set_loop_settings(&s, &user.name, what).map_err(fail)
}

/// Makes a policy version the current one (candidates come from it).
#[server(prefix = "/api", endpoint = "promote")]
pub async fn promote(csrf: String, version: String) -> Result<(), ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    expect_context::<ServerContext>().control.promote(&version, &format!("user:{}", user.name)).map_err(fail)
}

/// Goes back to the policy that was current before the last promotion. Returns it.
#[server(prefix = "/api", endpoint = "rollback")]
pub async fn rollback(csrf: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    expect_context::<ServerContext>().control.rollback(&format!("user:{}", user.name)).map_err(fail)
}
