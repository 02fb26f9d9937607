//! `ChatRoom`: a room page once joined. Holds the room's state as signals
//! (conversation, members, who is online and typing, connection state,
//! notice, what the reader has seen), renders the parts, and in the browser connects the room stream
//! that keeps them live and, when embedded, tells the parent page about
//! unread messages.
use leptos::prelude::*;

use super::add_user_form::AddUserForm;
use super::composer::Composer;
use super::messages_list::MessagesList;
use super::room_header::RoomHeader;
use super::typing_line::TypingLine;
use super::user_online::UserOnline;
use crate::activity::{Online, Typists};
use crate::conversation::{Conversation, Members};
use crate::embed::EmbedParent;
use crate::protocol::{ChatMessage, Role, RoomSnapshot};

/// State of the page's connection to the room stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    Reconnecting,
    /// The browser reports no network.
    Offline,
    /// The stream was closed for good (the user is no longer a member).
    Closed,
}

impl ConnState {
    pub fn label(self) -> &'static str {
        match self {
            ConnState::Connecting => "Connecting…",
            ConnState::Connected => "Connected",
            ConnState::Reconnecting => "Reconnecting…",
            ConnState::Offline => "Offline",
            ConnState::Closed => "Disconnected",
        }
    }

    pub fn css_class(self) -> &'static str {
        match self {
            ConnState::Connected => "conn connected",
            ConnState::Connecting | ConnState::Reconnecting => "conn reconnecting",
            ConnState::Offline | ConnState::Closed => "conn offline",
        }
    }
}

/// The signals of one open room, shared by its components and the stream.
#[derive(Clone, Copy)]
pub struct RoomSignals {
    pub channel_id: StoredValue<String>,
    pub user_id: StoredValue<String>,
    /// The page's identity token, passed on with every request when the
    /// server requires signed identities.
    pub token: StoredValue<Option<String>>,
    /// The user's role here (from the game, through the server; the
    /// stream's welcome may bring a newer one).
    pub role: RwSignal<Role>,
    pub conversation: RwSignal<Conversation>,
    pub members: RwSignal<Members>,
    /// Who is online; unknown (nobody) until the stream's welcome.
    pub online: RwSignal<Online>,
    /// Who else is typing.
    pub typists: RwSignal<Typists>,
    pub status: RwSignal<ConnState>,
    /// A sentence for the person (a refused message, a lost membership).
    pub notice: RwSignal<Option<String>>,
    /// The text of the message input.
    pub draft: RwSignal<String>,
    /// Whether the newest line is in view (the reader has not scrolled up).
    pub at_bottom: RwSignal<bool>,
    /// Messages arrived below while the reader was scrolled up.
    pub new_below: RwSignal<bool>,
    /// Messages from others that arrived while the reader was not looking
    /// (page hidden or not focused, or scrolled up).
    pub unread: RwSignal<u32>,
    /// The latest message from someone else, for screen readers.
    pub announcement: RwSignal<String>,
    /// Bumped to bring the newest line into view (after sending).
    pub jump_to_latest: RwSignal<u64>,
}

impl RoomSignals {
    fn new(snapshot: RoomSnapshot, token: Option<String>) -> Self {
        RoomSignals {
            channel_id: StoredValue::new(snapshot.channel_id),
            user_id: StoredValue::new(snapshot.user_id),
            token: StoredValue::new(token),
            role: RwSignal::new(snapshot.role),
            conversation: RwSignal::new(Conversation::from_page(snapshot.messages, snapshot.has_older)),
            members: RwSignal::new(Members::new(snapshot.members)),
            online: RwSignal::new(Online::default()),
            typists: RwSignal::new(Typists::default()),
            status: RwSignal::new(ConnState::Connecting),
            notice: RwSignal::new(None),
            draft: RwSignal::new(String::new()),
            at_bottom: RwSignal::new(true),
            new_below: RwSignal::new(false),
            unread: RwSignal::new(0),
            announcement: RwSignal::new(String::new()),
            jump_to_latest: RwSignal::new(0),
        }
    }

    /// A stored message was added to the conversation (live or replayed).
    pub fn message_arrived(&self, message: &ChatMessage) {
        if self.user_id.with_value(|me| *me == message.user_id) {
            return;
        }
        self.announcement.set(format!("{}: {}", message.user_id, message.body));
        if !self.at_bottom.get_untracked() {
            self.new_below.set(true);
        }
        if !self.reader_is_looking() {
            self.unread.update(|n| *n = n.saturating_add(1));
        }
    }

    /// Whether the reader can see new messages as they come: the page is
    /// visible and focused and shows the newest line.
    pub fn reader_is_looking(&self) -> bool {
        #[cfg(feature = "hydrate")]
        {
            let page_in_front = web_sys::window().and_then(|w| w.document()).is_some_and(|d| {
                d.visibility_state() == web_sys::VisibilityState::Visible && d.has_focus().unwrap_or(false)
            });
            page_in_front && self.at_bottom.get_untracked()
        }
        #[cfg(not(feature = "hydrate"))]
        self.at_bottom.get_untracked()
    }

    /// Called when what the reader sees may have changed (scrolling,
    /// focus, the page becoming visible): clears what they have now seen.
    pub fn reader_may_have_caught_up(&self) {
        if self.at_bottom.get_untracked() && self.new_below.get_untracked() {
            self.new_below.set(false);
        }
        if self.unread.get_untracked() > 0 && self.reader_is_looking() {
            self.unread.set(0);
        }
    }
}

/// The room, the one island of the app: its props (the snapshot from the
/// join, the layout, the parent page and the token) travel in the page as
/// JSON and the browser picks them up from there.
#[island]
pub fn ChatRoom(
    snapshot: RoomSnapshot,
    embedded: bool,
    /// The parent page that asked for events (embedded mode only).
    embed_parent: Option<EmbedParent>,
    /// The identity token from the room's URL, if any.
    token: Option<String>,
) -> impl IntoView {
    let room = RoomSignals::new(snapshot, token);
    provide_context(room);

    #[cfg(feature = "hydrate")]
    {
        let stream = crate::stream_client::RoomStream::start(room);
        let stream = StoredValue::new_local(Some(stream));
        provide_context(stream);
        on_cleanup(move || {
            if let Some(stream) = stream.try_update_value(|s| s.take()).flatten() {
                stream.stop();
            }
        });

        // Coming back to the page (focus, tab shown) may mean the reader
        // now sees what arrived meanwhile.
        let focus = window_event_listener(leptos::ev::focus, move |_| room.reader_may_have_caught_up());
        let shown =
            window_event_listener_untyped("visibilitychange", move |_| room.reader_may_have_caught_up());
        on_cleanup(move || {
            focus.remove();
            shown.remove();
        });

        if let Some(target) = embed_parent.as_ref().and_then(EmbedParent::target) {
            let channel_id = room.channel_id.get_value();
            Effect::new(move |before: Option<u32>| {
                use crate::embed::{bridge, unread_event, EmbedEventKind};
                let now = room.unread.get();
                let kind = match before {
                    None => Some(EmbedEventKind::Ready),
                    Some(before) => unread_event(before, now),
                };
                if let Some(kind) = kind {
                    bridge::post(&target, kind, &channel_id, now);
                }
                now
            });
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = embed_parent;

    view! {
        <div class="room" class:embedded=embedded>
            <RoomHeader embedded/>
            <main class="room-body">
                <section class="discussion" aria-label="Discussion">
                    <MessagesList/>
                    <TypingLine/>
                    <Composer/>
                </section>
                <aside class="sidebar" aria-label="People">
                    <UserOnline/>
                    <AddUserForm/>
                </aside>
            </main>
        </div>
    }
}

/// The room's signals, from inside a `ChatRoom`.
pub fn use_room() -> RoomSignals {
    expect_context::<RoomSignals>()
}

/// The hidden fields that say who acts in which room, for the room's forms
/// (they also work without JavaScript): the ids, and the identity token
/// when the page has one.
#[component]
pub fn RoomIdentityFields() -> impl IntoView {
    let room = expect_context::<RoomSignals>();
    view! {
        <input type="hidden" name="channel_id" value=room.channel_id.get_value()/>
        <input type="hidden" name="user_id" value=room.user_id.get_value()/>
        {room.token.get_value().map(|token| view! { <input type="hidden" name="token" value=token/> })}
    }
}
