//! Operator functions: prompts, imports, guidelines, progress and agreement. All refuse annotators.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Progress and agreement of one prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemStats {
    /// The prompt id.
    pub prompt_id: u64,
    /// The prompt text.
    pub prompt: String,
    /// Number of candidates.
    pub candidates: usize,
    /// Assignments handed out.
    pub assigned: usize,
    /// Judgements received (rankings and skips).
    pub done: usize,
    /// Kendall's W of the rankings (None with fewer than two).
    pub agreement: Option<f64>,
    /// Flags raised, by name.
    pub flags: Vec<String>,
    /// Each judgement.
    pub judgements: Vec<JudgementView>,
    /// The gold order as "2 > 1 = 3", when the item is a gold item.
    pub gold: Option<String>,
}

/// One judgement of an item as the operator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgementView {
    /// The ranking's id (to make its order the item's gold order).
    pub ranking_id: u64,
    /// Who judged (None for imports).
    pub annotator: Option<String>,
    /// "2 > 1 = 3" (candidate numbers in id order), or "skipped: reason".
    pub text: String,
    /// Whether it was a skip.
    pub skipped: bool,
}

/// The operator dashboard's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperatorOverview {
    /// Prompts stored.
    pub prompts: usize,
    /// Rankings stored (imported ones included).
    pub rankings: usize,
    /// Written answers stored.
    pub demonstrations: usize,
    /// Mean Kendall's W over items with at least two rankings.
    pub mean_agreement: Option<f64>,
    /// Per prompt, oldest first.
    pub items: Vec<ItemStats>,
}

#[cfg(feature = "ssr")]
fn store_err(e: store::StoreError) -> ServerFnError {
    ServerFnError::new(e.to_string())
}

/// Progress, agreement per item and overall.
#[server(prefix = "/api", endpoint = "overview")]
pub async fn overview() -> Result<OperatorOverview, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Operator).await?;
    let s = expect_context::<ServerContext>().store;
    let progress = s.progress().map_err(store_err)?;
    let names: std::collections::HashMap<u64, String> =
        s.users().map_err(store_err)?.into_iter().map(|u| (u.id, u.name)).collect();
    let mut items = Vec::new();
    for p in s.prompts().map_err(store_err)? {
        let cands: Vec<u64> = s.candidates_of(p.id).map_err(store_err)?.iter().map(|c| c.id).collect();
        let rankings = s.rankings_of(p.id).map_err(store_err)?;
        let refs: Vec<&store::Ranking> = rankings.iter().collect();
        let mut flags: Vec<String> =
            rankings.iter().flat_map(|r| r.flags.iter().map(|f| format!("{f:?}").to_lowercase())).collect();
        flags.sort();
        flags.dedup();
        let pr = progress.get(&p.id).copied().unwrap_or_default();
        let number =
            |id: &u64| cands.iter().position(|c| c == id).map_or("?".to_string(), |i| (i + 1).to_string());
        let order = |tiers: &[Vec<u64>]| {
            tiers
                .iter()
                .map(|t| t.iter().map(number).collect::<Vec<_>>().join(" = "))
                .collect::<Vec<_>>()
                .join(" > ")
        };
        let mut judgements = Vec::new();
        for r in &rankings {
            judgements.push(JudgementView {
                ranking_id: r.id,
                annotator: r.user_id.and_then(|id| names.get(&id).cloned()),
                text: match &r.skipped {
                    Some(why) => format!("skipped: {why}"),
                    None => order(&r.tiers),
                },
                skipped: r.skipped.is_some(),
            });
        }
        let gold = s.gold_of(p.id).map_err(store_err)?.map(|g| order(&g.tiers));
        items.push(ItemStats {
            prompt_id: p.id,
            prompt: p.text().chars().take(200).collect(),
            candidates: cands.len(),
            assigned: pr.assigned,
            done: rankings.len(),
            agreement: store::agreement::kendalls_w(&refs, &cands),
            flags,
            judgements,
            gold,
        });
    }
    let ws: Vec<f64> = items.iter().filter_map(|i| i.agreement).collect();
    Ok(OperatorOverview {
        prompts: items.len(),
        rankings: s.rankings().map_err(store_err)?.len(),
        demonstrations: s.demonstrations().map_err(store_err)?.len(),
        mean_agreement: (!ws.is_empty()).then(|| ws.iter().sum::<f64>() / ws.len() as f64),
        items,
    })
}

/// Adds one prompt (a user message).
#[server(prefix = "/api", endpoint = "add_prompt")]
pub async fn add_prompt(csrf: String, text: String) -> Result<u64, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    if text.trim().is_empty() {
        return Err(ServerFnError::new("the prompt is empty"));
    }
    let s = expect_context::<ServerContext>().store;
    let prompt = store::Prompt {
        id: s.new_id().map_err(store_err)?,
        messages: vec![store::Message { role: "user".into(), content: text }],
        source: format!("ui:{}", user.name),
        created_ms: store::now_ms(),
    };
    let id = prompt.id;
    let batch = store::Batch { prompts: vec![prompt], ..Default::default() };
    s.write_batch(&batch, &user.name, "prompt.add").map_err(store_err)?;
    Ok(id)
}

/// Imports JSONL text (the formats of `alignbox import`); all or nothing. Returns the summary.
#[server(input = leptos::server_fn::codec::Json, prefix = "/api", endpoint = "import_jsonl")]
pub async fn import_jsonl(csrf: String, file_name: String, content: String) -> Result<String, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    let ctx = expect_context::<ServerContext>();
    let s = ctx.store;
    let name = if file_name.trim().is_empty() { "upload.jsonl".to_string() } else { file_name };
    let batch =
        crate::ssr::parse_import(&s, content.as_bytes(), &name, &ctx.import_limits).map_err(store_err)?;
    let batch = batch.map_err(|e| {
        expect_context::<leptos_axum::ResponseOptions>()
            .set_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        ServerFnError::new(e.to_string())
    })?;
    s.write_batch(&batch, &user.name, "import").map_err(store_err)?;
    Ok(format!("imported {} from {name}", batch.summary()))
}

/// The current guidelines and their version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuidelinesView {
    /// The text (empty before any were set).
    pub text: String,
    /// 0 before any were set, then 1, 2, … (each ranking records the version it was made under).
    pub version: u64,
}

/// The guidelines shown to annotators.
#[server(prefix = "/api", endpoint = "guidelines")]
pub async fn guidelines() -> Result<GuidelinesView, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    auth::require(store::Role::Annotator).await?;
    let s = expect_context::<ServerContext>().store;
    Ok(GuidelinesView {
        text: s.guidelines().map_err(store_err)?,
        version: s.guidelines_version().map_err(store_err)?,
    })
}

/// Replaces the guidelines with a new version; returns its number (rankings record the version they were made
/// under).
#[server(prefix = "/api", endpoint = "set_guidelines")]
pub async fn set_guidelines(csrf: String, text: String) -> Result<u64, ServerFnError> {
    use crate::ssr::{auth, ServerContext};
    let user = auth::require_with_csrf(store::Role::Operator, &csrf).await?;
    expect_context::<ServerContext>().store.set_guidelines(&text, &user.name).map_err(store_err)
}
