//! Embedded Chat: the Leptos application, rendered on the server and
//! hydrated in the browser.
//!
//! Islands: only the open room (`components::chat_room::ChatRoom`) runs in
//! the browser; the routes, the page frames and the forms around it are
//! HTML from the server. The browser's code is what a room needs and no
//! more, which keeps the download small for players on slow links.
//!
//! - `pages`: the home page, the chat room page and the embedding demo
//!   (routes).
//! - `components`: the parts of a room page (`ChatRoom`, `MessagesList`,
//!   `UserOnline`, …).
//! - `api`: server functions (join, older history, add user, leave, send
//!   without JS, moderation, whether a parent page may hear from an
//!   embedded room).
//! - `protocol`: the frames of the room stream (crate `chat-protocol`,
//!   shared with the server and the tools).
//! - `conversation`, `activity` (who is online, who is typing),
//!   `moderation` (notices, menus, the report queue), `timestamps`: pure
//!   logic, unit-tested; `validate` and `backoff` come
//!   from `chat-protocol`, shared with the engine.
//! - `embed`: which parent pages an embedded room talks to, and what it
//!   tells them.
//! - `bundle`: the names the browser fetches the WASM, its JS glue and the
//!   stylesheet by (content-hashed in the release build).
//! - `island_loader`: the `<head>` tags that load the WASM and hydrate the
//!   room as soon as the page is parsed.
//! - `stream_client` (browser): the room stream's websocket client.
//! - `server` (server only): the app's state and the pages' security
//!   policy. The chat itself is the `engine` crate, which `api` calls.
#![recursion_limit = "256"]

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub mod activity;
pub mod api;
pub mod bundle;
pub mod components;
pub mod conversation;
pub mod embed;
mod island_loader;
pub mod moderation;
pub mod pages;
/// The room stream's frames (the `chat-protocol` crate).
pub use chat_protocol as protocol;
pub mod timestamps;
/// Rules for ids and message bodies, and the stream's reconnect timing
/// (shared with the engine through `chat-protocol`).
pub use chat_protocol::{backoff, validate};

#[cfg(feature = "hydrate")]
pub mod stream_client;

/// The browser's entry point: hydrates the page's islands (the open
/// room; everything else on the pages is plain HTML from the server).
#[cfg(feature = "hydrate")]
pub fn hydrate_islands() {
    // A server function that answers with a redirect (leave_room sends the
    // leaver to `/`) moves the page there. The router that would set this
    // hook runs on the server only.
    let _ = server_fn::redirect::set_redirect_hook(|location: &str| {
        let _ = window().location().set_href(location);
    });
    leptos::mount::hydrate_islands();
}

#[cfg(feature = "ssr")]
pub mod server;

/// The HTML document around the app (server side).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    server::page_policy::apply();
    let bundle = bundle(&options);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="data:,"/>
                // `id="leptos"`: where `cargo leptos watch` swaps in a changed stylesheet.
                <link rel="stylesheet" id="leptos" href=bundle.css.clone()/>
                <AutoReload options=options.clone()/>
                {page_runs_code().then(|| view! { <island_loader::IslandScripts bundle/> })}
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The bundle's names, as the server found them when it started (plain
/// names where it gave none: a page rendered outside the server).
fn bundle(options: &LeptosOptions) -> bundle::Bundle {
    use_context().unwrap_or_else(|| bundle::Bundle::plain(&options.site_pkg_dir, &options.output_name))
}

/// Whether the page being rendered has an island, so needs the browser
/// code: only a room page does. The home page, the embedding demo and the
/// error pages are plain HTML and download no WASM.
fn page_runs_code() -> bool {
    #[cfg(feature = "ssr")]
    {
        use_context::<axum::http::request::Parts>().is_none_or(|parts| parts.uri.path() == "/chat_room")
    }
    #[cfg(not(feature = "ssr"))]
    true
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
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
