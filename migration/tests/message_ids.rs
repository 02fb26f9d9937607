//! Rebuilding `message` without `AUTOINCREMENT` keeps every row and both
//! unique indexes, new rows still get increasing ids, and `down` puts
//! `AUTOINCREMENT` back with the rows.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, Statement};

async fn run(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql).await.unwrap();
}

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = db.query_all(Statement::from_string(DatabaseBackend::Sqlite, sql)).await.unwrap();
    rows.iter().map(|r| r.try_get_by_index::<String>(0).unwrap()).collect()
}

async fn message_table(db: &DatabaseConnection) -> String {
    strings(db, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'message'").await.remove(0)
}

async fn insert(db: &DatabaseConnection, seq: i64, client_msg_id: &str) -> Result<(), DbErr> {
    let sql = format!(
        "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) \
         VALUES (1, {seq}, 'ana', 'hello', '{client_msg_id}', '2026-12-03T19:00:00+00:00')"
    );
    db.execute_unprepared(&sql).await.map(|_| ())
}

#[tokio::test]
async fn the_message_table_is_rebuilt_with_its_rows_and_indexes_and_back() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    // Every migration before this one, and a conversation stored by them.
    migration::Migrator::up(&db, Some(5)).await.unwrap();
    assert!(message_table(&db).await.contains("AUTOINCREMENT"));
    run(&db, "INSERT INTO room (channel_id, created_at) VALUES ('r', '2026-12-03T19:00:00+00:00')").await;
    run(&db, "INSERT INTO app_user (user_id, created_at) VALUES ('ana', '2026-12-03T19:00:00+00:00')").await;
    insert(&db, 1, "a").await.unwrap();
    insert(&db, 2, "b").await.unwrap();

    // This one.
    migration::Migrator::up(&db, Some(1)).await.unwrap();
    assert!(!message_table(&db).await.contains("AUTOINCREMENT"));
    let kept = "SELECT id || ':' || seq || ':' || client_msg_id FROM message ORDER BY id";
    assert_eq!(strings(&db, kept).await, ["1:1:a", "2:2:b"]);
    // Both unique indexes are back: a repeated seq or client id is refused.
    assert!(insert(&db, 2, "c").await.is_err());
    assert!(insert(&db, 3, "a").await.is_err());
    insert(&db, 3, "c").await.unwrap();
    assert_eq!(strings(&db, kept).await, ["1:1:a", "2:2:b", "3:3:c"]);
    let indexes =
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'message' ORDER BY name";
    assert_eq!(
        strings(&db, indexes).await,
        ["message_room_seq_unique", "message_room_user_client_msg_unique"]
    );

    migration::Migrator::down(&db, Some(1)).await.unwrap();
    assert!(message_table(&db).await.contains("AUTOINCREMENT"));
    assert_eq!(strings(&db, kept).await, ["1:1:a", "2:2:b", "3:3:c"]);
    insert(&db, 4, "d").await.unwrap();
    assert_eq!(strings(&db, kept).await, ["1:1:a", "2:2:b", "3:3:c", "4:4:d"]);
}
