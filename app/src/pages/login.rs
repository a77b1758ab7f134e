//! The login form.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::auth::login;

/// Name + password; on success goes to the annotate page.
#[component]
pub fn LoginPage() -> impl IntoView {
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let action = Action::new(|(n, p): &(String, String)| login(n.clone(), p.clone()));
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            crate::components::account::SessionEpoch::bump();
            navigate("/annotate", Default::default());
        }
    });
    let error = move || match action.value().get() {
        Some(Err(e)) => e.to_string().replace("error running server function: ", ""),
        _ => String::new(),
    };
    view! {
        <leptos_meta::Title text="Log in · alignbox"/>
        <section class="card narrow">
            <h1>"Log in"</h1>
            <form on:submit=move |ev| {
                ev.prevent_default();
                action.dispatch((name.get_untracked(), password.get_untracked()));
            }>
                <label>"Name" <input id="login-name" autocomplete="username"
                    prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/></label>
                <label>"Password" <input id="login-password" type="password" autocomplete="current-password"
                    prop:value=password on:input=move |ev| password.set(event_target_value(&ev))/></label>
                <button id="login-submit" type="submit">"Log in"</button>
                <p id="login-error" class="error" role="alert">{error}</p>
            </form>
        </section>
    }
}
