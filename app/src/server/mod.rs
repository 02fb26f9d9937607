//! Server-only code of the app (feature `ssr`): its state and the pages'
//! security policy. The chat itself (store, bus, fan-out, rooms, the
//! room stream) is the `engine` crate; the `server` crate composes them.
pub mod page_policy;
pub mod state;

pub use state::AppState;
