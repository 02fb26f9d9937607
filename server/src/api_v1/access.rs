//! Who may call the server API: a request with one of the server's API keys
//! (`Authorization: Bearer <key>`), and never a browser.
//!
//! Keys are compared in constant time: each configured key is kept as its
//! SHA-256 digest, the presented one is hashed the same way, and the
//! digests are compared with `subtle` (the time taken says nothing about
//! how much of a key was right). Several keys may be in force at once, so
//! a key is rotated by adding the new one, moving the game's servers over,
//! then removing the old one.
//!
//! A browser sends `Origin` with every cross-site request (and with any
//! POST); the API refuses such requests outright and never answers with
//! CORS headers, so a key that leaked into a web page is of no use to the
//! page.
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, ORIGIN};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiError;

/// Shortest API key accepted (a key is a secret, like the token secret).
pub const MIN_KEY_LEN: usize = 32;

/// The API keys in force, as digests.
#[derive(Clone, Default)]
pub struct ApiKeys(Vec<[u8; 32]>);

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.0.len())
    }
}

impl ApiKeys {
    /// The keys, or why one of them cannot be used.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut digests = Vec::new();
        for key in keys {
            if key.len() < MIN_KEY_LEN || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("an API key must be at least {MIN_KEY_LEN} characters, without spaces"));
            }
            digests.push(Sha256::digest(key.as_bytes()).into());
        }
        Ok(ApiKeys(digests))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the keys. Every key is compared, in
    /// constant time each.
    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.iter().fold(subtle::Choice::from(0), |found, key| found | key.ct_eq(&digest)).into()
    }
}

/// Lets a request through to the API, or answers why not.
pub async fn check(State(keys): State<Arc<ApiKeys>>, request: Request, next: Next) -> Response {
    if let Err(refusal) = admit(&keys, request.headers()) {
        return refusal.into_response();
    }
    next.run(request).await
}

fn admit(keys: &ApiKeys, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(ORIGIN) {
        return Err(ApiError::forbidden(
            "browser_origin",
            "The server API is for the game's servers; browsers may not call it.",
        ));
    }
    if keys.is_empty() {
        return Err(ApiError::unauthorized("The server API is off: the server has no API_KEYS."));
    }
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        .and_then(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer").then_some(key.trim()))
        .ok_or_else(|| ApiError::unauthorized("An API key is needed: Authorization: Bearer <key>."))?;
    if !keys.accepts(presented) {
        return Err(ApiError::unauthorized("That API key is not valid."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue, StatusCode};

    use super::*;

    const KEY: &str = "first-key-0123456789abcdef0123456789";
    const NEXT: &str = "second-key-0123456789abcdef012345678";

    fn headers(pairs: &[(axum::http::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (name.clone(), HeaderValue::from_str(value).unwrap())).collect()
    }

    fn status(result: Result<(), ApiError>) -> Option<StatusCode> {
        result.err().map(|e| e.status)
    }

    #[test]
    fn any_key_in_force_lets_a_server_in_and_nothing_else_does() {
        let keys = ApiKeys::new([KEY, NEXT]).unwrap();
        for key in [KEY, NEXT] {
            assert_eq!(status(admit(&keys, &headers(&[(AUTHORIZATION, &format!("Bearer {key}"))]))), None);
        }
        for scheme in ["bearer", "BEARER"] {
            let header = format!("{scheme} {KEY}");
            assert_eq!(status(admit(&keys, &headers(&[(AUTHORIZATION, &header)]))), None, "{header}");
        }
        for bad in ["", "Bearer", &format!("Basic {KEY}"), &format!("Bearer {KEY}x"), "Bearer nope"] {
            let got = status(admit(&keys, &headers(&[(AUTHORIZATION, bad)])));
            assert_eq!(got, Some(StatusCode::UNAUTHORIZED), "{bad:?}");
        }
        assert_eq!(status(admit(&keys, &HeaderMap::new())), Some(StatusCode::UNAUTHORIZED));
    }

    #[test]
    fn a_browser_is_refused_even_with_a_good_key_and_no_keys_means_no_api() {
        let keys = ApiKeys::new([KEY]).unwrap();
        let from_page =
            headers(&[(AUTHORIZATION, &format!("Bearer {KEY}")), (ORIGIN, "https://evil.example")]);
        assert_eq!(status(admit(&keys, &from_page)), Some(StatusCode::FORBIDDEN));
        let off = ApiKeys::default();
        assert_eq!(
            status(admit(&off, &headers(&[(AUTHORIZATION, &format!("Bearer {KEY}"))]))),
            Some(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn short_or_spaced_keys_are_refused_at_start() {
        assert!(ApiKeys::new(["short"]).is_err());
        assert!(ApiKeys::new(["a key with spaces in it, long enough to pass"]).is_err());
        assert!(ApiKeys::new([KEY]).is_ok());
    }
}
