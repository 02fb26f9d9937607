//! Embedded Chat: the Leptos application, rendered on the server and
//! hydrated in the browser.
//!
//! - `pages`: the home page, the chat room page and the embedding demo
//!   (routes).
//! - `components`: the parts of a room page (`ChatRoom`, `MessagesList`,
//!   `UserOnline`, …).
//! - `api`: server functions (join, older history, add user, leave, send
//!   without JS, whether a parent page may hear from an embedded room).
//! - `protocol`: the frames of the room stream (crate `chat-protocol`,
//!   shared with the server and the tools).
//! - `conversation`, `activity` (who is online, who is typing), `validate`,
//!   `timestamps`: pure logic, unit-tested.
//! - `embed`: which parent pages an embedded room talks to, and what it
//!   tells them.
//! - `stream_client` (browser): the room stream's websocket client.
//! - `server` (server only): store, bus, hub, rooms service, stream.
#![recursion_limit = "256"]

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub mod activity;
pub mod api;
pub mod backoff;
pub mod components;
pub mod conversation;
pub mod embed;
pub mod pages;
/// The room stream's frames (the `chat-protocol` crate).
pub use chat_protocol as protocol;
pub mod timestamps;
pub mod validate;

#[cfg(feature = "hydrate")]
pub mod stream_client;

#[cfg(feature = "ssr")]
pub mod server;

/// The HTML document around the app (server side).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    server::page_policy::apply();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="data:,"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/embedded-chat.css"/>
        <Title text="Embedded Chat"/>
        <Router>
            <Routes fallback=pages::NotFound>
                <Route path=path!("/") view=pages::home::HomePage/>
                <Route path=path!("/chat_room") view=pages::chat_room::ChatRoomPage ssr=SsrMode::Async/>
                <Route path=path!("/embed-demo") view=pages::embed_demo::EmbedDemoPage/>
            </Routes>
        </Router>
    }
}
