//! Rooms, members, messages and moderation, for the game's servers.
use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chat_protocol::moderation::{Report, Request};
use chat_protocol::{ChatMessage, Role};
use engine::moderate::Done;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::{ApiError, ApiState};

/// A JSON body; a malformed one is answered in the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// A JSON body whose fields all have defaults: an empty body takes them
/// all; anything else must be JSON, as [`Body`] requires.
pub struct Optional<T>(pub T);

/// The most an optional body may hold (its fields are a few words).
const OPTIONAL_BODY_MAX: usize = 16 * 1024;

impl<T, S> FromRequest<S> for Optional<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, OPTIONAL_BODY_MAX)
            .await
            .map_err(|_| ApiError::bad_request("The body could not be read (at most 16 KiB)."))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let Body(fields) = Body::from_request(request, state).await?;
        Ok(Self(fields))
    }
}

/// Path parameters, answered in the API's error shape when malformed.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct InPath<T>(pub T);

/// Query parameters, likewise.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct InQuery<T>(pub T);

pub(super) type Answer<T> = Result<T, ApiError>;

/// A page of at most `limit` out of `items`, read with one more than that:
/// the page, and whether more follow.
fn page<T>(mut items: Vec<T>, limit: u64) -> (Vec<T>, bool) {
    let has_more = items.len() as u64 > limit;
    items.truncate(limit as usize);
    (items, has_more)
}

#[derive(Deserialize, ToSchema)]
pub struct NewRoom {
    /// The room's id, as pages name it (`channel_id` in the room's URL).
    channel_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct RoomCreated {
    channel_id: String,
    /// `false` when the room existed already (nothing changed).
    created: bool,
}

/// Creates a room (idempotent: an existing room is left as it is).
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = NewRoom,
    responses(
        (status = 201, description = "Created", body = RoomCreated),
        (status = 200, description = "It existed already", body = RoomCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn create_room(State(api): State<ApiState>, Body(room): Body<NewRoom>) -> Answer<Response> {
    let created = api.rooms.create_room(&room.channel_id).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let channel_id = room.channel_id.trim().to_owned();
    Ok((status, Json(RoomCreated { channel_id, created })).into_response())
}

/// Most rooms one listing call returns, and how many by default.
const MAX_LISTED: u64 = 500;
const LISTED: u64 = 100;

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Rooms whose id comes after this one (the last id of the page
    /// before; none, the default: from the first).
    #[serde(default)]
    after: String,
    /// At most this many (1 to 500; 100 by default).
    limit: Option<u64>,
}

impl ListQuery {
    fn limit(&self) -> u64 {
        self.limit.unwrap_or(LISTED).clamp(1, MAX_LISTED)
    }
}

#[derive(Serialize, ToSchema)]
pub struct RoomList {
    /// In the order of their ids (the database's order for text).
    rooms: Vec<RoomSummary>,
    /// Whether more follow: ask again with `after` = the last id here.
    has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct RoomSummary {
    channel_id: String,
    /// How many members it has.
    members: i64,
    /// The room's newest seq (0: no messages yet).
    last_seq: i64,
    /// When it was created (Unix milliseconds).
    created_at_ms: i64,
    /// When its newest message or moderation event was (Unix
    /// milliseconds); `null`: none yet.
    last_message_at_ms: Option<i64>,
}

/// The rooms, a page at a time in the order of their ids: for finding the
/// rooms of matches long over (`last_message_at_ms`) and deleting them.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms", params(ListQuery),
    responses((status = 200, body = RoomList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_rooms(
    State(api): State<ApiState>,
    InQuery(query): InQuery<ListQuery>,
) -> Answer<Json<RoomList>> {
    let limit = query.limit();
    let (rooms, has_more) = page(api.rooms.list_rooms(&query.after, limit + 1).await?, limit);
    let rooms = rooms
        .into_iter()
        .map(|room| RoomSummary {
            channel_id: room.channel_id,
            members: room.members,
            last_seq: room.last_seq,
            created_at_ms: room.created_at.timestamp_millis(),
            last_message_at_ms: room.last_message_at.map(|at| at.timestamp_millis()),
        })
        .collect();
    Ok(Json(RoomList { rooms, has_more }))
}

#[derive(Serialize, ToSchema)]
pub struct UserRooms {
    /// In the order of their ids.
    rooms: Vec<Membership>,
    /// Whether more follow: ask again with `after` = the last id here.
    has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Membership {
    channel_id: String,
    /// As set through this API (a token's claim may also make a moderator).
    role: Role,
}

/// The rooms a user is a member of, a page at a time in the order of
/// their ids (none: an empty list).
#[utoipa::path(get, path = "/api/v1/users/{user_id}/rooms", tag = "users",
    params(("user_id" = String, Path, description = "The user"), ListQuery),
    responses((status = 200, body = UserRooms), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn user_rooms(
    State(api): State<ApiState>,
    InPath(user_id): InPath<String>,
    InQuery(query): InQuery<ListQuery>,
) -> Answer<Json<UserRooms>> {
    let limit = query.limit();
    let (rooms, has_more) = page(api.rooms.user_rooms(&user_id, &query.after, limit + 1).await?, limit);
    let rooms = rooms.into_iter().map(|(channel_id, role)| Membership { channel_id, role }).collect();
    Ok(Json(UserRooms { rooms, has_more }))
}

#[derive(Serialize, ToSchema)]
pub struct LeftRooms {
    /// The rooms they were taken out of, in the order of their ids.
    left: Vec<String>,
}

/// Takes a user out of every room they are in (a player banned from the
/// game, an account closed): in each, as when a member is taken out, their
/// pages close and the room sees them leave. Their messages stay.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/rooms", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = LeftRooms), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn leave_all_rooms(
    State(api): State<ApiState>,
    InPath(user_id): InPath<String>,
) -> Answer<Json<LeftRooms>> {
    Ok(Json(LeftRooms { left: api.rooms.remove_from_all(&user_id).await? }))
}

#[derive(Serialize, ToSchema)]
pub struct PurgedRooms {
    /// The rooms their messages were removed from, in the order of their
    /// ids.
    purged: Vec<String>,
}

/// Removes every message a user has written, in every room (an account
/// closed, a player's content taken down): in each room as
/// `DELETE /rooms/{channel_id}/members/{user_id}/messages` does, one
/// moderation event its pages show at once. Rooms where nothing is left
/// to remove are not listed; a second call lists none.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/messages", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = PurgedRooms), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn purge_everywhere(
    State(api): State<ApiState>,
    InPath(user_id): InPath<String>,
) -> Answer<Json<PurgedRooms>> {
    Ok(Json(PurgedRooms { purged: api.rooms.purge_everywhere(&user_id).await? }))
}

#[derive(Deserialize, IntoParams)]
pub struct UserMessagesQuery {
    /// Go on after this room's `after_seq` (the `next` of the page before;
    /// none: from the start).
    #[serde(default)]
    after_room: String,
    #[serde(default)]
    after_seq: i64,
    /// At most this many (default and most: 500).
    limit: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserMessages {
    /// Room by room in the order of their names, each room's oldest first.
    messages: Vec<RoomMessage>,
    /// Where the next page starts (send both back as they are); `null`
    /// when this was the last.
    next: Option<UserMessagesCursor>,
}

#[derive(Serialize, ToSchema)]
pub struct RoomMessage {
    channel_id: String,
    #[serde(flatten)]
    message: ChatMessage,
}

#[derive(Serialize, ToSchema)]
pub struct UserMessagesCursor {
    after_room: String,
    after_seq: i64,
}

/// Everything a user has written that still stands, in every room, a page
/// at a time (a player asking for their data). Removed messages are not
/// listed (their text is never given out again, even when kept with
/// `REMOVED_TEXT=keep`), nor reasons they gave in reports.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/messages", tag = "users",
    params(("user_id" = String, Path, description = "The user"), UserMessagesQuery),
    responses((status = 200, body = UserMessages), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn user_messages(
    State(api): State<ApiState>,
    InPath(user_id): InPath<String>,
    InQuery(query): InQuery<UserMessagesQuery>,
) -> Answer<Json<UserMessages>> {
    let limit = query.limit.unwrap_or(MAX_HISTORY).clamp(1, MAX_HISTORY);
    let found = api.rooms.messages_of(&user_id, &query.after_room, query.after_seq, limit + 1).await?;
    let (found, more) = page(found, limit);
    let next = found
        .last()
        .filter(|_| more)
        .map(|(room, message)| UserMessagesCursor { after_room: room.clone(), after_seq: message.seq });
    let messages =
        found.into_iter().map(|(channel_id, message)| RoomMessage { channel_id, message }).collect();
    Ok(Json(UserMessages { messages, next }))
}

#[derive(Serialize, ToSchema)]
pub struct RoomView {
    channel_id: String,
    /// Members in the order they joined.
    members: Vec<MemberView>,
    /// The room's newest seq (0: no messages yet).
    last_seq: i64,
    /// One message per this many seconds per player (0: off).
    slow_mode_secs: u32,
}

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    user_id: String,
    /// As set through this API (a token's claim may also make a moderator).
    role: Role,
    /// Whether they have the room open right now.
    online: bool,
}

/// A room: its members (with their roles and who is online) and its newest seq.
#[utoipa::path(get, path = "/api/v1/rooms/{channel_id}", tag = "rooms",
    params(("channel_id" = String, Path, description = "The room")),
    responses((status = 200, body = RoomView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_room(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
) -> Answer<Json<RoomView>> {
    let room = api.rooms.room_info(&channel_id).await?;
    let online = api.rooms.online(&room.channel_id).await?;
    let members = room
        .members
        .into_iter()
        .map(|(user_id, role)| MemberView { online: online.binary_search(&user_id).is_ok(), user_id, role })
        .collect();
    Ok(Json(RoomView {
        channel_id: room.channel_id,
        members,
        last_seq: room.last_seq,
        slow_mode_secs: room.slow_mode_secs,
    }))
}

/// Deletes a room with its members, messages, sanctions and reports; its
/// open pages are closed.
#[utoipa::path(delete, path = "/api/v1/rooms/{channel_id}", tag = "rooms",
    params(("channel_id" = String, Path, description = "The room")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_room(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
) -> Answer<StatusCode> {
    api.rooms.delete_room(&channel_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewMember {
    user_id: String,
    /// `player` (the default) or `moderator`.
    #[serde(default)]
    role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct MemberAdded {
    user_id: String,
    role: Role,
    /// `false` when they were a member already (their role is set all the same).
    added: bool,
}

/// Puts a user in the room with a role (idempotent). Refused for a user
/// banned from the room (409).
#[utoipa::path(post, path = "/api/v1/rooms/{channel_id}/members", tag = "rooms",
    params(("channel_id" = String, Path, description = "The room")),
    request_body = NewMember,
    responses(
        (status = 201, description = "Added", body = MemberAdded),
        (status = 200, description = "A member already", body = MemberAdded),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Banned", body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn add_member(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
    Body(member): Body<NewMember>,
) -> Answer<Response> {
    let added = api.rooms.add_member(&channel_id, &member.user_id, member.role).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    let body = MemberAdded { user_id: member.user_id.trim().to_owned(), role: member.role, added };
    Ok((status, Json(body)).into_response())
}

/// Takes a member out of the room (their pages close; they may come back
/// unless banned).
#[utoipa::path(delete, path = "/api/v1/rooms/{channel_id}/members/{user_id}", tag = "rooms",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The member")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_member(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
) -> Answer<StatusCode> {
    api.rooms.remove_member(&channel_id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct RoleChange {
    role: Role,
}

/// Sets a member's role; their open pages act with it at once.
#[utoipa::path(put, path = "/api/v1/rooms/{channel_id}/members/{user_id}/role", tag = "rooms",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The member")),
    request_body = RoleChange,
    responses((status = 204, description = "Set"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn set_role(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
    Body(change): Body<RoleChange>,
) -> Answer<StatusCode> {
    api.rooms.set_role(&channel_id, &user_id, change.role).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewMessage {
    /// Chosen by the caller (1–64 printable ASCII characters): posting the
    /// same id again returns the stored message instead of a second one.
    client_msg_id: String,
    body: String,
    /// Post as this member; without it the game posts as itself (a system
    /// message, shown apart from players' messages).
    #[serde(default)]
    user_id: Option<String>,
}

/// Posts a message: as the game (a system message) or as a member. The word
/// filter applies; a member's mute, slow mode and send rate do not.
#[utoipa::path(post, path = "/api/v1/rooms/{channel_id}/messages", tag = "messages",
    params(("channel_id" = String, Path, description = "The room")),
    request_body = NewMessage,
    responses(
        (status = 201, description = "Stored (or stored before under this client_msg_id)", body = ChatMessage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
    security(("api_key" = [])))]
pub async fn post_message(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
    Body(message): Body<NewMessage>,
) -> Answer<Response> {
    let stored = api
        .rooms
        .post(&channel_id, message.user_id.as_deref(), &message.client_msg_id, &message.body)
        .await?;
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

/// Most messages one history call returns.
const MAX_HISTORY: u64 = 500;

#[derive(Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// Messages after this seq (0, the default: from the start).
    #[serde(default)]
    after_seq: i64,
    /// At most this many (default and most: 500).
    limit: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct History {
    /// Oldest first. Moderation events are included (`action`); a removed
    /// message comes without its text (`removed`).
    messages: Vec<ChatMessage>,
    /// Whether more follow: ask again with `after_seq` = the last seq here.
    has_more: bool,
}

/// A page of the room's history by seq.
#[utoipa::path(get, path = "/api/v1/rooms/{channel_id}/messages", tag = "messages",
    params(("channel_id" = String, Path, description = "The room"), HistoryQuery),
    responses((status = 200, body = History), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn read_history(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
    InQuery(query): InQuery<HistoryQuery>,
) -> Answer<Json<History>> {
    let limit = query.limit.unwrap_or(MAX_HISTORY).clamp(1, MAX_HISTORY);
    let (messages, has_more) = page(api.rooms.history(&channel_id, query.after_seq, limit + 1).await?, limit);
    Ok(Json(History { messages, has_more }))
}

/// What a moderation call recorded: the event, in the room's order.
#[derive(Serialize, ToSchema)]
pub struct Recorded {
    event: ChatMessage,
}

/// Runs a moderation request as the game.
async fn act(api: &ApiState, channel_id: &str, request: Request) -> Answer<Json<Recorded>> {
    match api.rooms.moderate_as_game(channel_id, request).await? {
        Done::Recorded(event) => Ok(Json(Recorded { event })),
        Done::Reported(_) | Done::Closed | Done::BlockChanged => Err(ApiError::bad_request("Not an action.")),
    }
}

/// Removes a message: every page shows "Message removed" in its place.
#[utoipa::path(delete, path = "/api/v1/rooms/{channel_id}/messages/{seq}", tag = "messages",
    params(("channel_id" = String, Path, description = "The room"), ("seq" = i64, Path, description = "The message")),
    responses((status = 200, body = Recorded), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Removed already", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_message(
    State(api): State<ApiState>,
    InPath((channel_id, seq)): InPath<(String, i64)>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::Remove { seq }).await
}

#[derive(Default, Deserialize, ToSchema)]
pub struct Sanction {
    /// How long, in minutes (1 to a year); without it, until lifted.
    #[serde(default)]
    minutes: Option<u32>,
    /// Shown to the member and the room (at most 200 characters).
    #[serde(default)]
    reason: String,
}

/// Mutes a member: they read but cannot send. The body may be left out
/// (muted until lifted, no reason); 409 when muted already on those terms.
#[utoipa::path(put, path = "/api/v1/rooms/{channel_id}/members/{user_id}/mute", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The member")),
    request_body = Option<Sanction>,
    responses((status = 200, body = Recorded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Muted already on those terms", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn mute(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
    Optional(mute): Optional<Sanction>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::Mute { user_id, minutes: mute.minutes, reason: mute.reason }).await
}

/// Lifts a member's mute.
#[utoipa::path(delete, path = "/api/v1/rooms/{channel_id}/members/{user_id}/mute", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The member")),
    responses((status = 200, body = Recorded), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Not muted", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn unmute(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::Unmute { user_id }).await
}

#[derive(Default, Deserialize, ToSchema)]
pub struct Kick {
    #[serde(default)]
    reason: String,
}

/// Removes every message the user has written in the room so far (members
/// or not: a spammer who left, an account closed): every page shows
/// "Message removed" in their place. 409 when there is none left to remove.
#[utoipa::path(delete, path = "/api/v1/rooms/{channel_id}/members/{user_id}/messages", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Recorded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Nothing left to remove", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn purge(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::Purge { user_id }).await
}

/// Removes a member from the room; they may come back. The body may be
/// left out (no reason).
#[utoipa::path(post, path = "/api/v1/rooms/{channel_id}/members/{user_id}/kick", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The member")),
    request_body = Option<Kick>,
    responses((status = 200, body = Recorded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Not in the room", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn kick(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
    Optional(kick): Optional<Kick>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::Kick { user_id, reason: kick.reason }).await
}

/// Bans a user: out of the room, and kept out until the ban ends or is
/// lifted. The body may be left out (banned for good, no reason); 409 when
/// banned already on those terms.
#[utoipa::path(put, path = "/api/v1/rooms/{channel_id}/bans/{user_id}", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The user")),
    request_body = Option<Sanction>,
    responses((status = 200, body = Recorded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Banned already on those terms", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn ban(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
    Optional(ban): Optional<Sanction>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::Ban { user_id, minutes: ban.minutes, reason: ban.reason }).await
}

/// Lifts a ban.
#[utoipa::path(delete, path = "/api/v1/rooms/{channel_id}/bans/{user_id}", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Recorded), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Not banned", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn unban(
    State(api): State<ApiState>,
    InPath((channel_id, user_id)): InPath<(String, String)>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::Unban { user_id }).await
}

#[derive(Deserialize, ToSchema)]
pub struct SlowMode {
    /// One message per this many seconds per player (0: off; at most 3600).
    seconds: u32,
}

/// Sets the room's slow mode.
#[utoipa::path(put, path = "/api/v1/rooms/{channel_id}/slow_mode", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room")),
    request_body = SlowMode,
    responses((status = 200, body = Recorded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Already so", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn slow_mode(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
    Body(slow): Body<SlowMode>,
) -> Answer<Json<Recorded>> {
    act(&api, &channel_id, Request::SlowMode { seconds: slow.seconds }).await
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SanctionKind {
    Mute,
    Ban,
}

#[derive(Serialize, ToSchema)]
pub struct SanctionView {
    user_id: String,
    kind: SanctionKind,
    /// When it ends, Unix milliseconds (`null`: until lifted).
    until_ms: Option<i64>,
    reason: String,
    /// Who gave it (`game`: through this API).
    by: String,
    at_ms: i64,
}

/// Who is muted or banned in the room now (a player asking support why
/// they cannot talk or get in), by user; lifted and ended ones are not
/// listed.
#[utoipa::path(get, path = "/api/v1/rooms/{channel_id}/sanctions", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room")),
    responses((status = 200, body = Vec<SanctionView>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_sanctions(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
) -> Answer<Json<Vec<SanctionView>>> {
    let sanctions = api.rooms.room_sanctions(&channel_id).await?;
    Ok(Json(sanctions.into_iter().map(SanctionView::from).collect()))
}

impl From<engine::store::moderation::SanctionRecord> for SanctionView {
    fn from(s: engine::store::moderation::SanctionRecord) -> Self {
        SanctionView {
            user_id: s.user_id,
            kind: match s.kind {
                engine::store::moderation::Sanction::Mute => SanctionKind::Mute,
                engine::store::moderation::Sanction::Ban => SanctionKind::Ban,
            },
            until_ms: s.until_ms,
            reason: s.reason,
            by: s.by,
            at_ms: s.at_ms,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RoomSanction {
    channel_id: String,
    #[serde(flatten)]
    sanction: SanctionView,
}

/// Where a user is muted or banned now, in every room (a player asking
/// support why they cannot talk), by room; lifted and ended ones are not
/// listed.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/sanctions", tag = "users",
    params(("user_id" = String, Path, description = "The user")),
    responses((status = 200, body = Vec<RoomSanction>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn user_sanctions(
    State(api): State<ApiState>,
    InPath(user_id): InPath<String>,
) -> Answer<Json<Vec<RoomSanction>>> {
    let sanctions = api.rooms.user_sanctions(&user_id).await?.into_iter();
    let listed = sanctions.map(|(channel_id, s)| RoomSanction { channel_id, sanction: s.into() });
    Ok(Json(listed.collect()))
}

/// Most reports one call returns, and how many by default.
const MAX_REPORTS: u64 = 500;
const REPORTS: u64 = 100;

#[derive(Deserialize, IntoParams)]
pub struct ReportsQuery {
    /// Reports whose id comes after this one (the last id of the page
    /// before; 0, the default: from the oldest).
    #[serde(default)]
    after_id: i64,
    /// At most this many (1 to 500; 100 by default).
    limit: Option<u64>,
}

/// The room's open reports, oldest first, a page at a time: a full page
/// (`limit` of them) may have more after it; ask again with `after_id` =
/// the last id here. This pages through the queue; new reports are told
/// as they come by the `message.reported` webhook.
#[utoipa::path(get, path = "/api/v1/rooms/{channel_id}/reports", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ReportsQuery),
    responses((status = 200, body = Vec<Report>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_reports(
    State(api): State<ApiState>,
    InPath(channel_id): InPath<String>,
    InQuery(query): InQuery<ReportsQuery>,
) -> Answer<Json<Vec<Report>>> {
    let limit = query.limit.unwrap_or(REPORTS).clamp(1, MAX_REPORTS);
    Ok(Json(api.rooms.reports(&channel_id, query.after_id, limit).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acted upon.
    Resolved,
    /// Nothing to do.
    Dismissed,
}

#[derive(Deserialize, ToSchema)]
pub struct Closing {
    outcome: Outcome,
}

/// Closes an open report.
#[utoipa::path(post, path = "/api/v1/rooms/{channel_id}/reports/{id}/close", tag = "moderation",
    params(("channel_id" = String, Path, description = "The room"), ("id" = i64, Path, description = "The report")),
    request_body = Closing,
    responses((status = 204, description = "Closed"), (status = 401, body = ErrorBody), (status = 404, description = "No such open report", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn close_report(
    State(api): State<ApiState>,
    InPath((channel_id, id)): InPath<(String, i64)>,
    Body(closing): Body<Closing>,
) -> Answer<StatusCode> {
    let resolved = matches!(closing.outcome, Outcome::Resolved);
    api.rooms.moderate_as_game(&channel_id, Request::CloseReport { id, resolved }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct NewWords {
    /// Words or phrases to add to the word filter's list.
    words: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WordsAdded {
    /// Entries in the list now.
    entries: usize,
}

/// Adds words to the word filter: appended to its list file (which stays
/// the one place the list lives) and in force at once, on this node; the
/// other nodes read the file again within a second when they share it.
#[utoipa::path(post, path = "/api/v1/word_filter", tag = "moderation",
    request_body = NewWords,
    responses((status = 200, body = WordsAdded), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, description = "No list file", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn add_words(State(api): State<ApiState>, Body(new): Body<NewWords>) -> Answer<Json<WordsAdded>> {
    let (path, filter) = word_filter(&api)?;
    filter.replace(crate::word_filter::append(path, &new.words).await.map_err(list_change_failed)?);
    Ok(Json(WordsAdded { entries: filter.len() }))
}

#[derive(Serialize, ToSchema)]
pub struct WordEntries {
    /// Each entry as the list file first writes it, in its order.
    entries: Vec<String>,
}

/// The word filter's entries, as its list file reads now.
#[utoipa::path(get, path = "/api/v1/word_filter", tag = "moderation",
    responses((status = 200, body = WordEntries), (status = 401, body = ErrorBody), (status = 409, description = "No list file", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_words(State(api): State<ApiState>) -> Answer<Json<WordEntries>> {
    let (path, _) = word_filter(&api)?;
    let path = path.clone();
    let read = tokio::task::spawn_blocking(move || crate::word_filter::load(&path)).await;
    let list = read
        .unwrap_or_else(|err| Err(err.to_string()))
        .map_err(|why| list_change_failed(crate::word_filter::ChangeError::Failed(why)))?;
    Ok(Json(WordEntries { entries: list.entries().map(str::to_owned).collect() }))
}

/// Takes an entry out of the word filter (a word that caught what it
/// should not): every line of the list file that reads as it does
/// (`darn`, `DARN`), in force at once on this node, within a second on the
/// others that share the file. 404 when the list has no such entry.
#[utoipa::path(delete, path = "/api/v1/word_filter/{entry}", tag = "moderation",
    params(("entry" = String, Path, description = "The word or phrase, as listed or reading the same")),
    responses((status = 200, body = WordsAdded), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "No list file", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_word(
    State(api): State<ApiState>,
    InPath(entry): InPath<String>,
) -> Answer<Json<WordsAdded>> {
    let (path, filter) = word_filter(&api)?;
    filter.replace(crate::word_filter::remove(path, &entry).await.map_err(list_change_failed)?);
    Ok(Json(WordsAdded { entries: filter.len() }))
}

/// The word filter's list file and the filter in force, or 409 without one.
fn word_filter(
    api: &ApiState,
) -> Result<&(std::path::PathBuf, std::sync::Arc<moderation::WordFilter>), ApiError> {
    api.words.as_ref().ok_or_else(|| {
        ApiError::conflict("not_configured", "The server has no word filter list (WORD_FILTER_FILE).")
    })
}

fn list_change_failed(err: crate::word_filter::ChangeError) -> ApiError {
    use crate::word_filter::ChangeError;
    match err {
        ChangeError::Invalid(why) => ApiError::bad_request(why),
        ChangeError::NotListed(why) => ApiError::not_found(why),
        ChangeError::Failed(why) => {
            tracing::error!(%why, "changing the word filter list failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The word list could not be changed.",
            )
        }
    }
}
