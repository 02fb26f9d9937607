//! The store: rooms, users, members and messages, through sea-orm, on
//! SQLite (default) or PostgreSQL. Small functions that take a connection
//! and do one thing; [`insert_message`] is where a message gets its `seq`.
use std::str::FromStr;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlxSqliteConnector, TransactionTrait,
    TryInsertResult,
};

pub mod entities;
mod inline_sqlite;
mod member_lists;
mod message_log;
mod message_runs;
mod sent_keys;

pub use member_lists::MemberLists;

use crate::protocol::ChatMessage;
use entities::{app_user, member, message, room};

/// Opens the database named by `url` (`sqlite://file.db`, `sqlite::memory:`,
/// `postgres://…`). A SQLite file is created when missing and runs in WAL
/// mode, so readers never wait for the writer.
/// How the server uses its database connections.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Longest wait to connect, or for a free connection under load.
    pub timeout: Duration,
}

pub async fn connect(url: &str, pool: PoolSettings) -> Result<DatabaseConnection, DbErr> {
    let PoolSettings { max_connections, timeout } = pool;
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| DbErr::Custom(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 1 MiB of page cache per connection (SQLite's default is 2):
            // reads of recent history hit the OS cache anyway, and the pool
            // has several connections.
            .pragma("cache_size", "-1024")
            // A commit here checkpoints only past the longest log the
            // message writer lets grow, not at SQLite's default: a join is
            // not the one to fold back the log (see `inline_sqlite`).
            .pragma("wal_autocheckpoint", inline_sqlite::POOL_CHECKPOINT_PAGES.to_string());
        // An in-memory database lives as long as its one connection.
        let max = if url.contains(":memory:") { 1 } else { max_connections };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(if max == 1 { 1 } else { 0 })
            .idle_timeout(None)
            .max_lifetime(None)
            // A file's connection does not go stale: no ping before each use.
            .test_before_acquire(false)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await
            .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))?;
        Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
    } else {
        let mut options = ConnectOptions::new(url);
        options
            .max_connections(max_connections)
            .connect_timeout(timeout)
            .acquire_timeout(timeout)
            .sqlx_logging(false);
        Database::connect(options).await
    }
}

/// Finds a room by channel id.
pub async fn find_room(db: &impl ConnectionTrait, channel_id: &str) -> Result<Option<room::Model>, DbErr> {
    room::Entity::find().filter(room::Column::ChannelId.eq(channel_id)).one(db).await
}

/// Returns the room of `channel_id`, creating it on first use.
pub async fn ensure_room(db: &impl ConnectionTrait, channel_id: &str) -> Result<room::Model, DbErr> {
    if let Some(room) = find_room(db, channel_id).await? {
        return Ok(room);
    }
    let new_room = room::ActiveModel {
        channel_id: Set(channel_id.to_owned()),
        last_seq: Set(0),
        created_at: Set(Utc::now()),
        ..Default::default()
    };
    room::Entity::insert(new_room)
        .on_conflict(OnConflict::column(room::Column::ChannelId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    find_room(db, channel_id).await?.ok_or_else(|| DbErr::RecordNotFound(format!("room {channel_id}")))
}

/// Records a user id (once).
pub async fn ensure_user(db: &impl ConnectionTrait, user_id: &str) -> Result<(), DbErr> {
    let user = app_user::ActiveModel { user_id: Set(user_id.to_owned()), created_at: Set(Utc::now()) };
    app_user::Entity::insert(user)
        .on_conflict(OnConflict::column(app_user::Column::UserId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Makes `user_id` a member of the room. Returns `true` if they were not
/// one already.
pub async fn add_member(db: &impl ConnectionTrait, room_id: i64, user_id: &str) -> Result<bool, DbErr> {
    let row = member::ActiveModel {
        room_id: Set(room_id),
        user_id: Set(user_id.to_owned()),
        joined_at: Set(Utc::now()),
        ..Default::default()
    };
    let inserted = member::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([member::Column::RoomId, member::Column::UserId]).do_nothing().to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted > 0)
}

/// Removes a member. Returns `true` if they were one.
pub async fn remove_member(db: &impl ConnectionTrait, room_id: i64, user_id: &str) -> Result<bool, DbErr> {
    let deleted = member::Entity::delete_many()
        .filter(member::Column::RoomId.eq(room_id))
        .filter(member::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

pub async fn is_member(db: &impl ConnectionTrait, room_id: i64, user_id: &str) -> Result<bool, DbErr> {
    let found = member::Entity::find()
        .select_only()
        .column(member::Column::Id)
        .filter(member::Column::RoomId.eq(room_id))
        .filter(member::Column::UserId.eq(user_id))
        .into_tuple::<i64>()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The room's members in the order they joined, read whole (the rooms'
/// requests go through [`MemberLists`], which keeps big rooms' lists).
pub async fn members(db: &impl ConnectionTrait, room_id: i64) -> Result<Vec<String>, DbErr> {
    member_lists::read_whole(db, room_id).await
}

/// Messages with `seq > after_seq`, oldest first, at most `limit`.
pub async fn messages_after(
    db: &impl ConnectionTrait,
    room_id: i64,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<ChatMessage>, DbErr> {
    message_runs::read(db, room_id, message_runs::Side::After, after_seq, limit).await
}

/// Messages with `seq < before_seq`, oldest first: the `limit` newest of
/// them. Reads backwards along the (room, seq) index, so a page costs the
/// same in a room of ten messages or of millions.
pub async fn messages_before(
    db: &impl ConnectionTrait,
    room_id: i64,
    before_seq: i64,
    limit: u64,
) -> Result<Vec<ChatMessage>, DbErr> {
    message_runs::read(db, room_id, message_runs::Side::Before, before_seq, limit).await
}

/// The time a message is stored with: now, to the millisecond (what pages
/// are told). Finer, a time could read back different from what was
/// delivered live: PostgreSQL keeps microseconds, rounding, which can carry
/// into the next millisecond.
fn message_time() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

/// Result of [`insert_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub message: ChatMessage,
    /// `false` when the same (user, client id) was stored before: the
    /// stored copy is returned and nothing changed.
    pub is_new: bool,
}

/// Stores a message under the room's next `seq`, in one transaction:
/// bump `room.last_seq` (returning the new value), then insert with that
/// value. Bumping first takes the write lock (SQLite) or the room's row lock
/// (PostgreSQL) before anything else, so concurrent senders get consecutive
/// seqs. A retry of a stored message (same room, user and client id) hits
/// the unique index: the transaction is rolled back, which also undoes the
/// bump, and the stored copy is returned. Four statements on the hot path.
pub async fn insert_message<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    room_id: i64,
    user_id: &str,
    client_msg_id: &str,
    body: &str,
) -> Result<Inserted, DbErr> {
    let txn = db.begin().await?;
    let bumped = room::Entity::update_many()
        .col_expr(room::Column::LastSeq, Expr::col(room::Column::LastSeq).add(1))
        .filter(room::Column::Id.eq(room_id))
        .exec_with_returning(&txn)
        .await?;
    let Some(seq) = bumped.first().map(|room| room.last_seq) else {
        return Err(DbErr::RecordNotFound(format!("room {room_id}")));
    };
    let created_at = message_time();
    let row = message::ActiveModel {
        room_id: Set(room_id),
        seq: Set(seq),
        user_id: Set(user_id.to_owned()),
        body: Set(body.to_owned()),
        client_msg_id: Set(client_msg_id.to_owned()),
        created_at: Set(created_at),
        ..Default::default()
    };
    let once =
        OnConflict::columns([message::Column::RoomId, message::Column::UserId, message::Column::ClientMsgId])
            .do_nothing()
            .to_owned();
    match message::Entity::insert(row).on_conflict(once).do_nothing().exec_without_returning(&txn).await? {
        TryInsertResult::Inserted(1) => {
            txn.commit().await?;
            let message = ChatMessage {
                seq,
                user_id: user_id.to_owned(),
                body: body.to_owned(),
                client_msg_id: client_msg_id.to_owned(),
                at_ms: created_at.timestamp_millis(),
            };
            Ok(Inserted { message, is_new: true })
        }
        TryInsertResult::Inserted(_) | TryInsertResult::Conflicted | TryInsertResult::Empty => {
            txn.rollback().await?;
            let existing = find_message(db, room_id, user_id, client_msg_id)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("the conflicting message".to_owned()))?;
            Ok(Inserted { message: existing, is_new: false })
        }
    }
}

/// The stored message a (room, user, client id) names, if any.
async fn find_message(
    db: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
    client_msg_id: &str,
) -> Result<Option<ChatMessage>, DbErr> {
    let found = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::UserId.eq(user_id))
        .filter(message::Column::ClientMsgId.eq(client_msg_id))
        .one(db)
        .await?;
    Ok(found.map(Into::into))
}

/// A message to store with [`insert_messages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub room_id: i64,
    pub user_id: String,
    pub client_msg_id: String,
    pub body: String,
}

/// Stores groups of messages: what the message writer (see
/// `server::writer`) stores through.
///
/// On a SQLite file it stores them through a connection of its own, on the
/// writer's task (see `inline_sqlite`); on PostgreSQL, and on an in-memory
/// SQLite database (tests), through the pool — as on a file whose own
/// connection could not be opened (logged), where a write by another
/// connection between the group's statements fails the group.
pub struct MessageStore {
    db: DatabaseConnection,
    inline: Option<inline_sqlite::InlineSqlite>,
    /// A SQLite file whose message log could not be opened (another server
    /// uses it, or it cannot be read): no message is stored until it can,
    /// for storing around the log would reuse seqs it holds.
    refused: Option<std::path::PathBuf>,
}

impl MessageStore {
    pub async fn open(db: DatabaseConnection) -> Self {
        let (inline, refused) = match sqlite_file(&db).await {
            Ok(Some(path)) => match inline_sqlite::InlineSqlite::open(&path) {
                Ok(inline) => (Some(inline), None),
                Err(err) => {
                    tracing::error!(%err, "no message can be stored until the message log can be opened");
                    (None, Some(path))
                }
            },
            Ok(None) => (None, None),
            Err(err) => {
                tracing::warn!(%err, "could not tell where the database is; storing messages through the pool");
                (None, None)
            }
        };
        MessageStore { db, inline, refused }
    }

    /// Where messages go: the file's own connection and log, or the pool
    /// (`None`). A refused file is tried again each time.
    fn writes(&mut self) -> Result<Option<&mut inline_sqlite::InlineSqlite>, DbErr> {
        if let Some(path) = &self.refused {
            let inline = inline_sqlite::InlineSqlite::open(path)
                .map_err(|err| DbErr::Custom(format!("messages cannot be stored: {err}")))?;
            tracing::info!("the message log is open: messages are stored again");
            self.inline = Some(inline);
            self.refused = None;
        }
        Ok(self.inline.as_mut())
    }

    /// The database, for what is not stored in groups.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Stores many messages (of any rooms) in one transaction, each under
    /// its room's next `seq` in the order given: each room's `last_seq` is
    /// bumped by its count of messages, then the messages are inserted with
    /// the numbers just below. A handful of statements for the whole group,
    /// where [`insert_message`] needs four per message: this is what lets
    /// the writer store tens of thousands of messages a second on SQLite.
    ///
    /// Returns `None`, having changed nothing, when any of them was stored
    /// before (a retry: same room, user and client id) — the caller then
    /// stores them one by one with [`MessageStore::insert_one`], which
    /// sorts retries out. On a SQLite file the group is stored into the
    /// message log, and reaches the database a little later (see
    /// `inline_sqlite`). The messages given must not repeat a (room, user, client id).
    pub async fn insert_messages(
        &mut self,
        messages: &[NewMessage],
    ) -> Result<Option<Vec<ChatMessage>>, DbErr> {
        if messages.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let plan = GroupPlan::new(messages);
        match self.writes()? {
            Some(inline) => inline.store(&plan, messages).await,
            None => {
                let last_seqs = store_group_generic(&self.db, &plan, messages).await?;
                Ok(last_seqs.map(|last_seqs| plan.stored(messages, &last_seqs)))
            }
        }
    }

    /// Stores one message on its own: a retry (same room, user and client
    /// id) gets the stored copy, and changes nothing.
    pub async fn insert_one(&mut self, message: &NewMessage) -> Result<Inserted, DbErr> {
        let NewMessage { room_id, user_id, client_msg_id, body } = message;
        self.writes()?;
        let Some(inline) = &mut self.inline else {
            return insert_message(&self.db, *room_id, user_id, client_msg_id, body).await;
        };
        if let Some(copy) = inline.logged_copy(message) {
            return Ok(Inserted { message: copy, is_new: false });
        }
        if let Some(stored) = find_message(&self.db, *room_id, user_id, client_msg_id).await? {
            return Ok(Inserted { message: stored, is_new: false });
        }
        let one = std::slice::from_ref(message);
        match inline.store(&GroupPlan::new(one), one).await? {
            Some(mut stored) => Ok(Inserted { message: stored.remove(0), is_new: true }),
            // This store is the file's only writer of messages.
            None => Err(DbErr::Custom("the message was stored meanwhile by another writer".to_owned())),
        }
    }

    /// Whether messages are stored in the message log and not yet in the
    /// database (see `inline_sqlite`): readers of the database must wait
    /// for [`MessageStore::fill`].
    pub fn has_logged(&self) -> bool {
        self.inline.as_ref().is_some_and(|inline| inline.has_logged())
    }

    /// How long until the message log's messages are due in the database.
    pub fn fill_due_in(&self) -> Option<Duration> {
        self.inline.as_ref().and_then(|inline| inline.fill_due_in())
    }

    /// Puts the message log's messages into the database if due (one try).
    /// True if it did.
    pub fn fill_if_due(&mut self) -> Result<bool, DbErr> {
        match &mut self.inline {
            Some(inline) => inline.fill_if_due(),
            None => Ok(false),
        }
    }

    /// Puts the message log's messages into the database now: afterwards
    /// the database has every message stored so far.
    pub async fn fill(&mut self) -> Result<(), DbErr> {
        match &mut self.inline {
            Some(inline) => inline.fill().await,
            None => Ok(()),
        }
    }

    /// Folds SQLite's write-ahead log back into the database file when
    /// enough was written (see `inline_sqlite`): the writer calls it once
    /// what it stored is published (its own commits never checkpoint; the
    /// pool's do only past a longer log). True if the writer had to wait
    /// for a part of it.
    pub async fn checkpoint_if_due(&mut self) -> bool {
        match &mut self.inline {
            Some(inline) => inline.checkpoint_if_due().await,
            None => false,
        }
    }
}

/// The file of a SQLite database (`None` for PostgreSQL or a database in
/// memory).
async fn sqlite_file(db: &DatabaseConnection) -> Result<Option<std::path::PathBuf>, DbErr> {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return Ok(None);
    }
    let list = sea_orm::Statement::from_string(sea_orm::DatabaseBackend::Sqlite, "PRAGMA database_list");
    for row in db.query_all(list).await? {
        let name: String = row.try_get_by_index(1)?;
        let file: String = row.try_get_by_index(2)?;
        if name == "main" && !file.is_empty() {
            return Ok(Some(file.into()));
        }
    }
    Ok(None)
}

/// What a group of messages does to its rooms.
struct GroupPlan {
    /// Messages per room, by room id (ascending: the order rows are locked).
    counts: std::collections::BTreeMap<i64, i64>,
    created_at: chrono::DateTime<Utc>,
}

impl GroupPlan {
    fn new(messages: &[NewMessage]) -> Self {
        let mut counts = std::collections::BTreeMap::new();
        for message in messages {
            *counts.entry(message.room_id).or_default() += 1;
        }
        GroupPlan { counts, created_at: message_time() }
    }

    fn room_ids(&self) -> Vec<i64> {
        self.counts.keys().copied().collect()
    }

    /// How far below its room's new `last_seq` each message's seq is: the
    /// number of that room's messages after it in the group.
    fn below_last(&self, messages: &[NewMessage]) -> Vec<i64> {
        let mut left: std::collections::HashMap<i64, i64> = self.counts.clone().into_iter().collect();
        messages
            .iter()
            .map(|m| {
                let left = left.get_mut(&m.room_id).expect("every room of the group is counted");
                *left -= 1;
                *left
            })
            .collect()
    }

    /// The seq of each message, given each room's `last_seq` after the
    /// bump: a room's messages take the numbers just below it, in order.
    fn seqs(&self, messages: &[NewMessage], last_seqs: &[(i64, i64)]) -> Vec<i64> {
        let last: std::collections::HashMap<i64, i64> = last_seqs.iter().copied().collect();
        messages
            .iter()
            .zip(self.below_last(messages))
            .map(|(m, below)| last.get(&m.room_id).expect("every room of the group was bumped") - below)
            .collect()
    }

    fn stored(&self, messages: &[NewMessage], last_seqs: &[(i64, i64)]) -> Vec<ChatMessage> {
        let at_ms = self.created_at.timestamp_millis();
        messages
            .iter()
            .zip(self.seqs(messages, last_seqs))
            .map(|(m, seq)| ChatMessage {
                seq,
                user_id: m.user_id.clone(),
                body: m.body.clone(),
                client_msg_id: m.client_msg_id.clone(),
                at_ms,
            })
            .collect()
    }

    /// Checks that every room of the group exists (was bumped).
    fn check_bumped(&self, last_seqs: &[(i64, i64)]) -> Result<(), DbErr> {
        match self.counts.keys().find(|id| !last_seqs.iter().any(|(room_id, _)| room_id == *id)) {
            Some(&missing) => Err(missing_room(missing)),
            None => Ok(()),
        }
    }
}

/// The error for a group naming a room that does not exist.
fn missing_room(room_id: i64) -> DbErr {
    DbErr::RecordNotFound(format!("room {room_id}"))
}

/// The group through sea-orm (PostgreSQL, SQLite in memory): row locks first, in one order on
/// every node, so two nodes storing into the same rooms queue up instead of
/// deadlocking.
async fn store_group_generic(
    db: &DatabaseConnection,
    plan: &GroupPlan,
    messages: &[NewMessage],
) -> Result<Option<Vec<(i64, i64)>>, DbErr> {
    let txn = db.begin().await?;
    room::Entity::find()
        .select_only()
        .column(room::Column::Id)
        .filter(room::Column::Id.is_in(plan.room_ids()))
        .order_by_asc(room::Column::Id)
        .lock_exclusive()
        .into_tuple::<i64>()
        .all(&txn)
        .await?;
    let bump = plan.counts.iter().fold(None::<sea_orm::sea_query::CaseStatement>, |case, (&room_id, &n)| {
        let when = room::Column::Id.eq(room_id);
        Some(match case {
            None => Expr::case(when, n),
            Some(case) => case.case(when, n),
        })
    });
    let bump = bump.expect("a group has at least one room").finally(0);
    let last_seqs: Vec<(i64, i64)> = room::Entity::update_many()
        .col_expr(room::Column::LastSeq, Expr::col(room::Column::LastSeq).add(bump))
        .filter(room::Column::Id.is_in(plan.room_ids()))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .map(|room| (room.id, room.last_seq))
        .collect();
    plan.check_bumped(&last_seqs)?;
    let rows = messages.iter().zip(plan.seqs(messages, &last_seqs)).map(|(m, seq)| message::ActiveModel {
        room_id: Set(m.room_id),
        seq: Set(seq),
        user_id: Set(m.user_id.clone()),
        body: Set(m.body.clone()),
        client_msg_id: Set(m.client_msg_id.clone()),
        created_at: Set(plan.created_at),
        ..Default::default()
    });
    let once =
        OnConflict::columns([message::Column::RoomId, message::Column::UserId, message::Column::ClientMsgId])
            .do_nothing()
            .to_owned();
    let inserted = message::Entity::insert_many(rows)
        .on_conflict(once)
        .do_nothing()
        .exec_without_returning(&txn)
        .await?;
    match inserted {
        TryInsertResult::Inserted(n) if n == messages.len() as u64 => {
            txn.commit().await?;
            Ok(Some(last_seqs))
        }
        _ => {
            txn.rollback().await?;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fresh() -> DatabaseConnection {
        use migration::MigratorTrait;
        let db =
            connect("sqlite::memory:", PoolSettings { max_connections: 1, timeout: Duration::from_secs(5) })
                .await
                .unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    #[tokio::test]
    async fn rooms_and_members_are_created_once() {
        let db = fresh().await;
        let a = ensure_room(&db, "game_1").await.unwrap();
        let b = ensure_room(&db, "game_1").await.unwrap();
        assert_eq!(a.id, b.id);
        ensure_user(&db, "john").await.unwrap();
        ensure_user(&db, "john").await.unwrap();
        assert!(add_member(&db, a.id, "john").await.unwrap());
        assert!(!add_member(&db, a.id, "john").await.unwrap());
        assert_eq!(members(&db, a.id).await.unwrap(), ["john"]);
        assert!(remove_member(&db, a.id, "john").await.unwrap());
        assert!(!remove_member(&db, a.id, "john").await.unwrap());
        assert!(members(&db, a.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn messages_get_consecutive_seqs_per_room_and_retries_are_stored_once() {
        let db = fresh().await;
        let r1 = ensure_room(&db, "r1").await.unwrap();
        let r2 = ensure_room(&db, "r2").await.unwrap();
        ensure_user(&db, "ana").await.unwrap();

        let m1 = insert_message(&db, r1.id, "ana", "c1", "one").await.unwrap();
        let m2 = insert_message(&db, r1.id, "ana", "c2", "two").await.unwrap();
        let other = insert_message(&db, r2.id, "ana", "c1", "elsewhere").await.unwrap();
        assert_eq!((m1.message.seq, m2.message.seq, other.message.seq), (1, 2, 1));
        assert!(m1.is_new && m2.is_new && other.is_new);

        let retry = insert_message(&db, r1.id, "ana", "c1", "one").await.unwrap();
        assert!(!retry.is_new);
        assert_eq!(retry.message, m1.message);

        let m3 = insert_message(&db, r1.id, "ana", "c3", "three").await.unwrap();
        assert_eq!(m3.message.seq, 3, "a retry must not use up a seq");
        let history = messages_after(&db, r1.id, 0, 100).await.unwrap();
        assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(messages_after(&db, r1.id, 2, 100).await.unwrap()[0].body, "three");
    }

    /// A SQLite file with a pool of two, removed on drop: the message
    /// store writes through a connection of its own, the pool serves the
    /// rest.
    struct FileDb(tempfile::TempDir);

    impl FileDb {
        async fn open() -> (Self, DatabaseConnection) {
            use migration::MigratorTrait;
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
            let db = connect(&url, PoolSettings { max_connections: 2, timeout: Duration::from_secs(5) })
                .await
                .unwrap();
            migration::Migrator::up(&db, None).await.unwrap();
            (FileDb(dir), db)
        }

        /// A file holding room "r" (its id) and user "ana".
        async fn with_room() -> (Self, DatabaseConnection, i64) {
            let (file, db) = Self::open().await;
            let room = ensure_room(&db, "r").await.unwrap().id;
            ensure_user(&db, "ana").await.unwrap();
            (file, db, room)
        }
    }

    fn ana_in(room_id: i64) -> impl Fn(&str) -> NewMessage {
        move |id| NewMessage { room_id, user_id: "ana".into(), client_msg_id: id.into(), body: "b".into() }
    }

    #[tokio::test]
    async fn a_group_takes_consecutive_seqs_per_room_and_a_group_with_a_retry_changes_nothing() {
        groups_take_consecutive_seqs_and_a_retry_changes_nothing(fresh().await).await;
    }

    #[tokio::test]
    async fn groups_on_a_file_go_through_the_message_log_into_the_database() {
        let (_file, db) = FileDb::open().await;
        groups_take_consecutive_seqs_and_a_retry_changes_nothing(db.clone()).await;
        let room = ensure_room(&db, "r1").await.unwrap().id;
        let in_database = messages_after(&db, room, 0, 100).await.unwrap();
        let mut store = MessageStore::open(db.clone()).await;
        assert!(store.inline.is_some(), "a file: the store writes through its own connection and log");
        let mut other = MessageStore::open(db.clone()).await;
        assert!(other.inline.is_none(), "a second store on the file finds the log locked");
        assert!(other.insert_messages(&[ana_in(room)("elsewhere")]).await.is_err(), "and stores nothing");

        let new = ana_in(room);
        let first = store.insert_messages(&[new("k1"), new("k2")]).await.unwrap().unwrap();
        assert_eq!(first[0].seq, in_database.last().unwrap().seq + 1);
        assert!(store.has_logged());
        assert_eq!(messages_after(&db, room, 0, 100).await.unwrap(), in_database, "in the log only");
        assert_eq!(store.insert_messages(&[new("k1")]).await.unwrap(), None, "a retry of a logged message");
        let retry = store.insert_one(&new("k2")).await.unwrap();
        assert_eq!((retry.message, retry.is_new), (first[1].clone(), false));

        store.fill().await.unwrap();
        assert!(!store.has_logged());
        let history = messages_after(&db, room, 0, 100).await.unwrap();
        assert_eq!(&history[history.len() - 2..], first, "read back through the pool as stored");
        let retry = store.insert_one(&new("k1")).await.unwrap();
        assert_eq!((retry.message, retry.is_new), (first[0].clone(), false), "a retry of a stored message");
        let single = store.insert_one(&new("k3")).await.unwrap();
        assert_eq!((single.message.seq, single.is_new), (first[1].seq + 1, true));

        drop(store);
        let taken_over = other.insert_messages(&[new("k4")]).await.unwrap().unwrap();
        assert_eq!(taken_over[0].seq, single.message.seq + 1, "the other store goes on once the log is free");
    }

    #[tokio::test]
    async fn what_the_log_holds_when_the_server_stops_is_stored_at_the_next_start() {
        let (file, db) = FileDb::open().await;
        let room = ensure_room(&db, "r").await.unwrap().id;
        let other = ensure_room(&db, "o").await.unwrap().id;
        ensure_user(&db, "ana").await.unwrap();
        let mut store = MessageStore::open(db.clone()).await;
        let filled = store.insert_messages(&[ana_in(room)("a")]).await.unwrap().unwrap();
        store.fill().await.unwrap();
        let logged = store.insert_messages(&[ana_in(room)("b"), ana_in(other)("c")]).await.unwrap().unwrap();
        // Stopped without filling the database (killed): the log holds
        // them, and the first, already in, once more (stopped between the
        // commit and emptying the log), then a record cut short.
        drop(store);
        let log = file.0.path().join("chat.db-messages");
        let mut extra = Vec::new();
        message_log::encode(&mut extra, room, &filled[0]);
        message_log::encode(&mut extra, room, &ChatMessage { seq: 9, ..filled[0].clone() });
        extra.truncate(extra.len() - 5);
        let mut bytes = std::fs::read(&log).unwrap();
        bytes.extend_from_slice(&extra);
        std::fs::write(&log, bytes).unwrap();
        assert_eq!(messages_after(&db, room, 0, 10).await.unwrap(), filled);

        let mut store = MessageStore::open(db.clone()).await;
        assert!(store.inline.is_some());
        assert_eq!(messages_after(&db, room, 0, 10).await.unwrap(), [filled[0].clone(), logged[0].clone()]);
        assert_eq!(messages_after(&db, other, 0, 10).await.unwrap(), [logged[1].clone()]);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0, "the log starts again");
        let next = store.insert_messages(&[ana_in(room)("d")]).await.unwrap().unwrap();
        assert_eq!(next[0].seq, 3, "seqs go on from the messages the log held");
        assert_eq!(store.insert_messages(&[ana_in(other)("c")]).await.unwrap(), None, "c is stored");
    }

    #[tokio::test]
    async fn a_replay_leaves_out_a_message_of_a_room_the_database_lacks() {
        let (file, db, room) = FileDb::with_room().await;
        // A log written beside another database (this one restored from
        // elsewhere): one of its rooms is not here.
        let message = |seq, id: &str| ChatMessage {
            seq,
            user_id: "ana".into(),
            body: "b".into(),
            client_msg_id: id.into(),
            at_ms: 1_700_000_000_000,
        };
        let mut records = Vec::new();
        message_log::encode(&mut records, room, &message(1, "here"));
        message_log::encode(&mut records, room + 1000, &message(1, "elsewhere"));
        std::fs::write(file.0.path().join("chat.db-messages"), records).unwrap();

        let mut store = MessageStore::open(db.clone()).await;
        assert_eq!(messages_after(&db, room, 0, 10).await.unwrap(), [message(1, "here")]);
        assert!(messages_after(&db, room + 1000, 0, 10).await.unwrap().is_empty(), "left out");
        let next = store.insert_messages(&[ana_in(room)("next")]).await.unwrap().unwrap();
        assert_eq!(next[0].seq, 2);
    }

    #[tokio::test]
    async fn a_retry_is_found_whether_its_room_was_read_into_memory_or_left_out() {
        let (file, db) = FileDb::open().await;
        let (small, big) =
            (ensure_room(&db, "small").await.unwrap().id, ensure_room(&db, "big").await.unwrap().id);
        ensure_user(&db, "ana").await.unwrap();
        insert_message(&db, small, "ana", "s0", "b").await.unwrap();
        for id in ["b0", "b1", "b2"] {
            insert_message(&db, big, "ana", id, "b").await.unwrap();
        }
        let limits = sent_keys::KeyLimits { read_at_most: 2, keep_at_most: 4 };
        let inline = inline_sqlite::InlineSqlite::open_with(&file.0.path().join("chat.db"), limits).unwrap();
        let mut store = MessageStore { db: db.clone(), inline: Some(inline), refused: None };
        let (in_small, in_big) = (ana_in(small), ana_in(big));
        let seqs =
            |stored: Option<Vec<ChatMessage>>| stored.unwrap().iter().map(|m| m.seq).collect::<Vec<_>>();

        // The small room is read (one key), the big one left out (asked).
        assert_eq!(seqs(store.insert_messages(&[in_small("n1"), in_big("n1")]).await.unwrap()), [2, 4]);
        for retry in [in_small("s0"), in_big("b1"), in_small("n1"), in_big("n1")] {
            assert_eq!(store.insert_messages(std::slice::from_ref(&retry)).await.unwrap(), None, "{retry:?}");
        }
        store.fill().await.unwrap();
        assert_eq!(store.insert_messages(&[in_small("n1")]).await.unwrap(), None, "found in the database");

        // Past four keys kept, the small room is left out too: still found.
        assert_eq!(seqs(store.insert_messages(&[in_small("n2"), in_small("n3")]).await.unwrap()), [3, 4]);
        assert_eq!(seqs(store.insert_messages(&[in_small("n4")]).await.unwrap()), [5]);
        for retry in ["s0", "n1", "n4"] {
            assert_eq!(store.insert_messages(&[in_small(retry)]).await.unwrap(), None, "{retry}");
        }
        store.fill().await.unwrap();
        assert_eq!(store.insert_messages(&[in_small("n4")]).await.unwrap(), None);
        assert_eq!(seqs(store.insert_messages(&[in_small("n5")]).await.unwrap()), [6]);
        store.fill().await.unwrap();
        assert_eq!(messages_after(&db, small, 0, 10).await.unwrap().len(), 6, "each stored once");
    }

    #[tokio::test]
    async fn filling_the_database_waits_for_another_connections_write_without_blocking_the_runtime() {
        let (_file, db, room) = FileDb::with_room().await;
        let mut store = MessageStore::open(db.clone()).await;
        assert!(store.inline.is_some());
        // A transaction of the pool's holds SQLite's write lock.
        let txn = db.begin().await.unwrap();
        ensure_user(&txn, "bob").await.unwrap();
        let new = ana_in(room);
        let stored = store.insert_messages(&[new("w1")]).await.unwrap().unwrap();
        assert_eq!(stored[0].seq, 1, "the log takes a group while another connection writes");
        assert!(!store.fill_if_due().unwrap(), "not due yet");
        let mut filling = std::pin::pin!(store.fill());
        let still_waiting = tokio::time::timeout(Duration::from_millis(50), filling.as_mut()).await;
        assert!(still_waiting.is_err(), "filling waits while the other write is open");
        txn.commit().await.unwrap();
        filling.await.unwrap();
        assert_eq!(messages_after(&db, room, 0, 10).await.unwrap(), stored);
    }

    /// Stores `n` messages of ana's into a room, `prefix0`, `prefix1`, …
    async fn store_many(store: &mut MessageStore, room: i64, prefix: &str, n: usize) -> Vec<ChatMessage> {
        let group: Vec<NewMessage> = (0..n).map(|i| ana_in(room)(&format!("{prefix}{i}"))).collect();
        store.insert_messages(&group).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_fill_goes_in_steps_while_new_groups_go_to_the_other_log() {
        let (file, db, room) = FileDb::with_room().await;
        let mut store = MessageStore::open(db.clone()).await;
        let size = |name: &str| std::fs::metadata(file.0.path().join(name)).map_or(0, |m| m.len());
        let first = store_many(&mut store, room, "a", 150).await;
        assert!(size("chat.db-messages") > 0);

        let inline = store.inline.as_mut().unwrap();
        assert!(!inline.step(64).unwrap(), "64 of 150 rows: not committed");
        assert!(inline.is_filling());
        assert!(messages_after(&db, room, 0, 200).await.unwrap().is_empty(), "nothing committed yet");

        // A group stored meanwhile goes to the other log; retries of the
        // messages being filled are found.
        let second = store_many(&mut store, room, "b", 2).await;
        assert_eq!((second[0].seq, second[1].seq), (151, 152));
        assert!(size("chat.db-messages-2") > 0, "the new group is in the second log");
        assert_eq!(store.insert_messages(&[ana_in(room)("a3")]).await.unwrap(), None);
        let retry = store.insert_one(&ana_in(room)("a100")).await.unwrap();
        assert_eq!((retry.message, retry.is_new), (first[100].clone(), false));
        assert!(!store.checkpoint_if_due().await, "no checkpoint in the middle of a fill");

        let inline = store.inline.as_mut().unwrap();
        assert!(!inline.step(64).unwrap(), "128 of 150");
        assert!(inline.step(64).unwrap(), "the last 22 rows, and the commit");
        assert!(!inline.is_filling());
        assert_eq!(messages_after(&db, room, 0, 200).await.unwrap(), first, "the batch, not the new group");
        assert_eq!(size("chat.db-messages"), 0, "the filled log starts again");
        assert!(size("chat.db-messages-2") > 0, "the other still holds the new group");
        assert!(store.has_logged());

        store.fill().await.unwrap();
        assert!(!store.has_logged());
        assert_eq!(messages_after(&db, room, 150, 10).await.unwrap(), second);
        assert_eq!((size("chat.db-messages"), size("chat.db-messages-2")), (0, 0));
        let next = store_many(&mut store, room, "c", 1).await;
        assert_eq!(next[0].seq, 153);
    }

    #[tokio::test]
    async fn a_fill_that_fails_midway_leaves_nothing_in_and_starts_over() {
        let (_file, db, room) = FileDb::with_room().await;
        let mut store = MessageStore::open(db.clone()).await;
        let stored = store_many(&mut store, room, "m", 100).await;
        // A row the fill will run into (only this store writes messages;
        // a stand-in for a failing disk).
        let intruder = format!(
            "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) \
             VALUES ({room}, 80, 'ana', 'x', 'intruder', '2026-01-01T00:00:00Z')"
        );
        db.execute_unprepared(&intruder).await.unwrap();

        let inline = store.inline.as_mut().unwrap();
        assert!(!inline.step(64).unwrap());
        assert!(inline.step(64).is_err(), "seq 80 is taken");
        assert!(!inline.is_filling(), "rolled back");
        let in_database = messages_after(&db, room, 0, 200).await.unwrap();
        assert_eq!(in_database.len(), 1, "the fill's first 64 rows are gone too");
        assert!(store.has_logged(), "the messages are still in the log");

        db.execute_unprepared("DELETE FROM message WHERE client_msg_id = 'intruder'").await.unwrap();
        store.fill().await.unwrap();
        assert_eq!(messages_after(&db, room, 0, 200).await.unwrap(), stored);
    }

    #[tokio::test]
    async fn both_logs_are_stored_at_the_next_start_after_a_stop_in_the_middle_of_a_fill() {
        let (_file, db, room) = FileDb::with_room().await;
        let mut store = MessageStore::open(db.clone()).await;
        let mut stored = store_many(&mut store, room, "a", 100).await;
        assert!(!store.inline.as_mut().unwrap().step(64).unwrap());
        stored.extend(store_many(&mut store, room, "b", 10).await);
        drop(store);
        assert!(messages_after(&db, room, 0, 200).await.unwrap().is_empty(), "the open fill was rolled back");

        let mut store = MessageStore::open(db.clone()).await;
        assert_eq!(messages_after(&db, room, 0, 200).await.unwrap(), stored);
        assert_eq!(store_many(&mut store, room, "c", 1).await[0].seq, 111);
        assert_eq!(store.insert_messages(&[ana_in(room)("b3")]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_group_for_a_missing_room_or_user_changes_nothing() {
        let (_file, on_file) = FileDb::open().await;
        for (db, inline) in [(fresh().await, false), (on_file, true)] {
            let room = ensure_room(&db, "r").await.unwrap().id;
            ensure_user(&db, "ana").await.unwrap();
            let mut store = MessageStore::open(db.clone()).await;
            assert_eq!(store.inline.is_some(), inline);
            let good = ana_in(room)("ok");
            let elsewhere = NewMessage { room_id: room + 100, ..ana_in(room)("lost") };
            assert!(matches!(
                store.insert_messages(&[good.clone(), elsewhere]).await,
                Err(DbErr::RecordNotFound(_))
            ));
            let stranger = NewMessage { user_id: "nobody".into(), ..ana_in(room)("stranger") };
            assert!(store.insert_messages(&[good.clone(), stranger]).await.is_err(), "no such user");
            assert!(messages_after(&db, room, 0, 10).await.unwrap().is_empty());
            let stored = store.insert_messages(&[good]).await.unwrap().unwrap();
            assert_eq!(stored[0].seq, 1, "the failed groups used up no seq");
        }
    }

    #[tokio::test]
    async fn the_write_ahead_log_is_folded_back_and_restarted_while_groups_are_written() {
        let (file, db) = FileDb::open().await;
        let mut rooms = Vec::new();
        for i in 0..50 {
            rooms.push(ensure_room(&db, &format!("r{i}")).await.unwrap().id);
        }
        ensure_user(&db, "ana").await.unwrap();
        let mut store = MessageStore::open(db.clone()).await;
        assert!(store.inline.is_some());
        let mut written = 0;
        let mut written_while_copying = 0;
        let mut waited = 0;
        let started = std::time::Instant::now();
        // Groups spread over many rooms (pages all over the indexes) for
        // a few seconds: without checkpoints the log would pass 200 MB
        // (checkpoints start at 16 MiB of it, and past about 20 MiB the
        // writer's fills wait for the checkpoint's thread).
        while started.elapsed() < Duration::from_millis(2500) {
            let group: Vec<NewMessage> = (0..10)
                .map(|i| ana_in(rooms[(written + i * 7) % rooms.len()])(&format!("m{written}-{i}")))
                .collect();
            let copying = store.inline.as_ref().unwrap().is_copying();
            store.insert_messages(&group).await.unwrap().unwrap();
            written_while_copying += usize::from(copying);
            store.fill_if_due().unwrap();
            waited += usize::from(store.checkpoint_if_due().await);
            written += 1;
        }
        // The log is copied back beside the writer, which never waits.
        assert!(written_while_copying > 0, "no group was written while a checkpoint copied");
        assert_eq!(waited, 0, "the writer waited for a checkpoint");
        let size = |name: &str| std::fs::metadata(file.0.path().join(name)).map_or(0, |m| m.len());
        // Messages reach the database file itself only through
        // checkpoints (the writer's commits make none, and nothing else
        // commits here), and the log is reused from its start after each.
        assert!(
            size("chat.db") > 1024 * 1024,
            "the database file holds the messages: {} bytes",
            size("chat.db")
        );
        assert!(
            size("chat.db-wal") < 28 * 1024 * 1024,
            "the log was restarted: {} bytes",
            size("chat.db-wal")
        );
        store.fill().await.unwrap();
        let mut stored = 0;
        for &room in &rooms {
            stored += messages_after(&db, room, 0, 1_000_000).await.unwrap().len();
        }
        assert_eq!(stored, written * 10);
    }

    async fn groups_take_consecutive_seqs_and_a_retry_changes_nothing(db: DatabaseConnection) {
        let mut store = MessageStore::open(db.clone()).await;
        let r1 = ensure_room(&db, "r1").await.unwrap().id;
        let r2 = ensure_room(&db, "r2").await.unwrap().id;
        ensure_user(&db, "ana").await.unwrap();
        insert_message(&db, r1, "ana", "before", "first").await.unwrap();
        let new = |room_id, id: &str| NewMessage {
            room_id,
            user_id: "ana".into(),
            client_msg_id: id.into(),
            body: format!("text {id}"),
        };
        let group = [new(r1, "a"), new(r2, "b"), new(r1, "c"), new(r2, "d"), new(r1, "e")];
        let stored = store.insert_messages(&group).await.unwrap().expect("nothing stored before");
        let seqs: Vec<(i64, &str)> = stored.iter().map(|m| (m.seq, m.client_msg_id.as_str())).collect();
        assert_eq!(seqs, [(2, "a"), (1, "b"), (3, "c"), (2, "d"), (4, "e")]);
        store.fill().await.unwrap();
        let in_r1 = messages_after(&db, r1, 0, 10).await.unwrap();
        assert_eq!(
            in_r1.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
            ["first", "text a", "text c", "text e"]
        );
        assert_eq!(in_r1[1], stored[0], "what the group returns is what was stored");

        let with_retry = [new(r2, "f"), new(r1, "c")];
        assert_eq!(store.insert_messages(&with_retry).await.unwrap(), None);
        assert_eq!(messages_after(&db, r2, 0, 10).await.unwrap().len(), 2, "f was rolled back");
        let next = store.insert_messages(&[new(r2, "f")]).await.unwrap().unwrap();
        assert_eq!(next[0].seq, 3, "the rolled back group used up no seq");
    }

    #[tokio::test]
    async fn messages_before_returns_the_newest_page_below_the_cursor_oldest_first() {
        let db = fresh().await;
        let room = ensure_room(&db, "paged").await.unwrap();
        let other = ensure_room(&db, "other").await.unwrap();
        ensure_user(&db, "ana").await.unwrap();
        for i in 1..=7 {
            insert_message(&db, room.id, "ana", &format!("c{i}"), &format!("m{i}")).await.unwrap();
        }
        insert_message(&db, other.id, "ana", "x", "elsewhere").await.unwrap();
        let seqs = |page: Vec<ChatMessage>| page.into_iter().map(|m| m.seq).collect::<Vec<_>>();

        assert_eq!(seqs(messages_before(&db, room.id, i64::MAX, 3).await.unwrap()), [5, 6, 7]);
        assert_eq!(seqs(messages_before(&db, room.id, 5, 3).await.unwrap()), [2, 3, 4]);
        assert_eq!(seqs(messages_before(&db, room.id, 2, 3).await.unwrap()), [1]);
        assert!(messages_before(&db, room.id, 1, 3).await.unwrap().is_empty());
        assert!(messages_before(&db, room.id, -5, 3).await.unwrap().is_empty());
        assert_eq!(seqs(messages_before(&db, other.id, i64::MAX, 3).await.unwrap()), [1]);
    }
}
