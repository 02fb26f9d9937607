//! The room's header: room name, who you are, connection state, and the
//! Leave button (a form to the `leave_room` server function, so it works
//! without JavaScript too; the server sends the leaver to `/`).
use leptos::prelude::*;

use super::chat_room::{use_room, RoomIdentityFields};
use crate::api::LeaveRoom;

#[component]
pub fn RoomHeader(embedded: bool) -> impl IntoView {
    let room = use_room();
    let leave = ServerAction::<LeaveRoom>::new();
    let channel_id = room.channel_id.get_value();
    let user_id = room.user_id.get_value();
    let status = room.status;
    let notice = room.notice;
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
            </p>
            <p class=move || status.get().css_class() role="status" aria-live="polite">
                <span class="dot" aria-hidden="true"></span>
                {move || status.get().label()}
            </p>
            <ActionForm action=leave attr:class="leave-form">
                <RoomIdentityFields/>
                <button type="submit" class="secondary">"Leave room"</button>
            </ActionForm>
        </header>
        {move || leave_error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        {move || notice.get().map(|n| view! { <p class="notice" role="alert">{n}</p> })}
    }
}
