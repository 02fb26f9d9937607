//! Rules for what people type: user ids, room ids and message bodies.
//! Shared by the page (to answer at once) and the server (which decides).
//! Each function returns the normalised value or a sentence for the person.
//!
//! Beyond length and control characters, tricks of chat vandals are
//! refused: new ids with characters that show as nothing (zero-width
//! spaces, direction controls, fillers), which make `ana` and
//! `ana\u{200B}` two people who look alike and hide from a moderator's
//! search ([`check_new_id`]); text with accents stacked by the dozen on one
//! letter ("Zalgo"), which spills over the lines above and below (no script
//! needs more than a few marks on a letter, so [`MAX_STACKED_MARKS`] leaves
//! every language alone); and direction overrides in messages, which make
//! "evil" read "live". Other direction controls inside a message are the
//! page's to contain (each message's text is isolated): Arabic and Hebrew
//! text uses them.
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
    #[error("The {0} has too many accents stacked on one letter.")]
    StackedMarks(&'static str),
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
/// The rule for finding a room or a user; a new one also passes
/// [`check_new_id`].
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

/// The rules for a new id (a room made, a user seen for the first time),
/// beyond [`normalize_id`]'s: nothing that shows as nothing or turns text
/// around, and no pile of accents. The few invisible characters real
/// names need stay where they are needed: a zero-width joiner inside an
/// emoji sequence or after an Indic virama, a non-joiner after a virama or
/// between Arabic letters (Persian), an emoji's variation selector after a
/// symbol or a keycap's digit, a flag's tag letters after its black flag.
/// Ids made before these rules are still found by [`normalize_id`], so that
/// moderators and the game can act on them.
pub fn check_new_id(id: &str, what: &'static str) -> Result<(), InputError> {
    let chars: Vec<char> = id.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut i = 0;
    while let Some(c) = at(i) {
        let before = i.checked_sub(1).and_then(at);
        let after = at(i + 1);
        let placed = match c {
            '\u{200D}' => {
                before.is_some_and(is_virama)
                    || (before.is_some_and(ends_emoji) && after.is_some_and(is_emoji))
            }
            '\u{200C}' => {
                before.is_some_and(is_virama)
                    || (before.is_some_and(is_arabic) && after.is_some_and(is_arabic))
            }
            '\u{FE0F}' => before.is_some_and(|b| is_emoji(b) || b.is_ascii_digit() || b == '#' || b == '*'),
            '\u{1F3F4}' if after.is_some_and(is_tag) => {
                // A subdivision flag: two to six tag letters, then its end.
                let letters = chars[i + 1..]
                    .iter()
                    .take_while(|&&t| matches!(t, '\u{E0030}'..='\u{E0039}' | '\u{E0061}'..='\u{E007A}'))
                    .count();
                if !(2..=6).contains(&letters) || at(i + 1 + letters) != Some('\u{E007F}') {
                    return Err(InputError::ControlCharacters(what));
                }
                i += letters + 2;
                continue;
            }
            c => !is_invisible(c),
        };
        if !placed {
            return Err(InputError::ControlCharacters(what));
        }
        i += 1;
    }
    if stacks_marks(id) {
        return Err(InputError::StackedMarks(what));
    }
    Ok(())
}

/// Most combining marks one letter may carry (Vietnamese uses two, Hebrew
/// with points and Thai with tones two or three; "Zalgo" text dozens).
pub const MAX_STACKED_MARKS: usize = 4;

/// Characters that show as nothing or change how what follows is shown
/// (Unicode's default-ignorable code points, and the fillers and blanks
/// that pass for letters): zero-width spaces and joiners, direction marks,
/// embeddings, overrides and isolates, line separators, invisible
/// operators, variation selectors, tags, the byte order mark, the soft
/// hyphen, the grapheme joiner, the braille blank.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{34F}'
            | '\u{61C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Pictographs and symbols that emoji sequences are made of.
fn is_emoji(c: char) -> bool {
    matches!(c, '\u{2190}'..='\u{2BFF}' | '\u{1F000}'..='\u{1FAFF}')
}

/// What may end an emoji before a joiner: the emoji, its selector, a skin tone.
fn ends_emoji(c: char) -> bool {
    is_emoji(c) || c == '\u{FE0F}'
}

fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007F}')
}

/// The viramas of the Indic scripts (Devanagari to Sinhala), after which a
/// joiner or non-joiner picks a conjunct's form.
fn is_virama(c: char) -> bool {
    matches!(
        c,
        '\u{94D}'
            | '\u{9CD}'
            | '\u{A4D}'
            | '\u{ACD}'
            | '\u{B4D}'
            | '\u{BCD}'
            | '\u{C4D}'
            | '\u{CCD}'
            | '\u{D4D}'
            | '\u{DCA}'
    )
}

/// Letters of the Arabic script (Persian and Urdu write with a non-joiner
/// between them).
fn is_arabic(c: char) -> bool {
    matches!(c, '\u{620}'..='\u{64A}' | '\u{66E}'..='\u{6D3}' | '\u{6D5}' | '\u{6FA}'..='\u{6FF}' | '\u{750}'..='\u{77F}')
}

/// Whether `text` stacks more than [`MAX_STACKED_MARKS`] combining marks in
/// a row: the blocks of combining diacritics such text is made of, and the
/// marks of the scripts it is made with as well (Hebrew, Arabic, Thai, Lao).
pub(crate) fn stacks_marks(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        let mark = matches!(
            c,
            '\u{300}'..='\u{36F}'
                | '\u{483}'..='\u{489}'
                | '\u{591}'..='\u{5BD}'
                | '\u{5BF}'
                | '\u{5C1}'..='\u{5C2}'
                | '\u{5C4}'..='\u{5C5}'
                | '\u{5C7}'
                | '\u{610}'..='\u{61A}'
                | '\u{64B}'..='\u{65F}'
                | '\u{670}'
                | '\u{6D6}'..='\u{6DC}'
                | '\u{6DF}'..='\u{6E4}'
                | '\u{6E7}'..='\u{6E8}'
                | '\u{6EA}'..='\u{6ED}'
                | '\u{8D3}'..='\u{8FF}'
                | '\u{E31}'
                | '\u{E34}'..='\u{E3A}'
                | '\u{E47}'..='\u{E4E}'
                | '\u{EB1}'
                | '\u{EB4}'..='\u{EBC}'
                | '\u{EC8}'..='\u{ECE}'
                | '\u{1AB0}'..='\u{1AFF}'
                | '\u{1DC0}'..='\u{1DFF}'
                | '\u{20D0}'..='\u{20FF}'
                | '\u{FE20}'..='\u{FE2F}'
        );
        // An invisible character between marks does not part them.
        run = if mark {
            run + 1
        } else if is_invisible(c) {
            run
        } else {
            0
        };
        if run > MAX_STACKED_MARKS {
            return true;
        }
    }
    false
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
    // Direction overrides turn the rest of a message around (the page
    // keeps them inside it, but "evil" reads "live"); real text needs no
    // override, only marks and isolates, which stay.
    if body
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202D}' | '\u{202E}'))
    {
        return Err(InputError::ControlCharacters("message"));
    }
    if stacks_marks(body) {
        return Err(InputError::StackedMarks("message"));
    }
    Ok(body.to_owned())
}

/// Validates the page-chosen id of a message (printable ASCII, 1–64).
pub fn valid_client_msg_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_CHARS && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::InputError::{ControlCharacters, StackedMarks};
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
    fn new_ids_that_hide_characters_are_refused_and_old_ones_still_found() {
        let hidden = ControlCharacters("user name");
        for raw in [
            "ana\u{200B}",
            "a\u{200D}na",
            "ana\u{200D}",
            "\u{200D}",
            "\u{202E}ana",
            "ana\u{2066}x\u{2069}",
            "ana\u{200F}",
            "\u{FEFF}ana",
            "an\u{AD}a",
            "ana\u{34F}",
            "\u{3164}",
            "\u{2800}",
            "\u{115F}\u{1160}",
            "ana\u{2028}bob",
            "ana\u{E0041}",
            "ana\u{E0002}",
            "ana\u{FFF0}",
            "ana\u{FE0F}",
            "\u{FE0F}❤",
            // Look-alikes of names beyond ASCII.
            "И\u{200D}ван",
            "李\u{200C}小龙",
            "Zoë\u{FE0F}",
            "葛\u{E0100}西",
            // A flag's tags that hide text, or never end.
            "ana🏴\u{E0061}\u{E0062}\u{E0063}\u{E0064}\u{E0065}\u{E0066}\u{E0067}\u{E007F}",
            "ana🏴\u{E0067}\u{E0062}",
        ] {
            assert_eq!(check_new_id(raw, "user name"), Err(hidden.clone()), "{raw:?}");
            // Made before these rules: still found, so it can be acted on.
            assert_eq!(normalize_id(raw, "user name").as_deref(), Ok(raw.trim()), "{raw:?}");
        }
        // Letters of every script, their joiners where they join, accents,
        // emoji sequences and spaces are fine.
        for raw in [
            "Zoë",
            "Nguyễn Văn",
            "محمد",
            "کتاب\u{200C}ها",
            "שָׁלוֹם",
            "क्\u{200D}ष",
            "ไทย",
            "李小龙",
            "ana_42",
            "d\u{301}\u{323}",
            "ana ❤\u{FE0F}",
            "👍🏽",
            "👨\u{200D}👩\u{200D}👧",
            "🏳\u{FE0F}\u{200D}🌈",
            "🏳\u{FE0F}\u{200D}⚧\u{FE0F}",
            "❤\u{FE0F}\u{200D}🔥",
            "🕵\u{FE0F}\u{200D}♀\u{FE0F}",
            "👩\u{200D}❤\u{FE0F}\u{200D}👨",
            "#\u{FE0F}\u{20E3} team",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} fan",
            "🏴",
        ] {
            assert_eq!(check_new_id(raw, "user name"), Ok(()), "{raw:?}");
        }
    }

    #[test]
    fn letters_buried_under_stacked_accents_are_refused() {
        let zalgo = "h\u{315}\u{31b}\u{340}\u{35d}\u{35e}\u{35c}ello";
        assert_eq!(normalize_body(zalgo), Err(StackedMarks("message")));
        assert_eq!(
            normalize_body(zalgo).unwrap_err().to_string(),
            "The message has too many accents stacked on one letter."
        );
        assert_eq!(check_new_id(zalgo, "user name"), Err(StackedMarks("user name")));
        // The same trick with Thai tone marks, Arabic vowels, Hebrew points.
        for piled in [
            "ก\u{E49}\u{E49}\u{E49}\u{E49}\u{E49}\u{E49}",
            "ب\u{64E}\u{64E}\u{64E}\u{651}\u{651}",
            "ש\u{5B8}\u{5B8}\u{5B8}\u{5B8}\u{5B8}",
        ] {
            assert_eq!(normalize_body(piled), Err(StackedMarks("message")), "{piled:?}");
        }
        // Invisible characters between the marks do not part them.
        let parted = "e\u{301}\u{302}\u{303}\u{304}\u{200D}\u{301}\u{302}";
        assert_eq!(normalize_body(parted), Err(StackedMarks("message")));
        // Up to the limit, and marks spread over letters, pass.
        let four = "e\u{301}\u{302}\u{303}\u{304}";
        assert!(normalize_body(four).is_ok());
        assert!(normalize_body(&"e\u{301}\u{302} ".repeat(100)).is_ok());
        // What real text in many languages has is left alone, emoji
        // sequences (joiners, variation selectors, skin tones) and
        // direction isolates and marks included.
        for text in [
            "Chào bạn, hẹn gặp lại!",
            "مرحبا بالجميع",
            "شُكْرًا",
            "שָׁלוֹם עֲלֵיכֶם",
            "नमस्ते दुनिया",
            "สวัสดีครับ ก่อน",
            "👨\u{200D}👩\u{200D}👧 ❤\u{FE0F} 👍🏽",
            "he said \u{2067}שלום\u{2069}\u{200F} to me",
        ] {
            assert_eq!(normalize_body(text).as_deref(), Ok(text), "{text:?}");
        }
    }

    #[test]
    fn a_message_may_not_turn_itself_around() {
        for text in ["\u{202E}evil", "ok \u{202D}abc"] {
            assert_eq!(normalize_body(text), Err(ControlCharacters("message")), "{text:?}");
        }
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
