//! alignbox's web UI: the leptos application shared by the server (feature `ssr`) and the browser (feature
//! `hydrate`). Server-only code lives in [`ssr`] and is compiled only with the `ssr` feature.

pub mod api;
pub mod components;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod status;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    StaticSegment,
};

/// The name of the client bundle: `/pkg/{OUTPUT_NAME}.js`, `/pkg/{OUTPUT_NAME}_bg.wasm`, `/pkg/{OUTPUT_NAME}.css`.
pub const OUTPUT_NAME: &str = "alignbox";

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: routes and page chrome.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    components::account::SessionEpoch::provide();
    view! {
        <Stylesheet id="alignbox" href="/pkg/alignbox.css"/>
        <Title text="alignbox"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"alignbox"</a>
                <a href="/annotate">"Annotate"</a>
                <a href="/operator">"Operator"</a>
                <a href="/training">"Training"</a>
                <a href="/users">"Users"</a>
                <components::account::Account/>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="notfound">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=pages::home::HomePage/>
                    <Route path=StaticSegment("login") view=pages::login::LoginPage/>
                    <Route path=StaticSegment("annotate") view=pages::annotate::AnnotatePage/>
                    <Route path=StaticSegment("operator") view=pages::operator::OperatorPage/>
                    <Route path=StaticSegment("training") view=pages::training::TrainingPage/>
                    <Route path=StaticSegment("users") view=pages::users::UsersPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// The browser entry point: attaches the client to the server-rendered HTML.
#[cfg(feature = "hydrate")]
#[leptos::wasm_bindgen::prelude::wasm_bindgen(wasm_bindgen = leptos::wasm_bindgen)]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
