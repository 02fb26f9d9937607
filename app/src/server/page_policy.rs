//! The Content-Security-Policy of the chat's pages. Set per response from
//! the shell, because it names the nonce Leptos gave this response's
//! inline scripts (hydration and resource data): no other inline script
//! runs, so text that slipped into the page as HTML could not execute.
//!
//! Under `cargo leptos watch` (development) the pages also connect to its
//! live-reload socket on its own port, which the policy then allows.
use leptos::prelude::*;

/// What the policy allows, decided at startup and shared with the shell
/// through the app state.
#[derive(Clone, Debug)]
pub struct PagePolicy {
    /// Who may frame the pages (the `FRAME_ANCESTORS` setting).
    pub frame_ancestors: String,
    /// The port of `cargo leptos watch`'s reload socket, when the server
    /// runs under it.
    pub live_reload: Option<u32>,
}

impl Default for PagePolicy {
    fn default() -> Self {
        PagePolicy { frame_ancestors: "*".to_owned(), live_reload: None }
    }
}

/// The policy text for a response whose inline scripts carry `nonce`;
/// `live_reload`: the port of `cargo leptos watch`'s reload socket, if
/// the server runs under it.
pub fn content_security_policy(
    nonce: Option<&str>,
    frame_ancestors: &str,
    live_reload: Option<u32>,
) -> String {
    let inline = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    let reload = live_reload.map(|port| format!(" ws://*:{port} wss://*:{port}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{inline} 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'{reload}; frame-src *; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

/// Puts the policy on the response being rendered (call from the shell).
pub fn apply() {
    let pages = use_context::<crate::server::AppState>().map(|state| state.pages).unwrap_or_default();
    let nonce = leptos::nonce::use_nonce();
    let policy = content_security_policy(nonce.as_deref(), &pages.frame_ancestors, pages.live_reload);
    if let (Some(response), Ok(value)) =
        (use_context::<leptos_axum::ResponseOptions>(), axum::http::HeaderValue::from_str(&policy))
    {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_responses_own_inline_scripts_run() {
        let policy = content_security_policy(Some("abc"), "https://game.example", None);
        assert!(policy.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        let scripts = policy.split(';').find(|d| d.trim_start().starts_with("script-src")).unwrap();
        assert!(!scripts.contains("unsafe-inline"), "no inline scripts beyond the nonce");
        assert!(policy.ends_with("frame-ancestors https://game.example"));
        assert!(policy.contains("object-src 'none'"));
    }

    #[test]
    fn without_a_nonce_no_inline_script_is_allowed() {
        assert!(content_security_policy(None, "*", None).contains("script-src 'self' 'wasm-unsafe-eval';"));
    }

    #[test]
    fn under_cargo_leptos_watch_the_pages_may_reach_its_reload_socket() {
        assert!(content_security_policy(None, "*", None).contains("connect-src 'self';"));
        assert!(content_security_policy(None, "*", Some(3001))
            .contains("connect-src 'self' ws://*:3001 wss://*:3001;"));
    }
}
