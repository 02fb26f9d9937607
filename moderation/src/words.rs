//! The word filter: a list of words and phrases a game does not want in its
//! chat, and the check a message goes through before it is stored. In
//! [`Mode::Mask`] what matched becomes `*`s and the message goes through;
//! in [`Mode::Block`] the message is refused.
//!
//! # How text is read
//! A message and every entry of the list are read the same way, so that
//! what is compared is what a player sees rather than the code points:
//! 1. Case, diacritics and look-alikes are folded by [`decancer`]: `BÁD`,
//!    zalgo marks, small capitals (`bᴀd`), fullwidth (`ｂａｄ`),
//!    mathematical and fraktur letters (`𝐛𝐚𝐝`), circled and squared letters
//!    (`ⓑ`, `🅱`), and Cyrillic or Greek letters in a Latin word (`bаd`
//!    with a Cyrillic `а`) all read `bad`. Emoji stay symbols.
//! 2. Invisible characters (zero-width spaces and joiners, soft hyphens,
//!    control characters) are dropped, so `ba\u{200D}d` reads `bad`; any
//!    whitespace is a space.
//! 3. The text is cut into words: runs of letters and digits, `@` and `$`.
//!    In a word with at least one letter, digits and those two symbols are
//!    read as the letters they stand for (`0` o, `1` i or l, `3` e, `4` a,
//!    `5` s, `7` t, `8` b, `@` a, `$` s; each pair is one decancer counts as
//!    similar), so `b4d` and `a$$` are caught while a number (`455`) stays a
//!    number. A word that starts with `@` is also read without it, so both
//!    `@ss` and a mention-like `@heck` are caught.
//! 4. A capital `I` may stand for an `l`, as a `1` does (`heII`, `he11`).
//!
//! # What matches
//! * Whole words only: an entry matches a word, or a run of words, that is
//!   not part of a longer word. With `ass`, `tit` and `cunt` in the list,
//!   `classic`, `assassin`, `title` and `Scunthorpe` stay clean.
//! * Spelled out: single letters joined only by separators (whitespace, `.`
//!   `-` `_` `*` `~` `+` `/` `\` `|` `:`) are read as one word, and the
//!   whole run has to be the entry: `b.a.d`, `b a d` and `b_a_d` match
//!   `bad`; `ba d`, `b ad` and `x b a d` (the word `xbad`) do not. Two real
//!   words never merge, since only runs of single letters are joined.
//! * Phrases (entries with several words) match the same words in the same
//!   order with anything but letters and digits between them: `get lost`
//!   matches `get   lost` and `get, lost`.
//! * Repeated letters: a letter written three or more times in a row stands
//!   for the same letter written once or twice (`baaad` is `bad`, `asss` is
//!   `ass`). A doubled letter counts as written, so `as` is not `ass`,
//!   `heel` is not `hell`, and `good` would not be `god`.
//!
//! # What is not caught
//! * Words glued to other words (`badass`) and words in scripts written
//!   without spaces: the price of matching whole words only.
//! * ASCII-art letters (`|3` for b, `/-\` for a), which decancer's own
//!   `find` recognises: they span separators, so they cannot be read one
//!   character at a time, and `find` compares one entry at a time over the
//!   whole message (entries × length per message).
//! * `!` and `|` inside a word (`sh!t`): they are punctuation far more often.
//! * Letters split by emoji or commas (`b😀a😀d`, `b,a,d`): commas join
//!   single letters in ordinary lists (`a, b, c`).
//! * Right-to-left overrides that reverse a word on screen only.
//! * Repeated letters in a word that is a real word with one letter doubled
//!   (`gooood` would match an entry `god`).
//! * decancer also folds whole words of other alphabets to their Latin
//!   look-alikes (`Привет` reads `npnbet`), so such a word could meet a Latin
//!   entry; the tests hold everyday sentences in eight scripts that stay
//!   clean.
//!
//! # Cost
//! A check reads the message once (decancer looks each character up in its
//! table) and looks each word, and each run of spelled-out letters, up in a
//! hash map by its key: its letters with `i` and `l` as one and repeated
//! letters as one. Only the entries sharing that key, usually none or one,
//! are compared letter by letter. So a check is linear in the length of the
//! message, whatever the size of the list.
use std::cmp::Reverse;
use std::collections::HashMap;
use std::ops::Range;
use std::str::FromStr;

use decancer::{Options, Translation};
use thiserror::Error;

/// The longest entry a list accepts, in characters as written. Longer ones
/// are almost certainly a sentence pasted by mistake.
pub const MAX_ENTRY_CHARS: usize = 64;

/// A letter that may be an `i` or an `l`: a capital `I`, or a `1` in a word.
/// Private use, so neither decancer nor a player's text produces it.
const I_OR_L: char = '\u{E000}';

/// What the filter does with a message that contains an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each match becomes `*`s and the message goes through.
    #[default]
    Mask,
    /// The message is refused.
    Block,
}

impl FromStr for Mode {
    type Err = UnknownMode;

    /// `mask` or `block`, as written in the settings (case is ignored).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "mask" => Ok(Mode::Mask),
            "block" => Ok(Mode::Block),
            _ => Err(UnknownMode(value.to_owned())),
        }
    }
}

/// A word filter mode that is neither `mask` nor `block`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown word filter mode {0:?}: expected \"mask\" or \"block\"")]
pub struct UnknownMode(pub String);

/// An entry the list cannot hold. `line` is the entry's line in the list
/// file, or its position (from 1) among the entries given to
/// [`WordList::extend`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ListError {
    #[error("line {line}: the entry is {chars} characters long, the most is {MAX_ENTRY_CHARS}")]
    TooLong { line: usize, chars: usize },
    #[error("line {line}: {entry:?} has no letters or digits to match")]
    NothingToMatch { line: usize, entry: String },
}

/// The outcome of checking a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing in the list: the message goes through as it is.
    Clean,
    /// The message as written with one `*` for each character of each
    /// match (mask mode).
    Masked(String),
    /// The message is refused (block mode). `word` is the entry that
    /// matched first, as written in the list: for logs, not for players.
    Blocked { word: String },
}

/// The list of words and phrases to filter, read once and checked against
/// every message. The empty list (the default) lets everything through.
#[derive(Debug, Clone, Default)]
pub struct WordList {
    entries: Vec<Entry>,
    /// Entries by the key of their first word.
    by_first_word: HashMap<String, Vec<usize>>,
    /// Entries by the key of all their letters run together, for words
    /// spelled out letter by letter.
    by_letters: HashMap<String, Vec<usize>>,
}

#[derive(Debug, Clone)]
struct Entry {
    /// As written in the list, trimmed.
    written: String,
    /// Read as a message is read.
    words: Vec<Vec<char>>,
    /// The words run together, to compare with spelled-out letters.
    letters: Vec<char>,
}

impl WordList {
    /// Reads a list file: one word or phrase per line; blank lines and lines
    /// starting with `#` are skipped, surrounding whitespace is trimmed, and
    /// an entry may be up to [`MAX_ENTRY_CHARS`] characters long.
    /// Entries that read the same (`bad`, `BAD`, `bád`) are one entry.
    pub fn parse(text: &str) -> Result<WordList, ListError> {
        let mut list = WordList::default();
        let lines = text
            .lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
        list.add(lines)?;
        Ok(list)
    }

    /// Adds entries (one word or phrase each, trimmed). Either all of them
    /// are added or, on an error, none.
    pub fn extend<I>(&mut self, entries: I) -> Result<(), ListError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let entries: Vec<I::Item> = entries.into_iter().collect();
        self.add(entries.iter().enumerate().map(|(index, entry)| (index + 1, entry.as_ref().trim())))
    }

    /// The entries as the list first wrote them, in its order.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|entry| entry.written.as_str())
    }

    /// Whether two lines of a list are one entry (they read the same:
    /// `bad`, `BAD`, ` bád `); never for a line that is no entry.
    pub fn same_entry(a: &str, b: &str) -> bool {
        match (Entry::read(1, a.trim()), Entry::read(1, b.trim())) {
            (Ok(a), Ok(b)) => a.words == b.words,
            _ => false,
        }
    }

    /// How many distinct entries the list holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a message against the list (see the module documentation for
    /// what matches).
    pub fn check(&self, text: &str, mode: Mode) -> Verdict {
        if self.entries.is_empty() {
            return Verdict::Clean;
        }
        let words = read_words(text);
        let mut found = self.find_words(&words);
        found.extend(self.find_spelled(&words));
        match mode {
            Mode::Block => match found.iter().min_by_key(|(span, _)| (span.start, Reverse(span.end))) {
                Some((_, entry)) => Verdict::Blocked { word: self.entries[*entry].written.clone() },
                None => Verdict::Clean,
            },
            Mode::Mask if found.is_empty() => Verdict::Clean,
            Mode::Mask => Verdict::Masked(mask(text, found.into_iter().map(|(span, _)| span).collect())),
        }
    }

    fn add<'a>(&mut self, lines: impl Iterator<Item = (usize, &'a str)>) -> Result<(), ListError> {
        let entries: Vec<Entry> =
            lines.map(|(line, written)| Entry::read(line, written)).collect::<Result<_, _>>()?;
        for entry in entries {
            self.insert(entry);
        }
        Ok(())
    }

    fn insert(&mut self, entry: Entry) {
        let same_first_word = self.by_first_word.entry(key(&entry.words[0])).or_default();
        if same_first_word.iter().any(|&index| self.entries[index].words == entry.words) {
            return;
        }
        let index = self.entries.len();
        same_first_word.push(index);
        self.by_letters.entry(key(&entry.letters)).or_default().push(index);
        self.entries.push(entry);
    }

    /// Entries found word by word: the span each covers in the message and
    /// the entry's index.
    fn find_words(&self, words: &[Word]) -> Vec<(Range<usize>, usize)> {
        let mut found = Vec::new();
        for (at, word) in words.iter().enumerate() {
            for skipped in word.readings() {
                let first = &word.letters[skipped..];
                let Some(candidates) = self.by_first_word.get(&key(first)) else { continue };
                for &index in candidates {
                    let entry = &self.entries[index];
                    let Some(rest) = words.get(at + 1..at + entry.words.len()) else { continue };
                    let matches = spells(first, &entry.words[0])
                        && rest.iter().zip(&entry.words[1..]).all(|(word, e)| spells(&word.letters, e));
                    if matches {
                        let last = rest.last().unwrap_or(word);
                        found.push((word.spans[skipped].start..last.end(), index));
                    }
                }
            }
        }
        found
    }

    /// Entries spelled out letter by letter (`b.a.d`): each run of single
    /// letters joined by separators is read as one word.
    fn find_spelled(&self, words: &[Word]) -> Vec<(Range<usize>, usize)> {
        let mut found = Vec::new();
        let runs = words.chunk_by(|a, b| a.is_single() && a.joins_next && b.is_single());
        for run in runs.filter(|run| run.len() > 1) {
            let mut letters: Vec<char> = run.iter().map(|word| word.letters[0]).collect();
            read_as_letters(&mut letters);
            let Some(candidates) = self.by_letters.get(&key(&letters)) else { continue };
            for &index in candidates {
                if spells(&letters, &self.entries[index].letters) {
                    found.push((run[0].spans[0].start..run[run.len() - 1].end(), index));
                }
            }
        }
        found
    }
}

impl Entry {
    fn read(line: usize, written: &str) -> Result<Entry, ListError> {
        let chars = written.chars().count();
        if chars > MAX_ENTRY_CHARS {
            return Err(ListError::TooLong { line, chars });
        }
        // Lowercase first: a capital I in the list is an i, not a disguise.
        let words: Vec<Vec<char>> =
            read_words(&written.to_lowercase()).into_iter().map(|word| word.letters).collect();
        if words.is_empty() {
            return Err(ListError::NothingToMatch { line, entry: written.to_owned() });
        }
        let letters = words.concat();
        Ok(Entry { written: written.to_owned(), words, letters })
    }
}

/// A word of a message as read: its letters, folded, and where each came
/// from in the message. Never empty.
struct Word {
    letters: Vec<char>,
    /// Byte range in the message of each letter.
    spans: Vec<Range<usize>>,
    /// Starts with an `@`, so it is read both with it (as an `a`) and
    /// without it.
    mention: bool,
    /// Only separators stand between this word and the next one.
    joins_next: bool,
}

impl Word {
    /// A run of word characters (letters, digits, `@`, `$`), or `None` if it
    /// holds no letter or digit.
    fn read(run: &[(char, Range<usize>)]) -> Option<Word> {
        let mut letters: Vec<char> = run.iter().map(|(letter, _)| *letter).collect();
        read_as_letters(&mut letters);
        let (letters, spans): (Vec<char>, Vec<Range<usize>>) = letters
            .into_iter()
            .zip(run.iter().map(|(_, span)| span.clone()))
            .filter(|(letter, _)| letter.is_alphanumeric() || *letter == I_OR_L)
            .unzip();
        let mention = run[0].0 == '@' && letters.len() > 1 && spans[0] == run[0].1;
        (!letters.is_empty()).then_some(Word { letters, spans, mention, joins_next: false })
    }

    /// How many leading letters to skip in each reading of the word.
    fn readings(&self) -> impl Iterator<Item = usize> {
        [Some(0), self.mention.then_some(1)].into_iter().flatten()
    }

    fn is_single(&self) -> bool {
        self.letters.len() == 1
    }

    fn end(&self) -> usize {
        self.spans[self.spans.len() - 1].end
    }
}

/// Cuts a message into words (see "How text is read").
fn read_words(text: &str) -> Vec<Word> {
    let folded = fold(text);
    let mut words: Vec<Word> = Vec::new();
    let mut only_separators = true;
    for run in folded.chunk_by(|(a, _), (b, _)| is_word_char(*a) == is_word_char(*b)) {
        if is_word_char(run[0].0) {
            if let Some(word) = Word::read(run) {
                if let Some(previous) = words.last_mut() {
                    previous.joins_next = only_separators;
                }
                words.push(word);
                only_separators = true;
                continue;
            }
        }
        only_separators &= run.iter().all(|(c, _)| is_separator(*c));
    }
    words
}

/// Folds each character of a message with decancer, keeping the byte range
/// it came from. A character folded to nothing (a zalgo mark, a
/// zero-width space) joins the range of the one before it, so a mask
/// covers it too.
fn fold(text: &str) -> Vec<(char, Range<usize>)> {
    let mut folded: Vec<(char, Range<usize>)> = Vec::with_capacity(text.len());
    for (start, c) in text.char_indices() {
        let span = start..start + c.len_utf8();
        // decancer reads a tab as nothing and a zero-width space as a space:
        // the other way round from what a reader sees.
        let cured = if c.is_whitespace() {
            Translation::Character(' ')
        } else if is_invisible(c) {
            Translation::None
        } else {
            decancer::cure_char(c, options_for(c))
        };
        match cured {
            Translation::None => {
                if let Some((_, last)) = folded.last_mut() {
                    last.end = span.end;
                }
            }
            Translation::Character(letter) if letter == 'i' && c.is_uppercase() => {
                folded.push((I_OR_L, span));
            }
            Translation::Character(letter) => folded.push((letter, span)),
            Translation::String(letters) => {
                folded.extend(letters.chars().map(|letter| (letter, span.clone())))
            }
        }
    }
    folded
}

/// Emoji stay symbols (decancer would read 😀 as `o`), except the squared
/// and circled letters of the Enclosed Alphanumeric Supplement (🅰 🅱 🅾 🅿),
/// which are letters in all but name. Regional indicators (flags) stay
/// emoji.
fn options_for(c: char) -> Options {
    if ('\u{1F100}'..='\u{1F1E5}').contains(&c) {
        Options::default()
    } else {
        Options::default().retain_emojis()
    }
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{AD}' | '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, I_OR_L | '@' | '$')
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic() || c == I_OR_L
}

/// What may stand between single letters that spell a word (after
/// decancer: `·` and `•` are `.`, dashes are `-`).
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '.' | '-' | '_' | '*' | '~' | '+' | '/' | '\\' | '|' | ':')
}

/// Reads digits, `@` and `$` as the letters they stand for, if there is at
/// least one letter among them: `b4d` is `bad`, `455` is a number.
fn read_as_letters(letters: &mut [char]) {
    if letters.iter().any(|&c| is_letter(c)) {
        for letter in letters {
            *letter = leet(*letter);
        }
    }
}

/// The letter a digit or symbol stands for in a word; decancer counts each
/// pair as similar (a test checks it).
fn leet(c: char) -> char {
    match c {
        '0' => 'o',
        '1' => I_OR_L,
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        '8' => 'b',
        other => other,
    }
}

/// What a word and an entry must share to be compared at all: their letters
/// with `i` and `l` as one and each run of a letter as one.
fn key(letters: &[char]) -> String {
    let mut key = String::with_capacity(letters.len());
    let mut last = None;
    for letter in letters.iter().map(|&c| if c == 'l' || c == I_OR_L { 'i' } else { c }) {
        if last != Some(letter) {
            key.push(letter);
            last = Some(letter);
        }
    }
    key
}

/// Whether letters found in a message spell an entry: letter for letter,
/// except that a letter written three or more times in a row stands for
/// the same letter written once or twice.
fn spells(found: &[char], entry: &[char]) -> bool {
    let runs: Vec<(char, usize)> = entry.chunk_by(|a, b| a == b).map(|run| (run[0], run.len())).collect();
    // Where the reading can be after each letter found: in which run of the
    // entry, having read how many of its letters (counted up to
    // `max(written, 3)`, beyond which nothing changes).
    let mut reading = vec![(0, 0)];
    for &c in found {
        let mut next = Vec::with_capacity(reading.len() + 1);
        for &(run, read) in &reading {
            let (letter, written) = runs[run];
            if same(c, letter) {
                next.push((run, (read + 1).min(written.max(3))));
            }
            if complete(read, written) && run + 1 < runs.len() && same(c, runs[run + 1].0) {
                next.push((run + 1, 1));
            }
        }
        next.sort_unstable();
        next.dedup();
        if next.is_empty() {
            return false;
        }
        reading = next;
    }
    reading.iter().any(|&(run, read)| run + 1 == runs.len() && complete(read, runs[run].1))
}

/// Whether `read` letters in a row spell a letter written `written` times.
fn complete(read: usize, written: usize) -> bool {
    read == written || (read >= 3 && read > written)
}

fn same(found: char, written: char) -> bool {
    found == written
        || (found == I_OR_L && matches!(written, 'i' | 'l'))
        || (written == I_OR_L && matches!(found, 'i' | 'l'))
}

/// The message with one `*` for each character of each span.
fn mask(text: &str, mut spans: Vec<Range<usize>>) -> String {
    spans.sort_by_key(|span| span.start);
    let mut masked = String::with_capacity(text.len());
    let mut done = 0;
    for span in spans {
        let start = span.start.max(done);
        if span.end <= start {
            continue;
        }
        masked.push_str(&text[done..start]);
        masked.extend(std::iter::repeat_n('*', text[start..span.end].chars().count()));
        done = span.end;
    }
    masked.push_str(&text[done..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: &str = "bad\ndarn\nheck\nfrak\nhell\n";
    const SCUNTHORPE: &str = "cunt\nass\ntit\nsex\n";
    const PHRASE: &str = "get lost\n";

    fn masked(text: &str) -> Verdict {
        Verdict::Masked(text.to_owned())
    }

    fn blocked(word: &str) -> Verdict {
        Verdict::Blocked { word: word.to_owned() }
    }

    #[test]
    fn the_filter_reads_each_message_of_the_table_as_expected() {
        use Mode::{Block, Mask};
        use Verdict::Clean;
        #[rustfmt::skip]
        let table: Vec<(&str, Mode, &str, Verdict)> = vec![
            // Plain, case, punctuation around.
            (WORDS, Mask, "that was bad", masked("that was ***")),
            (WORDS, Block, "that was bad", blocked("bad")),
            (WORDS, Mask, "BAD move", masked("*** move")),
            (WORDS, Mask, "Bad.", masked("***.")),
            (WORDS, Mask, "a bad day", masked("a *** day")),
            (WORDS, Mask, "bad, darn, heck", masked("***, ****, ****")),
            // Diacritics and zalgo.
            (WORDS, Mask, "bád", masked("***")),
            (WORDS, Mask, "BÁD", masked("***")),
            (WORDS, Mask, "h\u{338}e\u{337}c\u{336}k", masked("*******")),
            // Look-alikes.
            (WORDS, Mask, "bᴀd", masked("***")),
            (WORDS, Mask, "ｂａｄ", masked("***")),
            (WORDS, Mask, "b\u{430}d", masked("***")),
            (WORDS, Mask, "\u{392}\u{391}D", masked("***")),
            (WORDS, Mask, "𝐛𝐚𝐝", masked("***")),
            (WORDS, Mask, "𝔥𝔢𝔠𝔨", masked("****")),
            (WORDS, Mask, "ⓑⓐⓓ", masked("***")),
            (WORDS, Mask, "🅱ad", masked("***")),
            (WORDS, Mask, "heII", masked("****")),
            // Leetspeak.
            (WORDS, Mask, "b4d", masked("***")),
            (WORDS, Mask, "8ad", masked("***")),
            (WORDS, Mask, "h3ck", masked("****")),
            (WORDS, Mask, "fr4k", masked("****")),
            (WORDS, Mask, "d4rn", masked("****")),
            (WORDS, Mask, "he11", masked("****")),
            (SCUNTHORPE, Block, "a$$", blocked("ass")),
            (SCUNTHORPE, Block, "@ss", blocked("ass")),
            (SCUNTHORPE, Block, "t1t", blocked("tit")),
            (WORDS, Mask, "@heck", masked("@****")),
            // Spelled out, invisible characters.
            (WORDS, Mask, "b.a.d", masked("*****")),
            (WORDS, Mask, "b a d", masked("*****")),
            (WORDS, Mask, "b-a-d", masked("*****")),
            (WORDS, Mask, "b_a_d", masked("*****")),
            (WORDS, Mask, "b*a*d", masked("*****")),
            (WORDS, Mask, "so b . a . d", masked("so *********")),
            (WORDS, Mask, "b\u{200B}a\u{200B}d", masked("*****")),
            (WORDS, Mask, "ba\u{200D}d", masked("****")),
            // Repeated letters.
            (WORDS, Mask, "baaaad", masked("******")),
            (WORDS, Mask, "heeeeck", masked("*******")),
            (SCUNTHORPE, Block, "asss", blocked("ass")),
            // Emoji around words.
            (WORDS, Mask, "😀bad🎉", masked("😀***🎉")),
            (WORDS, Mask, "so bad 👍🏽 really", masked("so *** 👍🏽 really")),
            // Phrases.
            (PHRASE, Mask, "just get lost now", masked("just ******** now")),
            (PHRASE, Block, "get\n  lost", blocked("get lost")),
            (PHRASE, Mask, "get lots", Clean),
            (PHRASE, Mask, "lost, get out", Clean),
            // Must not match: whole words only (the Scunthorpe problem).
            (SCUNTHORPE, Block, "Scunthorpe", Clean),
            (SCUNTHORPE, Block, "a classic", Clean),
            (SCUNTHORPE, Block, "assassin", Clean),
            (SCUNTHORPE, Block, "bass guitar", Clean),
            (SCUNTHORPE, Block, "title", Clean),
            (SCUNTHORPE, Block, "constitution", Clean),
            (SCUNTHORPE, Block, "Essex", Clean),
            (SCUNTHORPE, Block, "Sussex and Middlesex", Clean),
            (SCUNTHORPE, Block, "a petition", Clean),
            (SCUNTHORPE, Block, "a tittle", Clean),
            (SCUNTHORPE, Block, "as", Clean),
            (SCUNTHORPE, Block, "room 455", Clean),
            (WORDS, Mask, "badge", Clean),
            (WORDS, Mask, "badminton", Clean),
            (WORDS, Mask, "abad", Clean),
            (WORDS, Mask, "ba d", Clean),
            (WORDS, Mask, "b ad", Clean),
            (WORDS, Mask, "x b a d", Clean),
            (WORDS, Mask, "darning", Clean),
            (WORDS, Mask, "heckler", Clean),
            (WORDS, Mask, "fraktur", Clean),
            (WORDS, Mask, "hello", Clean),
            (WORDS, Mask, "heel", Clean),
            (WORDS, Mask, "shell", Clean),
            // Must not match: other scripts.
            (WORDS, Mask, "Привет, как дела?", Clean),
            (WORDS, Mask, "Καλημέρα κόσμε", Clean),
            (WORDS, Mask, "こんにちは、元気ですか", Clean),
            (WORDS, Mask, "你好，世界", Clean),
            (WORDS, Mask, "안녕하세요", Clean),
            (WORDS, Mask, "مرحبا بالعالم", Clean),
            (WORDS, Mask, "שלום עולם", Clean),
            (WORDS, Mask, "नमस्ते दुनिया", Clean),
            (SCUNTHORPE, Block, "Привет, как дела?", Clean),
            (SCUNTHORPE, Block, "Καλημέρα κόσμε", Clean),
        ];
        let lists: HashMap<&str, WordList> = [WORDS, SCUNTHORPE, PHRASE]
            .into_iter()
            .map(|text| (text, WordList::parse(text).expect("the test lists parse")))
            .collect();
        let wrong: Vec<String> = table
            .iter()
            .filter_map(|(list, mode, input, expected)| {
                let got = lists[list].check(input, *mode);
                (got != *expected)
                    .then(|| format!("{input:?} ({mode:?}): expected {expected:?}, got {got:?}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{} of {} cases wrong:\n{}", wrong.len(), table.len(), wrong.join("\n"));
    }

    #[test]
    fn parse_skips_comments_and_blank_lines_and_trims_entries() {
        let list = WordList::parse("# words for the lobby\n\n   bad  \n\t darn\n  # heck\n").unwrap();

        assert_eq!(list.len(), 2);
        assert_eq!(list.check("bad", Mode::Block), blocked("bad"));
        assert_eq!(list.check("heck", Mode::Block), Verdict::Clean);
    }

    #[test]
    fn entries_that_read_the_same_are_one_entry() {
        let list = WordList::parse("Bad\nBAD\nbád\nb a d\n").unwrap();

        assert_eq!(list.len(), 2, "`b a d` is a phrase of three letters, the others are one word");
        assert_eq!(list.check("bad", Mode::Block), blocked("Bad"));
    }

    #[test]
    fn an_entry_with_nothing_to_match_is_refused_with_its_line() {
        let error = WordList::parse("bad\n\n!!!\n").unwrap_err();

        assert_eq!(error, ListError::NothingToMatch { line: 3, entry: "!!!".into() });
        assert_eq!(error.to_string(), "line 3: \"!!!\" has no letters or digits to match");
    }

    #[test]
    fn an_entry_longer_than_64_characters_is_refused_with_its_line() {
        let longest = "x".repeat(MAX_ENTRY_CHARS);
        assert!(WordList::parse(&longest).is_ok());

        let error = WordList::parse(&format!("bad\n{longest}y\n")).unwrap_err();

        assert_eq!(error, ListError::TooLong { line: 2, chars: 65 });
    }

    #[test]
    fn extend_adds_entries_and_adds_none_when_one_is_refused() {
        let mut list = WordList::parse("bad").unwrap();

        list.extend(["frak", " heck "]).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list.check("heck", Mode::Block), blocked("heck"));

        let error = list.extend(["darn", "🙂"]).unwrap_err();
        assert_eq!(error, ListError::NothingToMatch { line: 2, entry: "🙂".into() });
        assert_eq!(list.len(), 3);
        assert_eq!(list.check("darn", Mode::Block), Verdict::Clean);
    }

    #[test]
    fn masking_keeps_everything_outside_the_matches_exactly() {
        let list = WordList::parse(WORDS).unwrap();
        let text = "Ça va?\t😀 That was  BAD!!  Ну и ладно… 你好 (frak)\n";

        assert_eq!(
            list.check(text, Mode::Mask),
            masked("Ça va?\t😀 That was  ***!!  Ну и ладно… 你好 (****)\n")
        );
    }

    #[test]
    fn every_match_in_a_message_is_masked_and_blocking_names_the_first() {
        let list = WordList::parse(WORDS).unwrap();
        let text = "heck, b.a.d and h3ck again, then darn";

        assert_eq!(list.check(text, Mode::Mask), masked("****, ***** and **** again, then ****"));
        assert_eq!(list.check(text, Mode::Block), blocked("heck"));
    }

    #[test]
    fn a_phrase_matches_its_words_in_order_across_any_separators() {
        let list = WordList::parse("get lost\nbad").unwrap();

        assert_eq!(list.check("GET... lost!", Mode::Mask), masked("***********!"));
        assert_eq!(list.check("get 😀 l0st", Mode::Mask), masked("**********"));
        assert_eq!(list.check("g e t l o s t", Mode::Mask), masked("*************"));
        assert_eq!(list.check("get lost bad", Mode::Mask), masked("******** ***"));
        assert_eq!(list.check("get", Mode::Mask), Verdict::Clean);
        assert_eq!(list.check("target lost", Mode::Mask), Verdict::Clean);
    }

    #[test]
    fn a_doubled_letter_counts_as_written_and_three_or_more_stand_for_one_or_two() {
        let list = WordList::parse("god\nass").unwrap();

        assert_eq!(list.check("good game", Mode::Block), Verdict::Clean);
        assert_eq!(list.check("as if", Mode::Block), Verdict::Clean);
        assert_eq!(list.check("gooood", Mode::Block), blocked("god"), "the documented cost");
        assert_eq!(list.check("aaasssss", Mode::Block), blocked("ass"));
    }

    #[test]
    fn the_empty_list_lets_everything_through() {
        let list = WordList::default();

        assert!(list.is_empty());
        assert_eq!(list.check("anything at all", Mode::Block), Verdict::Clean);
    }

    #[test]
    fn mode_is_read_from_the_setting_value() {
        assert_eq!("mask".parse(), Ok(Mode::Mask));
        assert_eq!(" Block ".parse(), Ok(Mode::Block));
        assert_eq!("drop".parse::<Mode>(), Err(UnknownMode("drop".into())));
    }

    #[test]
    fn every_leetspeak_letter_is_one_decancer_counts_as_similar() {
        for symbol in "01345789@$".chars() {
            let letters = match leet(symbol) {
                I_OR_L => vec!['i', 'l'],
                letter if letter == symbol => vec![],
                letter => vec![letter],
            };
            for letter in letters {
                assert!(
                    Translation::Character(symbol) == letter.to_string().as_str(),
                    "decancer does not count {symbol:?} as similar to {letter:?}"
                );
            }
        }
    }

    #[test]
    fn a_list_of_1000_entries_checks_a_2000_character_message() {
        // 1,000 distinct three-letter entries, a few of them in the message.
        let letter = |n: usize| char::from(b'a' + (n % 26) as u8);
        let entries: Vec<String> =
            (0..1000).map(|n| [letter(n / 676), letter(n / 26), letter(n)].into_iter().collect()).collect();
        let mut list = WordList::default();
        list.extend(&entries).unwrap();
        assert_eq!(list.len(), 1000);
        let mut text = String::new();
        while text.len() < 2000 {
            text.push_str("ordinary words, s.p.e.l.l.e.d letters, baaaaad 😀 ");
            text.push_str(&entries[text.len() % entries.len()]);
            text.push(' ');
        }

        let Verdict::Masked(masked) = list.check(&text, Mode::Mask) else {
            panic!("some entries are in the message");
        };

        assert_eq!(masked.chars().count(), text.chars().count());
        assert!(matches!(list.check(&text, Mode::Block), Verdict::Blocked { .. }));
    }

    #[test]
    fn entries_are_listed_as_first_written_and_lines_that_read_the_same_are_one() {
        let list = WordList::parse("# mine\nbad\n  Get Lost \nBAD\nbád\n").unwrap();
        assert_eq!(list.entries().collect::<Vec<_>>(), ["bad", "Get Lost"]);
        assert!(WordList::same_entry("BAD", " bád "));
        assert!(WordList::same_entry("get  lost", "Get Lost"));
        assert!(!WordList::same_entry("bad", "bade"));
        assert!(!WordList::same_entry("!!!", "!!!"), "no entry, nothing to be the same as");
    }
}
