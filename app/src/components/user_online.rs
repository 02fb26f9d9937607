//! `UserOnline`: the "Users in room" list, kept live by the room stream.
use leptos::prelude::*;

use super::chat_room::use_room;

#[component]
pub fn UserOnline() -> impl IntoView {
    let room = use_room();
    let me = room.user_id.get_value();
    let members = move || room.members.with(|m| m.iter().cloned().collect::<Vec<_>>());
    let count = move || room.members.with(|m| m.len());

    view! {
        <section class="members" aria-labelledby="members-heading">
            <h2 id="members-heading">"Users in room " <span class="count">"(" {count} ")"</span></h2>
            <ul aria-labelledby="members-heading" class="member-list">
                <For each=members key=|user| user.clone() children=move |user| {
                    let is_me = user == me;
                    view! { <li class:me=is_me>{user}</li> }
                }/>
            </ul>
        </section>
    }
}
