//! The moderation migration adds its columns and tables to a database that
//! has conversations already, keeps every row, and `down` takes exactly
//! them away again.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};

async fn run(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = db.query_all(Statement::from_string(DatabaseBackend::Sqlite, sql)).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
}

async fn columns(db: &DatabaseConnection, table: &str) -> Vec<String> {
    strings(db, &format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")).await
}

#[tokio::test]
async fn moderation_columns_and_tables_come_with_defaults_and_go_with_down() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    migration::Migrator::up(&db, Some(6)).await.unwrap();
    run(
        &db,
        "INSERT INTO room (channel_id, last_seq, created_at) VALUES ('r', 1, '2026-12-06T19:00:00+00:00')",
    )
    .await;
    run(&db, "INSERT INTO app_user (user_id, created_at) VALUES ('ana', '2026-12-06T19:00:00+00:00')").await;
    run(
        &db,
        "INSERT INTO member (room_id, user_id, joined_at) VALUES (1, 'ana', '2026-12-06T19:00:00+00:00')",
    )
    .await;
    run(
        &db,
        "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) \
         VALUES (1, 1, 'ana', 'hello', 'a', '2026-12-06T19:00:00+00:00')",
    )
    .await;

    migration::Migrator::up(&db, None).await.unwrap();
    let message = columns(&db, "message").await;
    for column in ["action", "removed_by", "removed_at", "system"] {
        assert!(message.contains(&column.to_owned()), "message.{column}");
    }
    assert!(columns(&db, "room").await.contains(&"slow_mode_secs".to_owned()));
    // Rows from before get the defaults: a player, a plain message, no slow mode.
    let defaults = "SELECT m.role || ':' || msg.system || ':' || r.slow_mode_secs || ':' || msg.body \
                    FROM member m, message msg, room r";
    assert_eq!(strings(&db, defaults).await, ["player:0:0:hello"]);
    run(
        &db,
        "INSERT INTO sanction (room_id, user_id, kind, until, reason, by_user, created_at) \
         VALUES (1, 'ana', 'mute', NULL, '', 'mod', '2026-12-06T19:00:00+00:00')",
    )
    .await;
    let twice = "INSERT INTO sanction (room_id, user_id, kind, until, reason, by_user, created_at) \
                 VALUES (1, 'ana', 'mute', NULL, 'again', 'mod', '2026-12-06T19:00:00+00:00')";
    assert!(db.execute_unprepared(twice).await.is_err(), "one mute per member");
    run(
        &db,
        "INSERT INTO report (room_id, seq, reporter, author, body, reason, created_at, status) \
         VALUES (1, 1, 'bob', 'ana', 'hello', '', '2026-12-06T19:00:00+00:00', 'open')",
    )
    .await;

    // Down to before the moderation migration (and any that came after it).
    let after_moderation = migration::Migrator::migrations()
        .iter()
        .rev()
        .position(|m| m.name() == "m20261206_000007_moderation")
        .expect("the moderation migration");
    migration::Migrator::down(&db, Some(after_moderation as u32 + 1)).await.unwrap();
    assert_eq!(
        columns(&db, "message").await,
        ["id", "room_id", "seq", "user_id", "body", "client_msg_id", "created_at"]
    );
    assert!(!columns(&db, "room").await.contains(&"slow_mode_secs".to_owned()));
    assert!(!columns(&db, "member").await.contains(&"role".to_owned()));
    let tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('sanction', 'report')";
    assert!(strings(&db, tables).await.is_empty());
    assert_eq!(strings(&db, "SELECT body FROM message").await, ["hello"], "the conversation stays");
    migration::Migrator::up(&db, None).await.unwrap();
}
