//! The message input. Enter sends. With JavaScript the message is shown at
//! once as pending and goes up the room stream (queued while reconnecting);
//! without it the form posts to the `send_message` server function.
//! A blank message sends nothing. While the person types, the room hears
//! that they are typing (see `stream_client`).
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::chat_room::{use_room, ConnState, RoomIdentityFields};
use crate::validate::MAX_BODY_CHARS;

/// A fresh id for a message sent through the plain form (server render).
#[cfg(feature = "ssr")]
fn form_message_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("f{nanos:x}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(not(feature = "ssr"))]
fn form_message_id() -> String {
    String::new()
}

#[component]
pub fn Composer() -> impl IntoView {
    let room = use_room();
    let draft = room.draft;
    let status = room.status;
    // While the stream is down, say that messages will wait (they show as
    // pending and go out after reconnecting).
    let waiting = move || matches!(status.get(), ConnState::Reconnecting | ConnState::Offline);

    #[cfg(feature = "hydrate")]
    let stream = use_context::<StoredValue<Option<crate::stream_client::RoomStream>, LocalStorage>>();

    let on_submit = move |ev: SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            use crate::validate::{normalize_body, InputError};
            ev.prevent_default();
            match normalize_body(&draft.get_untracked()) {
                Err(InputError::Empty(_)) => {}
                Err(err) => room.notice.set(Some(err.to_string())),
                Ok(body) => {
                    room.notice.set(None);
                    draft.set(String::new());
                    // Whoever sends wants to see their message.
                    room.jump_to_latest.update(|n| *n += 1);
                    if let Some(stream) = stream {
                        stream.with_value(|s| {
                            if let Some(s) = s {
                                s.send_new(body);
                            }
                        });
                    }
                }
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    view! {
        <form class="composer" method="post" action="/api/send_message" on:submit=on_submit>
            <RoomIdentityFields/>
            <input type="hidden" name="client_msg_id" value=form_message_id()/>
            <label for="message-input" class="visually-hidden">"Message"</label>
            <input
                id="message-input"
                name="body"
                placeholder="Type a message…"
                autocomplete="off"
                maxlength=MAX_BODY_CHARS.to_string()
                prop:value=move || draft.get()
                on:input=move |ev| {
                    // Firefox delivers a character beyond the BMP (an emoji)
                    // typed as a key in two input events, one half of its
                    // UTF-16 pair each. Skip the first: as a Rust string its
                    // lone half would become U+FFFD, and the draft written
                    // back into the box would break the character.
                    #[cfg(feature = "hydrate")]
                    if ev
                        .target()
                        .and_then(|target| js_sys::Reflect::get(&target, &wasm_bindgen::JsValue::from_str("value")).ok())
                        .and_then(|value| wasm_bindgen::JsCast::dyn_into::<js_sys::JsString>(value).ok())
                        .is_some_and(|value| !value.is_valid_utf16())
                    {
                        return;
                    }
                    let text = event_target_value(&ev);
                    #[cfg(feature = "hydrate")]
                    if let Some(stream) = stream {
                        stream.with_value(|s| {
                            if let Some(s) = s {
                                s.typing(&text);
                            }
                        });
                    }
                    draft.set(text);
                }
            />
            <button type="submit">"Send"</button>
        </form>
        <p class="composer-hint" aria-live="polite">
            {move || waiting().then_some("Connection lost — messages will be sent when it is back.")}
        </p>
    }
}
