//! `server backup --to FILE`: a copy of the SQLite database, taken while
//! the server runs.
//!
//! Copying the file by hand while the server writes is not safe: the
//! database is the file *and* its write-ahead log (`-wal`), and a copy made
//! between two writes can hold half of a transaction. SQLite's
//! `VACUUM INTO` reads the database in one read transaction (the server's
//! writer goes on meanwhile: readers never block it in WAL mode) and
//! writes a compacted copy of that one moment. The copy is written under
//! `FILE.partial`, checked (`PRAGMA quick_check`), then renamed to `FILE`:
//! a file by that name is always a whole, checked backup. An existing
//! `FILE` is never overwritten.
//!
//! To restore: stop the server, put the copy in place of the database file
//! (and remove the old `-wal` and `-shm` beside it), start the server.
//! PostgreSQL is backed up with its own tools (`pg_dump`, or a provider's
//! snapshots): this command refuses it.
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
    #[error("{0} already exists: a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("cannot open the database: {0}")]
    Open(sqlx::Error),
    #[error("the copy could not be written: {0}")]
    Copy(sqlx::Error),
    #[error("the copy failed its check: {0}")]
    Check(String),
    #[error("the copy could not be put in place: {0}")]
    Rename(std::io::Error),
}

/// Writes a copy of the database at `database_url` to `to`; returns its
/// size in bytes.
pub async fn backup(database_url: &str, to: &Path) -> Result<u64, BackupError> {
    if !database_url.starts_with("sqlite:") || database_url.contains(":memory:") {
        return Err(BackupError::NotSqlite);
    }
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // What an interrupted backup left.
    let _ = std::fs::remove_file(&partial);
    let written = copy(database_url, &partial).await;
    let checked = match written {
        Ok(()) => check(&partial).await,
        Err(err) => Err(err),
    };
    if let Err(err) = checked {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    std::fs::rename(&partial, to).map_err(BackupError::Rename)?;
    Ok(std::fs::metadata(to).map(|m| m.len()).unwrap_or(0))
}

async fn copy(database_url: &str, partial: &Path) -> Result<(), BackupError> {
    let options = SqliteConnectOptions::from_str(database_url)
        .map_err(BackupError::Open)?
        // A database that is not there is an error, not an empty backup.
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10));
    let mut db = options.connect().await.map_err(BackupError::Open)?;
    let into = partial.to_string_lossy().into_owned();
    sqlx::query("VACUUM INTO ?").bind(into).execute(&mut db).await.map_err(BackupError::Copy)?;
    db.close().await.map_err(BackupError::Copy)
}

async fn check(file: &Path) -> Result<(), BackupError> {
    let options = SqliteConnectOptions::new().filename(file).read_only(true);
    let mut copy = options.connect().await.map_err(BackupError::Open)?;
    let verdict: String =
        sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut copy).await.map_err(BackupError::Copy)?;
    copy.close().await.map_err(BackupError::Copy)?;
    match verdict.as_str() {
        "ok" => Ok(()),
        _ => Err(BackupError::Check(verdict)),
    }
}
