//! Who is logged in, in the top bar, with a Log out button; and the signal that tells it to look again.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use crate::api::auth::{logout, logout_everywhere, whoami};

/// Bumped whenever the session changes on this page (log-in, log-out), so that [`Account`] asks again.
#[derive(Clone, Copy)]
pub struct SessionEpoch(pub RwSignal<u64>);

impl SessionEpoch {
    /// Provides a fresh epoch to the app (call once, at its root).
    pub fn provide() {
        provide_context(SessionEpoch(RwSignal::new(0)));
    }

    /// Tells [`Account`] that the session changed.
    pub fn bump() {
        if let Some(SessionEpoch(e)) = use_context::<SessionEpoch>() {
            e.update(|n| *n += 1);
        }
    }
}

/// "name (role) · Log out" when logged in, else a "Log in" link.
#[component]
pub fn Account() -> impl IntoView {
    let epoch = use_context::<SessionEpoch>().map(|SessionEpoch(e)| e).unwrap_or_else(|| RwSignal::new(0));
    let me = Resource::new(move || epoch.get(), |_| whoami());
    let navigate = use_navigate();
    // `everywhere`: end every session of the user, on every browser, not only this one.
    let out = Action::new(|(csrf, everywhere): &(String, bool)| {
        let (csrf, everywhere) = (csrf.clone(), *everywhere);
        async move {
            if everywhere {
                logout_everywhere(csrf).await.map(|_| ())
            } else {
                logout(csrf).await
            }
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = out.value().get() {
            epoch.update(|n| *n += 1);
            navigate("/login", Default::default());
        }
    });
    view! {
        <span class="account">
            <Transition fallback=|| ()>
                {move || me.get().map(|r| match r {
                    Ok(Some(me)) => {
                        let (csrf, csrf_all) = (me.csrf.clone(), me.csrf.clone());
                        view! {
                            <span id="account-name" class="who">{me.name.clone()}</span>
                            <span class="role">{format!("({})", me.role)}</span>
                            <button id="logout" class="link" type="button"
                                on:click=move |_| { out.dispatch((csrf.clone(), false)); }>"Log out"</button>
                            <button id="logout-everywhere" class="link" type="button"
                                title="End this account's sessions on every browser"
                                on:click=move |_| { out.dispatch((csrf_all.clone(), true)); }>"everywhere"</button>
                        }.into_any()
                    }
                    _ => view! { <a id="login-link" href="/login">"Log in"</a> }.into_any(),
                })}
            </Transition>
        </span>
    }
}
