//! The annotate page: a prompt and its candidates, ranked by dragging with the mouse or with the keyboard
//! (number keys place the focused answer at that rank, arrows move it, `t` ties it with the one above, Enter
//! submits), plus flags, skipping with a reason and writing a better answer. Items of two answers use arena
//! mode instead (`super::arena`).

use leptos::prelude::*;

use crate::api::{
    annotate::{next_item, submit_ranking, Item, Submission},
    auth::{whoami, Me},
    operator::guidelines,
};
use crate::components::answer::{AnswerText, FlagBoxes};

/// The client-side ranking: positions best first, each holding an index into the item's candidates, and
/// whether the answer at a position is tied with the one above it.
#[derive(Clone, Debug, PartialEq)]
struct Order {
    slots: Vec<usize>,
    tied: Vec<bool>,
}

impl Order {
    fn new(n: usize) -> Self {
        Self { slots: (0..n).collect(), tied: vec![false; n] }
    }

    /// Moves the answer at position `from` to position `to`.
    fn move_to(&mut self, from: usize, to: usize) {
        if from >= self.slots.len() || to >= self.slots.len() || from == to {
            return;
        }
        let c = self.slots.remove(from);
        let t = self.tied.remove(from);
        self.slots.insert(to, c);
        self.tied.insert(to, t);
        self.tied[0] = false;
    }

    fn toggle_tie(&mut self, pos: usize) {
        if pos > 0 && pos < self.tied.len() {
            self.tied[pos] = !self.tied[pos];
        }
    }

    /// Tiers of candidate ids, best first.
    fn tiers(&self, item: &Item) -> Vec<Vec<u64>> {
        let mut tiers: Vec<Vec<u64>> = Vec::new();
        for (pos, &c) in self.slots.iter().enumerate() {
            let id = item.candidates[c].id;
            match tiers.last_mut() {
                Some(t) if self.tied[pos] => t.push(id),
                _ => tiers.push(vec![id]),
            }
        }
        tiers
    }

    /// The displayed rank of each position (tied answers share a rank).
    fn ranks(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.slots.len());
        let mut rank = 0;
        for pos in 0..self.slots.len() {
            if pos == 0 || !self.tied[pos] {
                rank = pos + 1;
            }
            out.push(rank);
        }
        out
    }
}

/// The page: who is logged in decides what shows.
#[component]
pub fn AnnotatePage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <leptos_meta::Title text="Annotate · alignbox"/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || me.get().map(|r| match r {
                Ok(Some(me)) => view! { <Annotator me/> }.into_any(),
                _ => view! {
                    <section class="card narrow">
                        <p>"You are not logged in."</p>
                        <a id="to-login" href="/login">"Log in"</a>
                    </section>
                }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Annotator(me: Me) -> impl IntoView {
    let item = Resource::new(|| (), |_| next_item());
    let rules = Resource::new(|| (), |_| guidelines());
    let saved = RwSignal::new(None::<String>);
    let csrf = StoredValue::new(me.csrf.clone());
    view! {
        <section class="annotate">
            <p class="whoami">"Annotating as " <strong id="me">{me.name.clone()}</strong></p>
            <p id="saved" class="saved" aria-live="polite">{move || saved.get().unwrap_or_default()}</p>
            <details id="guidelines" class="guidelines">
                <summary id="guidelines-title"><Suspense fallback=|| "Guidelines">
                    {move || match rules.get().and_then(Result::ok) {
                        Some(g) if g.version > 0 => format!("Guidelines (version {})", g.version),
                        _ => "Guidelines".to_string(),
                    }}
                </Suspense></summary>
                <Suspense fallback=|| ()>
                    <p class="rules">{move || rules.get().and_then(Result::ok).map(|g| g.text).filter(|g| !g.is_empty())
                        .unwrap_or_else(|| "No guidelines yet: prefer the most helpful, honest and harmless answer.".into())}</p>
                </Suspense>
            </details>
            <Transition fallback=|| view! { <p>"Loading the next item…"</p> }>
                {move || item.get().map(|r| match r {
                    // Two answers: arena mode, side by side; more: the ranked list.
                    Ok(Some(it)) if it.candidates.len() == 2 => view! {
                        <super::arena::ArenaView item=it csrf=csrf.get_value() on_saved=move |msg| {
                            saved.set(Some(msg));
                            item.refetch();
                        }/>
                    }.into_any(),
                    Ok(Some(it)) => view! {
                        <ItemView item=it csrf=csrf.get_value() on_saved=move |msg| {
                            saved.set(Some(msg));
                            item.refetch();
                        }/>
                    }.into_any(),
                    Ok(None) => view! { <p id="queue-empty">"Your queue is empty. Thank you!"</p> }.into_any(),
                    Err(e) => {
                        let why = e.to_string().replace("error running server function: ", "");
                        let paused = why == crate::api::annotate::PAUSED;
                        view! { <p id={if paused { "queue-paused" } else { "queue-error" }} class="error">{why}</p> }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ItemView(
    item: Item,
    csrf: String,
    on_saved: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let n = item.candidates.len();
    let order = RwSignal::new(Order::new(n));
    let focused = RwSignal::new(0usize);
    let dragging = RwSignal::new(None::<usize>);
    let flags = RwSignal::new(Vec::<String>::new());
    let skip_reason = RwSignal::new(String::new());
    let better = RwSignal::new(String::new());
    let error = RwSignal::new(String::new());
    let item = StoredValue::new(item);
    let csrf = StoredValue::new(csrf);

    let submit = Action::new(move |s: &Submission| submit_ranking(csrf.get_value(), s.clone()));
    Effect::new(move |_| match submit.value().get() {
        Some(Ok(id)) => on_saved(format!("Saved ranking {id}.")),
        Some(Err(e)) => error.set(e.to_string().replace("error running server function: ", "")),
        None => {}
    });
    let send = move |skipped: Option<String>| {
        let it = item.get_value();
        let tiers = if skipped.is_some() { Vec::new() } else { order.get_untracked().tiers(&it) };
        let better_answer = Some(better.get_untracked()).filter(|b| !b.trim().is_empty());
        submit.dispatch(Submission {
            prompt_id: it.prompt_id,
            tiers,
            skipped,
            flags: flags.get_untracked(),
            better_answer,
            // Measured by the server from when the item was handed out.
            time_spent_ms: 0,
        });
    };

    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Enter" {
            send(None);
        } else if !reorder_by_key(&ev.key(), n, order, focused) {
            return;
        }
        ev.prevent_default();
    };

    let prompt = item.get_value().prompt_html;
    let done = item.get_value().done;
    view! {
        <article class="item" data-prompt-id=item.get_value().prompt_id>
            <p id="progress" class="hint">{format!("{done} items done")}</p>
            <h2>"Prompt"</h2>
            <div id="prompt" class="prompt markdown" inner_html=prompt></div>
            <p class="hint">
                "Best answer first. Drag answers with the mouse, or focus one and press 1–" {n}
                " to give it that rank, ↑/↓ to move it, t to tie it with the answer above, Enter to submit."
            </p>
            <ol id="candidates" class="candidates" on:keydown=on_key
                on:mouseleave=move |_| dragging.set(None)>
                <For each=move || { let o = order.get(); o.slots.iter().copied().enumerate().map(|(p, c)| (p, c, o.tied[p], o.ranks()[p])).collect::<Vec<_>>() }
                    key=|(p, c, t, r)| (*p, *c, *t, *r)
                    children=move |(pos, c, tied, rank)| {
                        let cand = item.get_value().candidates[c].clone();
                        view! {
                            <li class="candidate" class:tied=tied class:dragging=move || dragging.get() == Some(pos)
                                tabindex="0" data-candidate-id=cand.id data-position=pos
                                on:focus=move |_| focused.set(pos)
                                on:mousedown=move |ev| { ev.prevent_default(); dragging.set(Some(pos)); focused.set(pos); }
                                on:mouseup=move |_| {
                                    if let Some(from) = dragging.get_untracked() {
                                        order.update(|o| o.move_to(from, pos));
                                    }
                                    dragging.set(None);
                                }>
                                <span class="rank">{rank}</span>
                                <AnswerText text=cand.text html=cand.html/>
                                {tied.then(|| view! { <span class="tie-badge">"tie"</span> })}
                            </li>
                        }
                    }/>
            </ol>
            <FlagBoxes flags/>
            <label class="better">"Write a better answer (optional)"
                <textarea id="better-answer" prop:value=better on:input=move |ev| better.set(event_target_value(&ev))></textarea>
            </label>
            <div class="actions">
                <button id="submit" on:click=move |_| send(None)>"Submit ranking"</button>
                <input id="skip-reason" placeholder="Reason to skip" prop:value=skip_reason
                    on:input=move |ev| skip_reason.set(event_target_value(&ev))/>
                <button id="skip" class="secondary" on:click=move |_| {
                    let r = skip_reason.get_untracked();
                    if r.trim().is_empty() { error.set("Give a reason to skip.".into()); } else { send(Some(r)); }
                }>"Skip"</button>
            </div>
            <p id="annotate-error" class="error" role="alert">{move || error.get()}</p>
        </article>
    }
}

/// Applies a ranking key (↑/↓ move, 1–n rank, t or = tie) to the focused card; false when `key` is not one.
fn reorder_by_key(key: &str, n: usize, order: RwSignal<Order>, focused: RwSignal<usize>) -> bool {
    let pos = focused.get_untracked();
    let move_to = |to: usize| {
        order.update(|o| o.move_to(pos, to));
        focused.set(to);
        focus_card(to);
    };
    match key {
        "ArrowUp" if pos > 0 => move_to(pos - 1),
        "ArrowDown" if pos + 1 < n => move_to(pos + 1),
        "t" | "=" => order.update(|o| o.toggle_tie(pos)),
        k if k.len() == 1 && k.chars().all(|c| c.is_ascii_digit()) => {
            let rank: usize = k.parse().unwrap_or(0);
            if (1..=n).contains(&rank) {
                move_to(rank - 1);
            }
        }
        _ => return false,
    }
    true
}

/// Moves keyboard focus to the card at `pos` after the list re-renders.
fn focus_card(pos: usize) {
    #[cfg(feature = "hydrate")]
    {
        request_animation_frame(move || {
            use leptos::wasm_bindgen::JsCast;
            let sel = format!("#candidates li[data-position=\"{pos}\"]");
            if let Some(el) = document().query_selector(&sel).ok().flatten() {
                if let Ok(el) = el.dyn_into::<leptos::web_sys::HtmlElement>() {
                    let _ = el.focus();
                }
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = pos;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::annotate::CandidateView;

    fn item(n: usize) -> Item {
        Item {
            prompt_id: 1,
            prompt: "p".into(),
            prompt_html: "<p>p</p>".into(),
            candidates: (0..n)
                .map(|i| CandidateView {
                    id: 10 + i as u64,
                    text: format!("c{i}"),
                    html: format!("<p>c{i}</p>"),
                })
                .collect(),
            done: 0,
        }
    }

    #[test]
    fn moving_and_tying_give_the_expected_tiers() {
        let it = item(4);
        let mut o = Order::new(4);
        o.move_to(3, 0); // d a b c
        assert_eq!(o.tiers(&it), vec![vec![13], vec![10], vec![11], vec![12]]);
        o.toggle_tie(2); // b tied with a
        assert_eq!(o.tiers(&it), vec![vec![13], vec![10, 11], vec![12]]);
        assert_eq!(o.ranks(), vec![1, 2, 2, 4]);
        o.toggle_tie(0); // the first cannot tie upwards
        assert_eq!(o.tiers(&it)[0], vec![13]);
    }
}
