//! The routes: `/` (pick a name and a room), `/chat_room` and
//! `/embed-demo` (a host page embedding a room, as a game would).
use leptos::prelude::*;

pub mod chat_room;
pub mod embed_demo;
pub mod home;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="page narrow">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. " <a href="/">"Go to the home page"</a> "."</p>
        </main>
    }
}
