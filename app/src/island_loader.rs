//! The `<head>` tags that bring a page's islands (the room) to life: a
//! preload of the JS glue and of the WASM, and a module script that loads
//! them and hydrates each `<leptos-island>` at once.
//!
//! Leptos's own `HydrationScripts islands=true` starts the same work from a
//! `requestIdleCallback` with no deadline. A page that is not idle soon (an
//! embedded room in a frame beside a running game, a busy tab) stayed
//! server-rendered and "Connecting…" for as long as the browser found no
//! idle moment — seconds, in an embedded frame under a headless browser
//! now and then. The room is the page's whole purpose, so it starts
//! loading as soon as the document has been parsed (module scripts run
//! then). Islands here take no server-rendered children, so the loader does
//! not handle `<leptos-children>`.
use leptos::prelude::*;

use crate::bundle::Bundle;

/// The loader tags, for a page with islands; its inline script carries the
/// response's nonce (the page's Content-Security-Policy admits no other).
#[component]
pub fn IslandScripts(bundle: Bundle) -> impl IntoView {
    // Outside the islands the page is plain HTML: the server renders it
    // without hydration markers (what `HydrationScripts islands=true` sets).
    if let Some(context) = Owner::current_shared_context() {
        context.set_is_hydrating(false);
    }
    let Bundle { js, wasm, .. } = bundle;
    let script = format!("{}({js:?}, {wasm:?});", include_str!("island_loader.js"));
    view! {
        <link rel="modulepreload" href=js.clone()/>
        <link rel="preload" href=wasm.clone() r#as="fetch" r#type="application/wasm" crossorigin=""/>
        <script type="module" nonce=leptos::nonce::use_nonce()>{script}</script>
    }
}
