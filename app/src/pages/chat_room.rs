//! `/chat_room?user_id=U&channel_id=C[&is_embedded=true|&embed=1][&parent_origin=O]`:
//! joins the room on the server (creating it on first visit) and renders
//! it with its members and latest history; the browser then hydrates it
//! and goes live. An embedded page given `parent_origin` sends events to
//! that parent page when the origin is allowed (see `crate::embed`).
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::home::EnterRoomForm;
use crate::api::{embed_parent_allowed, join_room};
use crate::components::chat_room::ChatRoom;
use crate::embed::EmbedParent;
use crate::protocol::moderation::Report;
use crate::protocol::{Role, RoomSnapshot};

/// What the room URL asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomParams {
    pub user_id: String,
    pub channel_id: String,
    /// Compact layout for iframes (`is_embedded=true` or `embed=1`).
    pub embedded: bool,
    /// The identity token the game signed (servers with a secret need it).
    pub token: Option<String>,
}

/// The URL's room parameters, or `None` when the user or the room is
/// missing or blank and no token names them. Values are checked again by
/// the server.
pub fn parse_room_params(
    user_id: Option<String>,
    channel_id: Option<String>,
    is_embedded: Option<String>,
    embed: Option<String>,
    token: Option<String>,
) -> Option<RoomParams> {
    let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let yes = |v: Option<String>| v.is_some_and(|s| matches!(s.as_str(), "true" | "1" | "yes"));
    let token = present(token);
    let (user_id, channel_id) = match (present(user_id), present(channel_id), &token) {
        (Some(user), Some(channel), _) => (user, channel),
        // The token names the user and the room.
        (user, channel, Some(_)) => (user.unwrap_or_default(), channel.unwrap_or_default()),
        _ => return None,
    };
    Some(RoomParams { user_id, channel_id, embedded: yes(is_embedded) || yes(embed), token })
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The address of a room page for a user.
pub fn room_href(channel_id: &str, user_id: &str) -> String {
    room_href_with_token(channel_id, user_id, None)
}

/// The address of a room page for a user, with their identity token when
/// the server requires one.
pub fn room_href_with_token(channel_id: &str, user_id: &str, token: Option<&str>) -> String {
    let mut href = format!(
        "/chat_room?user_id={}&channel_id={}",
        encode_query_value(user_id),
        encode_query_value(channel_id)
    );
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        href.push_str("&token=");
        href.push_str(&encode_query_value(token));
    }
    href
}

#[component]
pub fn ChatRoomPage() -> impl IntoView {
    let query = use_query_map();
    let params = Memo::new(move |_| {
        query.with(|q| {
            parse_room_params(
                q.get("user_id"),
                q.get("channel_id"),
                q.get("is_embedded"),
                q.get("embed"),
                q.get("token"),
            )
        })
    });
    let snapshot = Resource::new(
        move || params.get(),
        |params| async move {
            match params {
                Some(p) => join_room(p.channel_id, p.user_id, p.token).await.map(Some),
                None => Ok(None),
            }
        },
    );
    // Only an embedded page talks to a parent page.
    let parent_origin = Memo::new(move |_| {
        let embedded = params.with(|p| p.as_ref().is_some_and(|p| p.embedded));
        query.with(|q| q.get("parent_origin")).filter(|o| embedded && !o.trim().is_empty())
    });
    let embed_parent = Resource::new(
        move || parent_origin.get(),
        |origin| async move {
            let origin = origin?;
            let on_allowlist = embed_parent_allowed(origin.clone()).await.map_err(|e| e.to_string());
            // Written the way browsers write origins, for the page to
            // compare with its own (a value that is not one was refused).
            let origin = crate::embed::normalize_origin(&origin).unwrap_or(origin);
            Some(EmbedParent { origin, on_allowlist })
        },
    );

    view! {
        <Suspense fallback=|| view! { <p class="loading">"Opening the room…"</p> }>
            {move || Suspend::new(async move {
                let embedded = params.get_untracked().is_some_and(|p| p.embedded);
                let token = params.get_untracked().and_then(|p| p.token);
                let embed_parent = embed_parent.await;
                match snapshot.await {
                    Ok(Some(snapshot)) => {
                        let title = format!("{} · Embedded Chat", snapshot.channel_id);
                        let reports = moderators_queue(&snapshot, token.clone()).await;
                        let form_error = refused_room_form();
                        view! {
                            <Title text=title/>
                            <ChatRoom snapshot embedded embed_parent=embed_parent token reports form_error/>
                        }
                        .into_any()
                    }
                    Ok(None) => view! { <MissingParams/> }.into_any(),
                    Err(err) => view! { <RoomUnavailable message=err.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// A moderator's open reports, to render with the room (none for a player,
/// or when they cannot be read: the page reads them again once live).
async fn moderators_queue(snapshot: &RoomSnapshot, token: Option<String>) -> Vec<Report> {
    if snapshot.role != Role::Moderator {
        return Vec::new();
    }
    let (channel_id, user_id) = (snapshot.channel_id.clone(), snapshot.user_id.clone());
    crate::api::open_reports(channel_id, user_id, token).await.unwrap_or_default()
}

/// Why the server refused a room form posted without JavaScript (it sends
/// the page back with the error in its address). The forms with a place
/// of their own for it (add a user, leave) show it there.
fn refused_room_form() -> Option<String> {
    use server_fn::error::ServerFnUrlError;
    use server_fn::ServerFn;
    let refused = use_context::<leptos::server::ServerActionError>()?;
    let own_place = [<crate::api::AddUser as ServerFn>::PATH, <crate::api::LeaveRoom as ServerFn>::PATH];
    if own_place.contains(&refused.path()) {
        return None;
    }
    Some(ServerFnUrlError::<crate::api::ApiError>::decode_err(refused.err()).to_string())
}

/// Shown when the link lacks a user or a room: explain and offer the form.
#[component]
fn MissingParams() -> impl IntoView {
    let query = use_query_map();
    let user_id = query.with_untracked(|q| q.get("user_id").unwrap_or_default());
    let channel_id = query.with_untracked(|q| q.get("channel_id").unwrap_or_default());
    view! {
        <main class="page narrow">
            <h1>"Which room?"</h1>
            <p class="lead">
                "A chat room link needs a user name and a room, like "
                <code>"/chat_room?user_id=john&channel_id=game_1"</code> ". Fill in what is missing:"
            </p>
            <EnterRoomForm user_id channel_id/>
        </main>
    }
}

#[component]
fn RoomUnavailable(message: String) -> impl IntoView {
    view! {
        <main class="page narrow">
            <h1>"This room cannot be opened"</h1>
            <p role="alert" class="error">{message}</p>
            <p><a href="/">"Back to the home page"</a></p>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn both_ids_are_required() {
        assert_eq!(parse_room_params(None, s("game_1"), None, None, None), None);
        assert_eq!(parse_room_params(s("john"), s("  "), None, None, None), None);
        let p = parse_room_params(s("john"), s("game_1"), None, None, None).unwrap();
        assert_eq!((p.user_id.as_str(), p.channel_id.as_str(), p.embedded), ("john", "game_1", false));
    }

    #[test]
    fn embedded_mode_accepts_both_spellings() {
        assert!(parse_room_params(s("a"), s("b"), s("true"), None, None).unwrap().embedded);
        assert!(parse_room_params(s("a"), s("b"), None, s("1"), None).unwrap().embedded);
        assert!(!parse_room_params(s("a"), s("b"), s("false"), s("0"), None).unwrap().embedded);
    }

    #[test]
    fn a_token_may_stand_for_the_ids() {
        let p = parse_room_params(None, None, None, None, s("abc.def")).unwrap();
        assert_eq!(
            (p.user_id.as_str(), p.channel_id.as_str(), p.token.as_deref()),
            ("", "", Some("abc.def"))
        );
        assert_eq!(parse_room_params(None, None, None, None, s(" ")), None);
        assert_eq!(
            room_href_with_token("g", "j", Some("a.b")),
            "/chat_room?user_id=j&channel_id=g&token=a.b"
        );
    }

    #[test]
    fn room_links_are_percent_encoded() {
        assert_eq!(room_href("game 1", "jo&hn"), "/chat_room?user_id=jo%26hn&channel_id=game%201");
        assert_eq!(encode_query_value("é"), "%C3%A9");
    }
}
