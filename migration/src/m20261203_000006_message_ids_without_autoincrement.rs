//! `message.id` on SQLite: a plain rowid (`INTEGER PRIMARY KEY`), no longer
//! `AUTOINCREMENT`.
//!
//! Why: with `AUTOINCREMENT`, SQLite reads and rewrites the table's row in
//! `sqlite_sequence` for every insert statement, a fourth b-tree written
//! per message next to the table and its two indexes. Messages are stored
//! one statement each, so that bookkeeping was about a sixth of SQLite's
//! insert work. A plain rowid is still assigned in increasing order (the
//! largest plus one); only the id of a deleted newest row could come back.
//! A room's order is `seq`; the retention sweep walks ids as an order of
//! age and deletes a row by its id and seq together.
//!
//! SQLite cannot alter a column's key, so the table is rebuilt, in one
//! transaction: created anew, filled from the old one, which is dropped,
//! then renamed, with its indexes created again. PostgreSQL's
//! `bigserial` has no such cost: there this migration does nothing.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns, in the order the table has them.
const COLUMNS: &str = "id, room_id, seq, user_id, body, client_msg_id, created_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, "").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rebuild(manager, " AUTOINCREMENT").await
    }
}

/// Rebuilds `message` on SQLite with `id` declared `INTEGER PRIMARY KEY`
/// followed by `key_suffix`, keeping every row and both indexes.
async fn rebuild(manager: &SchemaManager<'_>, key_suffix: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    if db.get_database_backend() != DbBackend::Sqlite {
        return Ok(());
    }
    let statements = [
        format!(
            "CREATE TABLE message_rebuilt ( \
             id integer NOT NULL PRIMARY KEY{key_suffix}, \
             room_id bigint NOT NULL, \
             seq bigint NOT NULL, \
             user_id varchar(64) NOT NULL, \
             body text NOT NULL, \
             client_msg_id varchar(64) NOT NULL, \
             created_at timestamp_with_timezone_text NOT NULL, \
             FOREIGN KEY (room_id) REFERENCES room (id) ON DELETE CASCADE, \
             FOREIGN KEY (user_id) REFERENCES app_user (user_id) ON DELETE CASCADE )"
        ),
        format!("INSERT INTO message_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM message ORDER BY id"),
        "DROP TABLE message".to_owned(),
        "ALTER TABLE message_rebuilt RENAME TO message".to_owned(),
        "CREATE UNIQUE INDEX message_room_seq_unique ON message (room_id, seq)".to_owned(),
        "CREATE UNIQUE INDEX message_room_user_client_msg_unique ON message (room_id, user_id, client_msg_id)"
            .to_owned(),
    ];
    // All or nothing: a stop halfway leaves the old table as it was.
    let transaction = db.begin().await?;
    for statement in &statements {
        transaction.execute_unprepared(statement).await?;
    }
    transaction.commit().await
}
