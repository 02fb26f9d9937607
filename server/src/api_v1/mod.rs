//! The server API: JSON over HTTP under `/api/v1/`, for the game's own
//! servers. A game's backend creates the match's room and puts the players
//! in it, posts "Round 2 starts" as the game, removes a cheater, reads a
//! room's history for a support ticket, and mints the players' identity
//! tokens, without a browser.
//!
//! - Authenticated by API keys (`Authorization: Bearer …`; several at once,
//!   so a key can be rotated without downtime; compared in constant time),
//!   and never from a browser: a request with an `Origin` header is refused
//!   and no CORS header is ever sent (see `access`).
//! - Errors are one JSON shape, `{"error": {"code", "message"}}`, with the
//!   status that says whose fault it is (see `error`).
//! - Creating a room or a member is idempotent; a message is posted under
//!   a client-chosen id, and posting it again returns the stored one.
//! - The OpenAPI 3 document is made from these handlers and their types
//!   (`utoipa`) and served at `/api/v1/openapi.json`; the routes and the
//!   document come from the same list, so neither can lack the other.
//!
//! Everything here calls the engine's `game` operations: the rules (who may
//! be added, what a moderation request does) are the same as for pages.
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{middleware, Json, Router};
use engine::identity::SigningKey;
use engine::rooms::Rooms;
use moderation::WordFilter;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Longest a call may take before it is answered 503.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

mod access;
mod blocks;
mod error;
mod rooms;
mod tokens;

pub use access::ApiKeys;
pub use error::ApiError;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub rooms: Rooms,
    /// Signs identity tokens (none in open mode: no tokens to mint).
    pub signing: Option<SigningKey>,
    /// The word filter's list file and the filter in force, when the
    /// server has one.
    pub words: Option<(PathBuf, Arc<WordFilter>)>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Embedded Chat server API",
        description = "For the game's own servers: rooms, members, messages, moderation and identity tokens. \
                       Every call needs `Authorization: Bearer <API key>`; calls from browsers (with an `Origin` \
                       header) are refused."
    ),
    modifiers(&BearerKey),
    tags(
        (name = "rooms", description = "Rooms and their members"),
        (name = "users", description = "A user across the rooms: the rooms they are in, whom they have blocked"),
        (name = "messages", description = "Posting, reading and removing messages"),
        (name = "moderation", description = "Mutes, kicks, bans, slow mode, reports and the word filter"),
        (name = "tokens", description = "Identity tokens for players' pages"),
    )
)]
struct ApiDoc;

/// Declares the API key scheme every operation uses.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("One of the server's API keys (API_KEYS)"))
                    .build(),
            ),
        );
    }
}

/// The API's routes (behind the key check) and its document (served as
/// is, no key needed: it holds nothing secret).
pub fn routes(state: ApiState, keys: ApiKeys) -> Router {
    let (api, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(rooms::create_room, rooms::list_rooms))
        .routes(routes!(rooms::get_room, rooms::delete_room))
        .routes(routes!(rooms::add_member))
        .routes(routes!(rooms::remove_member))
        .routes(routes!(rooms::set_role))
        .routes(routes!(rooms::post_message, rooms::read_history))
        .routes(routes!(rooms::remove_message))
        .routes(routes!(rooms::mute, rooms::unmute))
        .routes(routes!(rooms::kick))
        .routes(routes!(rooms::purge))
        .routes(routes!(rooms::ban, rooms::unban))
        .routes(routes!(rooms::slow_mode))
        .routes(routes!(rooms::list_reports))
        .routes(routes!(rooms::list_sanctions))
        .routes(routes!(rooms::close_report))
        .routes(routes!(rooms::add_words, rooms::list_words))
        .routes(routes!(rooms::remove_word))
        .routes(routes!(rooms::user_rooms, rooms::leave_all_rooms))
        .routes(routes!(rooms::user_messages, rooms::purge_everywhere))
        .routes(routes!(rooms::user_sanctions))
        .routes(routes!(blocks::list_blocks, blocks::clear_blocks))
        .routes(routes!(blocks::block, blocks::unblock))
        .routes(routes!(tokens::mint_token))
        .with_state(state)
        .split_for_parts();
    let document = Arc::new(document);
    api.route("/api/v1/{*rest}", any(|| async { ApiError::not_found("No such endpoint of the server API.") }))
        .layer(middleware::from_fn_with_state(Arc::new(keys), access::check))
        // As for pages: a bug costs one call a 500, a stalled database a 503.
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, CALL_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        // Added after the key check: the document needs no key.
        .route("/api/v1/openapi.json", get(move || async move { Json(document.as_ref().clone()) }))
}
