//! The room's header: room name, who you are, connection state, and the
//! Leave button (a form to the `leave_room` server function, so it works
//! without JavaScript too; the server sends the leaver to `/`). With
//! JavaScript the submit calls the function directly from the room's state
//! (not by reading the form back, which would ship a form decoder in the
//! WASM).
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::chat_room::{use_room, RoomIdentityFields};
use crate::api::LeaveRoom;
use crate::protocol::Role;

#[component]
pub fn RoomHeader(embedded: bool) -> impl IntoView {
    let room = use_room();
    let leave = ServerAction::<LeaveRoom>::new();
    let channel_id = room.channel_id.get_value();
    let user_id = room.user_id.get_value();
    let status = room.status;
    let notice = room.notice;
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        leave.dispatch(LeaveRoom {
            channel_id: room.channel_id.get_value(),
            user_id: room.user_id.get_value(),
            token: room.token.get_value(),
        });
    };
    let leave_error = move || match leave.value().get() {
        Some(Err(err)) => Some(err.to_string()),
        _ => None,
    };

    view! {
        <header class="room-header">
            <div class="room-title">
                {(!embedded).then(|| view! { <a class="brand" href="/">"Embedded Chat"</a> })}
                <h1>
                    <span class="visually-hidden">"Room "</span>
                    <span class="room-name">{channel_id.clone()}</span>
                </h1>
            </div>
            <p class="whoami">
                "Signed in as " <strong class="me">{user_id.clone()}</strong>
                {move || {
                    (room.role.get() == Role::Moderator).then(|| view! { " " <span class="role-badge">"moderator"</span> })
                }}
            </p>
            <p class=move || status.get().css_class() role="status" aria-live="polite">
                <span class="dot" aria-hidden="true"></span>
                {move || status.get().label()}
            </p>
            <form method="post" action="/api/leave_room" class="leave-form" on:submit=on_submit>
                <RoomIdentityFields/>
                <button type="submit" class="secondary" disabled=move || leave.pending().get()>
                    "Leave room"
                </button>
            </form>
        </header>
        {move || leave_error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        {move || notice.get().map(|n| view! { <p class="notice" role="alert">{n}</p> })}
        <p class="info" aria-live="polite">{move || room.info.get()}</p>
    }
}
