//! The pub/sub bus between nodes: one topic per room. The rooms service
//! publishes committed events; each node's [`Hub`] fans them out to its
//! connections. The server picks the implementation: in-process
//! ([`LocalBus`]) for one node, Redis ([`redis::RedisBus`]) for several.
//!
//! A bus may lose events (a dropped connection, a restarted Redis): it must
//! then say so, by handing each affected room a resync event
//! ([`RoomEvent::resync`]), after which every page of the room reconnects
//! and catches up from the store. Delivery is the store's promise, not the
//! bus's.
//!
//! The rooms' ephemeral events ride the same topics and are never stored:
//! typing notices (a lost one is followed by the next) and presence (handed
//! over by the hub itself, see `hub`; a lost one is repaired by the next
//! beat or expires; a single node has no one to tell).
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

use super::hub::{Hub, RoomEvent, Subscription};

pub mod redis;

#[derive(Debug, Error)]
#[error("pub/sub bus: {0}")]
pub struct BusError(pub String);

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends committed events of one room to the room's listeners on every
    /// node, in order: this node's pages get them together (see
    /// `Hub::deliver_all`).
    async fn publish_all(&self, channel_id: &str, events: Vec<Arc<RoomEvent>>) -> Result<(), BusError>;

    /// Starts receiving a room's events on this node.
    async fn subscribe(&self, channel_id: &str) -> Result<Subscription, BusError>;

    /// Counts a player's send in a room under slow mode (one message per
    /// `period`) for every node at once: `Ok` (their clock starts again)
    /// or how long they must still wait. `None`: this bus keeps no count
    /// (one node, or Redis out of reach), and the caller counts on this
    /// node (see `limits::SlowMode`).
    async fn slow_mode_send(
        &self,
        _room_id: i64,
        _user_id: &str,
        _period: Duration,
    ) -> Option<Result<(), Duration>> {
        None
    }

    /// Whether other nodes' pages are heard only while this node listens
    /// to their room (they tell who they have when it starts to).
    fn has_other_nodes(&self) -> bool {
        false
    }

    /// What is wrong with the bus right now, if anything (for `/readyz`).
    fn problem(&self) -> Option<String> {
        None
    }
}

/// The bus of a single node: publishing is handing the event to the hub.
pub struct LocalBus {
    hub: Hub,
}

impl LocalBus {
    pub fn new(hub: Hub) -> Self {
        LocalBus { hub }
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish_all(&self, channel_id: &str, events: Vec<Arc<RoomEvent>>) -> Result<(), BusError> {
        self.hub.deliver_all(channel_id, events);
        Ok(())
    }

    async fn subscribe(&self, channel_id: &str) -> Result<Subscription, BusError> {
        Ok(self.hub.subscribe(channel_id))
    }
}
