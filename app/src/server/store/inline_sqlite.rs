//! Messages stored into a SQLite file from the message writer's own task,
//! through a connection of its own, with no thread in between; by way of
//! the message log (see `message_log`).
//!
//! A group is checked here (its rooms and users exist, none of it was
//! stored before: mostly known from the rooms' keys kept in memory, see
//! `sent_keys`), takes its seqs from the rooms' last seqs kept here, and
//! is appended to the log in one write: then it counts as stored, and the
//! writer publishes it. Every tenth to half a second (see
//! [`FILL_SOONEST`]) the messages the log holds are inserted in one
//! transaction, and the log starts again. Whoever reads messages asks
//! the writer to do that first (`Writer::settle`), so a read sees every
//! message published before it.
//! Opening the store inserts what the log held when the server stopped.
//!
//! A fill goes in steps, so that it never holds the runtime's thread for
//! long: a step inserts some rows (at least 64, and at least as many as
//! were stored since the step before) and the writer turns to the
//! connections and the next group before the next. Meanwhile new groups
//! go to a second log: there are two, one taking groups and one being
//! filled from, which swap when a fill starts. A fill's transaction holds
//! SQLite's write lock for its steps (tens of milliseconds), which joins
//! storing a user or a room through the pool wait for.
//!
//! Why a connection of its own: sqlx runs each SQLite connection on a
//! thread of its own, and every statement is a hand-off to it and back. On
//! a node whose runtime has one core, that thread and the runtime take
//! turns: messages waited for the core as well as for the commit, and
//! latency under load was mostly that waiting (`bench/README.md`). Here
//! statements run in place, and never wait for anyone:
//!
//! - the connection never waits for SQLite's write lock: another
//!   connection holding it (a join being stored through the pool) makes
//!   the attempt fail at once as "busy", and the writer tries again a
//!   moment later without blocking the runtime (the log keeps taking
//!   groups meanwhile);
//! - its commits do not checkpoint the write-ahead log: a checkpoint syncs
//!   the log to disk before copying it back (30–50 ms for a 16 MiB log on
//!   a slow disk) and copies it page by page (tens of milliseconds of CPU),
//!   which the messages queued behind the writer would wait for. After
//!   about 4,000 pages (some 16 MiB of log), or a second and 100 pages, a
//!   thread of the checkpoint's own copies the log back while the writer
//!   goes on appending (SQLite lets a checkpoint and a writer work at
//!   once). That thread runs at a lower priority than the runtime's
//!   (nice 10): on a busy core, connections and the writer go first, and
//!   the copy takes what is left, and about a tenth of the core when both
//!   want it. The thread copies small logs too (checkpointed because a
//!   second went by): copying one would take the writer a moment, but
//!   syncing it takes the disk several milliseconds. In rooms of 1,000 at
//!   100 messages a second, the writer waited 6–7 ms a checkpoint when it
//!   copied them itself, about 1 ms since.
//!
//!   Once the copy is done, the thread copies again what was appended
//!   meanwhile, and the last of these copies (a few milliseconds' worth,
//!   or a small log's only one) is made with the writer's fills held
//!   back, so that it reaches the end of the log. The writer never waits
//!   for it: it goes on storing groups into the message log and publishing
//!   them, and the fill resumes once the copy is done. (When the writer's
//!   own connection copied that last part, the messages queued behind it
//!   waited 5–25 ms at each checkpoint in rooms of 100 at 3,000 messages
//!   a second, a tail of that scenario's latency.) With everything copied,
//!   the next fill starts the log again from its beginning instead of
//!   letting it grow (unless a join's write or a long read got in the way;
//!   the next checkpoint then does).
//!
//! The seqs kept here are right because this store is the only writer of
//! messages into the file: the log's lock keeps a second server out (it
//! stores no message while the first holds the log), and nothing else in
//! the server inserts messages.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use sea_orm::DbErr;
use tokio::sync::oneshot;

use super::message_log::{self, Logged, MessageLog};
use super::sent_keys::{self, KeyLimits, SentKeys};
use super::{missing_room, GroupPlan, NewMessage};
use crate::protocol::ChatMessage;

/// How long the writer waits for another connection's write at most (the
/// pool's connections wait as long).
const BUSY_LIMIT: Duration = Duration::from_secs(10);
/// How long to wait before trying again while another connection writes.
const BUSY_PAUSE: Duration = Duration::from_millis(1);
/// How long after a failed transaction (not a busy one) to try again.
const FAILED_PAUSE: Duration = Duration::from_secs(1);
/// When a fill starts. Its commit writes each page its rows touched once,
/// however many of them touched it, so a fill waits until its messages
/// share pages: [`FILL_SHARING`] messages a room on average, and at least
/// [`FILL_SOONEST`] after the first; or [`FILL_AT`] messages; or
/// [`FILL_LATEST`] after the first. In rooms of 10 at 2,000 messages a
/// second (two a room in a tenth of a second), half a second's fills took
/// 5.6% of the server's CPU and a tenth of a second's 13.4%, with the
/// checkpoint's thread 1.5% against 2.7%; but in rooms of 100 at 3,000 a
/// second, whose messages share pages within a tenth of a second, half a
/// second's fills cost p99 latency (9–14 ms against 6–9) and no less CPU.
const FILL_SOONEST: Duration = Duration::from_millis(100);
const FILL_LATEST: Duration = Duration::from_millis(500);
const FILL_SHARING: usize = 8;
const FILL_AT: usize = 2048;
/// Rows a fill's step inserts at least (a millisecond or so of the
/// runtime's thread), and at least as many as were stored since its last
/// step, so that it keeps up.
const FILL_STEP: usize = 64;
/// Messages the log may hold while the database refuses them; past that,
/// groups fail (their senders are told) until it takes them again.
const MOST_IN_LOG: usize = 100_000;
/// Users remembered to exist; past that, the set starts again.
const KNOWN_USERS: usize = 100_000;
/// Pages appended to the log before a checkpoint. A checkpoint copies
/// each page once however often the log holds it, and a busy node's
/// groups keep rewriting the same pages (each room's last index pages):
/// four times SQLite's default of 1,000 makes a quarter of the
/// checkpoints, each hardly longer; the log grows on while the checkpoint
/// copies (see [`MOST_PAGES`]).
const CHECKPOINT_PAGES: usize = 4000;
/// A smaller log is checkpointed too once this old and this long.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const CHECKPOINT_PAGES_AT_LEAST: usize = 100;
/// Pages a checkpoint's last copy takes at most (the writer's fills wait
/// for it): more were appended during a copy, and the thread copies once
/// more with the fills going on first.
const LAST_STEP_PAGES: usize = 500;
/// Most copies by the checkpoint's thread in one checkpoint, the last
/// included.
const COPY_ROUNDS: u32 = 4;
/// How often the writer looks whether a checkpoint's last copy, which its
/// fills wait for, is done.
const COPY_POLL: Duration = Duration::from_millis(1);
/// Once the log is this long, the copy under way becomes the checkpoint's
/// last: the writer's fills wait for it (they append faster than the
/// thread copies), so the log stays around 20 MiB (24 at most in the
/// tests; pages are estimated).
const MOST_PAGES: usize = CHECKPOINT_PAGES + CHECKPOINT_PAGES / 4;
/// Where the pool's connections checkpoint on their own (SQLite's
/// `wal_autocheckpoint`): past what the writer lets the log reach, so that
/// they do it only when the writer cannot.
pub(super) const POOL_CHECKPOINT_PAGES: usize = 2 * CHECKPOINT_PAGES;
/// Bytes written to disk at a time ahead of a checkpoint.
const WRITE_BACK_CHUNK: i64 = 1 << 20;
/// The checkpoint thread's nice value (the runtime's threads have 0): a
/// weight of 110 against a runtime thread's 1024, about a tenth of the
/// core when both want it.
const COPIER_NICE: libc::c_int = 10;

const BEGIN: &str = "BEGIN IMMEDIATE";
const COMMIT: &str = "COMMIT";
const ROLLBACK: &str = "ROLLBACK";
const LAST_SEQ: &str = "SELECT last_seq FROM room WHERE id = ?1";
const USER_EXISTS: &str = "SELECT 1 FROM app_user WHERE user_id = ?1";
const IS_STORED: &str = "SELECT 1 FROM message WHERE room_id = ?1 AND user_id = ?2 AND client_msg_id = ?3";
/// A room's messages' keys (along the (room, user, client id) index).
const ROOM_KEYS: &str = "SELECT user_id, client_msg_id FROM message WHERE room_id = ?1";
/// A room's `last_seq` moved up to a message's seq (never down: a replay
/// of messages already in).
const RAISE_LAST_SEQ: &str = "UPDATE room SET last_seq = ?1 WHERE id = ?2 AND last_seq < ?1";
const INSERT: &str = "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// A replay at start: what the log holds may be in already (the server
/// stopped between a commit and emptying the log).
const INSERT_IF_NEW: &str = "INSERT OR IGNORE INTO message (room_id, seq, user_id, body, client_msg_id, \
                             created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The writer's connection to a SQLite file, and its message log.
pub struct InlineSqlite {
    path: PathBuf,
    /// Away while it checkpoints; reopened if that or a rollback failed.
    conn: Option<Connection>,
    copier: CopierState,
    /// The copy under way beside the writer, if any.
    copying: Option<Copying>,
    /// Pages appended to the write-ahead log since the last checkpoint
    /// (estimated).
    pages: usize,
    last_checkpoint: Instant,
    /// The batch taking groups: stored, not yet in the database.
    taking: Batch,
    /// The batch being put into the database (empty between fills).
    filling: Batch,
    /// While a fill's transaction is open: how many of `filling`'s
    /// messages it has inserted.
    inserted: Option<usize>,
    /// Messages stored since the fill's last step (each step inserts at
    /// least as many, so a fill keeps up with what comes in).
    stored_since_step: usize,
    /// No transaction before this (one failed or found the lock taken).
    next_try: Option<Instant>,
    /// Each room's last seq, counting the log: rooms seen since opening.
    last_seqs: HashMap<i64, i64>,
    /// The keys of rooms' messages, to know a message new without asking.
    sent: SentKeys,
    /// Users known to exist (each message names one: a foreign key).
    known_users: HashSet<String>,
    /// A group's records, reused.
    records: Vec<u8>,
}

/// Messages stored into one of the two message logs, not yet in the
/// database, oldest first.
struct Batch {
    log: MessageLog,
    messages: Vec<Logged>,
    /// The hash of each message's key (see `sent_keys`).
    keys: HashSet<u64>,
    /// When the oldest was appended.
    since: Option<Instant>,
    /// The rooms of its messages.
    rooms: HashSet<i64>,
}

impl Batch {
    fn new(log: MessageLog) -> Self {
        Batch { log, messages: Vec::new(), keys: HashSet::new(), since: None, rooms: HashSet::new() }
    }

    /// The batch's copy of a message, if it holds one (a retry).
    fn find(&self, m: &NewMessage, key: u64) -> Option<&Logged> {
        if !self.keys.contains(&key) {
            return None;
        }
        self.messages.iter().find(|l| {
            l.room_id == m.room_id
                && l.message.user_id == m.user_id
                && l.message.client_msg_id == m.client_msg_id
        })
    }

    /// Empties the batch and its log: everything it held is in the
    /// database.
    fn clear(&mut self) {
        self.messages.clear();
        self.keys.clear();
        self.since = None;
        self.rooms.clear();
        if let Err(e) = self.log.clear() {
            // The next start inserts them again, finding them in.
            tracing::warn!(%e, "emptying a message log failed");
        }
    }
}

/// The checkpoint's thread, started at the first checkpoint.
enum CopierState {
    NotStarted,
    Running(Copier),
    /// It could not start, or stopped: the writer copies every checkpoint
    /// itself from then on (never a new thread, and never a new descriptor
    /// of the database file, which each thread keeps open for good).
    Gone,
}

/// A copy by the checkpoint's thread, under way.
struct Copying {
    done: oneshot::Receiver<()>,
    /// `pages` when it started: what it will not copy came after.
    pages_before: usize,
    /// The first copy of this checkpoint is round 1.
    round: u32,
    /// The checkpoint's last copy: the writer's fills wait for it, so
    /// that it reaches the end of the log and the log can start again.
    last: bool,
}

impl InlineSqlite {
    /// Opens the file (its tables exist: the server migrated it) and its
    /// message log, and inserts what the log holds.
    pub fn open(path: &Path) -> Result<Self, DbErr> {
        Self::open_with(path, KeyLimits::default())
    }

    pub(super) fn open_with(path: &Path, key_limits: KeyLimits) -> Result<Self, DbErr> {
        let conn = open_connection(path).map_err(err)?;
        let (mut first, mut held) = MessageLog::open(&message_log_path(path, 0)).map_err(log_err)?;
        let (mut second, held_second) = MessageLog::open(&message_log_path(path, 1)).map_err(log_err)?;
        held.extend(held_second);
        if !held.is_empty() {
            replay(&conn, &held)?;
            first.clear().map_err(log_err)?;
            second.clear().map_err(log_err)?;
            tracing::info!(messages = held.len(), "stored the messages the log held at the last stop");
        }
        Ok(InlineSqlite {
            path: path.to_owned(),
            conn: Some(conn),
            copier: CopierState::NotStarted,
            copying: None,
            pages: 0,
            last_checkpoint: Instant::now(),
            taking: Batch::new(first),
            filling: Batch::new(second),
            inserted: None,
            stored_since_step: 0,
            next_try: None,
            last_seqs: HashMap::new(),
            sent: SentKeys::new(key_limits),
            known_users: HashSet::new(),
            records: Vec::new(),
        })
    }

    /// Stores a group into the log: the stored messages, or `None` when a
    /// message of it was stored before (nothing changed then).
    pub async fn store(
        &mut self,
        plan: &GroupPlan,
        messages: &[NewMessage],
    ) -> Result<Option<Vec<ChatMessage>>, DbErr> {
        if self.taking.messages.len() + self.filling.messages.len() + messages.len() > MOST_IN_LOG {
            self.fill().await?;
        }
        let conn = connection(&mut self.conn, &self.path)?;
        let mut last_seqs = Vec::with_capacity(plan.counts.len());
        for (&room_id, &n) in &plan.counts {
            let last = match self.last_seqs.get(&room_id) {
                Some(&last) => last,
                None => {
                    let last =
                        read_last_seq(conn, room_id).map_err(err)?.ok_or_else(|| missing_room(room_id))?;
                    // Seqs have no gaps: the room holds `last` messages,
                    // all in the database (this store logs every other).
                    let messages = usize::try_from(last).unwrap_or(usize::MAX);
                    let keys = if self.sent.wants(messages) {
                        Some(read_room_keys(conn, room_id).map_err(err)?)
                    } else {
                        None
                    };
                    self.sent.see(room_id, keys);
                    self.last_seqs.insert(room_id, last);
                    last
                }
            };
            last_seqs.push((room_id, last + n));
        }
        let mut keys = Vec::with_capacity(messages.len());
        for m in messages {
            if !self.known_users.contains(&m.user_id) {
                if !user_exists(conn, &m.user_id).map_err(err)? {
                    return Err(DbErr::RecordNotFound(format!("user {}", m.user_id)));
                }
                if self.known_users.len() >= KNOWN_USERS {
                    self.known_users.clear();
                }
                self.known_users.insert(m.user_id.clone());
            }
            let key = sent_keys::key(m.room_id, &m.user_id, &m.client_msg_id);
            let repeat = !self.sent.surely_new(m.room_id, key)
                && (self.taking.find(m, key).is_some()
                    || self.filling.find(m, key).is_some()
                    || is_stored(conn, m).map_err(err)?);
            if repeat {
                return Ok(None);
            }
            keys.push(key);
        }
        let stored = plan.stored(messages, &last_seqs);
        self.records.clear();
        for (m, message) in messages.iter().zip(&stored) {
            message_log::encode(&mut self.records, m.room_id, message);
        }
        self.taking.log.append(&self.records).map_err(log_err)?;
        self.last_seqs.extend(last_seqs);
        for ((m, message), key) in messages.iter().zip(&stored).zip(keys) {
            self.taking.keys.insert(key);
            self.taking.rooms.insert(m.room_id);
            self.sent.add(m.room_id, key);
            self.taking.messages.push(Logged { room_id: m.room_id, message: message.clone() });
        }
        self.taking.since.get_or_insert_with(Instant::now);
        self.stored_since_step += messages.len();
        Ok(Some(stored))
    }

    /// The copy of a message the log holds, if it holds one (a retry).
    pub fn logged_copy(&self, m: &NewMessage) -> Option<ChatMessage> {
        let key = sent_keys::key(m.room_id, &m.user_id, &m.client_msg_id);
        let logged = self.taking.find(m, key).or_else(|| self.filling.find(m, key))?;
        Some(logged.message.clone())
    }

    /// Whether the log holds messages the database does not have yet.
    pub fn has_logged(&self) -> bool {
        !self.taking.messages.is_empty() || !self.filling.messages.is_empty()
    }

    /// How long until the fill's next step is due (`None`: the log holds
    /// nothing): at once while a fill is under way.
    pub fn fill_due_in(&self) -> Option<Duration> {
        let due = if self.fills_held() {
            // Asked again a moment later: the copy may be done by then.
            Instant::now() + COPY_POLL
        } else if !self.filling.messages.is_empty() {
            Instant::now()
        } else {
            fill_starts_at(self.taking.since?, self.taking.messages.len(), self.taking.rooms.len())
        };
        let due = self.next_try.map_or(due, |next| due.max(next));
        Some(due.saturating_duration_since(Instant::now()))
    }

    /// Takes the fill's next step if it is due (see [`Self::step`]); true
    /// if that committed.
    pub fn fill_if_due(&mut self) -> Result<bool, DbErr> {
        self.note_copy_done();
        if self.fill_due_in() != Some(Duration::ZERO) {
            return Ok(false);
        }
        let rows = self.stored_since_step.max(FILL_STEP);
        self.step(rows)
    }

    /// Puts what the log holds into the database now, waiting while
    /// another connection writes.
    pub async fn fill(&mut self) -> Result<(), DbErr> {
        let started = Instant::now();
        while self.has_logged() {
            if !self.step(usize::MAX)? {
                if started.elapsed() >= BUSY_LIMIT {
                    return Err(DbErr::Custom("the database stayed locked by another writer".to_owned()));
                }
                tokio::time::sleep(BUSY_PAUSE).await;
            }
        }
        Ok(())
    }

    /// One step of a fill. The first starts it: the batch taking groups
    /// becomes the one being filled (the groups stored from then on go to
    /// the other log) and a transaction begins. Each step inserts up to
    /// `rows` of its messages, and the step that inserts the last commits;
    /// then that batch's log starts again. True if this step committed.
    ///
    /// Another connection writing when the transaction would begin puts
    /// the fill off a moment (false, nothing changed). Any other failure
    /// rolls back what the fill inserted so far; it starts over later.
    pub(super) fn step(&mut self, rows: usize) -> Result<bool, DbErr> {
        self.stored_since_step = 0;
        if self.filling.messages.is_empty() {
            if self.taking.messages.is_empty() {
                return Ok(false);
            }
            std::mem::swap(&mut self.taking, &mut self.filling);
        }
        let conn = connection(&mut self.conn, &self.path)?;
        let outcome = fill_rows(conn, &self.filling.messages, &mut self.inserted, rows);
        if self.inserted.is_none() && !conn.is_autocommit() {
            // A rollback failed: a connection stuck in a transaction
            // would fail everything after this.
            tracing::warn!("a failed transaction could not be rolled back; reopening the connection");
            self.conn = None;
        }
        match outcome {
            Ok(false) => {
                self.next_try = None;
                return Ok(false);
            }
            Ok(true) => self.next_try = None,
            Err(e) if is_busy(&e) => {
                self.next_try = Some(Instant::now() + BUSY_PAUSE);
                return Ok(false);
            }
            Err(e) => {
                self.next_try = Some(Instant::now() + FAILED_PAUSE);
                return Err(err(e));
            }
        }
        // Each room dirties its last page of the (room, seq) index; each
        // message a page of the (room, user, client id) index, where client
        // ids fall anywhere; the rows are appended, a page per 16 or so;
        // and the rooms' rows.
        let (messages, rooms) = (self.filling.messages.len(), self.filling.rooms.len());
        self.pages += rooms + messages + messages / 16 + rooms.div_ceil(64);
        self.filling.clear();
        Ok(true)
    }

    /// Whether a fill's transaction is open (for tests).
    #[cfg(test)]
    pub fn is_filling(&self) -> bool {
        self.inserted.is_some()
    }

    /// Checkpoints when due (see the module docs); the writer calls it
    /// after publishing what it stored, and while its fills wait for a
    /// copy. It returns true when it waited: only when there is no
    /// checkpoint thread (the writer's connection then copies).
    ///
    /// A checkpoint's thread copies beside the writer, in rounds: while it
    /// copies, the writer's fills go on appending to the log; when what was
    /// appended meanwhile is small (or after [`COPY_ROUNDS`], or with the
    /// log past [`MOST_PAGES`]) the last round copies it with the fills
    /// held back (see [`Self::fill_due_in`]), so that it reaches the end of
    /// the log. The writer keeps storing and publishing groups meanwhile
    /// (they go to the message log): nobody waits for a checkpoint.
    pub async fn checkpoint_if_due(&mut self) -> bool {
        if self.inserted.is_some() {
            // The writer's connection is in a fill's transaction: later.
            return false;
        }
        if self.fills_held() {
            // The last copy: done or not, the next look is the next call.
            self.note_copy_done();
            return false;
        }
        let Some(mut copying) = self.copying.take() else {
            let due = self.pages >= CHECKPOINT_PAGES
                || (self.pages >= CHECKPOINT_PAGES_AT_LEAST
                    && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY);
            // A small log is copied in one round.
            if due && !self.start_copy(1, self.pages <= LAST_STEP_PAGES) {
                self.copy_rest().await;
                return true;
            }
            return false;
        };
        let copied = match copying.done.try_recv() {
            Ok(()) => true,
            Err(oneshot::error::TryRecvError::Empty) => {
                // Appending faster than the thread copies: the fills wait
                // from now on, and this copy is the last.
                copying.last |= self.pages >= MOST_PAGES;
                self.copying = Some(copying);
                return false;
            }
            Err(oneshot::error::TryRecvError::Closed) => false,
        };
        if !copied {
            self.copier_stopped();
            self.copy_rest().await;
            return true;
        }
        let appended = self.pages.saturating_sub(copying.pages_before);
        let last =
            appended <= LAST_STEP_PAGES || copying.round + 1 >= COPY_ROUNDS || self.pages >= MOST_PAGES;
        if self.start_copy(copying.round + 1, last) {
            return false;
        }
        self.copy_rest().await;
        true
    }

    /// Whether the writer's fills wait: for the last copy of a checkpoint.
    fn fills_held(&self) -> bool {
        self.inserted.is_none() && self.copying.as_ref().is_some_and(|copying| copying.last)
    }

    /// Ends the checkpoint if its last copy is done (the writer's fills
    /// then go on).
    fn note_copy_done(&mut self) {
        let Some(copying) = self.copying.as_mut().filter(|copying| copying.last) else { return };
        match copying.done.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => {}
            Ok(()) => {
                let pages_before = copying.pages_before;
                self.copying = None;
                self.checkpointed(pages_before);
            }
            Err(oneshot::error::TryRecvError::Closed) => {
                // The next `checkpoint_if_due` copies with the writer's
                // own connection.
                self.copying = None;
                self.copier_stopped();
            }
        }
    }

    /// A checkpoint's last copy is done: it copied every page appended
    /// before it started (`pages_before`).
    fn checkpointed(&mut self, pages_before: usize) {
        self.pages = self.pages.saturating_sub(pages_before);
        self.last_checkpoint = Instant::now();
    }

    /// Hands a copy to the checkpoint's thread (started the first time);
    /// false if there is no such thread (the writer then copies itself).
    fn start_copy(&mut self, round: u32, last: bool) -> bool {
        if let CopierState::NotStarted = self.copier {
            self.copier = match Copier::start(self.path.clone()) {
                Ok(copier) => CopierState::Running(copier),
                Err(e) => {
                    tracing::error!(%e, "starting the checkpoint thread failed; the writer checkpoints itself");
                    CopierState::Gone
                }
            };
        }
        let CopierState::Running(copier) = &self.copier else { return false };
        match copier.copy() {
            Some(done) => {
                self.copying = Some(Copying { done, pages_before: self.pages, round, last });
                true
            }
            None => {
                self.copier_stopped();
                false
            }
        }
    }

    fn copier_stopped(&mut self) {
        if let CopierState::Running(_) = std::mem::replace(&mut self.copier, CopierState::Gone) {
            tracing::error!("the checkpoint thread stopped; the writer checkpoints itself from now on");
        }
    }

    /// The last step: the writer's connection copies the rest while the
    /// writer waits, so that nothing is left and the log can start again.
    async fn copy_rest(&mut self) {
        if let Some(conn) = self.conn.take() {
            let copy = tokio::task::spawn_blocking(move || {
                checkpoint(&conn);
                conn
            });
            self.conn = copy.await.inspect_err(|e| tracing::error!(%e, "the checkpoint thread failed")).ok();
        }
        self.pages = 0;
        self.last_checkpoint = Instant::now();
    }

    /// Whether the checkpoint's thread is copying (for tests).
    #[cfg(test)]
    pub fn is_copying(&self) -> bool {
        self.copying.is_some()
    }
}

/// The checkpoint's own thread and connection (see the module docs). The
/// thread ends when the writer's store is dropped, after the copy under
/// way.
struct Copier {
    requests: std::sync::mpsc::Sender<oneshot::Sender<()>>,
}

impl Copier {
    fn start(path: PathBuf) -> std::io::Result<Self> {
        let (requests, inbox) = std::sync::mpsc::channel::<oneshot::Sender<()>>();
        std::thread::Builder::new().name("sqlite-checkpoint".to_owned()).spawn(move || {
            lower_priority();
            let mut conn = None;
            let wal = open_for_write_back(&log_path(&path));
            // Never closed: closing any descriptor of the database file
            // drops every lock this process holds on it, SQLite's
            // connections' included (SQLite keeps its own descriptors open
            // for that reason). One per store, for the process's life.
            let db = open_for_write_back(&path).map(std::mem::ManuallyDrop::new);
            for done in inbox {
                if let Some(wal) = &wal {
                    write_back(wal);
                }
                if conn.is_none() {
                    conn = open_connection(&path)
                        .inspect_err(|e| tracing::warn!(%e, "opening the checkpoint's connection failed"))
                        .ok();
                }
                if let Some(conn) = &conn {
                    checkpoint(conn);
                }
                // SQLite syncs the database only after a copy that reached
                // the log's end, which this one does not (the writer
                // appended meanwhile): synced now, the last step's sync has
                // only that step's pages to write.
                if let Some(db) = &db {
                    write_back(db);
                    if let Err(e) = db.sync_data() {
                        tracing::warn!(%e, "syncing the database file failed");
                    }
                }
                let _ = done.send(());
            }
        })?;
        Ok(Copier { requests })
    }

    /// Asks for a copy; `None` if the thread is gone.
    fn copy(&self) -> Option<oneshot::Receiver<()>> {
        let (done, copied) = oneshot::channel();
        self.requests.send(done).ok()?;
        Some(copied)
    }
}

/// Lowers the calling thread's priority to [`COPIER_NICE`] (on Linux a
/// nice value belongs to a thread; elsewhere this does nothing).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; `who` 0 is the
    // calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, COPIER_NICE) } != 0 {
        tracing::debug!(e = %std::io::Error::last_os_error(), "could not lower the checkpoint thread's priority");
    }
}

fn log_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn open_for_write_back(path: &Path) -> Option<std::fs::File> {
    std::fs::File::open(path)
        .inspect_err(|e| tracing::warn!(%e, path = %path.display(), "opening a file to write it back failed"))
        .ok()
}

/// Writes a file's pages to disk a MiB at a time, without syncing its
/// metadata, so that a sync after it has little left to write (and the
/// writer's appends to the log never wait long behind it).
fn write_back(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        let len = file.metadata().map_or(0, |m| m.len()) as i64;
        let mut offset = 0;
        while offset < len {
            // SAFETY: a valid open descriptor and a range within the file.
            if unsafe { libc::sync_file_range(file.as_raw_fd(), offset, WRITE_BACK_CHUNK, flags) } != 0 {
                tracing::debug!(e = %std::io::Error::last_os_error(), "writing a file back failed");
                return;
            }
            offset += WRITE_BACK_CHUNK;
        }
    }
}

/// Copies the log back into the database. PASSIVE: it copies what no
/// reader still needs, up to the end of the log when it starts, and waits
/// for nobody (a writer may append meanwhile).
/// Another checkpoint running, or a reader still on an old part of the
/// log, leaves some of it; the next checkpoint copies it.
fn checkpoint(conn: &Connection) {
    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match outcome {
        Ok((busy, log, copied)) if busy != 0 || copied < log => {
            tracing::debug!(busy, log, copied, "a checkpoint left part of the log");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(%e, "checkpointing the write-ahead log failed"),
    }
}

/// When a fill of a batch whose first message came at `since` starts,
/// holding `messages` messages of `rooms` rooms (see [`FILL_SOONEST`]).
fn fill_starts_at(since: Instant, messages: usize, rooms: usize) -> Instant {
    if messages >= FILL_AT {
        since
    } else if messages >= FILL_SHARING * rooms {
        since + FILL_SOONEST
    } else {
        since + FILL_LATEST
    }
}

/// Runs `work` in a transaction: all of it or nothing (rolled back when
/// anything fails). Its statements are prepared once, like the work's:
/// rusqlite's own transactions parse `BEGIN` and `COMMIT` each time.
fn in_transaction(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let outcome = conn
        .prepare_cached(BEGIN)
        .and_then(|mut begin| begin.execute([]))
        .and_then(|_| work(conn))
        .and_then(|()| conn.prepare_cached(COMMIT)?.execute([]).map(drop));
    roll_back_if_open(conn);
    outcome
}

/// Inserts up to `rows` more of a batch's messages in a fill's
/// transaction, begun first if none is open (`inserted` is `None`), and
/// commits once all are in (moving their rooms' `last_seq` up first).
/// True if it committed. On an error nothing of the transaction stays:
/// it is rolled back and `inserted` is `None` again.
fn fill_rows(
    conn: &Connection,
    batch: &[Logged],
    inserted: &mut Option<usize>,
    rows: usize,
) -> rusqlite::Result<bool> {
    let mut go_on = || {
        let done = match *inserted {
            Some(done) => done,
            None => {
                conn.prepare_cached(BEGIN)?.execute([])?;
                *inserted = Some(0);
                0
            }
        };
        let end = done.saturating_add(rows).min(batch.len());
        insert_rows(conn, &batch[done..end], INSERT)?;
        *inserted = Some(end);
        if end < batch.len() {
            return Ok(false);
        }
        raise_last_seqs(conn, batch)?;
        conn.prepare_cached(COMMIT)?.execute([])?;
        *inserted = None;
        Ok(true)
    };
    let outcome = go_on();
    if outcome.is_err() {
        *inserted = None;
        roll_back_if_open(conn);
    }
    outcome
}

/// After a failure inside a transaction: nothing of it stays. If the
/// rollback fails too, the connection stays in the transaction and the
/// caller reopens it.
fn roll_back_if_open(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = conn.prepare_cached(ROLLBACK).and_then(|mut rollback| rollback.execute([])) {
            tracing::warn!(%e, "rolling back a transaction failed");
        }
    }
}

/// Inserts messages of the log (inside the caller's transaction) and
/// moves their rooms' `last_seq` up to them.
fn insert_logged(conn: &Connection, logged: &[Logged], insert: &str) -> rusqlite::Result<()> {
    insert_rows(conn, logged, insert)?;
    raise_last_seqs(conn, logged)
}

/// Inserts messages of the log, one row a statement: a statement of many
/// rows would keep a statement journal (to undo its own rows should one
/// fail), which cost more than the statements it saves.
fn insert_rows(conn: &Connection, logged: &[Logged], insert: &str) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(insert)?;
    for Logged { room_id, message } in logged {
        let created_at = chrono::DateTime::from_timestamp_millis(message.at_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
        insert.execute((
            room_id,
            message.seq,
            &message.user_id,
            &message.body,
            &message.client_msg_id,
            &created_at,
        ))?;
    }
    Ok(())
}

/// Moves each room's `last_seq` up to its last message among these.
fn raise_last_seqs(conn: &Connection, logged: &[Logged]) -> rusqlite::Result<()> {
    let mut last_seqs = BTreeMap::new();
    for Logged { room_id, message } in logged {
        let last = last_seqs.entry(*room_id).or_insert(message.seq);
        *last = message.seq.max(*last);
    }
    let mut raise = conn.prepare_cached(RAISE_LAST_SEQ)?;
    for (room_id, last_seq) in last_seqs {
        raise.execute((last_seq, room_id))?;
    }
    Ok(())
}

/// Inserts what the log held at a stop, at start: in one transaction, or,
/// should that fail, one by one, leaving out (and logging) any that cannot
/// be stored.
fn replay(conn: &Connection, held: &[Logged]) -> Result<(), DbErr> {
    // At start the pool may be writing (migrations, a first join): wait.
    conn.busy_timeout(BUSY_LIMIT).map_err(err)?;
    // A log beside a database it was not written for (one restored from
    // elsewhere) may name rooms or users it lacks: those are left out.
    conn.pragma_update(None, "foreign_keys", true).map_err(err)?;
    if let Err(e) = in_transaction(conn, |conn| insert_logged(conn, held, INSERT_IF_NEW)) {
        tracing::warn!(%e, "storing the log's messages together failed; storing them one by one");
        for logged in held {
            if let Err(e) =
                in_transaction(conn, |conn| insert_logged(conn, std::slice::from_ref(logged), INSERT_IF_NEW))
            {
                tracing::error!(
                    %e, room_id = logged.room_id, seq = logged.message.seq, user_id = %logged.message.user_id,
                    "a message of the log could not be stored and is left out"
                );
            }
        }
    }
    conn.pragma_update(None, "foreign_keys", false).map_err(err)?;
    conn.busy_timeout(Duration::ZERO).map_err(err)
}

fn read_last_seq(conn: &Connection, room_id: i64) -> rusqlite::Result<Option<i64>> {
    let mut last_seq = conn.prepare_cached(LAST_SEQ)?;
    let mut rows = last_seq.query([room_id])?;
    rows.next()?.map(|row| row.get(0)).transpose()
}

fn user_exists(conn: &Connection, user_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(USER_EXISTS)?.exists([user_id])
}

fn is_stored(conn: &Connection, m: &NewMessage) -> rusqlite::Result<bool> {
    conn.prepare_cached(IS_STORED)?.exists((m.room_id, &m.user_id, &m.client_msg_id))
}

/// The hashes of a room's messages' keys (see `sent_keys`).
fn read_room_keys(conn: &Connection, room_id: i64) -> rusqlite::Result<HashSet<u64>> {
    let mut read = conn.prepare_cached(ROOM_KEYS)?;
    let mut rows = read.query([room_id])?;
    let mut keys = HashSet::new();
    while let Some(row) = rows.next()? {
        let (user_id, client_msg_id) = (row.get_ref(0)?.as_str()?, row.get_ref(1)?.as_str()?);
        keys.insert(sent_keys::key(room_id, user_id, client_msg_id));
    }
    Ok(keys)
}

/// The writer's connection, reopened if it was dropped.
fn connection<'a>(conn: &'a mut Option<Connection>, path: &Path) -> Result<&'a mut Connection, DbErr> {
    match conn {
        Some(conn) => Ok(conn),
        None => Ok(conn.insert(open_connection(path).map_err(err)?)),
    }
}

/// The message logs' files (there are two: see [`InlineSqlite::step`]),
/// beside the database like SQLite's own.
fn message_log_path(path: &Path, which: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(if which == 0 { "-messages" } else { "-messages-2" });
    PathBuf::from(name)
}

fn log_err(e: std::io::Error) -> DbErr {
    DbErr::Custom(format!("message log: {e}"))
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // Never wait inside SQLite: the caller decides (see the module docs).
    conn.busy_timeout(Duration::ZERO)?;
    // `store` checks each group's rooms and users itself, and the server
    // deletes neither: SQLite's two lookups of each row's parents would
    // only repeat that (a replay at start enforces them: see `replay`).
    conn.pragma_update(None, "foreign_keys", false)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -2048)?;
    // The writer checkpoints (see the module docs).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn err(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_waits_until_its_messages_share_pages_within_bounds() {
        let since = Instant::now();
        let ms = |n| since + Duration::from_millis(n);
        assert_eq!(fill_starts_at(since, 200, 100), ms(500), "two a room: wait the longest");
        assert_eq!(fill_starts_at(since, 800, 100), ms(100), "eight a room: soon");
        assert_eq!(fill_starts_at(since, 300, 10), ms(100), "thirty a room: soon");
        assert_eq!(fill_starts_at(since, 1, 1), ms(500), "a lone message: within half a second");
        assert_eq!(fill_starts_at(since, 2048, 1000), since, "enough messages: at once");
    }
}
