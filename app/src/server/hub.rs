//! This node's fan-out: for each room with listeners here, one broadcast
//! channel whose items are room events encoded once and shared by every
//! connection (a clone is a reference-count bump, not a copy).
//!
//! A room's channel exists while someone listens and is dropped with its
//! last listener. The channel is bounded: a connection that falls more than
//! `capacity` events behind is told it lagged (see `stream`), it never
//! holds the others up.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use crate::protocol::{ErrorCode, ServerFrame};

/// A room event as it travels to connections: the frame (for decisions,
/// such as "was it me who left?") and its JSON text, encoded once.
#[derive(Debug)]
pub struct RoomEvent {
    pub frame: ServerFrame,
    pub text: Utf8Bytes,
    /// When the event was published (for the fan-out latency metric).
    pub published_at: Instant,
}

impl RoomEvent {
    pub fn new(frame: ServerFrame) -> Arc<Self> {
        let text = serde_json::to_string(&frame).expect("room events always serialize");
        Arc::new(RoomEvent { frame, text: text.into(), published_at: Instant::now() })
    }

    /// An event another node encoded: its JSON text, decoded once here.
    pub fn decode(text: &str) -> Result<Arc<Self>, serde_json::Error> {
        let frame = serde_json::from_str(text)?;
        Ok(Arc::new(RoomEvent { frame, text: text.to_owned().into(), published_at: Instant::now() }))
    }

    /// Says the bus may have lost events of the room: every connection
    /// that receives it closes with "resync", and its page reconnects and
    /// catches up from the store (messages and members alike).
    pub fn resync() -> Arc<Self> {
        RoomEvent::new(ServerFrame::Error {
            code: ErrorCode::Resync,
            message: "Catching up after a connection problem.".to_owned(),
            client_msg_id: None,
        })
    }

    pub fn is_resync(&self) -> bool {
        matches!(self.frame, ServerFrame::Error { code: ErrorCode::Resync, .. })
    }
}

#[derive(Clone)]
pub struct Hub {
    rooms: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<RoomEvent>>>>>,
    capacity: usize,
}

impl Hub {
    /// `capacity`: how many events a connection may fall behind before it
    /// is told to resync.
    pub fn new(capacity: usize) -> Self {
        Hub { rooms: Arc::default(), capacity: capacity.max(1) }
    }

    /// Starts listening to a room on this node.
    pub fn subscribe(&self, channel_id: &str) -> Subscription {
        let mut rooms = self.rooms.lock().expect("hub lock");
        let sender =
            rooms.entry(channel_id.to_owned()).or_insert_with(|| broadcast::channel(self.capacity).0);
        Subscription {
            receiver: Some(sender.subscribe()),
            channel_id: channel_id.to_owned(),
            hub: self.clone(),
        }
    }

    /// Hands an event to every listener of the room on this node.
    pub fn deliver(&self, channel_id: &str, event: Arc<RoomEvent>) {
        let rooms = self.rooms.lock().expect("hub lock");
        if let Some(sender) = rooms.get(channel_id) {
            // Err only means nobody listens any more.
            let _ = sender.send(event);
        }
    }

    /// Rooms with at least one listener on this node.
    pub fn room_count(&self) -> usize {
        self.rooms.lock().expect("hub lock").len()
    }

    /// The rooms with at least one listener on this node.
    pub fn room_names(&self) -> Vec<String> {
        self.rooms.lock().expect("hub lock").keys().cloned().collect()
    }

    pub fn has_listeners(&self, channel_id: &str) -> bool {
        self.rooms.lock().expect("hub lock").contains_key(channel_id)
    }

    fn release(&self, channel_id: &str) {
        let mut rooms = self.rooms.lock().expect("hub lock");
        if rooms.get(channel_id).is_some_and(|s| s.receiver_count() == 0) {
            rooms.remove(channel_id);
        }
    }
}

/// A listener of one room; dropping it stops listening.
pub struct Subscription {
    receiver: Option<broadcast::Receiver<Arc<RoomEvent>>>,
    channel_id: String,
    hub: Hub,
}

impl Subscription {
    pub async fn recv(&mut self) -> Result<Arc<RoomEvent>, broadcast::error::RecvError> {
        self.receiver.as_mut().expect("receiver until drop").recv().await
    }

    /// The next event if one is already waiting (`None` if not).
    pub fn try_recv(&mut self) -> Option<Result<Arc<RoomEvent>, broadcast::error::RecvError>> {
        use broadcast::error::{RecvError, TryRecvError};
        match self.receiver.as_mut().expect("receiver until drop").try_recv() {
            Ok(event) => Some(Ok(event)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
            Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.receiver.take();
        self.hub.release(&self.channel_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broadcast::error::RecvError;

    fn joined(user: &str) -> Arc<RoomEvent> {
        RoomEvent::new(ServerFrame::MemberJoined { user_id: user.into() })
    }

    #[tokio::test]
    async fn events_reach_listeners_of_their_room_only() {
        let hub = Hub::new(16);
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.deliver("a", joined("x"));
        hub.deliver("b", joined("y"));
        assert_eq!(a.recv().await.unwrap().text.as_str(), r#"{"type":"member_joined","user_id":"x"}"#);
        assert_eq!(b.recv().await.unwrap().frame, ServerFrame::MemberJoined { user_id: "y".into() });
    }

    #[tokio::test]
    async fn a_room_is_dropped_with_its_last_listener() {
        let hub = Hub::new(16);
        let first = hub.subscribe("a");
        let second = hub.subscribe("a");
        assert_eq!(hub.room_count(), 1);
        drop(first);
        assert_eq!(hub.room_count(), 1);
        drop(second);
        assert_eq!(hub.room_count(), 0);
        // Delivering to a room nobody listens to is a no-op.
        hub.deliver("a", joined("x"));
    }

    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told_it_lagged() {
        let hub = Hub::new(2);
        let mut slow = hub.subscribe("a");
        for i in 0..5 {
            hub.deliver("a", joined(&i.to_string()));
        }
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(3))));
    }
}
