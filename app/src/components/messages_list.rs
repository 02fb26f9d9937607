//! `MessagesList`: the conversation, oldest first, one "user: message"
//! line each. Lines this page sent show as pending until stored. The list
//! is a live region, so screen readers announce new messages.
use leptos::prelude::*;

use super::chat_room::use_room;

#[component]
pub fn MessagesList() -> impl IntoView {
    let room = use_room();
    let me = room.user_id.get_value();
    let lines = move || room.conversation.with(|c| c.lines().cloned().collect::<Vec<_>>());
    let is_empty = move || room.conversation.with(|c| c.lines().next().is_none());
    let list = NodeRef::<leptos::html::Ol>::new();

    // Keep the newest message in view.
    Effect::new(move |_| {
        room.conversation.track();
        request_animation_frame(move || {
            if let Some(el) = list.get_untracked() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    });

    view! {
        <ol class="messages" role="log" aria-live="polite" aria-label="Conversation" node_ref=list>
            <For each=lines key=|line| line.key() children=move |line| {
                let mine = line.user_id == me;
                let pending = line.is_pending();
                view! {
                    <li class="message" class:mine=mine class:pending=pending>
                        <span class="author">{line.user_id}</span>
                        ": "
                        <span class="body">{line.body}</span>
                        {pending.then(|| view! { <span class="sending">" (sending…)"</span> })}
                    </li>
                }
            }/>
        </ol>
        <Show when=is_empty>
            <p class="empty">"No messages yet. Say hello!"</p>
        </Show>
    }
}
