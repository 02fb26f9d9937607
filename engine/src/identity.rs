//! Who is speaking: signed identities.
//!
//! With a secret configured, the game's server signs, for each player and
//! room, a token the chat checks on the page, on every server function and
//! on the stream; the identity it names is the only one used (a user id in
//! a request is ignored). Without a secret anyone can be anyone (the user
//! id comes from the URL): that open mode is for local development, and the
//! server warns loudly at start-up.
//!
//! Token format (version 1), all ASCII, no padding:
//!
//! ```text
//! token   = payload "." signature
//! payload = base64url(JSON {"u": user_id, "c": channel_id, "exp": unix_seconds, "r": role})
//! signature = base64url(HMAC-SHA256(secret, payload))   // over the payload text
//! ```
//!
//! `"r"` is `"player"` (the same as leaving it out) or `"moderator"`. The
//! README shows how to mint one in shell and JavaScript; `server token` mints one.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;

use crate::protocol::Role;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted (ids of 64 characters of 4 bytes fit easily).
const MAX_TOKEN_LEN: usize = 1024;
/// Shortest secret accepted: HMAC keys shorter than the hash are weak.
pub const MIN_SECRET_LEN: usize = 32;

/// The secret tokens are signed with. Never printed.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// A verified identity: this user, in this room, until `expires` (Unix s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "u")]
    pub user_id: String,
    #[serde(rename = "c")]
    pub channel_id: String,
    #[serde(rename = "exp")]
    pub expires: i64,
    #[serde(rename = "r", default, skip_serializing_if = "Role::is_player")]
    pub role: Role,
}

/// Why a token was refused. `Display` is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TokenError {
    #[error("This chat needs a sign-in token from the game. Please reopen the chat from the game.")]
    Missing,
    #[error("The sign-in token is not valid. Please reopen the chat from the game.")]
    Malformed,
    #[error("The sign-in token is not valid. Please reopen the chat from the game.")]
    BadSignature,
    #[error("Your sign-in has expired. Please reopen the chat from the game.")]
    Expired,
    #[error("This sign-in token is for another room or user.")]
    OtherRoom,
}

impl SigningKey {
    /// A key from the configured secret; refuses secrets too short to be safe.
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!("the token secret must be at least {MIN_SECRET_LEN} characters"));
        }
        Ok(SigningKey(secret.as_bytes().to_vec()))
    }

    /// The MAC of a token's payload text.
    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    /// Signs an identity (what a game server does; also `server token`).
    pub fn mint(&self, identity: &Identity) -> String {
        let json = serde_json::to_vec(identity).expect("identities serialize");
        let payload = URL_SAFE_NO_PAD.encode(json);
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// Checks a token's signature and expiry (`now` in Unix seconds) and
    /// returns the identity it names.
    pub fn verify(&self, token: &str, now: i64) -> Result<Identity, TokenError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        // Constant-time comparison.
        self.mac(payload).verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let identity: Identity = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if identity.expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(identity)
    }
}

/// How the server learns who is speaking.
#[derive(Clone, Debug)]
pub enum Access {
    /// No secret: the page says who it is (local development only); the
    /// users listed are moderators in every room.
    Open { moderators: Vec<String> },
    /// Every request carries a token signed with this key.
    Signed(SigningKey),
}

/// Who is acting in which room, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub channel_id: String,
    pub user_id: String,
    pub role: Role,
}

impl Access {
    /// Who acts in `channel_id`: in open mode whoever the request claims
    /// to be; in signed mode whoever the token names (the claimed user id
    /// is ignored), and only in the token's room.
    pub fn resolve(&self, channel_id: &str, user_id: &str, token: Option<&str>) -> Result<Actor, TokenError> {
        match self {
            Access::Open { moderators } => {
                let listed = moderators.iter().any(|m| m == user_id.trim());
                let role = if listed { Role::Moderator } else { Role::Player };
                Ok(Actor { channel_id: channel_id.to_owned(), user_id: user_id.to_owned(), role })
            }
            Access::Signed(key) => {
                let identity = key.verify(token.unwrap_or(""), unix_now())?;
                let claimed_room = channel_id.trim();
                if !claimed_room.is_empty() && claimed_room != identity.channel_id {
                    return Err(TokenError::OtherRoom);
                }
                Ok(Actor { channel_id: identity.channel_id, user_id: identity.user_id, role: identity.role })
            }
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::new("a-test-secret-that-is-long-enough-0123").unwrap()
    }

    fn john() -> Identity {
        Identity { user_id: "john".into(), channel_id: "game_1".into(), expires: 2_000, role: Role::Player }
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let token = key().mint(&john());
        assert_eq!(key().verify(&token, 1_999), Ok(john()));
        assert_eq!(key().verify(&token, 2_000), Err(TokenError::Expired));
    }

    #[test]
    fn the_token_format_is_payload_dot_signature_in_base64url() {
        let token = key().mint(&john());
        let (payload, signature) = token.split_once('.').unwrap();
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(json, r#"{"u":"john","c":"game_1","exp":2000}"#);
        assert_eq!(URL_SAFE_NO_PAD.decode(signature).unwrap().len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    }

    #[test]
    fn the_readmes_shell_and_javascript_recipes_mint_valid_tokens() {
        // Minted by the README's shell (openssl) and Node.js recipes with
        // this secret, for john in game_1 until 2100-01-01.
        let key = SigningKey::new("docs-example-secret-0123456789abcdef").unwrap();
        let token = "eyJ1Ijoiam9obiIsImMiOiJnYW1lXzEiLCJleHAiOjQxMDI0NDQ4MDB9.\
                     WDI7KaQIi3vARRUlkrKuisP6fXSvL_J7O-W20CbrRlQ";
        let identity = key.verify(token, unix_now()).unwrap();
        assert_eq!(
            identity,
            Identity {
                user_id: "john".into(),
                channel_id: "game_1".into(),
                expires: 4_102_444_800,
                role: Role::Player
            }
        );
        assert_eq!(key.mint(&identity), token);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = SigningKey::new("another-secret-that-is-long-enough-4567").unwrap();
        assert_eq!(key().verify(&other.mint(&john()), 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let token = key().mint(&john());
        let (_, signature) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"u":"admin","c":"game_1","exp":2000}"#);
        assert_eq!(key().verify(&format!("{forged}.{signature}"), 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed_or_missing() {
        assert_eq!(key().verify("", 0), Err(TokenError::Missing));
        assert_eq!(key().verify("   ", 0), Err(TokenError::Missing));
        assert_eq!(key().verify("no-dot", 0), Err(TokenError::Malformed));
        assert_eq!(key().verify("a.!!!", 0), Err(TokenError::Malformed));
        assert_eq!(key().verify(&"x".repeat(5000), 0), Err(TokenError::Malformed));
        // A well-signed payload that is not an identity.
        let payload = URL_SAFE_NO_PAD.encode("[1,2]");
        let signature = URL_SAFE_NO_PAD.encode(key().mac(&payload).finalize().into_bytes());
        assert_eq!(key().verify(&format!("{payload}.{signature}"), 0), Err(TokenError::Malformed));
    }

    #[test]
    fn open_access_takes_the_claimed_identity_and_the_listed_moderators() {
        let access = Access::Open { moderators: vec!["mod".into()] };
        let actor = access.resolve("game_1", "anyone", None).unwrap();
        let player = Actor { channel_id: "game_1".into(), user_id: "anyone".into(), role: Role::Player };
        assert_eq!(actor, player);
        assert_eq!(access.resolve("game_1", "mod", None).unwrap().role, Role::Moderator);
    }

    #[test]
    fn the_role_is_the_tokens_and_cannot_be_raised_by_editing_it() {
        let access = Access::Signed(key());
        let moderator = Identity { expires: unix_now() + 60, role: Role::Moderator, ..john() };
        let token = key().mint(&moderator);
        assert!(URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap()
            .ends_with(br#""r":"moderator"}"#));
        assert_eq!(access.resolve("game_1", "john", Some(&token)).unwrap().role, Role::Moderator);
        // A player's token: no claim, a player.
        let player = key().mint(&Identity { expires: unix_now() + 60, ..john() });
        assert!(!URL_SAFE_NO_PAD
            .decode(player.split('.').next().unwrap())
            .unwrap()
            .ends_with(br#""r":"player"}"#));
        assert_eq!(access.resolve("game_1", "john", Some(&player)).unwrap().role, Role::Player);
        // The same player's payload with the claim added keeps the old signature: refused.
        let (_, signature) = player.split_once('.').unwrap();
        let raised = format!(r#"{{"u":"john","c":"game_1","exp":{},"r":"moderator"}}"#, unix_now() + 60);
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(raised));
        assert_eq!(access.resolve("game_1", "john", Some(&forged)), Err(TokenError::BadSignature));
    }

    #[test]
    fn signed_access_takes_the_tokens_identity_in_the_tokens_room_only() {
        let access = Access::Signed(key());
        let token = key().mint(&Identity { expires: unix_now() + 60, ..john() });
        let actor = access.resolve("game_1", "mallory", Some(&token)).unwrap();
        assert_eq!(actor.user_id, "john", "the claimed user id is ignored");
        assert_eq!(access.resolve("", "", Some(&token)).unwrap().channel_id, "game_1");
        assert_eq!(access.resolve("game_2", "john", Some(&token)), Err(TokenError::OtherRoom));
        assert_eq!(access.resolve("game_1", "john", None), Err(TokenError::Missing));
        let expired = key().mint(&Identity { expires: unix_now() - 1, ..john() });
        assert_eq!(access.resolve("game_1", "john", Some(&expired)), Err(TokenError::Expired));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(SigningKey::new("short").is_err());
    }

    #[test]
    fn the_key_never_prints() {
        assert_eq!(format!("{:?}", key()), "SigningKey(***)");
    }
}
