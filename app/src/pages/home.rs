//! `/`: where people pick a user name and a room, and where leavers land.
//! A plain GET form to `/chat_room`, so it works before (or without)
//! JavaScript.
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <main class="page narrow home">
            <h1>"Embedded Chat"</h1>
            <p class="lead">"Chat rooms for games and web apps. Pick a name and a room to join."</p>
            <EnterRoomForm user_id=String::new() channel_id=String::new()/>
        </main>
    }
}

/// The form that opens a room, prefilled with what is known.
#[component]
pub fn EnterRoomForm(user_id: String, channel_id: String) -> impl IntoView {
    view! {
        <form class="card enter-room" method="get" action="/chat_room">
            <label for="enter-user">"Your name"</label>
            <input id="enter-user" name="user_id" value=user_id required maxlength="64" autocomplete="nickname"/>
            <label for="enter-room">"Room"</label>
            <input id="enter-room" name="channel_id" value=channel_id required maxlength="64"/>
            <button type="submit">"Enter room"</button>
        </form>
    }
}
