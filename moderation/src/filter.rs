//! The node's word filter while it runs: the list in force, which a reload
//! replaces as a whole while messages are being checked, and the mode.
use std::sync::{Arc, PoisonError, RwLock};

use crate::words::{Mode, Verdict, WordList};

/// Checks messages against the list in force; see [`crate::words`].
/// The default is an empty list: every message is clean.
#[derive(Debug, Default)]
pub struct WordFilter {
    list: RwLock<Arc<WordList>>,
    mode: Mode,
}

impl WordFilter {
    pub fn new(list: WordList, mode: Mode) -> Self {
        WordFilter { list: RwLock::new(Arc::new(list)), mode }
    }

    /// The message as it may be stored, or why it may not (see
    /// [`WordList::check`]). Reloads never wait for checks to finish: a
    /// check works on the list that was in force when it started.
    pub fn check(&self, text: &str) -> Verdict {
        let list = Arc::clone(&self.list.read().unwrap_or_else(PoisonError::into_inner));
        list.check(text, self.mode)
    }

    /// The message as it may be stored (starred where it matched, in mask
    /// mode), or `None` when it is refused.
    pub fn apply(&self, text: String) -> Option<String> {
        match self.check(&text) {
            Verdict::Clean => Some(text),
            Verdict::Masked(masked) => Some(masked),
            Verdict::Blocked { .. } => None,
        }
    }

    /// Puts a new list in force (a reload of the file).
    pub fn replace(&self, list: WordList) {
        *self.list.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(list);
    }

    /// Entries in the list in force.
    pub fn len(&self) -> usize {
        self.list.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_changes_what_the_next_check_sees() {
        let filter = WordFilter::new(WordList::parse("darn").unwrap(), Mode::Mask);
        assert_eq!(filter.check("oh darn"), Verdict::Masked("oh ****".to_owned()));
        assert_eq!(filter.check("oh heck"), Verdict::Clean);
        assert_eq!(filter.apply("oh darn".to_owned()).as_deref(), Some("oh ****"));
        filter.replace(WordList::parse("heck\n").unwrap());
        assert_eq!(filter.check("oh darn"), Verdict::Clean);
        assert_eq!(filter.check("oh heck"), Verdict::Masked("oh ****".to_owned()));
        assert_eq!(filter.len(), 1);
    }

    #[test]
    fn the_default_filter_lets_everything_through() {
        let filter = WordFilter::default();
        assert!(filter.is_empty());
        assert_eq!(filter.check("anything at all"), Verdict::Clean);
        assert_eq!(filter.apply("anything".to_owned()).as_deref(), Some("anything"));
    }

    #[test]
    fn a_blocking_filter_refuses_and_lets_clean_text_through_unchanged() {
        let filter = WordFilter::new(WordList::parse("darn").unwrap(), Mode::Block);
        assert_eq!(filter.apply("oh d a r n".to_owned()), None);
        assert_eq!(filter.apply("oh dear".to_owned()).as_deref(), Some("oh dear"));
    }
}
