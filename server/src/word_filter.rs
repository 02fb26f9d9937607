//! The word filter's list file: read when the server starts (a missing or
//! malformed file stops the start with the line at fault), then read again
//! when it changes on disk (checked every second) or when the process gets
//! SIGHUP. A reload that fails keeps the list in force and logs why, so an
//! edit saved halfway never leaves a node without its filter.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moderation::{WordFilter, WordList};
use tokio_util::sync::CancellationToken;

/// How often the file's modification time is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The list in `path`, or a sentence saying what is wrong with it.
pub fn load(path: &Path) -> Result<WordList, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read the word filter list {}: {err}", path.display()))?;
    WordList::parse(&text).map_err(|err| format!("word filter list {}: {err}", path.display()))
}

/// Adds `words` to the list file (the server API's additions: the file
/// stays the one place the list lives) and returns the list as it now
/// reads. Entries that would not parse are refused before anything is
/// written; additions are written one call at a time.
pub async fn append(path: &Path, words: &[String]) -> Result<WordList, ChangeError> {
    let lines: Vec<&str> = words.iter().map(|w| w.trim()).collect();
    if lines.is_empty() || lines.iter().any(|w| w.is_empty() || w.starts_with('#') || w.contains('\n')) {
        return Err(ChangeError::Invalid(
            "give one or more words or phrases, none empty, none starting with #".to_owned(),
        ));
    }
    WordList::parse(&lines.join("\n"))
        .map_err(|err| ChangeError::Invalid(format!("the new words: {err}")))?;
    let _one_at_a_time = WRITING.lock().await;
    let path = path.to_owned();
    let addition = lines.join("\n");
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let _nodes = lock_list(&path).map_err(|err| format!("cannot lock {}: {err}", path.display()))?;
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        let separator = if before.is_empty() || before.ends_with('\n') { "" } else { "\n" };
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|err| format!("cannot write the word filter list {}: {err}", path.display()))?;
        writeln!(file, "{separator}{addition}")
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        load(&path)
    })
    .await
    .map_err(|err| format!("writing the word filter list failed: {err}"))
    .and_then(|written| written)
    .map_err(ChangeError::Failed)
}

/// Takes `entry` out of the list file: every line that reads as it does
/// (`bad`, `BAD`, `bád` are one entry), comments and the other lines kept
/// as they are; returns the list as it now reads. The file is replaced in
/// one step (written beside it, then renamed over it), so a node reading
/// it meanwhile sees the old list or the new one, never half of either.
pub async fn remove(path: &Path, entry: &str) -> Result<WordList, ChangeError> {
    let entry = entry.trim().to_owned();
    let _one_at_a_time = WRITING.lock().await;
    let path = path.to_owned();
    let task = tokio::task::spawn_blocking(move || {
        let failed = |err: std::io::Error| ChangeError::Failed(format!("{}: {err}", path.display()));
        let _nodes = lock_list(&path).map_err(failed)?;
        let before = std::fs::read_to_string(&path).map_err(failed)?;
        let is_entry = |line: &str| !line.trim().starts_with('#') && WordList::same_entry(line, &entry);
        let kept: Vec<&str> = before.lines().filter(|line| !is_entry(line)).collect();
        if kept.len() == before.lines().count() {
            return Err(ChangeError::NotListed(format!("\"{entry}\" is not in the word filter list.")));
        }
        let mut beside = path.clone().into_os_string();
        beside.push(format!(".writing-{}", std::process::id()));
        let text: String = kept.iter().map(|line| format!("{line}\n")).collect();
        write_synced(Path::new(&beside), &text)
            .and_then(|()| std::fs::rename(&beside, &path))
            .map_err(failed)?;
        load(&path).map_err(ChangeError::Failed)
    });
    task.await.unwrap_or_else(|err| {
        Err(ChangeError::Failed(format!("removing from the word filter list failed: {err}")))
    })
}

/// Holds the list's lock file (`<list>.lock`, made when missing) until
/// dropped: nodes sharing the list change it one at a time. (The list
/// itself is replaced by a rename, so its own lock would not hold.)
fn lock_list(path: &Path) -> std::io::Result<std::fs::File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(name)?;
    file.lock()?;
    Ok(file)
}

fn write_synced(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// One change to the list file at a time in this process (the server
/// API's additions and removals); [`lock_list`] keeps other processes out.
static WRITING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Why the list could not be changed.
#[derive(Debug)]
pub enum ChangeError {
    /// The words themselves (the caller's fault).
    Invalid(String),
    /// No line of the list is the entry to remove.
    NotListed(String),
    /// The file (the server's).
    Failed(String),
}

/// Reloads `path` into `filter` whenever it changes or SIGHUP comes, until
/// `stopping` is cancelled.
pub fn keep_fresh(path: PathBuf, filter: Arc<WordFilter>, stopping: CancellationToken) {
    tokio::spawn(async move {
        let mut hangups = hangups();
        let mut seen = modified(&path).await;
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        loop {
            let why = tokio::select! {
                _ = stopping.cancelled() => return,
                _ = ticks.tick() => {
                    let now = modified(&path).await;
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "the file changed"
                }
                _ = next_hangup(&mut hangups) => "SIGHUP",
            };
            // Off the runtime's threads: the file may be long, the disk slow.
            let reading = path.clone();
            let loaded = tokio::task::spawn_blocking(move || load(&reading)).await;
            match loaded.unwrap_or_else(|err| Err(format!("reading the word filter list failed: {err}"))) {
                Ok(list) => {
                    let entries = list.len();
                    filter.replace(list);
                    tracing::info!(path = %path.display(), entries, why, "word filter list reloaded");
                }
                Err(problem) => tracing::error!(why, "{problem}; the list in force stays"),
            }
        }
    });
}

async fn modified(path: &Path) -> Option<SystemTime> {
    tokio::fs::metadata(path).await.and_then(|m| m.modified()).ok()
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangups() -> Hangups {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {}

/// The next SIGHUP (never, where there are none).
async fn next_hangup(hangups: &mut Hangups) {
    #[cfg(unix)]
    if let Some(signal) = hangups {
        signal.recv().await;
        return;
    }
    let _ = hangups;
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use moderation::{Mode, Verdict};

    #[test]
    fn a_change_waits_for_another_process_holding_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words.txt");
        std::fs::write(&path, "darn\n").unwrap();
        // Another node's change in progress (a second open file is what
        // another process would hold).
        let held = lock_list(&path).unwrap();
        let (took, taken) = std::sync::mpsc::channel();
        let waiting = path.clone();
        std::thread::spawn(move || {
            let _lock = lock_list(&waiting).unwrap();
            took.send(()).unwrap();
        });
        assert!(taken.recv_timeout(Duration::from_millis(300)).is_err(), "it waits");
        drop(held);
        assert!(taken.recv_timeout(Duration::from_secs(5)).is_ok(), "then takes its turn");
    }

    #[test]
    fn a_bad_list_says_which_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words.txt");
        assert!(load(&path).unwrap_err().contains("cannot read the word filter list"));
        std::fs::write(&path, "# words\ndarn\n!!!\n").unwrap();
        let problem = load(&path).unwrap_err();
        assert!(problem.contains("words.txt") && problem.contains("line 3"), "{problem}");
    }

    #[tokio::test]
    async fn an_edit_to_the_file_is_in_force_within_seconds_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("words.txt");
        std::fs::write(&path, "darn\n").unwrap();
        let filter = Arc::new(WordFilter::new(load(&path).unwrap(), Mode::Block));
        let stopping = CancellationToken::new();
        keep_fresh(path.clone(), filter.clone(), stopping.clone());
        let blocked = |f: &WordFilter, text| matches!(f.check(text), Verdict::Blocked { .. });

        // Modification times can be coarse: make sure the edit looks newer.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        std::fs::write(&path, "heck\n").unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while !blocked(&filter, "oh heck") && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(blocked(&filter, "oh heck") && !blocked(&filter, "oh darn"));

        tokio::time::sleep(Duration::from_millis(1100)).await;
        std::fs::write(&path, "!!!\n").unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(blocked(&filter, "oh heck"), "the list in force stays");
        stopping.cancel();
    }
}
