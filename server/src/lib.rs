//! The Embedded Chat server: the composition root. It reads the
//! configuration, picks the store and the bus, and serves the app.
#![recursion_limit = "256"]
pub mod admission;
pub mod api_v1;
pub mod backup;
pub mod config;
pub mod ops;
pub mod retention;
pub mod security;
pub mod startup;
pub mod telemetry;
pub mod webhooks;
pub mod word_filter;
