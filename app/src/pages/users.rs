//! The admin's users page: list, add (the generated password is shown once), disable; API keys of
//! `/v1/chat/completions`: issue (the secret is shown once), list, revoke.

use leptos::prelude::*;

use crate::api::{
    admin::{add_user, disable_user, issue_api_key, list_api_keys, list_users, revoke_api_key},
    auth::{whoami, Me},
};

/// The page (admins only; others see why not).
#[component]
pub fn UsersPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <leptos_meta::Title text="Users · alignbox"/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || me.get().map(|r| match r {
                Ok(Some(me)) if me.role == "admin" => view! { <Users me/> }.into_any(),
                Ok(Some(_)) => view! { <p id="forbidden" class="error">"This page is for admins."</p> }.into_any(),
                _ => view! { <p>"You are not logged in. " <a href="/login">"Log in"</a></p> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Users(me: Me) -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    let csrf = StoredValue::new(me.csrf);
    let name = RwSignal::new(String::new());
    let role = RwSignal::new(String::from("annotator"));
    let message = RwSignal::new(String::new());
    let add = Action::new(move |(n, r): &(String, String)| add_user(csrf.get_value(), n.clone(), r.clone()));
    let disable = Action::new(move |n: &String| disable_user(csrf.get_value(), n.clone()));
    let clean = |e: ServerFnError| e.to_string().replace("error running server function: ", "");
    Effect::new(move |_| {
        if let Some(r) = add.value().get() {
            message.set(r.map(|pw| format!("Added. One-time password: {pw}")).unwrap_or_else(clean));
            users.refetch();
        }
    });
    let keys = Resource::new(|| (), |_| list_api_keys());
    let key_name = RwSignal::new(String::new());
    let issue = Action::new(move |n: &String| issue_api_key(csrf.get_value(), n.clone()));
    let revoke = Action::new(move |id: &u64| revoke_api_key(csrf.get_value(), *id));
    Effect::new(move |_| {
        if let Some(r) = issue.value().get() {
            message.set(r.map(|k| format!("API key (shown once): {k}")).unwrap_or_else(clean));
            keys.refetch();
        }
    });
    Effect::new(move |_| {
        if let Some(r) = revoke.value().get() {
            message.set(r.map(|_| "Key revoked.".to_string()).unwrap_or_else(clean));
            keys.refetch();
        }
    });
    Effect::new(move |_| {
        if let Some(r) = disable.value().get() {
            message.set(r.map(|_| "Disabled.".to_string()).unwrap_or_else(clean));
            users.refetch();
        }
    });
    view! {
        <section>
            <h1>"Users"</h1>
            <p id="users-message" class="saved">{move || message.get()}</p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || users.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(list) => view! {
                        <table id="users"><tbody>
                            {list.into_iter().map(|u| {
                                let n = u.name.clone();
                                view! {
                                    <tr><td>{u.name.clone()}</td><td>{u.role}</td>
                                        <td>{if u.disabled { "disabled" } else { "active" }}</td>
                                        <td>{(!u.disabled).then(|| view! {
                                            <button class="secondary" on:click=move |_| { disable.dispatch(n.clone()); }>"Disable"</button>
                                        })}</td></tr>
                                }
                            }).collect_view()}
                        </tbody></table>
                    }.into_any(),
                })}
            </Transition>
            <h2>"Add a user"</h2>
            <input id="new-user" placeholder="name" prop:value=name on:input=move |ev| name.set(event_target_value(&ev))/>
            <select id="new-role" on:change=move |ev| role.set(event_target_value(&ev))>
                <option value="annotator">"annotator"</option>
                <option value="operator">"operator"</option>
                <option value="admin">"admin"</option>
            </select>
            <button id="add-user" on:click=move |_| { add.dispatch((name.get_untracked(), role.get_untracked())); }>"Add"</button>
            <h2>"API keys"</h2>
            <p class="hint">"For /v1/chat/completions (OpenAI-compatible): send " <code>"Authorization: Bearer <key>"</code> "."</p>
            <Transition fallback=|| ()>
                {move || keys.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(list) => view! {
                        <table id="api-keys"><tbody>
                            {list.into_iter().map(|k| {
                                let id = k.id;
                                view! {
                                    <tr data-key-id=id><td>{k.name}</td><td><code>{k.prefix}"…"</code></td><td>{k.created_by}</td>
                                        <td>{if k.revoked { "revoked" } else { "active" }}</td>
                                        <td>{(!k.revoked).then(|| view! {
                                            <button class="secondary" on:click=move |_| { revoke.dispatch(id); }>"Revoke"</button>
                                        })}</td></tr>
                                }
                            }).collect_view()}
                        </tbody></table>
                    }.into_any(),
                })}
            </Transition>
            <input id="new-key" placeholder="what the key is for" prop:value=key_name on:input=move |ev| key_name.set(event_target_value(&ev))/>
            <button id="issue-key" on:click=move |_| { issue.dispatch(key_name.get_untracked()); }>"Issue a key"</button>
        </section>
    }
}
