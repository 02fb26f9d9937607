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
//! not handle `<leptos-children>`. With hashed file names (`hash-files` in
//! the cargo-leptos settings, off here) the names come from a file beside
//! the binary: Leptos's own tags are used then.
use leptos::prelude::*;

/// The loader tags, for a page with islands; its inline script carries the
/// response's nonce (the page's Content-Security-Policy admits no other).
#[component]
pub fn IslandScripts(options: LeptosOptions) -> impl IntoView {
    if options.hash_files {
        return view! { <HydrationScripts options islands=true/> }.into_any();
    }
    // Outside the islands the page is plain HTML: the server renders it
    // without hydration markers (what `HydrationScripts islands=true` sets).
    if let Some(context) = Owner::current_shared_context() {
        context.set_is_hydrating(false);
    }
    let (js, wasm) = bundle_paths(&options.site_pkg_dir, &options.output_name);
    let script = format!("{}({js:?}, {wasm:?});", include_str!("island_loader.js"));
    view! {
        <link rel="modulepreload" href=js.clone()/>
        <link rel="preload" href=wasm.clone() r#as="fetch" r#type="application/wasm" crossorigin=""/>
        <script type="module" nonce=leptos::nonce::use_nonce()>{script}</script>
    }
    .into_any()
}

/// Where the JS glue and the WASM are served: both are named after the
/// output name, whether `cargo xtask site` or cargo-leptos built the site
/// (each renames wasm-bindgen's `_bg.wasm`).
fn bundle_paths(pkg_dir: &str, output_name: &str) -> (String, String) {
    let base = format!("/{pkg_dir}/{output_name}");
    (format!("{base}.js"), format!("{base}.wasm"))
}

#[cfg(test)]
mod tests {
    use super::bundle_paths;

    #[test]
    fn the_bundle_is_named_after_the_output_name() {
        assert_eq!(
            bundle_paths("pkg", "embedded-chat"),
            ("/pkg/embedded-chat.js".to_owned(), "/pkg/embedded-chat.wasm".to_owned())
        );
    }
}
