//! A player's block list, for the game: a platform's blocks (a console's,
//! a store's) mirrored into the chat, or the list shown in the game's own
//! settings. The same list the player changes from a room's menus; every
//! change reaches the player's open pages at once (see `engine::blocks`).
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::rooms::{Answer, InPath};
use super::{ApiError, ApiState};

/// Whom a user has blocked, in the order they were blocked.
#[derive(Serialize, ToSchema)]
pub struct BlockList {
    blocked: Vec<String>,
}

/// Whom a user no longer blocks.
#[derive(Serialize, ToSchema)]
pub struct Unblocked {
    unblocked: Vec<String>,
}

/// Whom the user has blocked (an empty list for a user never seen).
#[utoipa::path(get, path = "/api/v1/users/{user_id}/blocks", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = BlockList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_blocks(
    State(api): State<ApiState>,
    InPath(user_id): InPath<String>,
) -> Answer<Json<BlockList>> {
    Ok(Json(BlockList { blocked: api.rooms.blocked_by(&user_id).await? }))
}

/// Lifts every block the user made (an account closed); answers whom
/// they had blocked.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/blocks", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Unblocked), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn clear_blocks(
    State(api): State<ApiState>,
    InPath(user_id): InPath<String>,
) -> Answer<Json<Unblocked>> {
    Ok(Json(Unblocked { unblocked: api.rooms.clear_blocks(&user_id).await? }))
}

/// The user blocks `blocked_user_id`, in every room (idempotent). Their
/// open pages stop showing that player's messages at once.
#[utoipa::path(put, path = "/api/v1/users/{user_id}/blocks/{blocked_user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user"), ("blocked_user_id" = String, Path, description = "Whom they block")),
    responses(
        (status = 201, description = "Blocked"),
        (status = 200, description = "Blocked already"),
        (status = 400, description = "Themselves, the game, or a malformed id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 409, description = "The list is full", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn block(
    State(api): State<ApiState>,
    InPath((user_id, target)): InPath<(String, String)>,
) -> Answer<StatusCode> {
    let added = api.rooms.set_blocked(&user_id, &target, true).await?;
    Ok(if added { StatusCode::CREATED } else { StatusCode::OK })
}

/// Lifts the user's block of `blocked_user_id` (404 if there was none).
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/blocks/{blocked_user_id}", tag = "users",
    params(("user_id" = String, Path, description = "The user"), ("blocked_user_id" = String, Path, description = "Whom they blocked")),
    responses((status = 204, description = "Unblocked"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "Not blocked", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn unblock(
    State(api): State<ApiState>,
    InPath((user_id, target)): InPath<(String, String)>,
) -> Answer<StatusCode> {
    if !api.rooms.set_blocked(&user_id, &target, false).await? {
        return Err(ApiError::not_found(format!("{} is not blocked.", target.trim())));
    }
    Ok(StatusCode::NO_CONTENT)
}
