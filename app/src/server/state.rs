//! What every request handler and server function can reach: the Leptos
//! options, the chat engine (rooms, identities, the stream's settings and
//! limits, the server's lifecycle) and the pages' security policy.
use axum::extract::FromRef;
use engine::Engine;
use leptos::config::LeptosOptions;

use super::page_policy::PagePolicy;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub engine: Engine,
    pub pages: PagePolicy,
}
