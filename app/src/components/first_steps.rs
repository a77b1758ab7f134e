//! The first-steps panel of a fresh appliance: who to add, where data comes from (with the shipped sample
//! prompts one click away) and what the loop will do with the rankings.

use leptos::prelude::*;

use crate::api::samples::{getting_started, load_sample_prompts, FirstStepsState};

/// Shown while the store holds no prompts (to operators, with "Load N sample prompts"), and to visitors who are
/// not logged in when `for_visitors`.
#[component]
pub fn FirstSteps(
    /// Also show the panel (without the button) to visitors who are not logged in (the home page).
    #[prop(optional)]
    for_visitors: bool,
) -> impl IntoView {
    let state = Resource::new(|| (), |_| getting_started());
    let load = Action::new(|csrf: &String| load_sample_prompts(csrf.clone()));
    let message = move || match load.value().get() {
        Some(Ok(m)) => m,
        Some(Err(e)) => e.to_string().replace("error running server function: ", ""),
        None => String::new(),
    };
    // Once loaded, the panel stays (with its message) until the page is left.
    let shown = move |g: &FirstStepsState| {
        load.value().get().is_some() || g.prompts == Some(0) || (for_visitors && !g.logged_in)
    };
    view! {
        <Transition fallback=|| ()>
            {move || state.get().and_then(|r| r.ok()).filter(shown).map(|g| view! {
                <section id="first-steps" class="card first-steps">
                    <h2>"First steps"</h2>
                    <ol>
                        <li>"Add annotators: an admin adds accounts on the "<a href="/users">"Users"</a>" page (or "
                            <code>"alignbox users add NAME --role annotator"</code>" on a stopped server)."</li>
                        <li>"Bring prompts: import a JSONL file on the "<a href="/operator">"Operator"</a>
                            " page (prompts, candidate sets, rankings, TRL pairs), or start with the samples."</li>
                        <li>"Rank: each prompt gets answers sampled from the current policy; annotators rank them at "
                            <a href="/annotate">"Annotate"</a>". After enough new rankings (the loop's "
                            <code>"rm_after"</code>", on the "<a href="/training">"Training"</a>" page) the loop "
                            "trains the reward model, updates the policy, evaluates it and promotes it when it wins."</li>
                    </ol>
                    {g.csrf.clone().map(|csrf| view! {
                        <p>
                            <button id="load-samples" type="button" disabled=move || load.pending().get()
                                on:click=move |_| { load.dispatch(csrf.clone()); }>
                                {format!("Load {} sample prompts", g.samples)}
                            </button>
                            " "
                            <span id="samples-message" role="status">{message}</span>
                        </p>
                    })}
                    {(!g.logged_in).then(|| view! {
                        <p>"Log in first: the first "<code>"alignbox serve"</code>" printed the admin's one-time password."</p>
                    })}
                </section>
            })}
        </Transition>
    }
}
