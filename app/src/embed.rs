//! Embedding a room in another site's page (an iframe in a game): which
//! parent pages may hear from the room, and what they hear.
//!
//! An embedded room page (`embed=1`) that is given `parent_origin` sends
//! small events to its parent window with `postMessage`: `ready` once,
//! `message` when a message arrives that the reader has not seen, `read`
//! when the unread count is back to 0, each with how many of the unread
//! messages name the reader (`@name`) (see `docs/embedding.md`). Events go
//! to exactly that origin, and only when it is the page's own origin or on
//! the server's allowlist ([`EmbedSettings`]), so a page that frames the
//! room without permission learns nothing from it.
use serde::{Deserialize, Serialize};

/// The sentence for a `parent_origin` that is not an origin.
pub const NOT_AN_ORIGIN: &str =
    "parent_origin must be an origin such as https://game.example or http://localhost:8000.";

/// Server setting: the origins of parent pages (besides the room's own
/// origin) that may receive an embedded room's events. The server provides
/// it through Leptos context; the default allows no other origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmbedSettings {
    allowed_parent_origins: Vec<String>,
}

impl EmbedSettings {
    /// Settings allowing these origins (each checked and normalised).
    /// The error names the first entry that is not an origin.
    pub fn new<S: AsRef<str>>(origins: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut allowed = Vec::new();
        for raw in origins {
            let raw = raw.as_ref();
            let origin = normalize_origin(raw)
                .ok_or_else(|| format!("{raw:?} is not an origin (scheme://host[:port], no path)"))?;
            if !allowed.contains(&origin) {
                allowed.push(origin);
            }
        }
        Ok(EmbedSettings { allowed_parent_origins: allowed })
    }

    /// Parses a list of origins separated by commas or spaces, the format
    /// of the `EMBED_ALLOWED_ORIGINS` setting. An empty list allows none.
    pub fn parse(list: &str) -> Result<Self, String> {
        Self::new(list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()))
    }

    pub fn allowed_parent_origins(&self) -> &[String] {
        &self.allowed_parent_origins
    }

    /// Whether `origin` (normalised) is on the list.
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed_parent_origins.iter().any(|o| o == origin)
    }

    /// The settings of this server (provided to every page by the server;
    /// none allowed when absent).
    #[cfg(feature = "ssr")]
    pub fn current() -> EmbedSettings {
        leptos::prelude::use_context::<EmbedSettings>().unwrap_or_default()
    }
}

/// The origin `raw` names, serialised the way browsers do (lowercase
/// scheme and host, no default port, no trailing slash), or `None` when it
/// is not an http(s) origin: a path, query, user info or bad port is
/// refused rather than guessed at.
pub fn normalize_origin(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (scheme, rest) = raw.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', '\\']) {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
        if host.is_empty() || !host.chars().all(valid) {
            return None;
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u32 = p.parse().ok()?;
            if n == 0 || n > 65535 {
                return None;
            }
            (n != default_port).then_some(n)
        }
        Some(_) => return None,
    };
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// The parent page an embedded room was asked to send events to: the
/// `parent_origin` it was given and the server's answer (on the allowlist
/// or not, or why the value was refused). The page decides with it, once
/// it knows its own origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedParent {
    pub origin: String,
    pub on_allowlist: Result<bool, String>,
}

impl EmbedParent {
    /// The origin to post events to, or why none: allowed are the page's
    /// own origin (`own_origin` as browsers write it, `location.origin`)
    /// and the server's allowlist. `origin` comes normalised by the server
    /// (so the page's code holds no URL parsing).
    pub fn decide(&self, own_origin: Option<&str>) -> Result<String, String> {
        let on_allowlist = self.on_allowlist.clone()?;
        let origin = &self.origin;
        if on_allowlist || own_origin == Some(origin.as_str()) {
            Ok(origin.clone())
        } else {
            Err(format!(
                "{origin} may not receive this room's events: it is neither this page's origin \
                 nor on the server's allowed list (EMBED_ALLOWED_ORIGINS)."
            ))
        }
    }

    /// [`decide`](Self::decide) in the browser; a refusal is explained in
    /// the console, for the developer embedding the room.
    #[cfg(feature = "hydrate")]
    pub fn target(&self) -> Option<String> {
        match self.decide(bridge::own_origin().as_deref()) {
            Ok(origin) => Some(origin),
            Err(why) => {
                leptos::logging::warn!("Embedded Chat sends no events to the parent page: {why}");
                None
            }
        }
    }
}

/// What an event tells the parent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedEventKind {
    /// The room is live (sent once per page).
    Ready,
    /// A message arrived that the reader has not seen; `unread` grew.
    Message,
    /// The reader caught up; `unread` is 0 again.
    Read,
}

/// One event posted to the parent window:
/// `{"type":"message","room":"game_1","unread":3,"mentions":1}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedEvent {
    #[serde(rename = "type")]
    pub kind: EmbedEventKind,
    pub room: String,
    pub unread: u32,
    /// How many of the unread messages mention the reader.
    pub mentions: u32,
}

/// What the reader has not seen yet: messages from others, and how many of
/// them mention the reader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unread {
    pub messages: u32,
    pub mentions: u32,
}

impl Unread {
    /// One more unread message (`mention`: naming the reader).
    pub fn add(&mut self, mention: bool) {
        self.messages = self.messages.saturating_add(1);
        self.mentions = self.mentions.saturating_add(u32::from(mention));
    }
}

/// The event a change of the unread count from `before` to `now` sends,
/// if any: more unread is a `message`, back to none is a `read`.
pub fn unread_event(before: u32, now: u32) -> Option<EmbedEventKind> {
    if now > before {
        Some(EmbedEventKind::Message)
    } else if now == 0 && before > 0 {
        Some(EmbedEventKind::Read)
    } else {
        None
    }
}

/// Browser side: posts events to the parent window (feature `hydrate`).
#[cfg(feature = "hydrate")]
pub mod bridge {
    use super::{EmbedEvent, EmbedEventKind};

    /// The parent window to post to, if the page is in a frame.
    fn parent() -> Option<web_sys::Window> {
        let window = web_sys::window()?;
        let parent = window.parent().ok()??;
        // A top-level page is its own parent.
        (!js_sys::Object::is(&parent, &window)).then_some(parent)
    }

    /// This page's origin, e.g. `https://chat.example`.
    pub fn own_origin() -> Option<String> {
        web_sys::window()?.location().origin().ok()
    }

    /// Posts one event to `target_origin` (the browser delivers it only if
    /// the parent page really has that origin).
    pub fn post(target_origin: &str, kind: EmbedEventKind, room: &str, unread: super::Unread) {
        let Some(parent) = parent() else { return };
        let event =
            EmbedEvent { kind, room: room.to_owned(), unread: unread.messages, mentions: unread.mentions };
        let Ok(json) = serde_json::to_string(&event) else { return };
        // A plain object (not a JSON string), so hosts read `event.data.type`.
        if let Ok(value) = js_sys::JSON::parse(&json) {
            let _ = parent.post_message(&value, target_origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_like_browsers_do() {
        assert_eq!(normalize_origin("https://Game.Example").as_deref(), Some("https://game.example"));
        assert_eq!(normalize_origin("https://game.example/").as_deref(), Some("https://game.example"));
        assert_eq!(normalize_origin("https://game.example:443").as_deref(), Some("https://game.example"));
        assert_eq!(normalize_origin("http://game.example:80").as_deref(), Some("http://game.example"));
        assert_eq!(normalize_origin(" http://127.0.0.1:8091 ").as_deref(), Some("http://127.0.0.1:8091"));
        assert_eq!(normalize_origin("HTTP://[::1]:3000").as_deref(), Some("http://[::1]:3000"));
    }

    #[test]
    fn things_that_are_not_origins_are_refused() {
        for raw in [
            "",
            "game.example",
            "ftp://game.example",
            "javascript://x",
            "https://",
            "https://game.example/path",
            "https://game.example?x=1",
            "https://user@game.example",
            "https://game.example:0",
            "https://game.example:70000",
            "https://game.example:",
            "https://game.example:8a",
            "https://ga me.example",
            "*",
            "null",
        ] {
            assert_eq!(normalize_origin(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn the_allowlist_holds_normalised_origins_and_names_a_bad_entry() {
        let settings =
            EmbedSettings::parse("https://Game.Example/, http://localhost:8000  http://localhost:8000")
                .unwrap();
        assert_eq!(settings.allowed_parent_origins(), ["https://game.example", "http://localhost:8000"]);
        assert!(settings.allows("https://game.example"));
        assert!(!settings.allows("https://evil.example"));
        assert!(EmbedSettings::parse("").unwrap().allowed_parent_origins().is_empty());
        assert!(!EmbedSettings::default().allows("https://game.example"));
        let err = EmbedSettings::parse("https://ok.example,https://bad.example/x").unwrap_err();
        assert!(err.contains("https://bad.example/x"), "{err}");
    }

    fn parent(origin: &str, on_allowlist: Result<bool, String>) -> EmbedParent {
        EmbedParent { origin: origin.into(), on_allowlist }
    }

    #[test]
    fn events_go_to_the_own_origin_or_an_allowed_one_only() {
        let own = Some("http://localhost:8091");
        assert_eq!(parent("http://localhost:8091", Ok(false)).decide(own).unwrap(), "http://localhost:8091");
        assert_eq!(parent("https://game.example", Ok(true)).decide(own).unwrap(), "https://game.example");
        let refused = parent("https://evil.example", Ok(false)).decide(own).unwrap_err();
        assert!(refused.contains("https://evil.example") && refused.contains("EMBED_ALLOWED_ORIGINS"));
        assert!(parent("https://evil.example", Ok(false)).decide(None).is_err());
        assert_eq!(parent("x", Err(NOT_AN_ORIGIN.into())).decide(own).unwrap_err(), NOT_AN_ORIGIN);
    }

    #[test]
    fn events_are_flat_json_objects_with_a_type() {
        let event =
            EmbedEvent { kind: EmbedEventKind::Message, room: "game_1".into(), unread: 3, mentions: 1 };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"type":"message","room":"game_1","unread":3,"mentions":1}"#
        );
    }

    #[test]
    fn more_unread_is_a_message_event_and_none_left_is_a_read_event() {
        assert_eq!(unread_event(0, 1), Some(EmbedEventKind::Message));
        assert_eq!(unread_event(2, 3), Some(EmbedEventKind::Message));
        assert_eq!(unread_event(3, 0), Some(EmbedEventKind::Read));
        assert_eq!(unread_event(0, 0), None);
        assert_eq!(unread_event(3, 2), None);
    }
}
