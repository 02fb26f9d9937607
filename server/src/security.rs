//! What protects the chat on the public internet at the HTTP layer:
//! - an origin check on everything that acts (server-function posts and the
//!   stream's websocket upgrade): a page of another site cannot post forms
//!   to us with a player's cookies or open a stream in their name
//!   (cross-site request forgery, cross-site websocket hijacking);
//! - cross-origin reads (CORS) of the server functions for the origins
//!   allowed to act, so that a game's own page can use the JavaScript
//!   client (`public/chat-client.js`) against the chat on another host;
//!   never for the server API (`/api/v1`, keys, server to server); the
//!   client file itself may be loaded by any page;
//! - headers on every response: no MIME sniffing, no referrer to other
//!   sites (room URLs carry identity tokens; same-origin requests keep
//!   theirs, or browsers would send `Origin: null` with the page's own
//!   forms), and the page's Content-Security-Policy (set by the app's shell,
//!   which knows the per-response script nonce).
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
};
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

    /// The request's `Origin` header when it names another site allowed to
    /// act (the chat's own pages need no CORS grant).
    fn cross_site_grant(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let value = headers.get(header::ORIGIN)?;
        let origin = value.to_str().ok().and_then(app::embed::normalize_origin)?;
        (self.allowed.contains(&origin) && !same_origin(&origin, headers)).then(|| value.clone())
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

/// Whether `path` is a server function's (not the stream's, not the
/// server API's).
fn is_server_function(path: &str) -> bool {
    path.starts_with("/api/") && !path.starts_with("/api/v1/") && path != "/api/stream"
}

/// The JavaScript client and its types, served from `public/`.
const CLIENT_FILES: [&str; 2] = ["/chat-client.js", "/chat-client.d.ts"];

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

/// Lets the origins allowed to act read the server functions' answers
/// (CORS, preflights included), and any page load the JavaScript client.
/// Outside every layer that may answer on its own (the join-storm line's
/// 503, the deadline's, a caught panic's): a game's page must read those
/// too, to know it may retry.
pub async fn cross_site_reads(State(policy): State<OriginPolicy>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let grant = if is_server_function(path) { policy.cross_site_grant(request.headers()) } else { None };
    let client_file = CLIENT_FILES.iter().copied().find(|file| *file == path);
    if request.method() == Method::OPTIONS {
        if let Some(origin) = grant {
            return preflight(origin);
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if let Some(origin) = grant {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        // When to come back, for a join turned away in a storm.
        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    } else if let Some(file) = client_file {
        // Public code: any page may load it (a module from another host is
        // fetched with CORS). Revalidated on use: it changes with the server.
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if file.ends_with(".d.ts") {
            // Not an MPEG stream, whatever the extension says.
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        }
    }
    response
}

/// The answer to an allowed origin's preflight of a server function.
fn preflight(origin: HeaderValue) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type, accept"));
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    response
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
