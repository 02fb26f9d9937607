//! `UserOnline`: the "Users in room" list, kept live by the room stream,
//! each member with a presence dot (online, or offline / not yet known).
//! The dot is an image with a label and no text, so a member's entry reads
//! as their name. A moderator also gets a menu on every other member (mute,
//! kick, ban: see `menus`). A member the reader has blocked is marked so,
//! with an "Unblock" button (their messages are hidden meanwhile).
use leptos::prelude::*;

use super::chat_room::use_room;
use super::menus::{block_form, identity_html, MemberMenu};
use crate::protocol::Role;

#[component]
pub fn UserOnline() -> impl IntoView {
    let room = use_room();
    let me = room.user_id.get_value();
    let members = move || room.members.with(|m| m.iter().cloned().collect::<Vec<_>>());
    let count = move || room.members.with(|m| m.len());
    // Whom the reader blocked, apart from the conversation: each member's
    // entry follows this, not every message.
    let blocked = Memo::new(move |_| room.conversation.with(|c| c.blocked().to_vec()));

    view! {
        <section class="members" aria-labelledby="members-heading">
            <h2 id="members-heading">"Users in room " <span class="count">"(" {count} ")"</span></h2>
            <ul aria-labelledby="members-heading" class="member-list">
                <For each=members key=|user| user.clone() children=move |user| {
                    let is_me = user == me;
                    let online = {
                        let user = user.clone();
                        move || room.online.with(|o| o.is_online(&user))
                    };
                    let menu = {
                        let user = user.clone();
                        move || {
                            (!is_me && room.role.get() == Role::Moderator)
                                .then(|| view! { <MemberMenu member=user.clone()/> })
                        }
                    };
                    let unblock = {
                        let user = user.clone();
                        move || {
                            blocked.with(|b| b.binary_search(&user).is_ok()).then(|| {
                                let mut html = String::new();
                                block_form(&mut html, &identity_html(room), &user, false);
                                view! { <span class="blocked">"blocked"</span><span class="unblock" inner_html=html></span> }
                            })
                        }
                    };
                    view! {
                        <li class:me=is_me>
                            <span class="member-name">{user}</span>
                            <span
                                class="presence"
                                class:online=online.clone()
                                role="img"
                                aria-label=move || if online() { "online" } else { "offline" }
                            ></span>
                            {unblock}
                            {menu}
                        </li>
                    }
                }/>
            </ul>
        </section>
    }
}
