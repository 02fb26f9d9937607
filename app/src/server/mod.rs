//! Server-only code (feature `ssr`): the store, the bus, the per-node hub
//! (with the rooms' presence), the rooms service and the room stream. The
//! `server` crate composes them.
pub mod bus;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod mailbox;
pub mod metrics;
pub mod page_policy;
pub mod presence;
pub mod rooms;
pub mod state;
pub mod store;
pub mod stream;
pub mod websocket;
pub mod writer;

pub use state::AppState;
