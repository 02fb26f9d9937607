//! Rules for what people type: user ids, room ids and message bodies.
//! Shared by the page (to answer at once) and the server (which decides).
//! Each function returns the normalised value or a sentence for the person.
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest user or channel id, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Longest message, in characters.
pub const MAX_BODY_CHARS: usize = 2000;

/// Why a piece of input was refused. `Display` is the text shown to people.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum InputError {
    #[error("Please enter a {0}.")]
    Empty(&'static str),
    #[error("The {what} is too long (at most {max} characters).")]
    TooLong { what: &'static str, max: usize },
    #[error("The {0} contains characters that are not allowed.")]
    ControlCharacters(&'static str),
    #[error("That user name belongs to the game. Please choose another.")]
    Reserved,
}

/// The user id the game itself posts and acts as (through the server API);
/// no player may take it, in any case of letters.
pub const GAME_USER_ID: &str = "game";

/// Validates the user id of someone entering a room: [`normalize_id`], and
/// not the game's own ([`GAME_USER_ID`]).
pub fn normalize_user_id(raw: &str) -> Result<String, InputError> {
    let id = normalize_id(raw, "user name")?;
    if id.eq_ignore_ascii_case(GAME_USER_ID) {
        return Err(InputError::Reserved);
    }
    Ok(id)
}

/// Validates a user or room id: trimmed, 1–64 characters, no control
/// characters. `what` names the field in the error ("user name", "room").
pub fn normalize_id(raw: &str, what: &'static str) -> Result<String, InputError> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(InputError::Empty(what));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(InputError::TooLong { what, max: MAX_ID_CHARS });
    }
    if id.chars().any(char::is_control) {
        return Err(InputError::ControlCharacters(what));
    }
    Ok(id.to_owned())
}

/// Validates a message body: not blank, at most 2000 characters, no control
/// characters except line breaks and tabs. Surrounding whitespace is removed.
pub fn normalize_body(raw: &str) -> Result<String, InputError> {
    normalize_body_within(raw, MAX_BODY_CHARS)
}

/// [`normalize_body`] with another length limit (the server's setting).
pub fn normalize_body_within(raw: &str, max: usize) -> Result<String, InputError> {
    let body = raw.trim();
    if body.is_empty() {
        return Err(InputError::Empty("message"));
    }
    if body.chars().count() > max {
        return Err(InputError::TooLong { what: "message", max });
    }
    if body.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(InputError::ControlCharacters("message"));
    }
    Ok(body.to_owned())
}

/// Validates the page-chosen id of a message (printable ASCII, 1–64).
pub fn valid_client_msg_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_trimmed() {
        assert_eq!(normalize_id("  ana ", "user name").unwrap(), "ana");
    }

    #[test]
    fn empty_and_blank_ids_are_refused_with_a_readable_message() {
        for raw in ["", "   ", "\t"] {
            let err = normalize_id(raw, "user name").unwrap_err();
            assert_eq!(err.to_string(), "Please enter a user name.");
        }
    }

    #[test]
    fn nobody_enters_a_room_as_the_game() {
        for raw in ["game", " Game ", "GAME"] {
            assert_eq!(normalize_user_id(raw), Err(InputError::Reserved), "{raw:?}");
        }
        assert_eq!(normalize_user_id(" gamer ").unwrap(), "gamer");
        assert_eq!(normalize_id("game", "room").unwrap(), "game", "a room may be called so");
    }

    #[test]
    fn ids_longer_than_64_characters_are_refused() {
        assert!(normalize_id(&"é".repeat(64), "room").is_ok());
        let err = normalize_id(&"é".repeat(65), "room").unwrap_err();
        assert_eq!(err.to_string(), "The room is too long (at most 64 characters).");
    }

    #[test]
    fn ids_with_control_characters_are_refused() {
        assert_eq!(
            normalize_id("a\u{7}b", "user name").unwrap_err(),
            InputError::ControlCharacters("user name")
        );
    }

    #[test]
    fn bodies_keep_inner_line_breaks_and_lose_outer_whitespace() {
        assert_eq!(normalize_body("  hi\nthere \n").unwrap(), "hi\nthere");
    }

    #[test]
    fn blank_bodies_are_refused() {
        assert_eq!(normalize_body(" \n ").unwrap_err(), InputError::Empty("message"));
    }

    #[test]
    fn bodies_over_the_limit_are_refused() {
        assert!(normalize_body(&"x".repeat(MAX_BODY_CHARS)).is_ok());
        assert!(matches!(normalize_body(&"x".repeat(MAX_BODY_CHARS + 1)), Err(InputError::TooLong { .. })));
    }

    #[test]
    fn client_message_ids_are_short_printable_ascii() {
        assert!(valid_client_msg_id("m-1700000000-ab12"));
        assert!(!valid_client_msg_id(""));
        assert!(!valid_client_msg_id("has space"));
        assert!(!valid_client_msg_id(&"a".repeat(65)));
    }
}
