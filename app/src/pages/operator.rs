//! The operator page: progress and agreement per item, the items where annotators disagree, adding and
//! importing prompts, and the annotation guidelines.

use leptos::prelude::*;

use crate::api::{
    auth::{whoami, Me},
    operator::{add_prompt, guidelines, import_jsonl, overview, set_guidelines},
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
    let jsonl = RwSignal::new(String::new());
    let file_name = RwSignal::new(String::from("upload.jsonl"));
    let rules = RwSignal::new(String::new());
    let message = RwSignal::new(String::new());
    let loaded = Resource::new(|| (), |_| guidelines());
    Effect::new(move |_| {
        if let Some(Ok(g)) = loaded.get() {
            rules.set(g.text);
        }
    });
    let add = Action::new(move |t: &String| add_prompt(csrf.get_value(), t.clone()));
    let import =
        Action::new(move |(n, c): &(String, String)| import_jsonl(csrf.get_value(), n.clone(), c.clone()));
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
        if let Some(r) = import.value().get() {
            message.set(r.unwrap_or_else(clean));
            data.refetch();
        }
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
                    Ok(o) => {
                        let review: Vec<_> = o.items.iter().filter(|i| i.agreement.is_some_and(|w| w < REVIEW_BELOW)).cloned().collect();
                        view! {
                            <div class="stats">
                                <span id="stat-prompts">{o.prompts} " prompts"</span>
                                <span id="stat-rankings">{o.rankings} " rankings"</span>
                                <span id="stat-demos">{o.demonstrations} " written answers"</span>
                                <span id="stat-agreement">"mean Kendall's W " {fmt_w(o.mean_agreement)}</span>
                            </div>
                            <table id="items">
                                <thead><tr><th>"Prompt"</th><th>"Answers"</th><th>"Assigned"</th><th>"Judged"</th><th>"W"</th><th>"Flags"</th></tr></thead>
                                <tbody>
                                    {o.items.into_iter().map(|i| view! {
                                        <tr data-prompt-id=i.prompt_id>
                                            <td>{i.prompt}</td><td>{i.candidates}</td><td>{i.assigned}</td>
                                            <td>{i.done}</td><td>{fmt_w(i.agreement)}</td><td>{i.flags.join(", ")}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <h2>"Review: annotators disagree (W < " {REVIEW_BELOW} ")"</h2>
                            <ul id="review">
                                {review.into_iter().map(|i| view! {
                                    <li><strong>{i.prompt}</strong> " — W " {fmt_w(i.agreement)}
                                        <ul>{i.judgements.into_iter().map(|j| view! { <li>{j}</li> }).collect_view()}</ul>
                                    </li>
                                }).collect_view()}
                            </ul>
                        }.into_any()
                    }
                })}
            </Transition>
            <h2>"Add a prompt"</h2>
            <textarea id="new-prompt" prop:value=prompt on:input=move |ev| prompt.set(event_target_value(&ev))></textarea>
            <button id="add-prompt" on:click=move |_| { add.dispatch(prompt.get_untracked()); }>"Add"</button>
            <h2>"Import JSONL"</h2>
            <p class="hint">"Prompts, candidate sets, rankings, TRL pairs, HH-RLHF transcripts, demonstrations. All or nothing."</p>
            <input id="import-name" prop:value=file_name on:input=move |ev| file_name.set(event_target_value(&ev))/>
            <textarea id="import-jsonl" prop:value=jsonl on:input=move |ev| jsonl.set(event_target_value(&ev))></textarea>
            <button id="import" on:click=move |_| { import.dispatch((file_name.get_untracked(), jsonl.get_untracked())); }>"Import"</button>
            <h2>"Guidelines"</h2>
            <textarea id="guidelines-text" prop:value=rules on:input=move |ev| rules.set(event_target_value(&ev))></textarea>
            <button id="save-guidelines" on:click=move |_| { save_rules.dispatch(rules.get_untracked()); }>"Save guidelines"</button>
        </section>
    }
}
