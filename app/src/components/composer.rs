//! The message input. Enter sends. With JavaScript the message is shown at
//! once as pending and goes up the room stream (queued while reconnecting);
//! without it the form posts to the `send_message` server function.
//! A blank message sends nothing. While the person types, the room hears
//! that they are typing (see `stream_client`).
//!
//! Moderation: a muted user finds the box disabled, with until when (in
//! their local time) and why; it comes back at the mute's end or when a
//! moderator lifts it. Under slow mode a player sees how long until they
//! can send again, counting down after each message (the server is the
//! judge: without JavaScript the form still posts and the server's
//! refusal is shown). A user a moderator removed from the room reads why,
//! with a link back in after a kick.
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::chat_room::{use_room, ConnState, RoomIdentityFields};
use crate::moderation::{Removal, Standing};
use crate::timestamps::moment;
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
    // Silenced, or the stream closed for good (its notice says why).
    let blocked = move || room.standing.with(Standing::silenced) || status.get() == ConnState::Closed;
    let waiting_slowly = move || room.standing.with(|s| s.send_again_at.is_some());
    // Times in UTC, as the server wrote them, until the page runs.
    let status = move || room.standing.with(|s| s.status(room.role.get(), |at| moment(at, s.now_ms > 0.0)));

    #[cfg(feature = "hydrate")]
    let stream = use_context::<StoredValue<Option<crate::stream_client::RoomStream>, LocalStorage>>();

    let on_submit = move |ev: SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            use crate::validate::{normalize_body, InputError};
            ev.prevent_default();
            if room.standing.with_untracked(|s| s.silenced() || s.send_again_at.is_some()) {
                return;
            }
            match normalize_body(&draft.get_untracked()) {
                Err(InputError::Empty(_)) => {}
                Err(err) => room.notice.set(Some(err.to_string())),
                Ok(body) => {
                    room.notice.set(None);
                    draft.set(String::new());
                    let slow_mode = room.standing.with_untracked(|s| s.slow_mode_secs);
                    if slow_mode > 0 && room.role.get_untracked().is_player() {
                        room.slow_mode_wait(room.now_ms(), f64::from(slow_mode) * 1000.0);
                    }
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
        <Removed/>
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
                aria-describedby="composer-status"
                disabled=blocked
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
            <button type="submit" disabled=move || blocked() || waiting_slowly()>"Send"</button>
        </form>
        <p class="composer-hint" aria-live="polite">
            {move || waiting().then_some("Connection lost — messages will be sent when it is back.")}
        </p>
        // Not a live region: the countdown changes every second. A mute is
        // announced as it happens, with the conversation's notice.
        <p class="composer-status" id="composer-status">{status}</p>
    }
}

/// What a user a moderator took out of the room reads where they typed,
/// with a way back in after a kick. Only ever shown live, so the time is
/// the reader's.
#[component]
fn Removed() -> impl IntoView {
    let room = use_room();
    move || {
        room.standing.with(|s| {
            let text = s.removal_text(|at| moment(at, true))?;
            let kicked = matches!(s.removal, Some(Removal::Kicked { .. }));
            Some(view! {
                <p class="removed-banner" role="alert">
                    {text}
                    {kicked.then(|| view! { " " <a href=rejoin_href()>"Rejoin the room"</a> })}
                </p>
            })
        })
    }
}

/// Where a kicked user opens the room again: this very page (it joins them
/// anew).
fn rejoin_href() -> String {
    #[cfg(feature = "hydrate")]
    if let Some(href) = web_sys::window().and_then(|w| w.location().href().ok()) {
        return href;
    }
    String::new()
}
