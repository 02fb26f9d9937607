//! What protects the chat on the public internet at the HTTP layer:
//! - an origin check on everything that acts (server-function posts and the
//!   stream's websocket upgrade): a page of another site cannot post forms
//!   to us with a player's cookies or open a stream in their name
//!   (cross-site request forgery, cross-site websocket hijacking);
//! - headers on every response: no MIME sniffing, no referrer to other
//!   sites (room URLs carry identity tokens; same-origin requests keep
//!   theirs, or browsers would send `Origin: null` with the page's own
//!   forms), and the page's Content-Security-Policy (set by the app's shell,
//!   which knows the per-response script nonce).
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Origins allowed to act besides the chat's own.
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    allowed: Arc<[String]>,
}

impl OriginPolicy {
    /// `allowed`: origins already checked by the configuration.
    pub fn new(allowed: &[String]) -> Self {
        let allowed: Vec<String> = allowed.iter().filter_map(|o| app::embed::normalize_origin(o)).collect();
        OriginPolicy { allowed: allowed.into() }
    }

    /// Whether a request with these headers may act. No `Origin` header:
    /// not a browser acting for a page (browsers send it on every
    /// cross-site POST and websocket), so there is nothing to forge.
    pub fn permits(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else { return true };
        let Some(origin) = origin.to_str().ok().and_then(app::embed::normalize_origin) else {
            // `null` (sandboxed frames, file:) or garbage.
            return false;
        };
        same_origin(&origin, headers) || self.allowed.contains(&origin)
    }
}

/// Whether `origin` (normalised) names the host the request was sent to.
/// The scheme is not compared: behind a TLS-terminating balancer the
/// server cannot see it, and a host serves one site here.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix(":80").or_else(|| host.strip_suffix(":443")).unwrap_or(&host);
    authority == host
}

/// Whether the request acts on the chat: a server-function call or the
/// stream. Pages and static files are read-only.
fn acts(request: &Request) -> bool {
    let path = request.uri().path();
    path == "/api/stream" || (path.starts_with("/api/") && request.method() == Method::POST)
}

/// Refuses acting requests from origins that may not act.
pub async fn guard_origin(State(policy): State<OriginPolicy>, request: Request, next: Next) -> Response {
    if acts(&request) && !policy.permits(request.headers()) {
        let origin = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("?");
        tracing::info!(origin, path = request.uri().path(), "cross-site request refused");
        return (StatusCode::FORBIDDEN, "Cross-site request refused: this site may not use the chat.")
            .into_response();
    }
    next.run(request).await
}

/// Headers every response carries; and pages, made for each request and
/// for one person, are asked for again every time (`no-cache`, with no
/// validator: a new page) and kept by no shared cache (`private`), unless
/// their handler said otherwise.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|t| t.to_str().ok());
    if content_type.is_some_and(|t| t.starts_with("text/html")) {
        headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-cache, private"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn the_chats_own_pages_may_act() {
        let policy = OriginPolicy::default();
        assert!(policy.permits(&headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")));
        assert!(policy.permits(&headers(Some("https://chat.example"), "chat.example")));
        assert!(policy.permits(&headers(Some("https://chat.example"), "chat.example:443")));
    }

    #[test]
    fn other_sites_may_not_unless_allowed() {
        let policy = OriginPolicy::new(&["https://game.example".to_owned()]);
        assert!(!policy.permits(&headers(Some("https://evil.example"), "chat.example")));
        assert!(policy.permits(&headers(Some("https://game.example"), "chat.example")));
        assert!(policy.permits(&headers(Some("https://GAME.example:443"), "chat.example")));
        assert!(!policy.permits(&headers(Some("https://game.example.evil.example"), "chat.example")));
        // A same host on another port is another origin.
        assert!(!policy.permits(&headers(Some("http://127.0.0.1:9999"), "127.0.0.1:8080")));
    }

    #[test]
    fn opaque_or_garbage_origins_may_not_act() {
        let policy = OriginPolicy::default();
        assert!(!policy.permits(&headers(Some("null"), "chat.example")));
        assert!(!policy.permits(&headers(Some("not an origin"), "chat.example")));
    }

    #[test]
    fn requests_without_an_origin_are_not_cross_site() {
        assert!(OriginPolicy::default().permits(&headers(None, "chat.example")));
    }
}
