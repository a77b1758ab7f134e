//! The operator page's annotator table: accuracy on gold items, agreement with peers, items per hour, the weight
//! `--weight-by-agreement` gives their comparisons, and a Pause / Resume button per annotator.

use leptos::prelude::*;

use crate::api::quality::{annotators, set_paused, AnnotatorStats};

fn share(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.0}%", 100.0 * v))
}

fn rate(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0}"))
}

/// The table (it reloads after each pause or resume, and when `reload` changes).
#[component]
pub fn Annotators(
    /// The session's CSRF token.
    csrf: String,
    /// Bumped by the page when the data changed (an import, a gold item).
    reload: RwSignal<u64>,
) -> impl IntoView {
    let csrf = StoredValue::new(csrf);
    let rows = Resource::new(move || reload.get(), |_| annotators());
    let toggle = Action::new(move |(id, paused): &(u64, bool)| set_paused(csrf.get_value(), *id, *paused));
    let message = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(r) = toggle.value().get() {
            message.set(r.unwrap_or_else(|e| e.to_string().replace("error running server function: ", "")));
            rows.refetch();
        }
    });
    let row = move |a: AnnotatorStats| {
        let (id, paused) = (a.user_id, a.paused);
        view! {
            <tr data-annotator=a.name.clone() class:paused=paused>
                <td>{a.name.clone()}</td>
                <td class="num">{a.judged}</td>
                <td class="num">{a.skipped}</td>
                <td class="num">{a.gold_judged}</td>
                <td class="num gold-accuracy">{share(a.gold_accuracy)}</td>
                <td class="num">{a.peer_items}</td>
                <td class="num peer-agreement">{share(a.peer_agreement)}</td>
                <td class="num">{rate(a.items_per_hour)}</td>
                <td class="num weight">{format!("{:.2}", a.weight)}</td>
                <td class="queue-state">{if paused { "paused" } else { "active" }}</td>
                <td>
                    <button type="button" class="pause" on:click=move |_| { toggle.dispatch((id, !paused)); }>
                        {if paused { "Resume" } else { "Pause" }}
                    </button>
                </td>
            </tr>
        }
    };
    view! {
        <h2>"Annotators"</h2>
        <p class="hint">"Accuracy on gold items and agreement with peers count pairs of answers: the same order (or both tied) "
            "is 1, one tie ½, the opposite order 0; chance is 50%. The weight ("<code>"--weight-by-agreement"</code>
            ") is 2q − 1 of the gold accuracy once an annotator has 3 gold items, else of the peer agreement once they "
            "share 3 items, else 1. "
            <a id="download-annotators" href="/api/data/annotators.jsonl" download="annotators.jsonl" rel="external">"annotators.jsonl"</a></p>
        <p id="annotators-message" class="saved" aria-live="polite">{move || message.get()}</p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || rows.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                Ok(list) => view! {
                    <table id="annotators">
                        <thead><tr>
                            <th>"Annotator"</th><th>"Judged"</th><th>"Skipped"</th><th>"Gold"</th><th>"Gold accuracy"</th>
                            <th>"Shared"</th><th>"Peer agreement"</th><th>"Items / hour"</th><th>"Weight"</th>
                            <th>"Queue"</th><th></th>
                        </tr></thead>
                        <tbody>{list.into_iter().map(row).collect_view()}</tbody>
                    </table>
                }.into_any(),
            })}
        </Transition>
    }
}
