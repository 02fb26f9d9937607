//! `ChatRoom`: a room page once joined. Holds the room's state as signals
//! (conversation, members, connection state, notice), renders the parts,
//! and in the browser connects the room stream that keeps them live.
use leptos::prelude::*;

use super::add_user_form::AddUserForm;
use super::composer::Composer;
use super::messages_list::MessagesList;
use super::room_header::RoomHeader;
use super::user_online::UserOnline;
use crate::conversation::{Conversation, Members};
use crate::protocol::RoomSnapshot;

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
    pub conversation: RwSignal<Conversation>,
    pub members: RwSignal<Members>,
    pub status: RwSignal<ConnState>,
    /// A sentence for the person (a refused message, a lost membership).
    pub notice: RwSignal<Option<String>>,
    /// The text of the message input.
    pub draft: RwSignal<String>,
}

impl RoomSignals {
    fn new(snapshot: RoomSnapshot) -> Self {
        RoomSignals {
            channel_id: StoredValue::new(snapshot.channel_id),
            user_id: StoredValue::new(snapshot.user_id),
            conversation: RwSignal::new(Conversation::from_history(snapshot.messages)),
            members: RwSignal::new(Members::new(snapshot.members)),
            status: RwSignal::new(ConnState::Connecting),
            notice: RwSignal::new(None),
            draft: RwSignal::new(String::new()),
        }
    }
}

#[component]
pub fn ChatRoom(snapshot: RoomSnapshot, embedded: bool) -> impl IntoView {
    let room = RoomSignals::new(snapshot);
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
    }

    view! {
        <div class="room" class:embedded=embedded>
            <RoomHeader embedded/>
            <div class="room-body">
                <section class="discussion" aria-label="Discussion">
                    <MessagesList/>
                    <Composer/>
                </section>
                <aside class="sidebar">
                    <UserOnline/>
                    <AddUserForm/>
                </aside>
            </div>
        </div>
    }
}

/// The room's signals, from inside a `ChatRoom`.
pub fn use_room() -> RoomSignals {
    expect_context::<RoomSignals>()
}
