//! The moderation rules of Embedded Chat as plain logic: what a message may
//! say, decided from the message and the rules alone. For now that is the
//! word filter ([`words`]): a list of words and phrases, and a check that
//! masks them or refuses the message; [`filter`] holds the list in force
//! while a node runs.
//!
//! The crate is separate from the engine on purpose: it has no I/O, no
//! async and no knowledge of sockets or storage, so the rules are tested
//! on their own, table by table. Where the list comes from (a file named
//! by a setting, reloaded on change or on SIGHUP, or the API) and how a
//! refusal reaches the player are the server's business; it calls in here
//! once per message, before the message is stored.
pub mod filter;
pub mod words;

pub use filter::WordFilter;
pub use words::{ListError, Mode, UnknownMode, Verdict, WordList};
