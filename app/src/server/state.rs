//! What every request handler and server function can reach: the Leptos
//! options and the rooms service (which owns the store and the bus).
use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::rooms::Rooms;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub rooms: Rooms,
}
