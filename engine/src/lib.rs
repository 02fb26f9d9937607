//! The chat engine: everything between a page's socket and the database,
//! with no user interface in it (the `app` crate renders the pages and
//! calls in here; the `server` crate starts it all).
//!
//! Where a message goes, one module each:
//! 1. `stream`: a page's connection to the room stream (`/api/stream`)
//!    sends it over its socket (`websocket`: RFC 6455);
//! 2. `rooms` checks it (membership, rate, length, the `moderation` filter);
//! 3. `writer` stores it with others in one transaction (`store`: SQLite
//!    through a connection of its own, or PostgreSQL), then publishes them;
//! 4. `bus` carries it to every node (in process, or Redis between nodes);
//! 5. each node's `hub` hands it to the room's connections there
//!    (`mailbox`: a queue per connection), and keeps who is online
//!    (`presence`);
//! 6. `stream` again: each connection writes its queue to its page.
//!
//! Moderation takes the same road: `moderate` checks a request against the
//! member's role and records it in the room's order (`store::moderation`),
//! and it travels to every page like a message. `blocks` keeps whom each
//! player has blocked (their pages leave those players' lines out).
//!
//! The game's own server drives rooms through `game` (the server API), and
//! hears what happens in them through `events` (the webhooks), told once
//! by the node that committed each.
//!
//! Beside them: `identity` (who a page is: open mode, or signed tokens),
//! `limits` (per-IP connections, send rates, slow mode), `lifecycle`
//! (graceful shutdown), `metrics` (the names of the Prometheus metrics).
pub mod blocks;
pub mod bus;
pub mod events;
pub mod game;
pub mod hub;
pub mod identity;
pub mod lifecycle;
pub mod limits;
pub mod mailbox;
pub mod metrics;
pub mod moderate;
pub mod presence;
pub mod rooms;
pub mod store;
pub mod stream;
pub mod websocket;
pub mod writer;

/// The room stream's frames (the `chat-protocol` crate).
pub use chat_protocol as protocol;
use chat_protocol::{backoff, validate};

pub use lifecycle::Lifecycle;

/// What the room stream needs of the server (the `app` crate's state holds
/// one, and the stream's handler takes it from there).
#[derive(Clone)]
pub struct Engine {
    pub rooms: rooms::Rooms,
    /// How pages prove who they are (open, or signed tokens).
    pub access: identity::Access,
    pub stream: stream::StreamSettings,
    pub connections: limits::ConnectionLimits,
    pub lifecycle: Lifecycle,
}
