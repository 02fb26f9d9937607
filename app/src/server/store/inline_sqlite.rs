//! Groups of messages stored into a SQLite file from the message writer's
//! own task, through a connection of its own, with no thread in between.
//!
//! Why: sqlx runs each SQLite connection on a thread of its own, and every
//! statement is a hand-off to it and back. On a node whose runtime has one
//! core, that thread and the runtime take turns: messages waited for the
//! core as well as for the commit, and latency under load was mostly that
//! waiting (`bench/README.md`). Storing a group here is a few prepared
//! statements run in place, about 12 µs per message (a group of 256 holds
//! the runtime's thread for about 3 ms, as long as it held SQLite's), and
//! it never waits for anyone:
//!
//! - the connection never waits for SQLite's write lock: another
//!   connection holding it (a join being stored through the pool) makes
//!   the attempt fail at once as "busy", and the writer tries again a
//!   moment later without blocking the runtime;
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
//!   Once the copy is done, the writer waits while its own connection
//!   copies what was appended meanwhile: a few milliseconds' worth, quick
//!   to sync. (Should that be much, the thread copies it first, at most
//!   twice more.) With everything copied, the next group starts the log
//!   again from its beginning instead of letting it grow (unless a join's
//!   write or a long read got in the way; the next checkpoint then does).
//!
//! A room's messages still take consecutive seqs in the order given, in
//! one transaction per group; a repeat of a stored message makes the whole
//! group change nothing (see `MessageStore::insert_messages`).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{ffi, Connection, ErrorCode, OpenFlags};
use sea_orm::DbErr;
use tokio::sync::oneshot;

use super::{missing_room, GroupPlan, NewMessage};

/// How long a group waits for another connection's write at most (the
/// pool's connections wait as long).
const BUSY_LIMIT: Duration = Duration::from_secs(10);
/// How long to wait before trying again while another connection writes.
const BUSY_PAUSE: Duration = Duration::from_millis(1);
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
/// Pages appended during a copy that the writer copies itself, waiting;
/// more than that, and the checkpoint's thread copies them first.
const LAST_STEP_PAGES: usize = 500;
/// Most copies by the checkpoint's thread before the writer's last step.
const COPY_ROUNDS: u32 = 3;
/// Once the log is this long, the writer waits for the checkpoint's
/// thread and then copies the rest (a writer appending faster than the
/// thread copies): the log stays around 20 MiB (24 at most in the tests;
/// pages are estimated).
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
/// A room's `last_seq` moved past a group's messages, then read back. Two
/// statements rather than one with `RETURNING`, which SQLite carries out
/// through a table in memory of its own, set up and torn down each time
/// (as much as the rest of the statement again).
const BUMP: &str = "UPDATE room SET last_seq = last_seq + ?1 WHERE id = ?2";
const LAST_SEQ: &str = "SELECT last_seq FROM room WHERE id = ?1";
const INSERT: &str = "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// What one attempt at storing a group came to.
enum Attempt {
    /// Each room's `last_seq` after the group.
    Stored(Vec<(i64, i64)>),
    /// A message of the group was stored before: nothing was changed.
    Repeat,
    /// Another connection is writing: nothing was changed, try again.
    Busy,
}

/// The writer's connection to a SQLite file.
pub struct InlineSqlite {
    path: PathBuf,
    /// Away while it checkpoints; reopened if that or a rollback failed.
    conn: Option<Connection>,
    copier: CopierState,
    /// The copy under way beside the writer, if any.
    copying: Option<Copying>,
    /// Pages appended to the log since the last checkpoint (estimated).
    pages: usize,
    last_checkpoint: Instant,
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
}

impl InlineSqlite {
    /// Opens the file (its tables exist: the server migrated it).
    pub fn open(path: &Path) -> Result<Self, DbErr> {
        let conn = open_connection(path).map_err(err)?;
        Ok(InlineSqlite {
            path: path.to_owned(),
            conn: Some(conn),
            copier: CopierState::NotStarted,
            copying: None,
            pages: 0,
            last_checkpoint: Instant::now(),
        })
    }

    /// Stores a group: each room's `last_seq` after it, or `None` when a
    /// message of it was stored before (nothing changed then).
    pub async fn store(
        &mut self,
        plan: &GroupPlan,
        messages: &[NewMessage],
    ) -> Result<Option<Vec<(i64, i64)>>, DbErr> {
        let started = Instant::now();
        loop {
            let conn = match self.conn.as_mut() {
                Some(conn) => conn,
                None => self.conn.insert(open_connection(&self.path).map_err(err)?),
            };
            let outcome = attempt(conn, plan, messages);
            if !conn.is_autocommit() {
                // A rollback failed: a connection stuck in a transaction
                // would fail every group after this one.
                tracing::warn!("a failed group could not be rolled back; reopening the connection");
                self.conn = None;
            }
            match outcome {
                Ok(Attempt::Stored(last_seqs)) => {
                    // Each message dirties its room's page in each of the
                    // two per-room indexes (the table's rows are appended,
                    // sharing pages); the group, its rooms' pages.
                    self.pages += messages.len() * 2 + plan.counts.len().min(4);
                    return Ok(Some(last_seqs));
                }
                Ok(Attempt::Repeat) => return Ok(None),
                Ok(Attempt::Busy) if started.elapsed() < BUSY_LIMIT => tokio::time::sleep(BUSY_PAUSE).await,
                Ok(Attempt::Busy) => {
                    return Err(DbErr::Custom("the database stayed locked by another writer".to_owned()))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checkpoints when due (see the module docs); the writer calls it
    /// after publishing what it stored. It returns true when it waited: for
    /// the last step, which copies what was appended while the checkpoint's
    /// thread copied, and, past [`MOST_PAGES`], for that thread first.
    pub async fn checkpoint_if_due(&mut self) -> bool {
        let Some(mut copying) = self.copying.take() else {
            let due = self.pages >= CHECKPOINT_PAGES
                || (self.pages >= CHECKPOINT_PAGES_AT_LEAST
                    && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY);
            if due && !self.start_copy(1) {
                self.copy_rest().await;
                return true;
            }
            return false;
        };
        let copied = match copying.done.try_recv() {
            Ok(()) => true,
            Err(oneshot::error::TryRecvError::Empty) if self.pages < MOST_PAGES => {
                self.copying = Some(copying);
                return false;
            }
            // Appending faster than the thread copies: wait for it.
            Err(oneshot::error::TryRecvError::Empty) => (&mut copying.done).await.is_ok(),
            Err(oneshot::error::TryRecvError::Closed) => false,
        };
        if !copied {
            self.copier_stopped();
        }
        let appended = self.pages.saturating_sub(copying.pages_before);
        let another_round =
            copied && appended > LAST_STEP_PAGES && copying.round < COPY_ROUNDS && self.pages < MOST_PAGES;
        if another_round && self.start_copy(copying.round + 1) {
            return false;
        }
        self.copy_rest().await;
        true
    }

    /// Hands a copy to the checkpoint's thread (started the first time);
    /// false if there is no such thread (the writer then copies itself).
    fn start_copy(&mut self, round: u32) -> bool {
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
                self.copying = Some(Copying { done, pages_before: self.pages, round });
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

/// One try, all of it or nothing: the transaction is rolled back when
/// anything fails. (Its statements are prepared once, like the group's:
/// rusqlite's own transactions parse `BEGIN` and `COMMIT` each time.)
fn attempt(conn: &mut Connection, plan: &GroupPlan, messages: &[NewMessage]) -> Result<Attempt, DbErr> {
    let written = conn.prepare_cached(BEGIN).and_then(|mut begin| begin.execute([])).and_then(|_| {
        let written = write_group(conn, plan, messages)?;
        if written.is_ok() {
            conn.prepare_cached(COMMIT)?.execute([])?;
        }
        Ok(written)
    });
    if !conn.is_autocommit() {
        // Failed after BEGIN (a missing room, a repeat, a busy commit):
        // nothing of the group stays. If this fails too, the caller
        // reopens the connection.
        if let Err(e) = conn.prepare_cached(ROLLBACK).and_then(|mut rollback| rollback.execute([])) {
            tracing::warn!(%e, "rolling back a group failed");
        }
    }
    match written {
        Ok(Ok(last_seqs)) => Ok(Attempt::Stored(last_seqs)),
        Ok(Err(missing)) => Err(missing_room(missing)),
        Err(e) if is_busy(&e) => Ok(Attempt::Busy),
        Err(e) if is_repeat(&e) => Ok(Attempt::Repeat),
        Err(e) => Err(err(e)),
    }
}

/// The group's statements, inside the caller's transaction: each room's
/// `last_seq` after it, or a room of the group that does not exist (the
/// caller rolls back).
fn write_group(
    conn: &Connection,
    plan: &GroupPlan,
    messages: &[NewMessage],
) -> rusqlite::Result<Result<Vec<(i64, i64)>, i64>> {
    let mut last_seqs = Vec::with_capacity(plan.counts.len());
    {
        let mut bump = conn.prepare_cached(BUMP)?;
        let mut last_seq = conn.prepare_cached(LAST_SEQ)?;
        for (&room_id, &n) in &plan.counts {
            if bump.execute((n, room_id))? == 0 {
                return Ok(Err(room_id));
            }
            last_seqs.push((room_id, last_seq.query_row([room_id], |row| row.get::<_, i64>(0))?));
        }
    }
    let created_at = plan.created_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    {
        let mut insert = conn.prepare_cached(INSERT)?;
        for (m, seq) in messages.iter().zip(plan.seqs(messages, &last_seqs)) {
            insert.execute((m.room_id, seq, &m.user_id, &m.body, &m.client_msg_id, &created_at))?;
        }
    }
    Ok(Ok(last_seqs))
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // Never wait inside SQLite: the caller decides (see the module docs).
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -2048)?;
    // The writer checkpoints (see the module docs).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// The (room, user, client id) index refused a row: that message was
/// stored before. (The (room, seq) index refusing one is an error.)
fn is_repeat(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, Some(text))
            if f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE && text.contains("client_msg_id")
    )
}

fn err(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite: {e}"))
}
