//! The browser entry point: hydrates the server-rendered page's islands.
#![recursion_limit = "256"]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // The release WASM is built to abort on a panic without formatting a
    // message (scripts/build-release), so a hook would never run there.
    #[cfg(not(panic = "immediate-abort"))]
    console_error_panic_hook::set_once();
    app::hydrate_islands();
}
