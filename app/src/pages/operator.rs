//! The operator page: progress and agreement per item, the items where annotators disagree, gold items, the
//! annotators' quality (with pausing), adding prompts, uploading JSONL files, and the annotation guidelines.

use leptos::prelude::*;

use crate::api::{
    auth::{whoami, Me},
    operator::{add_prompt, guidelines, overview, set_guidelines, ItemStats, OperatorOverview},
    quality::{mark_gold, unmark_gold},
};

/// Items whose agreement is below this are listed for review.
const REVIEW_BELOW: f64 = 0.5;

/// The page (operators and admins; others see why not).
#[component]
pub fn OperatorPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <leptos_meta::Title text="Operator · alignbox"/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || me.get().map(|r| match r {
                Ok(Some(me)) if me.role != "annotator" => view! { <Operator me/> }.into_any(),
                Ok(Some(_)) => view! { <p id="forbidden" class="error">"This page is for operators."</p> }.into_any(),
                _ => view! { <p>"You are not logged in. " <a href="/login">"Log in"</a></p> }.into_any(),
            })}
        </Suspense>
    }
}

fn fmt_w(w: Option<f64>) -> String {
    w.map_or("–".into(), |w| format!("{w:.2}"))
}

#[component]
fn Operator(me: Me) -> impl IntoView {
    let data = Resource::new(|| (), |_| overview());
    let csrf = StoredValue::new(me.csrf);
    let prompt = RwSignal::new(String::new());
    let reload = RwSignal::new(0u64);
    let rules = RwSignal::new(String::new());
    let message = RwSignal::new(String::new());
    let loaded = Resource::new(|| (), |_| guidelines());
    Effect::new(move |_| {
        if let Some(Ok(g)) = loaded.get() {
            rules.set(g.text);
        }
    });
    let add = Action::new(move |t: &String| add_prompt(csrf.get_value(), t.clone()));
    let gold = Action::new(move |(prompt_id, ranking): &(u64, Option<u64>)| {
        let (csrf, prompt_id, ranking) = (csrf.get_value(), *prompt_id, *ranking);
        async move {
            match ranking {
                Some(r) => mark_gold(csrf, r).await,
                None => unmark_gold(csrf, prompt_id).await,
            }
        }
    });
    let save_rules = Action::new(move |t: &String| set_guidelines(csrf.get_value(), t.clone()));
    let clean = |e: ServerFnError| e.to_string().replace("error running server function: ", "");
    Effect::new(move |_| {
        if let Some(r) = add.value().get() {
            message.set(r.map(|id| format!("Added prompt {id}.")).unwrap_or_else(clean));
            prompt.set(String::new());
            data.refetch();
        }
    });
    Effect::new(move |_| {
        if let Some(r) = gold.value().get() {
            message.set(r.unwrap_or_else(clean));
            data.refetch();
            reload.update(|n| *n += 1);
        }
    });
    let refresh = Callback::new(move |()| {
        data.refetch();
        reload.update(|n| *n += 1);
    });
    Effect::new(move |_| {
        if let Some(r) = save_rules.value().get() {
            message.set(r.map(|v| format!("Guidelines saved as version {v}.")).unwrap_or_else(clean));
        }
    });
    view! {
        <section class="operator">
            <h1>"Data and agreement"</h1>
            <p id="operator-message" class="saved" aria-live="polite">{move || message.get()}</p>
            <crate::components::first_steps::FirstSteps/>
            <p class="downloads">"Download the preference data: "
                <a id="download-rankings" href="/api/data/rankings.jsonl" download="rankings.jsonl" rel="external">"rankings.jsonl"</a>
                " (prompt, responses, tiers) · "
                <a id="download-pairs" href="/api/data/pairs.jsonl" download="pairs.jsonl" rel="external">"pairs.jsonl"</a>
                " (TRL prompt/chosen/rejected)"</p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(o) => overview_view(o, gold),
                })}
            </Transition>
            <h2>"Add a prompt"</h2>
            <textarea id="new-prompt" prop:value=prompt on:input=move |ev| prompt.set(event_target_value(&ev))></textarea>
            <button id="add-prompt" on:click=move |_| { add.dispatch(prompt.get_untracked()); }>"Add"</button>
            <h2>"Import JSONL"</h2>
            <p class="hint">"Prompts, candidate sets, rankings, TRL pairs, HH-RLHF transcripts, demonstrations, and gold items "
                "(a ranking with "<code>"\"gold\": true"</code>"). All or nothing: a bad line names its file, line and field."</p>
            <crate::components::upload::Upload csrf=csrf.get_value() on_done=refresh/>
            <crate::components::annotators::Annotators csrf=csrf.get_value() reload/>
            <h2>"Guidelines"</h2>
            <textarea id="guidelines-text" prop:value=rules on:input=move |ev| rules.set(event_target_value(&ev))></textarea>
            <button id="save-guidelines" on:click=move |_| { save_rules.dispatch(rules.get_untracked()); }>"Save guidelines"</button>
        </section>
    }
}

/// The numbers, the items table and the review list.
fn overview_view(o: OperatorOverview, gold: GoldAction) -> AnyView {
    let review: Vec<_> =
        o.items.iter().filter(|i| i.agreement.is_some_and(|w| w < REVIEW_BELOW)).cloned().collect();
    view! {
        <div class="stats">
            <span id="stat-prompts">{o.prompts} " prompts"</span>
            <span id="stat-rankings">{o.rankings} " rankings"</span>
            <span id="stat-demos">{o.demonstrations} " written answers"</span>
            <span id="stat-agreement">"mean Kendall's W " {fmt_w(o.mean_agreement)}</span>
        </div>
        <table id="items">
            <thead><tr><th>"Prompt"</th><th>"Answers"</th><th>"Assigned"</th><th>"Judged"</th><th>"W"</th><th>"Flags"</th><th>"Gold order"</th></tr></thead>
            <tbody>
                {o.items.into_iter().map(|i| item_row(i, gold)).collect_view()}
            </tbody>
        </table>
        <h2>"Review: annotators disagree (W < " {REVIEW_BELOW} ")"</h2>
        <ul id="review">
            {review.into_iter().map(|i| view! {
                <li><strong>{i.prompt}</strong> " — W " {fmt_w(i.agreement)}
                    <ul>{i.judgements.into_iter().map(|j| view! { <li>{j.text}</li> }).collect_view()}</ul>
                </li>
            }).collect_view()}
        </ul>
    }.into_any()
}

type GoldAction = Action<(u64, Option<u64>), Result<String, ServerFnError>>;

/// One row of the items table; the last cell shows the gold order (with "Unmark"), or a "Make gold" button per
/// judgement that orders the answers.
fn item_row(i: ItemStats, gold: GoldAction) -> impl IntoView {
    let prompt_id = i.prompt_id;
    let gold_cell = match i.gold.clone() {
        Some(order) => view! {
            <span class="gold-order">{format!("★ {order}")}</span>" "
            <button type="button" class="unmark-gold" on:click=move |_| { gold.dispatch((prompt_id, None)); }>"Unmark"</button>
        }
        .into_any(),
        None => i
            .judgements
            .iter()
            .filter(|j| !j.skipped)
            .map(|j| {
                let (rid, label) = (j.ranking_id, format!("{} ({})", j.text, j.annotator.clone().unwrap_or("import".into())));
                view! {
                    <button type="button" class="make-gold" data-ranking-id=rid title="Make this order the item's gold order"
                        on:click=move |_| { gold.dispatch((prompt_id, Some(rid))); }>{format!("☆ {label}")}</button>
                }
            })
            .collect_view()
            .into_any(),
    };
    view! {
        <tr data-prompt-id=i.prompt_id class:gold=i.gold.is_some()>
            <td>{i.prompt}</td><td>{i.candidates}</td><td>{i.assigned}</td>
            <td>{i.done}</td><td>{fmt_w(i.agreement)}</td><td>{i.flags.join(", ")}</td>
            <td class="gold-cell">{gold_cell}</td>
        </tr>
    }
}
