//! The Content-Security-Policy of the chat's pages. Set per response from
//! the shell, because it names the nonce Leptos gave this response's
//! inline scripts (hydration and resource data): no other inline script
//! runs, so text that slipped into the page as HTML could not execute.
use leptos::prelude::*;

/// Who may frame the pages (the `FRAME_ANCESTORS` setting), shared with
/// the shell through the app state.
#[derive(Clone, Debug)]
pub struct PagePolicy {
    pub frame_ancestors: String,
}

impl Default for PagePolicy {
    fn default() -> Self {
        PagePolicy { frame_ancestors: "*".to_owned() }
    }
}

/// The policy text for a response whose inline scripts carry `nonce`.
pub fn content_security_policy(nonce: Option<&str>, frame_ancestors: &str) -> String {
    let inline = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{inline} 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; frame-src *; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors {frame_ancestors}"
    )
}

/// Puts the policy on the response being rendered (call from the shell).
pub fn apply() {
    let frame_ancestors = use_context::<crate::server::AppState>()
        .map(|state| state.pages.frame_ancestors)
        .unwrap_or_else(|| PagePolicy::default().frame_ancestors);
    let nonce = leptos::nonce::use_nonce();
    let policy = content_security_policy(nonce.as_deref(), &frame_ancestors);
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
        let policy = content_security_policy(Some("abc"), "https://game.example");
        assert!(policy.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval';"));
        let scripts = policy.split(';').find(|d| d.trim_start().starts_with("script-src")).unwrap();
        assert!(!scripts.contains("unsafe-inline"), "no inline scripts beyond the nonce");
        assert!(policy.ends_with("frame-ancestors https://game.example"));
        assert!(policy.contains("object-src 'none'"));
    }

    #[test]
    fn without_a_nonce_no_inline_script_is_allowed() {
        assert!(content_security_policy(None, "*").contains("script-src 'self' 'wasm-unsafe-eval';"));
    }
}
