//! Identity tokens minted for the game, so that its servers need not
//! implement the signature themselves (see `engine::identity` for the
//! format, which stays documented for those who do).
use axum::extract::State;
use axum::Json;
use chat_protocol::validate::{normalize_id, normalize_user_id};
use chat_protocol::Role;
use engine::identity::{unix_now, Identity};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::rooms::Body;
use super::{ApiError, ApiState};

/// Longest a token may live: a day (a page asks the game for a new one).
const MAX_TTL_SECS: u32 = 24 * 3600;
/// A token's life when the caller does not say: an hour.
const DEFAULT_TTL_SECS: u32 = 3600;

#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    user_id: String,
    channel_id: String,
    /// `player` (the default) or `moderator`.
    #[serde(default)]
    role: Role,
    /// Seconds the token is valid (default 3600, at most 86400).
    #[serde(default)]
    ttl_secs: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Token {
    /// For the room's URL (`/chat_room?token=…`).
    token: String,
    /// When it expires, Unix seconds.
    expires: i64,
}

/// Mints an identity token for a player (or a moderator) in a room.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens",
    request_body = TokenRequest,
    responses((status = 201, body = Token), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, description = "Open mode: the server has no token secret", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn mint_token(
    State(api): State<ApiState>,
    Body(request): Body<TokenRequest>,
) -> Result<(axum::http::StatusCode, Json<Token>), ApiError> {
    let Some(key) = &api.signing else {
        return Err(ApiError::conflict(
            "not_configured",
            "The server runs in open mode (no CHAT_TOKEN_SECRET): pages need no token.",
        ));
    };
    let ttl = request.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
    if ttl == 0 || ttl > MAX_TTL_SECS {
        return Err(ApiError::bad_request(format!("ttl_secs must be between 1 and {MAX_TTL_SECS}.")));
    }
    let identity = Identity {
        user_id: normalize_user_id(&request.user_id).map_err(|e| ApiError::bad_request(e.to_string()))?,
        channel_id: normalize_id(&request.channel_id, "room")
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
        expires: unix_now() + i64::from(ttl),
        role: request.role,
    };
    let token = key.mint(&identity);
    Ok((axum::http::StatusCode::CREATED, Json(Token { token, expires: identity.expires })))
}
