//! Embedded Chat: the Leptos application, rendered on the server and
//! hydrated in the browser.
//!
//! - `pages`: the home page and the chat room page (routes).
//! - `components`: the parts of a room page (`ChatRoom`, `MessagesList`,
//!   `UserOnline`, …).
//! - `api`: server functions (join, add user, leave, send without JS).
//! - `protocol`: the frames of the room stream (crate `chat-protocol`,
//!   shared with the server and the tools).
//! - `conversation`, `validate`: pure logic, unit-tested.
//! - `stream_client` (browser): the room stream's websocket client.
//! - `server` (server only): store, bus, hub, rooms service, stream.
#![recursion_limit = "256"]

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub mod api;
pub mod backoff;
pub mod components;
pub mod conversation;
pub mod pages;
/// The room stream's frames (the `chat-protocol` crate).
pub use chat_protocol as protocol;
pub mod validate;

#[cfg(feature = "hydrate")]
pub mod stream_client;

#[cfg(feature = "ssr")]
pub mod server;

/// The HTML document around the app (server side).
pub fn shell(options: LeptosOptions) -> impl IntoView {
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
            </Routes>
        </Router>
    }
}
