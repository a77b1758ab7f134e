//! The landing page: what the appliance is and a live status check.

use leptos::prelude::*;

use crate::status::server_status;

/// The landing page. The "Check server" button works only once the wasm client has hydrated the page: it calls
/// the `server_status` server function and shows the answer.
#[component]
pub fn HomePage() -> impl IntoView {
    let check = Action::new(|_: &()| server_status());
    let checks = RwSignal::new(0u32);
    let answer = move || match check.value().get() {
        None => "not checked yet".to_string(),
        Some(Ok(s)) => format!(
            "alignbox {} on {} ({} {}{}), up {} s, store {} bytes, policy {}",
            s.version,
            s.backend,
            s.device.id,
            s.device.name,
            s.device.memory_total.map(|t| format!(", {} MiB", t >> 20)).unwrap_or_default(),
            s.uptime_s,
            s.store_bytes,
            s.policy.as_deref().unwrap_or("none")
        ),
        Some(Err(e)) => format!("server unreachable: {e}"),
    };
    view! {
        <leptos_meta::Title text="Home · alignbox"/>
        <section class="hero">
            <h1>"alignbox"</h1>
            <p>"Rank answers, train the reward model, align the policy: one process, nothing lost."</p>
        </section>
        <section class="status">
            <button
                id="check-server"
                on:click=move |_| {
                    checks.update(|n| *n += 1);
                    check.dispatch(());
                }
            >
                "Check server"
            </button>
            <span id="check-count">{move || format!("checks: {}", checks.get())}</span>
            <p id="server-status" aria-live="polite">{answer}</p>
        </section>
        <crate::components::first_steps::FirstSteps for_visitors=true/>
    }
}
