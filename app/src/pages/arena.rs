//! Arena mode, for items of two answers (blind A/B items included): the answers side by side; ← or → picks the
//! better one, `=` ties them, `b` marks both bad (a tie flagged `both_bad`). Each verdict submits at once and is
//! stored like a ranking (flushed before it is acknowledged). Flags and a better answer can be given first.

use leptos::prelude::*;

use crate::{
    api::annotate::{submit_ranking, Item, Submission},
    components::answer::{AnswerText, FlagBoxes},
};

/// What the annotator says of the two answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The left answer is better.
    Left,
    /// The right answer is better.
    Right,
    /// Equally good.
    Tie,
    /// Equally bad: a tie with the `both_bad` flag.
    BothBad,
}

impl Verdict {
    /// The verdict a key gives, if it is one of the arena's (←, →, `=`, `b`).
    pub fn of_key(key: &str) -> Option<Self> {
        match key {
            "ArrowLeft" => Some(Verdict::Left),
            "ArrowRight" => Some(Verdict::Right),
            "=" => Some(Verdict::Tie),
            "b" | "B" => Some(Verdict::BothBad),
            _ => None,
        }
    }

    /// The tiers (best first) of the `left` and `right` candidate ids, and whether `both_bad` is raised.
    pub fn tiers(self, left: u64, right: u64) -> (Vec<Vec<u64>>, bool) {
        match self {
            Verdict::Left => (vec![vec![left], vec![right]], false),
            Verdict::Right => (vec![vec![right], vec![left]], false),
            Verdict::Tie => (vec![vec![left, right]], false),
            Verdict::BothBad => (vec![vec![left, right]], true),
        }
    }
}

/// Two answers side by side with the verdict buttons; keys work anywhere on the page except while typing.
#[component]
pub fn ArenaView(
    item: Item,
    csrf: String,
    on_saved: impl Fn(String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let flags = RwSignal::new(Vec::<String>::new());
    let better = RwSignal::new(String::new());
    let error = RwSignal::new(String::new());
    let sent = RwSignal::new(false);
    let item = StoredValue::new(item);
    let csrf = StoredValue::new(csrf);
    let submit = Action::new(move |s: &Submission| submit_ranking(csrf.get_value(), s.clone()));
    Effect::new(move |_| match submit.value().get() {
        Some(Ok(id)) => on_saved(format!("Saved ranking {id}.")),
        Some(Err(e)) => {
            sent.set(false);
            error.set(e.to_string().replace("error running server function: ", ""));
        }
        None => {}
    });
    let skip_reason = RwSignal::new(String::new());
    // A verdict, or (None) a skip with its reason.
    let send = move |v: Option<Verdict>| {
        if sent.get_untracked() {
            return;
        }
        let it = item.get_value();
        let (tiers, both_bad, skipped) = match v {
            Some(v) => {
                let (tiers, both_bad) = v.tiers(it.candidates[0].id, it.candidates[1].id);
                (tiers, both_bad, None)
            }
            None => {
                let reason = skip_reason.get_untracked();
                if reason.trim().is_empty() {
                    error.set("Give a reason to skip.".into());
                    return;
                }
                (Vec::new(), false, Some(reason))
            }
        };
        sent.set(true);
        let mut flags = flags.get_untracked();
        if both_bad {
            flags.push("both_bad".into());
        }
        submit.dispatch(Submission {
            prompt_id: it.prompt_id,
            tiers,
            skipped,
            flags,
            better_answer: Some(better.get_untracked()).filter(|b| !b.trim().is_empty()),
            time_spent_ms: 0,
        });
    };
    let keys = window_event_listener(leptos::ev::keydown, move |ev| {
        let typing = document()
            .active_element()
            .is_some_and(|e| matches!(e.tag_name().as_str(), "TEXTAREA" | "INPUT" | "SELECT"));
        if typing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
            return;
        }
        if let Some(v) = Verdict::of_key(&ev.key()) {
            ev.prevent_default();
            send(Some(v));
        }
    });
    on_cleanup(move || keys.remove());

    let it = item.get_value();
    view! {
        <article id="arena" class="item arena" data-prompt-id=it.prompt_id tabindex="0">
            <p id="progress" class="hint">{format!("{} items done", it.done)}</p>
            <h2>"Prompt"</h2>
            <div id="prompt" class="prompt markdown" inner_html=it.prompt_html.clone()></div>
            <p class="hint">"Which answer is better? ← left, → right, = tie, b both bad (each submits at once)."</p>
            <div class="arena-pair">
                {side("arena-left", &it.candidates[0], "A (left)")}
                {side("arena-right", &it.candidates[1], "B (right)")}
            </div>
            <VerdictButtons sent send/>
            <FlagBoxes flags/>
            <label class="better">"Write a better answer (optional)"
                <textarea id="better-answer" prop:value=better on:input=move |ev| better.set(event_target_value(&ev))></textarea>
            </label>
            <div class="actions">
                <input id="skip-reason" placeholder="Reason to skip" prop:value=skip_reason
                    on:input=move |ev| skip_reason.set(event_target_value(&ev))/>
                <button id="skip" class="secondary" disabled=move || sent.get() on:click=move |_| send(None)>"Skip"</button>
            </div>
            <p id="annotate-error" class="error" role="alert">{move || error.get()}</p>
        </article>
    }
}

/// One of the two answers.
fn side(id: &'static str, c: &crate::api::annotate::CandidateView, label: &'static str) -> impl IntoView {
    view! {
        <section id=id class="arena-answer" data-candidate-id=c.id>
            <h3>{label}</h3>
            <AnswerText text=c.text.clone() html=c.html.clone()/>
        </section>
    }
}

/// The four verdict buttons (disabled once one was sent).
#[component]
fn VerdictButtons(
    sent: RwSignal<bool>,
    send: impl Fn(Option<Verdict>) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div class="actions arena-actions">
            <button id="pick-left" disabled=move || sent.get() on:click=move |_| send(Some(Verdict::Left))>"← A is better"</button>
            <button id="pick-tie" class="secondary" disabled=move || sent.get() on:click=move |_| send(Some(Verdict::Tie))>"= Tie"</button>
            <button id="pick-both-bad" class="secondary" disabled=move || sent.get() on:click=move |_| send(Some(Verdict::BothBad))>"b Both bad"</button>
            <button id="pick-right" disabled=move || sent.get() on:click=move |_| send(Some(Verdict::Right))>"B is better →"</button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::Verdict;

    #[test]
    fn keys_give_verdicts_and_verdicts_give_tiers() {
        assert_eq!(Verdict::of_key("ArrowLeft"), Some(Verdict::Left));
        assert_eq!(Verdict::of_key("="), Some(Verdict::Tie));
        assert_eq!(Verdict::of_key("B"), Some(Verdict::BothBad));
        assert_eq!(Verdict::of_key("x"), None);
        assert_eq!(Verdict::Left.tiers(7, 9), (vec![vec![7], vec![9]], false));
        assert_eq!(Verdict::Right.tiers(7, 9), (vec![vec![9], vec![7]], false));
        assert_eq!(Verdict::Tie.tiers(7, 9), (vec![vec![7, 9]], false));
        assert_eq!(Verdict::BothBad.tiers(7, 9), (vec![vec![7, 9]], true));
    }
}
