//! `MessagesList`: the conversation, oldest first. Each line reads
//! "user: message" and carries its time; consecutive lines of one user
//! form a group that shows the name once. Lines this page sent show as
//! pending until stored. A message the server refused stays, marked "Not
//! sent" with the server's reason, with buttons to retry it, copy its text
//! and dismiss it (see `conversation`).
//!
//! The page starts with the latest page of history; older pages load when
//! the reader scrolls near the top or presses "Load older messages". The
//! list scrolls in a `column-reverse` box, so it opens at the newest line
//! even before (or without) JavaScript and stays there as messages arrive,
//! while a reader who scrolled up keeps their place and gets a "New
//! messages" button instead. New messages from others are announced to
//! screen readers by a separate live region, so loading older history is
//! not read out.
//!
//! Moderation shows here too: an event (a mute, a kick, slow mode) is a
//! short notice of its own; a removed message keeps its place, its text
//! replaced by "Message removed"; each stored message has a menu of what
//! the reader may do with it (see `menus`).
use leptos::either::Either;
use leptos::prelude::*;

use super::chat_room::{use_room, RoomSignals};
use super::local_time::LocalTime;
use super::menus::MessageMenu;
use crate::conversation::{mentions, starts_group, Line};
use crate::moderation::{notice, removed_text};

/// How close to the newest line (px) still counts as "at the bottom".
#[cfg(feature = "hydrate")]
const BOTTOM_SLACK_PX: i32 = 24;
/// How close to the top (px) the reader scrolls before older messages load.
#[cfg(feature = "hydrate")]
const LOAD_OLDER_WITHIN_PX: i32 = 300;

#[component]
pub fn MessagesList() -> impl IntoView {
    let room = use_room();
    let me = room.user_id.get_value();
    // Each line with whether it continues its group, and the role its
    // menu was made for (a new role draws the lines anew).
    let lines = move || {
        let role = room.role.get();
        room.conversation.with(|c| {
            let mut previous: Option<&Line> = None;
            c.lines()
                .map(|line| {
                    let continued = !starts_group(previous, line);
                    previous = Some(line);
                    (line.clone(), continued, role)
                })
                .collect::<Vec<_>>()
        })
    };
    let is_empty = move || room.conversation.with(|c| c.lines().next().is_none());
    let has_older = move || room.conversation.with(|c| c.older_cursor().is_some());
    let scroller = NodeRef::<leptos::html::Div>::new();
    let loading = RwSignal::new(false);
    let older_error = RwSignal::new(None::<String>);
    // Paging needs the script: the button appears once it runs.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    let scroll_to_latest = move || {
        if let Some(el) = scroller.get_untracked() {
            // In a column-reverse box, 0 is the bottom.
            el.set_scroll_top(0);
        }
    };
    Effect::new(move |_| {
        room.jump_to_latest.track();
        request_animation_frame(scroll_to_latest);
    });

    let load_older = move |by_button: bool| {
        if loading.get_untracked() {
            return;
        }
        let Some(cursor) = room.conversation.with_untracked(|c| c.older_cursor()) else { return };
        loading.set(true);
        older_error.set(None);
        let (channel_id, user_id, token) =
            (room.channel_id.get_value(), room.user_id.get_value(), room.token.get_value());
        leptos::task::spawn_local(async move {
            match crate::api::older_messages(channel_id, user_id, cursor, token).await {
                Ok(page) => {
                    room.conversation.update(|c| {
                        c.prepend_older(cursor, page.messages, page.has_older);
                    });
                    // The button is gone once everything is shown: keep the
                    // keyboard in the conversation.
                    if by_button && !page.has_older {
                        if let Some(el) = scroller.get_untracked() {
                            let _ = el.focus();
                        }
                    }
                }
                Err(err) => older_error.set(Some(err.to_string())),
            }
            loading.set(false);
        });
    };

    let on_scroll = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = scroller.get_untracked() {
            // column-reverse: scrollTop is 0 at the bottom, negative above.
            let from_bottom = -el.scroll_top();
            let from_top = el.scroll_height() - el.client_height() - from_bottom;
            let at_bottom = from_bottom <= BOTTOM_SLACK_PX;
            if room.at_bottom.get_untracked() != at_bottom {
                room.at_bottom.set(at_bottom);
            }
            if at_bottom {
                room.reader_may_have_caught_up();
            }
            if from_top <= LOAD_OLDER_WITHIN_PX && older_error.get_untracked().is_none() {
                load_older(false);
            }
        }
    };

    view! {
        <div class="conversation-pane">
            <div
                class="scroller"
                role="region"
                aria-label="Messages"
                tabindex="0"
                node_ref=scroller
                on:scroll=on_scroll
            >
                <div class="history">
                    <Show when=move || hydrated.get() && has_older()>
                        <button
                            type="button"
                            class="secondary load-older"
                            aria-busy=move || loading.get().to_string()
                            on:click=move |_| load_older(true)
                        >
                            {move || if loading.get() { "Loading older messages…" } else { "Load older messages" }}
                        </button>
                    </Show>
                    {move || older_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                    <Show when=move || !has_older() && !is_empty()>
                        <p class="history-start">"This is the beginning of the conversation."</p>
                    </Show>
                    // The log wraps the list (an `ol` with a role of its own
                    // would no longer be a list for its items).
                    <div role="log" aria-live="off" aria-label="Conversation">
                        <ol class="messages">
                            <For
                                each=lines
                                key=|(line, continued, role)| {
                                    format!("{}{}{}", line.key(), if *continued { "+" } else { "" }, if role.is_player() { "" } else { "m" })
                                }
                                children=move |(line, continued, _)| {
                                    if let Some(action) = &line.action {
                                        let at_ms = line.at_ms.unwrap_or_default();
                                        let text = notice(action, at_ms, &me).unwrap_or_default();
                                        return Either::Left(view! {
                                            <li class="event">
                                                <span class="event-text">{text}</span>
                                                <Stamp at_ms/>
                                            </li>
                                        });
                                    }
                                    let mine = line.user_id == me;
                                    let mention = !mine && mentions(&line.body, &me);
                                    let pending = line.is_pending();
                                    let refused = line.refused.is_some();
                                    let removed = line.removed.as_ref().map(|r| removed_text(&line.user_id, r));
                                    let refusal = line.refused.clone().map(|reason| {
                                        view! {
                                            <Refusal
                                                client_msg_id=line.client_msg_id.clone()
                                                body=line.body.clone()
                                                preview=line.preview()
                                                reason
                                            />
                                        }
                                    });
                                    // A stored message has a menu, until it is removed.
                                    let menu = line.seq.filter(|_| removed.is_none()).map(|seq| {
                                        view! { <MessageMenu seq author=line.user_id.clone() preview=line.preview()/> }
                                    });
                                    let body = match removed {
                                        Some(text) => Either::Left(view! { <span class="body removed-text">{text}</span> }),
                                        None => Either::Right(view! { <span class="body">{line.body}</span> }),
                                    };
                                    Either::Right(view! {
                                        <li
                                            class="message"
                                            class:mine=mine
                                            class:pending=pending
                                            class:refused=refused
                                            class:removed=removed.is_some()
                                            class:continued=continued
                                            class:system=line.system
                                            class:mention=mention
                                        >
                                            <span class="line">
                                                <span class="author">{if line.system { "Game".to_owned() } else { line.user_id }}</span>
                                                <span class="sep">": "</span>
                                                {body}
                                                {pending.then(|| view! { <span class="sending">" (sending…)"</span> })}
                                            </span>
                                            {line.at_ms.map(|at_ms| view! { <Stamp at_ms/> })}
                                            {menu}
                                            {refusal}
                                        </li>
                                    })
                                }
                            />
                        </ol>
                    </div>
                    <Show when=is_empty>
                        <p class="empty">"No messages yet. Say hello!"</p>
                    </Show>
                </div>
            </div>
            <Show when=move || room.new_below.get()>
                <button type="button" class="jump-to-latest" on:click=move |_| scroll_to_latest()>
                    "New messages " <span aria-hidden="true">"↓"</span>
                </button>
            </Show>
            // Announces new messages from others (the log itself is quiet,
            // so that loading older history is not read out).
            <div class="visually-hidden" aria-live="polite">{move || room.announcement.get()}</div>
        </div>
    }
}

/// Under a refused message: "Not sent" with the server's reason, and what
/// the person can do about it. Each button names the message it acts on
/// (`preview`), as a list of refusals reads alike otherwise. Retry and
/// Dismiss take the line away, so the keyboard moves on to the next
/// refused line's same button, or to the message box.
#[component]
fn Refusal(client_msg_id: String, body: String, preview: String, reason: String) -> impl IntoView {
    let room = use_room();
    #[cfg(feature = "hydrate")]
    let stream = use_context::<StoredValue<Option<crate::stream_client::RoomStream>, LocalStorage>>();
    let copied = RwSignal::new(false);

    let retry = {
        let client_msg_id = client_msg_id.clone();
        move |_| {
            #[cfg(feature = "hydrate")]
            if let Some(stream) = stream {
                stream.with_value(|s| {
                    if let Some(s) = s {
                        s.retry(&client_msg_id);
                    }
                });
                room.jump_to_latest.update(|n| *n += 1);
                focus_after_removal("retry");
            }
            #[cfg(not(feature = "hydrate"))]
            let _ = &client_msg_id;
        }
    };
    let dismiss = move |_| {
        room.conversation.update(|c| {
            c.dismiss(&client_msg_id);
        });
        #[cfg(feature = "hydrate")]
        focus_after_removal("dismiss");
    };
    let copy = move |_| copy_text(room, body.clone(), copied);

    let copy_label = {
        let preview = preview.clone();
        move || if copied.get() { format!("Copied: {preview}") } else { format!("Copy text: {preview}") }
    };
    view! {
        <p class="refusal">
            <strong>"Not sent:"</strong>
            " "
            <span class="reason">{reason}</span>
        </p>
        <div class="refused-actions">
            <button
                type="button"
                class="secondary retry"
                aria-label=format!("Retry sending: {preview}")
                on:click=retry
            >
                "Retry"
            </button>
            <button type="button" class="secondary copy" aria-label=copy_label on:click=copy>
                {move || if copied.get() { "Copied" } else { "Copy" }}
            </button>
            <button
                type="button"
                class="secondary dismiss"
                aria-label=format!("Dismiss: {preview}")
                on:click=dismiss
            >
                "Dismiss"
            </button>
        </div>
    }
}

/// How long "Copied" shows on a Copy button.
#[cfg(feature = "hydrate")]
const COPIED_SHOWN_MS: u64 = 2000;

/// Copies a refused message's text. The clipboard is the first choice (the
/// text is then wherever the person pastes it, and the draft they are
/// typing is left alone); where the page may not write it (no Clipboard
/// API: an insecure origin or an old browser; or the browser refuses: an
/// embedding frame without `allow="clipboard-write"`), the text goes into
/// the message box instead, after what is already there, where it can be
/// edited and sent, or selected and copied by hand.
fn copy_text(room: RoomSignals, text: String, copied: RwSignal<bool>) {
    #[cfg(feature = "hydrate")]
    leptos::task::spawn_local(async move {
        // The line may have gone meanwhile (dismissed, or retried).
        if clipboard::write_text(&text).await {
            if copied.try_set(true).is_none() {
                set_timeout(
                    move || {
                        let _ = copied.try_set(false);
                    },
                    std::time::Duration::from_millis(COPIED_SHOWN_MS),
                );
            }
        } else {
            room.draft.update(|draft| {
                if !draft.trim().is_empty() {
                    draft.push(' ');
                }
                draft.push_str(&text);
            });
            focus_message_box();
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (room, text, copied);
}

/// After Retry or Dismiss took a refused line (and its focused button)
/// away: focuses the `action` button of the first refused line left, or
/// else the message box, once the list has been redrawn.
#[cfg(feature = "hydrate")]
fn focus_after_removal(action: &'static str) {
    use wasm_bindgen::JsCast;
    request_animation_frame(move || {
        let next = document()
            .query_selector(&format!(".message.refused button.{action}"))
            .ok()
            .flatten()
            .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok());
        match next {
            Some(button) => {
                let _ = button.focus();
            }
            None => focus_message_box(),
        }
    });
}

#[cfg(feature = "hydrate")]
fn focus_message_box() {
    use wasm_bindgen::JsCast;
    if let Some(input) = document()
        .get_element_by_id("message-input")
        .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = input.focus();
    }
}

/// `navigator.clipboard.writeText`, reached by name (the Clipboard API is
/// not among the `web-sys` bindings the app builds with).
#[cfg(feature = "hydrate")]
mod clipboard {
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;

    /// Writes `text` to the clipboard; whether it is there (`false` at
    /// once without a Clipboard API).
    pub async fn write_text(text: &str) -> bool {
        match start(text) {
            Some(promise) => wasm_bindgen_futures::JsFuture::from(promise).await.is_ok(),
            None => false,
        }
    }

    fn start(text: &str) -> Option<js_sys::Promise> {
        let navigator = web_sys::window()?.navigator();
        let clipboard = js_sys::Reflect::get(&navigator, &JsValue::from_str("clipboard")).ok()?;
        if clipboard.is_undefined() || clipboard.is_null() {
            return None;
        }
        let write: js_sys::Function =
            js_sys::Reflect::get(&clipboard, &JsValue::from_str("writeText")).ok()?.dyn_into().ok()?;
        write.call1(&clipboard, &JsValue::from_str(text)).ok()?.dyn_into().ok()
    }
}

/// A message's time (see `LocalTime`).
#[component]
fn Stamp(at_ms: i64) -> impl IntoView {
    view! { <LocalTime at_ms class="at"/> }
}
