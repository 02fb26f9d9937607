//! `server backup --to FILE`: a copy of the SQLite database taken while
//! pages write is one whole moment of it; an existing file is never
//! overwritten; PostgreSQL is refused with a pointer to its own tools.
mod common;

use std::process::Command;
use std::time::Duration;

use common::spawn_app;

/// `server backup --to FILE` as an operator runs it, beside a server whose
/// pages keep writing.
fn backup(database_url: &str, to: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("backup")
        .arg("--to")
        .arg(to)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("server runs")
}

#[tokio::test]
async fn a_backup_taken_while_pages_write_holds_one_whole_moment_of_the_database() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("chat-backup.db");
    if common::on_postgres_and_redis() {
        let output = backup(&app.config.database_url, &to);
        assert_eq!(output.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&output.stderr).contains("pg_dump"), "{output:?}");
        assert!(!to.exists());
        return;
    }
    // Two pages write without a pause, each in its room, all along.
    let writing = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for room in ["backup-a", "backup-b"] {
        let mut page = app.join("ana", room).await;
        page.send_and_ack("m1", "a line").await;
        let writing = writing.clone();
        writers.push(tokio::spawn(async move {
            let mut sent = 1;
            while writing.load(Ordering::Relaxed) {
                sent += 1;
                page.send_and_ack(&format!("m{sent}"), "a line").await;
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (url, copy_to) = (app.config.database_url.clone(), to.clone());
    let output = tokio::task::spawn_blocking(move || backup(&url, &copy_to)).await.unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("backup written to"), "{output:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    writing.store(false, Ordering::Relaxed);
    let mut sent = 0;
    for writer in writers {
        sent += writer.await.unwrap();
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|f| f.unwrap().file_name()).collect();
    assert_eq!(files, ["chat-backup.db"], "nothing left beside it");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&to).unwrap().permissions().mode() & 0o777, 0o600, "the owner's alone");

    // The copy is the database at one moment: in each room, every message
    // up to the room's last seq and none after, and fewer than were sent.
    let copy = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", to.display())).await.unwrap();
    use sea_orm::{ConnectionTrait, Statement};
    let rows = copy
        .query_all(Statement::from_string(
            sea_orm::DatabaseBackend::Sqlite,
            "SELECT r.channel_id, r.last_seq, COUNT(m.id) AS stored, COALESCE(MAX(m.seq), 0) AS newest \
             FROM room r LEFT JOIN message m ON m.room_id = r.id GROUP BY r.id ORDER BY r.channel_id",
        ))
        .await
        .unwrap();
    let mut in_copy = 0;
    for row in &rows {
        let (room, last, stored, newest): (String, i64, i64, i64) = (
            row.try_get("", "channel_id").unwrap(),
            row.try_get("", "last_seq").unwrap(),
            row.try_get("", "stored").unwrap(),
            row.try_get("", "newest").unwrap(),
        );
        assert!(
            stored > 0 && stored == last && newest == last,
            "{room}: {stored} stored, last {last}, newest {newest}"
        );
        in_copy += stored;
    }
    assert_eq!(rows.len(), 2);
    assert!(in_copy < sent, "the copy was taken while pages wrote ({in_copy} of {sent})");

    // Never over an existing file; never from a database that is not there.
    let before = std::fs::read(&to).unwrap();
    let output = backup(&app.config.database_url, &to);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"), "{output:?}");
    assert_eq!(std::fs::read(&to).unwrap(), before);
    let missing = dir.path().join("no-such.db");
    let output = backup(&format!("sqlite://{}", missing.display()), &dir.path().join("other.db"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open the database"), "{output:?}");
    assert!(!missing.exists() && !dir.path().join("other.db").exists());
    let output = backup(&app.config.database_url, &dir.path().join("nowhere").join("x.db"));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a folder that exists"), "{output:?}");
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 1, "the refused runs left nothing");
}
