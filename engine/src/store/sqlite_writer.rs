//! Messages stored into a SQLite file by a thread and a connection of
//! their own: the store's side of the message writer (`crate::writer`)
//! on SQLite.
//!
//! Why a thread: the pool's driver hands every statement to its
//! connection's thread and back, a wake-up of each side per statement;
//! here a whole group is one hand-over, stored in one transaction with
//! prepared statements. The thread may block (on the write lock, held a
//! moment by a join's write through the pool; on the disk), which a
//! runtime thread must not.
//!
//! A group is one transaction (`BEGIN IMMEDIATE`: the write lock before
//! any read), committed before anyone is answered. With the WAL and
//! `synchronous = NORMAL` a commit survives the process crashing; power
//! loss may lose the last moments. Seqs come from the database in that
//! transaction, by the pool's rule too (`store::seq_base_sql`). When
//! anything in a group was stored before (a retry) or cannot be stored,
//! the transaction is rolled back and the group goes again message by
//! message, each in a savepoint of a second one: a retry gets its stored
//! copy, a bad message its own error, the others are stored all the same.
//!
//! Checkpoints (the WAL copied back into the database file, and its sync)
//! run on a thread and a connection of their own, a PASSIVE one every
//! `CHECKPOINT_EVERY`, so that no group waits for one. Under steady load a
//! PASSIVE checkpoint never quite catches up with the writer, and SQLite
//! starts the WAL over only once all of it is copied back: the WAL would
//! grow for as long as the load lasts. So past `RESTART_FROM` pages the
//! writer's thread, between two groups, runs a RESTART checkpoint itself
//! (the little the PASSIVE one left); from another thread a RESTART would
//! wait for a write lock the writer takes again at once.
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use sea_orm::DbErr;
use tokio::sync::oneshot;

use super::{Inserted, NewMessage};
use crate::protocol::ChatMessage;

/// How long a group waits for SQLite's write lock (held by a join's
/// statement through the pool) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the checkpoint thread copies the WAL back (see above).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// WAL pages after which the writer starts the WAL over (16 MiB of 4 KiB
/// pages).
const RESTART_FROM: i64 = 4096;
/// Most bytes the WAL file keeps once it starts over (twice what it holds
/// at `RESTART_FROM` pages of 4 KiB).
const WAL_KEPT_BYTES: i64 = 32 << 20;

/// The room `?1`'s next `?2` seqs; returns its new `last_seq` (no row: no
/// room).
static BUMP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("UPDATE room SET last_seq = {} + ?2 WHERE id = ?1 RETURNING last_seq", super::seq_base_sql("max"))
});
const INSERT: &str = "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at, system) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const FIND: &str = "SELECT seq, CASE WHEN removed_at IS NULL THEN body ELSE '' END, created_at, system \
                    FROM message WHERE room_id = ?1 AND user_id = ?2 AND client_msg_id = ?3";

/// What the thread answers for each message of a group, in order.
pub type Outcome = Result<Inserted, DbErr>;

struct Job {
    group: Vec<NewMessage>,
    reply: oneshot::Sender<Vec<Outcome>>,
}

/// The handle of the threads; they end when it is dropped.
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
    /// Dropped with the writer: tells the checkpoint thread to stop.
    _checkpoints: mpsc::Sender<()>,
}

impl SqliteWriter {
    /// Opens the file (which must exist, migrated) and starts the thread.
    pub fn open(path: &Path) -> Result<Self, DbErr> {
        let conn = open_connection(path).map_err(err)?;
        // Its commits leave the WAL to the checkpoint thread.
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(err)?;
        // A WAL that grew while a reader held an old snapshot is cut back
        // to this when it starts over (the file otherwise keeps its size).
        conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES).map_err(err)?;
        conn.busy_handler(Some(wait_for_lock)).map_err(err)?;
        let checkpointer = open_connection(path).map_err(err)?;
        let (checkpoints, stop) = mpsc::channel::<()>();
        let restart = Arc::new(AtomicBool::new(false));
        let wanted = restart.clone();
        spawn("sqlite-checkpoints", move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
                if let Some(wal_pages) = checkpoint(&checkpointer, "PASSIVE") {
                    wanted.store(wal_pages >= RESTART_FROM, Ordering::Relaxed);
                }
            }
        })?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        spawn("sqlite-writer", move || {
            for Job { group, reply } in inbox {
                let _ = reply.send(store_group(&conn, &group));
                if restart.swap(false, Ordering::Relaxed) {
                    restart_wal(&conn);
                }
            }
        })?;
        Ok(SqliteWriter { jobs, _checkpoints: checkpoints })
    }

    /// Stores a group; answers for each message, in order, once the
    /// group's transaction is committed.
    pub async fn store(&self, group: Vec<NewMessage>) -> Vec<Outcome> {
        let n = group.len();
        let stopped =
            || (0..n).map(|_| Err(DbErr::Custom("the SQLite writer's thread has stopped".into()))).collect();
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { group, reply }).is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }
}

fn spawn(name: &str, work: impl FnOnce() + Send + 'static) -> Result<(), DbErr> {
    let thread = std::thread::Builder::new().name(name.to_owned()).spawn(work);
    thread.map(drop).map_err(|e| DbErr::Custom(format!("cannot start the thread {name}: {e}")))
}

/// The writer's busy handler: held back by a join's write through the
/// pool, it retries every 100 µs (SQLite's own waits grow to 25 ms and
/// more), up to `BUSY_TIMEOUT`.
fn wait_for_lock(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    Duration::from_micros(100) * attempt.unsigned_abs() < BUSY_TIMEOUT
}

/// Starts the WAL over (a RESTART checkpoint), waiting at most a few
/// milliseconds for readers: a short read ends within them, but a reader
/// on an older snapshot (a backup's `VACUUM INTO`, a long read) would have
/// SQLite wait in the busy handler, and every group queued behind the
/// writer with it. Busy, the checkpoint copies back what it can and the
/// next one tries again.
fn restart_wal(conn: &Connection) {
    let handlers = conn.busy_handler(Some(wait_briefly));
    if handlers.is_ok() {
        checkpoint(conn, "RESTART");
    }
    if let Err(e) = handlers.and_then(|()| conn.busy_handler(Some(wait_for_lock))) {
        tracing::error!(%e, "the SQLite writer's busy handler could not be set");
    }
}

/// While starting the WAL over: up to 5 ms, in steps of 100 µs.
fn wait_briefly(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    attempt < 50
}

/// A checkpoint (`mode`: PASSIVE, RESTART); the WAL's pages, or `None`
/// (logged) when it failed.
fn checkpoint(conn: &Connection, mode: &str) -> Option<i64> {
    let checkpoint = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| row.get(1));
    checkpoint.inspect_err(|e| tracing::warn!(%e, mode, "SQLite checkpoint failed")).ok()
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Statement and savepoint journals in memory, not in a temporary file
    // created and deleted for every transaction.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// Stores a group in one transaction (see the module docs).
fn store_group(conn: &Connection, group: &[NewMessage]) -> Vec<Outcome> {
    let at = super::message_time();
    let whole = in_transaction(conn, |txn| store_whole(txn, group, at));
    let stored = whole.or_else(|_| {
        in_transaction(conn, |txn| {
            Ok(group.iter().map(|m| in_savepoint(txn, |c| store_one(c, m, at)).map_err(err)).collect())
        })
    });
    match stored {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::error!(%e, messages = group.len(), "storing a group of messages failed");
            let text = err(e).to_string();
            group.iter().map(|_| Err(DbErr::Custom(text.clone()))).collect()
        }
    }
}

/// Runs `work` in a transaction that takes the write lock first (`BEGIN
/// IMMEDIATE`), committed if it succeeds, rolled back if not.
fn in_transaction<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let txn = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let done = work(&txn)?;
    txn.commit()?;
    Ok(done)
}

/// Runs `work` in a savepoint, undone if it fails.
fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT part")?;
    match work(conn) {
        Ok(done) => conn.execute_batch("RELEASE part").map(|()| done),
        Err(e) => {
            conn.execute_batch("ROLLBACK TO part; RELEASE part")?;
            Err(e)
        }
    }
}

/// The whole group, each room's seqs taken at once; fails on anything
/// (a retry among them included), to be stored message by message.
fn store_whole(conn: &Connection, group: &[NewMessage], at: DateTime<Utc>) -> rusqlite::Result<Vec<Outcome>> {
    let last_seqs = super::room_counts(group)
        .into_iter()
        .map(|(room_id, count)| Ok((room_id, bump(conn, room_id, count)?)))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let seqs = super::seqs(group, &last_seqs).ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    let mut insert = conn.prepare_cached(INSERT)?;
    let created_at = time_text(at);
    group
        .iter()
        .zip(seqs)
        .map(|(m, seq)| {
            insert.execute((m.room_id, seq, &m.user_id, &m.body, &m.client_msg_id, &created_at, m.system))?;
            Ok(Ok(Inserted { message: m.stored(seq, at), is_new: true }))
        })
        .collect()
}

/// One message: its stored copy if it was stored before, or stored now
/// under its room's next seq.
fn store_one(conn: &Connection, m: &NewMessage, at: DateTime<Utc>) -> rusqlite::Result<Inserted> {
    let mut find = conn.prepare_cached(FIND)?;
    let found = find
        .query_row((m.room_id, &m.user_id, &m.client_msg_id), |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, bool>(3)?,
            ))
        })
        .optional()?;
    if let Some((seq, body, created_at, system)) = found {
        let at = DateTime::parse_from_rfc3339(&created_at).map_or(at, |t| t.with_timezone(&Utc));
        return Ok(Inserted { message: ChatMessage { body, system, ..m.stored(seq, at) }, is_new: false });
    }
    let seq = bump(conn, m.room_id, 1)?;
    conn.prepare_cached(INSERT)?.execute((
        m.room_id,
        seq,
        &m.user_id,
        &m.body,
        &m.client_msg_id,
        time_text(at),
        m.system,
    ))?;
    Ok(Inserted { message: m.stored(seq, at), is_new: true })
}

/// Moves the room's `last_seq` on by `count`; returns the new value.
fn bump(conn: &Connection, room_id: i64, count: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(&BUMP)?.query_row((room_id, count), |row| row.get(0))
}

/// A time as the pool's driver writes it (RFC 3339), so that both read it.
fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

pub(super) fn err(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite: {e}"))
}
