//! Server functions: what pages call on the server over HTTP (and what
//! forms post to without JavaScript). Each one validates, calls the rooms
//! service and turns its error into an [`ApiError`] whose text people can
//! read; client mistakes answer 400/403, server trouble 500, never with
//! internals.
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

use crate::protocol::moderation::{Report, Request};
use crate::protocol::{HistoryPage, RoomSnapshot};

/// The error of every server function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    /// The request was refused (bad input, not allowed). Shown as is.
    #[error("{0}")]
    Rejected(String),
    /// The server could not do it; try again.
    #[error("{0}")]
    Failed(String),
    /// The request did not reach the function or its answer did not come
    /// back (network, malformed request).
    #[error("Could not reach the chat server. Please try again.")]
    Transport(String),
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // On the server: the request could not be read. (In the page, an
            // answer it cannot read came from something between it and the
            // server, such as a proxy's error page: a transport failure.)
            ServerFnErrorErr::Args(_) => ApiError::Rejected("The request was malformed.".to_owned()),
            ServerFnErrorErr::Deserialization(_) if cfg!(feature = "ssr") => {
                ApiError::Rejected("The request was malformed.".to_owned())
            }
            other => ApiError::Transport(other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
mod ssr {
    use axum::http::StatusCode;
    use leptos::prelude::*;

    use super::ApiError;
    use crate::server::AppState;
    use engine::identity::{Actor, TokenError};
    use engine::rooms::{RoomError, Rooms};

    fn state() -> Result<AppState, ApiError> {
        use_context::<AppState>().ok_or_else(|| ApiError::Failed("The server is not ready.".to_owned()))
    }

    /// The rooms service and who is acting: with signed identities, the
    /// token's user in the token's room (the claimed user id is ignored).
    pub fn acting(channel_id: &str, user_id: &str, token: Option<&str>) -> Result<(Rooms, Actor), ApiError> {
        let state = state()?;
        let engine = state.engine;
        let actor = engine.access.resolve(channel_id, user_id, token).map_err(|e| reject(e.into()))?;
        Ok((engine.rooms, actor))
    }

    /// Sends a plain form's post back to the room page it came from.
    pub fn back_to_room(me: &Actor, token: Option<&str>) {
        let back = crate::pages::chat_room::room_href_with_token(&me.channel_id, &me.user_id, token);
        leptos_axum::redirect(&back);
    }

    /// Makes a moderation request posted by a plain form, then sends the
    /// page back to the room.
    pub async fn act_from_form(
        channel_id: &str,
        user_id: &str,
        token: Option<&str>,
        request: crate::protocol::moderation::Request,
    ) -> Result<(), ApiError> {
        let (rooms, me) = acting(channel_id, user_id, token)?;
        rooms.moderate_as(&me.channel_id, &me.user_id, me.role, request).await.map_err(reject)?;
        back_to_room(&me, token);
        Ok(())
    }

    /// A server-function request from a browser form without JavaScript
    /// (it asks for HTML, not for the function's JSON).
    fn is_plain_form_post() -> bool {
        use_context::<axum::http::request::Parts>().is_some_and(|parts| {
            parts.uri.path().starts_with("/api/")
                && parts
                    .headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|accept| accept.contains("text/html"))
        })
    }

    /// Converts a rooms error at the HTTP boundary: status code for the
    /// response, readable sentence for the page, cause in the log.
    pub fn reject(err: RoomError) -> ApiError {
        let status = match &err {
            RoomError::NotMember
            | RoomError::Refused(_)
            | RoomError::Muted(_)
            | RoomError::Banned(_)
            | RoomError::UserBanned(_) => StatusCode::FORBIDDEN,
            RoomError::NoSuchRoom
            | RoomError::NoSuchMessage
            | RoomError::NoSuchReport
            | RoomError::NotInRoom(_) => StatusCode::NOT_FOUND,
            RoomError::AlreadyRemoved | RoomError::Unchanged(_) => StatusCode::CONFLICT,
            RoomError::TooFast | RoomError::SlowMode(_) => StatusCode::TOO_MANY_REQUESTS,
            RoomError::Blocked => StatusCode::UNPROCESSABLE_ENTITY,
            RoomError::Identity(TokenError::OtherRoom) => StatusCode::FORBIDDEN,
            RoomError::Identity(_) => StatusCode::UNAUTHORIZED,
            RoomError::Invalid(_) | RoomError::BadMessageId => StatusCode::BAD_REQUEST,
            RoomError::Store(_) | RoomError::Bus(_) => {
                tracing::error!(%err, "server function failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        // A form posted without JavaScript gets leptos_axum's redirect back
        // to the page, with the error in the URL for the form to show; a
        // script's call (and a page render) gets the status code.
        if !is_plain_form_post() {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(status);
            }
        }
        if err.is_client_error() {
            ApiError::Rejected(err.public_message())
        } else {
            ApiError::Failed(err.public_message())
        }
    }
}

/// Opens a room for a user: creates the room on first visit, makes the
/// user a member (once) and returns the members and history to render.
/// With signed identities the `token` names the user and room.
#[server(prefix = "/api", endpoint = "join_room")]
pub async fn join_room(
    channel_id: String,
    user_id: String,
    token: Option<String>,
) -> Result<RoomSnapshot, ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    let snapshot = rooms.join(&me.channel_id, &me.user_id).await.map_err(ssr::reject)?;
    Ok(RoomSnapshot { role: me.role.max(snapshot.role), ..snapshot })
}

/// The page of history just before `before_seq` (oldest first), for a
/// member of the room: what the page loads as its reader scrolls back.
#[server(prefix = "/api", endpoint = "older_messages")]
pub async fn older_messages(
    channel_id: String,
    user_id: String,
    before_seq: i64,
    token: Option<String>,
) -> Result<HistoryPage, ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    rooms.messages_before(&me.channel_id, &me.user_id, before_seq).await.map_err(ssr::reject)
}

/// Whether an embedded page may send its events to a parent page of
/// `parent_origin`: the origin must be on the server's allowlist
/// ([`crate::embed::EmbedSettings`]). The page itself also allows its own
/// origin. A value that is not an origin is refused with a sentence.
#[server(prefix = "/api", endpoint = "embed_parent_allowed")]
pub async fn embed_parent_allowed(parent_origin: String) -> Result<bool, ApiError> {
    let Some(origin) = crate::embed::normalize_origin(&parent_origin) else {
        return Err(ApiError::Rejected(crate::embed::NOT_AN_ORIGIN.to_owned()));
    };
    Ok(crate::embed::EmbedSettings::current().allows(&origin))
}

/// `user_id`, a member of the room, adds `new_user` to it.
#[server(prefix = "/api", endpoint = "add_user")]
pub async fn add_user(
    channel_id: String,
    user_id: String,
    new_user: String,
    token: Option<String>,
) -> Result<(), ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    rooms.add_user(&me.channel_id, &me.user_id, &new_user).await.map_err(ssr::reject)
}

/// `user_id` leaves the room and is sent to the home page. Only ever
/// oneself: with signed identities, the token's user.
#[server(prefix = "/api", endpoint = "leave_room")]
pub async fn leave_room(channel_id: String, user_id: String, token: Option<String>) -> Result<(), ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    rooms.leave(&me.channel_id, &me.user_id).await.map_err(ssr::reject)?;
    leptos_axum::redirect("/");
    Ok(())
}

/// Sends a message from a plain form post (the page without JavaScript);
/// with JavaScript, messages go up the room stream instead. Goes back to
/// the room page.
#[server(prefix = "/api", endpoint = "send_message")]
pub async fn send_message(
    channel_id: String,
    user_id: String,
    client_msg_id: String,
    body: String,
    token: Option<String>,
) -> Result<(), ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    rooms.send_as(&me.channel_id, &me.user_id, me.role, &client_msg_id, &body).await.map_err(ssr::reject)?;
    ssr::back_to_room(&me, token.as_deref());
    Ok(())
}

/// A moderation request (remove or report a message; a moderator's
/// actions on members and the room), as JSON: what the page's menus call.
/// The role is the identity's (token or server settings), never the page's.
#[server(prefix = "/api", endpoint = "moderate", input = server_fn::codec::Json)]
pub async fn moderate(
    channel_id: String,
    user_id: String,
    token: Option<String>,
    request: Request,
) -> Result<(), ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    rooms.moderate_as(&me.channel_id, &me.user_id, me.role, request).await.map_err(ssr::reject)?;
    Ok(())
}

/// Removes a message (one's own, or any as a moderator): the form a page
/// without JavaScript posts. Goes back to the room page.
#[server(prefix = "/api", endpoint = "remove_message")]
pub async fn remove_message(
    channel_id: String,
    user_id: String,
    seq: i64,
    token: Option<String>,
) -> Result<(), ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    let request = Request::Remove { seq };
    rooms.moderate_as(&me.channel_id, &me.user_id, me.role, request).await.map_err(ssr::reject)?;
    ssr::back_to_room(&me, token.as_deref());
    Ok(())
}

/// Reports a message to the room's moderators, with an optional reason:
/// the form a page without JavaScript posts. Goes back to the room page.
#[server(prefix = "/api", endpoint = "report_message")]
pub async fn report_message(
    channel_id: String,
    user_id: String,
    seq: i64,
    #[server(default)] reason: String,
    token: Option<String>,
) -> Result<(), ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    let request = Request::Report { seq, reason };
    rooms.moderate_as(&me.channel_id, &me.user_id, me.role, request).await.map_err(ssr::reject)?;
    ssr::back_to_room(&me, token.as_deref());
    Ok(())
}

/// The room's open reports, oldest first: a moderator's queue.
#[server(prefix = "/api", endpoint = "open_reports")]
pub async fn open_reports(
    channel_id: String,
    user_id: String,
    token: Option<String>,
) -> Result<Vec<Report>, ApiError> {
    let (rooms, me) = ssr::acting(&channel_id, &user_id, token.as_deref())?;
    rooms.open_reports(&me.channel_id, &me.user_id, me.role).await.map_err(ssr::reject)
}

/// A moderator's action on a member (mute, unmute, kick, ban, lift a ban):
/// the member menu's form, which works without JavaScript. `sanction` is
/// the pressed button's value (see [`crate::moderation::Sanction`]). Goes
/// back to the room page.
#[server(prefix = "/api", endpoint = "moderate_member")]
pub async fn moderate_member(
    channel_id: String,
    user_id: String,
    member: String,
    sanction: String,
    #[server(default)] reason: String,
    token: Option<String>,
) -> Result<(), ApiError> {
    let Some(sanction) = crate::moderation::Sanction::from_value(&sanction) else {
        return Err(ApiError::Rejected("The request was malformed.".to_owned()));
    };
    ssr::act_from_form(&channel_id, &user_id, token.as_deref(), sanction.request(&member, &reason)).await
}

/// Blocks `member` (`blocked`), or lifts the block, for the page's user in
/// every room: the message menu's "Block" and the member list's "Unblock",
/// which work without JavaScript. Goes back to the room page.
#[server(prefix = "/api", endpoint = "block_user")]
pub async fn block_user(
    channel_id: String,
    user_id: String,
    member: String,
    blocked: bool,
    token: Option<String>,
) -> Result<(), ApiError> {
    let request =
        if blocked { Request::Block { user_id: member } } else { Request::Unblock { user_id: member } };
    ssr::act_from_form(&channel_id, &user_id, token.as_deref(), request).await
}

/// Sets the room's slow mode (a moderator): the moderation panel's form,
/// which works without JavaScript. Goes back to the room page.
#[server(prefix = "/api", endpoint = "set_slow_mode")]
pub async fn set_slow_mode(
    channel_id: String,
    user_id: String,
    seconds: u32,
    token: Option<String>,
) -> Result<(), ApiError> {
    ssr::act_from_form(&channel_id, &user_id, token.as_deref(), Request::SlowMode { seconds }).await
}

/// Resolves (`resolved`: acted upon) or dismisses a report (a moderator):
/// the report queue's form, which works without JavaScript. Goes back to
/// the room page.
#[server(prefix = "/api", endpoint = "close_report")]
pub async fn close_report(
    channel_id: String,
    user_id: String,
    id: i64,
    resolved: bool,
    token: Option<String>,
) -> Result<(), ApiError> {
    ssr::act_from_form(&channel_id, &user_id, token.as_deref(), Request::CloseReport { id, resolved }).await
}
