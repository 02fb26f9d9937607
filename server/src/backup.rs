//! `server backup --to FILE`: a copy of the SQLite database, taken while
//! the server runs.
//!
//! Copying the file by hand while the server writes is not safe: the
//! database is the file *and* its write-ahead log (`-wal`), and a copy made
//! between two writes can hold half of a transaction. SQLite's
//! `VACUUM INTO` reads the database in one read transaction (the server's
//! writer goes on meanwhile: readers never block it in WAL mode) and
//! writes a compacted copy of that one moment.
//!
//! The copy is written into a new file of this run's own beside `FILE`
//! (readable by its owner only: it holds every player's messages),
//! checked (`PRAGMA quick_check`), synced to disk, then linked under
//! `FILE`, which fails if anything has that name by then, and the
//! directory synced: a file by that name is always a whole, checked,
//! durable backup, and an existing file is never overwritten, even by two
//! backups run at once.
//!
//! To restore: stop the server, put the copy in place of the database file
//! (and remove the old `-wal` and `-shm` beside it), start the server.
//! PostgreSQL is backed up with its own tools (`pg_dump`, or a provider's
//! snapshots): this command refuses it.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::SqliteConnectOptions;
use sea_orm::sqlx::{self, ConnectOptions, Connection};

/// Why a backup was not written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("`server backup` copies a SQLite database; back up PostgreSQL with its own tools (pg_dump, or your provider's snapshots)")]
    NotSqlite,
    #[error("an in-memory database has no file to copy")]
    InMemory,
    #[error("{0} already exists: a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("{0} is not a folder that exists")]
    NoFolder(PathBuf),
    #[error("the backup's path must be valid UTF-8")]
    NotUtf8,
    #[error("cannot open the database: {0}")]
    Open(sqlx::Error),
    #[error("the copy could not be written: {0}")]
    Copy(sqlx::Error),
    #[error("the copy failed its check: {0}")]
    Check(String),
    #[error("the copy could not be written to disk: {0}")]
    Disk(std::io::Error),
}

/// Writes a copy of the database at `database_url` to `to`; returns its
/// size in bytes.
pub async fn backup(database_url: &str, to: &Path) -> Result<u64, BackupError> {
    if !database_url.starts_with("sqlite:") {
        return Err(BackupError::NotSqlite);
    }
    if database_url.contains(":memory:") {
        return Err(BackupError::InMemory);
    }
    let target = to.to_str().ok_or(BackupError::NotUtf8)?;
    let folder = match to.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => PathBuf::from("."),
    };
    if !folder.is_dir() {
        return Err(BackupError::NoFolder(folder));
    }
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    // This run's own file: created new (two runs never share one), empty
    // (as `VACUUM INTO` requires), owner-only.
    let partial = PathBuf::from(format!("{target}.{}.partial", std::process::id()));
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).map_err(BackupError::Disk)?;
    let done =
        write_and_check(database_url, &partial).await.and_then(|()| put_in_place(&partial, to, &folder));
    let _ = std::fs::remove_file(&partial);
    done?;
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}

async fn write_and_check(database_url: &str, partial: &Path) -> Result<(), BackupError> {
    let options = SqliteConnectOptions::from_str(database_url)
        .map_err(BackupError::Open)?
        // Only read: a database that is not there is an error, not an
        // empty backup, and nothing of the server's is changed.
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    let mut db = options.connect().await.map_err(BackupError::Open)?;
    let into = partial.to_str().ok_or(BackupError::NotUtf8)?;
    sqlx::query("VACUUM INTO ?").bind(into).execute(&mut db).await.map_err(BackupError::Copy)?;
    db.close().await.map_err(BackupError::Copy)?;

    let mut copy = SqliteConnectOptions::new()
        .filename(partial)
        .read_only(true)
        .connect()
        .await
        .map_err(BackupError::Open)?;
    let verdict: String =
        sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut copy).await.map_err(BackupError::Copy)?;
    copy.close().await.map_err(BackupError::Copy)?;
    match verdict.as_str() {
        "ok" => Ok(()),
        _ => Err(BackupError::Check(verdict)),
    }
}

/// Syncs the checked copy, links it under `to` (failing if that name is
/// taken by then) and syncs the folder, so the name survives a crash.
fn put_in_place(partial: &Path, to: &Path, folder: &Path) -> Result<(), BackupError> {
    File::open(partial).and_then(|f| f.sync_all()).map_err(BackupError::Disk)?;
    std::fs::hard_link(partial, to).map_err(|err| match err.kind() {
        std::io::ErrorKind::AlreadyExists => BackupError::Exists(to.to_owned()),
        _ => BackupError::Disk(err),
    })?;
    File::open(folder).and_then(|f| f.sync_all()).map_err(BackupError::Disk)
}
