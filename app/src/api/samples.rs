//! Getting started: what a fresh appliance lacks, and the shipped sample prompts (`assets/demo/prompts.jsonl`)
//! that an operator can load with one click.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the first-steps panel needs to know about the caller and the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FirstStepsState {
    /// Whether anyone is logged in.
    pub logged_in: bool,
    /// Prompts stored; only for operators and admins (None for others).
    pub prompts: Option<usize>,
    /// The caller's CSRF token when they may load the samples.
    pub csrf: Option<String>,
    /// How many sample prompts ship with the appliance.
    pub samples: usize,
}

#[cfg(feature = "ssr")]
const SAMPLES: &str = include_str!("../../../assets/demo/prompts.jsonl");

#[cfg(feature = "ssr")]
fn sample_batch(s: &store::Store) -> Result<store::Batch, ServerFnError> {
    let batch = crate::ssr::parse_import(s, SAMPLES.as_bytes(), "samples/prompts.jsonl", &Default::default())
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    batch.map_err(|e| ServerFnError::new(e.to_string()))
}

/// The caller and the store, for the first-steps panel (anyone may ask; counts only for operators).
#[server(prefix = "/api", endpoint = "getting_started")]
pub async fn getting_started() -> Result<FirstStepsState, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let samples = SAMPLES.lines().filter(|l| !l.trim().is_empty()).count();
    let Some((user, session)) = auth::current().await? else {
        return Ok(FirstStepsState { logged_in: false, prompts: None, csrf: None, samples });
    };
    if user.role < store::Role::Operator {
        return Ok(FirstStepsState { logged_in: true, prompts: None, csrf: None, samples });
    }
    let s = expect_context::<ServerContext>().store;
    let prompts = s.prompt_count();
    Ok(FirstStepsState { logged_in: true, prompts: Some(prompts), csrf: Some(session.csrf), samples })
}

/// Adds the shipped sample prompts (operators; those already stored are left out, so a second click adds
/// nothing). Returns what it did, in words.
#[server(prefix = "/api", endpoint = "load_sample_prompts")]
pub async fn load_sample_prompts(csrf: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let s = expect_context::<ServerContext>().store;
    let key =
        |m: &[store::Message]| m.iter().map(|m| format!("{}\u{1}{}", m.role, m.content)).collect::<Vec<_>>();
    let stored: std::collections::HashSet<Vec<String>> = s
        .prompts()
        .map_err(|e| ServerFnError::new(e.to_string()))?
        .iter()
        .map(|p| key(&p.messages))
        .collect();
    let mut batch = sample_batch(&s)?;
    let all = batch.prompts.len();
    batch.prompts.retain(|p| !stored.contains(&key(&p.messages)));
    let new = batch.prompts.len();
    if new == 0 {
        return Ok(format!("The {all} sample prompts are already loaded."));
    }
    s.write_batch(&batch, &user.name, "import.samples").map_err(|e| ServerFnError::new(e.to_string()))?;
    Ok(format!("Loaded {new} sample prompts. Candidates are being generated for them."))
}
