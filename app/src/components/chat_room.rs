//! `ChatRoom`: a room page once joined. Holds the room's state as signals
//! (conversation, members, who is online and typing, connection state,
//! notice, what the reader has seen, the user's mute and the room's slow
//! mode, a moderator's report queue), renders the parts, and in the
//! browser connects the room stream that keeps them live and, when
//! embedded, tells the parent page about unread messages.
use leptos::prelude::*;

use super::add_user_form::AddUserForm;
use super::composer::Composer;
use super::messages_list::MessagesList;
use super::moderation_panel::ModerationPanel;
use super::room_header::RoomHeader;
use super::typing_line::TypingLine;
use super::user_online::UserOnline;
use crate::activity::{Online, Typists};
use crate::conversation::{mentions, Conversation, Members};
use crate::embed::{EmbedParent, Unread};
use crate::moderation::{notice, Removal, ReportQueue, Standing};
use crate::protocol::moderation::{Action, Mute, Report};
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
    pub unread: RwSignal<Unread>,
    /// The latest message from someone else, for screen readers.
    pub announcement: RwSignal<String>,
    /// Bumped to bring the newest line into view (after sending).
    pub jump_to_latest: RwSignal<u64>,
    /// The seq of the message last announced, so that its removal can
    /// silence it.
    announced_seq: StoredValue<i64>,
    /// The server's clock minus this device's (ms), learned at each
    /// welcome: mutes and slow mode end by the server's clock.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    clock_offset: StoredValue<f64>,
    /// What holds the user's messages back (a mute, slow mode) or took
    /// them out of the room: from the join, then each welcome and the live
    /// events.
    pub standing: RwSignal<Standing>,
    /// The room's open reports (a moderator's page only).
    pub reports: RwSignal<ReportQueue>,
    /// A confirmation for the person (a report sent): shown and read out
    /// politely, unlike `notice`.
    pub info: RwSignal<Option<String>>,
}

/// What the player typed into the server's page before this code ran:
/// the draft starts from it (hydrating the box would empty it otherwise).
fn typed_before_hydration() -> String {
    #[cfg(feature = "hydrate")]
    {
        let input =
            web_sys::window().and_then(|w| w.document()).and_then(|d| d.get_element_by_id("message-input"));
        let value = input.and_then(|input| js_sys::Reflect::get(&input, &"value".into()).ok());
        if let Some(typed) = value.and_then(|value| value.as_string()) {
            return typed;
        }
    }
    String::new()
}

impl RoomSignals {
    fn new(
        snapshot: RoomSnapshot,
        token: Option<String>,
        reports: Vec<Report>,
        form_error: Option<String>,
    ) -> Self {
        RoomSignals {
            channel_id: StoredValue::new(snapshot.channel_id),
            user_id: StoredValue::new(snapshot.user_id),
            token: StoredValue::new(token),
            role: RwSignal::new(snapshot.role),
            conversation: RwSignal::new(Conversation::from_page_blocking(
                snapshot.messages,
                snapshot.has_older,
                snapshot.blocked,
            )),
            members: RwSignal::new(Members::new(snapshot.members)),
            online: RwSignal::new(Online::default()),
            typists: RwSignal::new(Typists::default()),
            status: RwSignal::new(ConnState::Connecting),
            notice: RwSignal::new(form_error),
            draft: RwSignal::new(typed_before_hydration()),
            at_bottom: RwSignal::new(true),
            new_below: RwSignal::new(false),
            unread: RwSignal::new(Unread::default()),
            announcement: RwSignal::new(String::new()),
            jump_to_latest: RwSignal::new(0),
            announced_seq: StoredValue::new(0),
            clock_offset: StoredValue::new(0.0),
            standing: RwSignal::new(Standing::new(snapshot.muted, snapshot.slow_mode_secs)),
            reports: RwSignal::new(ReportQueue::new(reports)),
            info: RwSignal::new(None),
        }
    }

    /// A stored message was added to the conversation (live or replayed).
    /// New messages from others are announced and counted as unread; a
    /// moderation event is announced as its notice. A removal silences the
    /// removed message's announcement if it is still the latest, and a
    /// purge any announcement, whoever did them (the moderator's own page
    /// too).
    pub fn message_arrived(&self, message: &ChatMessage) {
        let me = self.user_id.get_value();
        let silences = match &message.action {
            Some(Action::Remove { seq }) => *seq == self.announced_seq.get_value(),
            Some(Action::Purge { .. }) => true,
            _ => false,
        };
        if silences {
            self.announce(message.seq, String::new());
        }
        if message.user_id == me || message.removed.is_some() {
            return;
        }
        if let Some(action) = &message.action {
            match notice(action, message.at_ms, &me) {
                Some(text) => self.announce(message.seq, text),
                None => return,
            }
        } else {
            let author = if message.system { "Game" } else { message.user_id.as_str() };
            let mention = mentions(&message.body, &me);
            let says = if mention { " mentioned you" } else { "" };
            self.announce(message.seq, format!("{author}{says}: {}", message.body));
            if !self.reader_is_looking() {
                self.unread.update(|u| u.add(mention));
            }
        }
        if !self.at_bottom.get_untracked() {
            self.new_below.set(true);
        }
    }

    fn announce(&self, seq: i64, text: String) {
        self.announced_seq.set_value(seq);
        self.announcement.set(text);
    }

    /// Takes in a moderation event that came live (after the welcome):
    /// the user's mute, the room's slow mode, the user's removal. Returns
    /// whether it took the user out of the room.
    pub fn take_action(&self, action: &Action) -> bool {
        let me = self.user_id.get_value();
        self.standing.maybe_update(|s| s.take(action, &me));
        Removal::of(action, &me).is_some()
    }

    /// The user's mute and the room's slow mode, as a welcome says.
    pub fn welcomed(&self, muted: Option<Mute>, slow_mode_secs: u32) {
        self.standing.maybe_update(|s| s.welcomed(muted, slow_mode_secs));
    }

    /// The stream was closed because a moderator removed the user, and the
    /// event saying how did not come (it happened while the page was away).
    pub fn removed_unseen(&self) {
        self.standing.maybe_update(|s| {
            let unseen = s.removal.is_none();
            if unseen {
                s.removal = Some(Removal::Kicked { reason: String::new() });
            }
            unseen
        });
    }

    /// Whether a moderator took the user out of the room.
    pub fn is_removed(&self) -> bool {
        self.standing.with_untracked(|s| s.removal.is_some())
    }

    /// Now by the server's clock (as far as the last welcome told).
    #[cfg(feature = "hydrate")]
    pub fn now_ms(&self) -> f64 {
        js_sys::Date::now() + self.clock_offset.get_value()
    }

    /// Learns the server's clock, `server_now_ms` (0: not told).
    #[cfg(feature = "hydrate")]
    pub fn server_clock(&self, server_now_ms: i64) {
        if server_now_ms > 0 {
            self.clock_offset.set_value(server_now_ms as f64 - js_sys::Date::now());
        }
    }

    /// Slow mode holds this page's player back for `wait_ms` from `now_ms`.
    pub fn slow_mode_wait(&self, now_ms: f64, wait_ms: f64) {
        self.standing.update(|s| s.wait(now_ms, wait_ms));
    }

    /// Moves the page's countdowns on to `now_ms`: the slow mode wait, and
    /// a mute that has run out.
    pub fn tick(&self, now_ms: f64) {
        self.standing.maybe_update(|s| s.tick(now_ms));
    }

    /// Reads the report queue afresh (a moderator's page, after each
    /// welcome: reports filed or closed while it was away).
    #[cfg(feature = "hydrate")]
    pub fn reload_reports(self) {
        self.reports.update(|q| q.reading());
        let (channel_id, user_id, token) =
            (self.channel_id.get_value(), self.user_id.get_value(), self.token.get_value());
        leptos::task::spawn_local(async move {
            match crate::api::open_reports(channel_id, user_id, token).await {
                Ok(reports) => {
                    let _ = self.reports.try_update(|q| q.loaded(reports));
                }
                Err(err) => leptos::logging::warn!("could not read the report queue: {err}"),
            }
        });
    }

    /// Says how a moderation request went: a refusal as the notice, a
    /// success as `done` (if any) in the polite confirmation line, for a
    /// few seconds.
    pub fn acted(&self, result: Result<(), String>, done: Option<&'static str>) {
        match result {
            Ok(()) => {
                self.notice.set(None);
                self.info.set(done.map(str::to_owned));
                #[cfg(feature = "hydrate")]
                if let Some(done) = done {
                    let info = self.info;
                    set_timeout(
                        move || {
                            if info.with_untracked(|i| i.as_deref() == Some(done)) {
                                info.set(None);
                            }
                        },
                        std::time::Duration::from_secs(8),
                    );
                }
            }
            Err(message) => {
                self.info.set(None);
                self.notice.set(Some(message));
            }
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
        if self.unread.get_untracked().messages > 0 && self.reader_is_looking() {
            self.unread.set(Unread::default());
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
    /// A moderator's open reports, read when the page was rendered.
    reports: Vec<Report>,
    /// Why a form the page posted without JavaScript was refused.
    form_error: Option<String>,
) -> impl IntoView {
    let room = RoomSignals::new(snapshot, token, reports, form_error);
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
        // A click elsewhere closes an open menu.
        let clicked =
            window_event_listener(leptos::ev::click, move |ev| super::menus::close_menus_outside(&ev));
        // Countdowns: slow mode, and a mute's end; times from now on in
        // the reader's zone.
        Effect::new(move |_| room.tick(room.now_ms()));
        let ticker =
            set_interval_with_handle(move || room.tick(room.now_ms()), std::time::Duration::from_secs(1))
                .ok();
        on_cleanup(move || {
            focus.remove();
            shown.remove();
            clicked.remove();
            if let Some(ticker) = ticker {
                ticker.clear();
            }
        });

        if let Some(target) = embed_parent.as_ref().and_then(EmbedParent::target) {
            let channel_id = room.channel_id.get_value();
            Effect::new(move |before: Option<u32>| {
                use crate::embed::{bridge, unread_event, EmbedEventKind};
                let now = room.unread.get();
                let kind = match before {
                    None => Some(EmbedEventKind::Ready),
                    Some(before) => unread_event(before, now.messages),
                };
                if let Some(kind) = kind {
                    bridge::post(&target, kind, &channel_id, now);
                }
                now.messages
            });
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = embed_parent;

    // The moderation forms' submits, and Escape in a menu (see `menus`).
    #[cfg(feature = "hydrate")]
    let stream = expect_context::<StoredValue<Option<crate::stream_client::RoomStream>, LocalStorage>>();
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        super::menus::submitted(&ev, room, stream);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_keydown = move |ev: leptos::ev::KeyboardEvent| {
        #[cfg(feature = "hydrate")]
        super::menus::key_pressed(&ev);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };

    view! {
        <div class="room" class:embedded=embedded on:submit=on_submit on:keydown=on_keydown>
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
                    <ModerationPanel/>
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
