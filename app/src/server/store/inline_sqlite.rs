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
//! - its commits do not checkpoint the write-ahead log (a checkpoint syncs
//!   the files to disk: milliseconds the runtime would stall). After about
//!   4,000 pages (some 16 MiB of log), or a second and 100 pages, the
//!   writer — once the group's messages are published — hands the
//!   connection to a blocking thread for a checkpoint and waits for it
//!   (new messages queue meanwhile). The
//!   runtime goes on serving, and as the writer appends nothing meanwhile
//!   the checkpoint can copy the whole log (unless a join's write or a
//!   long read gets in its way), after which the log starts again from its
//!   beginning instead of growing.
//!
//! A room's messages still take consecutive seqs in the order given, in
//! one transaction per group; a repeat of a stored message makes the whole
//! group change nothing (see `MessageStore::insert_messages`).
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{ffi, Connection, ErrorCode, OpenFlags};
use sea_orm::DbErr;

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
/// checkpoints, each hardly longer, for a log of at most 16 MiB.
pub(super) const CHECKPOINT_PAGES: usize = 4000;
/// A smaller log is checkpointed too once this old and this long.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const CHECKPOINT_PAGES_AT_LEAST: usize = 100;

const BEGIN: &str = "BEGIN IMMEDIATE";
const COMMIT: &str = "COMMIT";
const ROLLBACK: &str = "ROLLBACK";
const BUMP: &str = "UPDATE room SET last_seq = last_seq + ?1 WHERE id = ?2 RETURNING last_seq";
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
    /// Away while a checkpoint runs; reopened if that thread failed.
    conn: Option<Connection>,
    /// Pages appended to the log since the last checkpoint (estimated).
    pages: usize,
    last_checkpoint: Instant,
}

impl InlineSqlite {
    /// Opens the file (its tables exist: the server migrated it).
    pub fn open(path: &Path) -> Result<Self, DbErr> {
        let conn = open_connection(path).map_err(err)?;
        Ok(InlineSqlite {
            path: path.to_owned(),
            conn: Some(conn),
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
    /// after publishing what it stored.
    pub async fn checkpoint_if_due(&mut self) {
        let due = self.pages >= CHECKPOINT_PAGES
            || (self.pages >= CHECKPOINT_PAGES_AT_LEAST
                && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY);
        if !due {
            return;
        }
        let Some(conn) = self.conn.take() else { return };
        let checkpoint = tokio::task::spawn_blocking(move || {
            // PASSIVE: copies what no reader still needs and waits for
            // nobody; with nothing appended meanwhile that is all of it.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(%e, "checkpointing the write-ahead log failed");
            }
            conn
        });
        self.conn =
            checkpoint.await.inspect_err(|e| tracing::error!(%e, "the checkpoint thread failed")).ok();
        self.pages = 0;
        self.last_checkpoint = Instant::now();
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
        for (&room_id, &n) in &plan.counts {
            match bump.query_row((n, room_id), |row| row.get::<_, i64>(0)) {
                Ok(last) => last_seqs.push((room_id, last)),
                Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(Err(room_id)),
                Err(e) => return Err(e),
            }
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
