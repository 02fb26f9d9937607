//! `TypingLine`: "ana is typing…" in the line kept free under the
//! conversation. The text changes only when the set of typists does (not
//! with every notice), so the polite live region speaks rarely.
use leptos::prelude::*;

use super::chat_room::use_room;

#[component]
pub fn TypingLine() -> impl IntoView {
    let room = use_room();
    let line = Memo::new(move |_| room.typists.with(|t| t.line()));
    view! { <p class="typing" aria-live="polite">{move || line.get()}</p> }
}
