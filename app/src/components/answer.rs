//! Pieces of an item shared by the list and arena modes: an answer's text (Markdown, long ones collapsed) and
//! the flag checkboxes.

use leptos::prelude::*;

/// Answers longer than this many characters start collapsed.
const LONG_ANSWER_CHARS: usize = 1200;
/// Answers of more lines than this start collapsed.
const LONG_ANSWER_LINES: usize = 24;

const FLAGS: [(&str, &str); 4] = [
    ("unsafe", "Unsafe"),
    ("personal_data", "Personal data"),
    ("broken", "Broken"),
    ("off_topic", "Off-topic"),
];

/// An answer as sanitised Markdown HTML (made on the server); a long one starts collapsed with "show all" (the
/// time spent on the item is measured as before).
#[component]
pub fn AnswerText(
    /// The answer as written (decides whether it is long).
    text: String,
    /// Its sanitised HTML.
    html: String,
) -> impl IntoView {
    let long = text.len() > LONG_ANSWER_CHARS || text.lines().count() > LONG_ANSWER_LINES;
    let expanded = RwSignal::new(false);
    view! {
        <div class="text markdown" class:collapsed=move || long && !expanded.get() inner_html=html></div>
        {long.then(|| view! {
            <button class="link show-all" type="button" on:click=move |_| expanded.update(|e| *e = !*e)>
                {move || if expanded.get() { "show less" } else { "show all" }}
            </button>
        })}
    }
}

/// The flag checkboxes of an item.
#[component]
pub fn FlagBoxes(flags: RwSignal<Vec<String>>) -> impl IntoView {
    view! {
        <fieldset class="flags">
            <legend>"Flags"</legend>
            {FLAGS.iter().map(|(value, label)| {
                let value = value.to_string();
                let v2 = value.clone();
                view! {
                    <label><input type="checkbox" class="flag" data-flag=value.clone()
                        prop:checked=move || flags.get().contains(&v2)
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            flags.update(|f| { f.retain(|x| x != &value); if on { f.push(value.clone()); } });
                        }/>{*label}</label>
                }
            }).collect_view()}
        </fieldset>
    }
}
