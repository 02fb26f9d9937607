//! What happens in rooms, told to a listener outside the chat (the
//! server's webhooks): a message stored or removed, a member joining or
//! leaving, muted or banned, a message reported.
//!
//! Each event is told once, by the node that committed it, right after the
//! commit: a cluster reports it once, not once per node that hears of it.
//! Telling must never slow the chat: [`EventSink::emit`] only queues (the
//! listener delivers on its own time), and with no listener set an event
//! is not even built.
use std::sync::{Arc, OnceLock};

use serde::Serialize;

/// The kinds of event, as webhooks name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EventKind {
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    #[serde(rename = "member.joined")]
    MemberJoined,
    #[serde(rename = "member.left")]
    MemberLeft,
    #[serde(rename = "message.reported")]
    MessageReported,
    #[serde(rename = "member.muted")]
    MemberMuted,
    #[serde(rename = "member.banned")]
    MemberBanned,
    /// Every message of a member removed at once (`seq`: the event's own).
    #[serde(rename = "messages.purged")]
    MessagesPurged,
}

/// One event: what, in which room, at which seq of it (where there is one:
/// the message's, for message events), when, and its details.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub room: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// When it happened, Unix milliseconds.
    pub at_ms: i64,
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(kind: EventKind, room: &str, seq: Option<i64>, data: serde_json::Value) -> Self {
        Event { kind, room: room.to_owned(), seq, at_ms: chrono::Utc::now().timestamp_millis(), data }
    }
}

/// Where events go. `emit` must return at once (queue, never wait).
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// The node's listener, if one is set; shared by everything that commits.
#[derive(Clone, Default)]
pub struct Events(Arc<OnceLock<Arc<dyn EventSink>>>);

impl Events {
    /// Sets the listener (once; a second one is ignored).
    pub fn listen(&self, sink: Arc<dyn EventSink>) {
        let _ = self.0.set(sink);
    }

    /// Tells the listener of an event, built only when there is one.
    pub fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(sink) = self.0.get() {
            sink.emit(event());
        }
    }

    /// A member joined or left.
    pub fn membership(&self, kind: EventKind, room: &str, user_id: &str) {
        self.emit(|| Event::new(kind, room, None, serde_json::json!({ "user_id": user_id })));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl EventSink for Recorder {
        fn emit(&self, event: Event) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[test]
    fn without_a_listener_nothing_is_built_and_with_one_each_event_is_told_once() {
        let events = Events::default();
        events.emit(|| unreachable!("no listener: the event is not built"));
        let recorder = Arc::new(Recorder::default());
        events.clone().listen(recorder.clone());
        events.membership(EventKind::MemberJoined, "r", "ana");
        let told = recorder.0.lock().unwrap();
        assert_eq!(told.len(), 1);
        let json = serde_json::to_value(&told[0]).unwrap();
        assert_eq!(json["type"], "member.joined");
        assert_eq!(json["room"], "r");
        assert_eq!(json["data"]["user_id"], "ana");
        assert!(json.get("seq").is_none());
    }
}
