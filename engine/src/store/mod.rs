//! The store: rooms, users, members and messages, through sea-orm, on
//! SQLite (default) or PostgreSQL. Small functions that take a connection
//! and do one thing; [`MessageStore::store`] is where messages get their
//! `seq`.
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

pub mod blocks;
pub mod entities;
mod member_lists;
mod message_runs;
pub mod moderation;
mod sqlite_writer;

pub use member_lists::MemberLists;
pub use message_runs::{read as messages, Side};

use crate::protocol::{ChatMessage, Role};
use entities::{app_user, member, message, room};

/// How the server uses its database connections.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// Longest wait to connect, or for a free connection under load.
    pub timeout: Duration,
}

/// Opens the database named by `url` (`sqlite://file.db`, `sqlite::memory:`,
/// `postgres://…`). A SQLite file is created when missing and runs in WAL
/// mode, so readers never wait for the writer.
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
            .pragma("cache_size", "-1024");
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

/// Whether `user_id` has been recorded (entered or been added to a room).
pub async fn user_known(db: &impl ConnectionTrait, user_id: &str) -> Result<bool, DbErr> {
    Ok(app_user::Entity::find_by_id(user_id.to_owned()).one(db).await?.is_some())
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

/// Makes `user_id` (recorded first if new) a member of the room. Returns
/// `true` if they were not one already.
pub async fn add_member(db: &impl ConnectionTrait, room_id: i64, user_id: &str) -> Result<bool, DbErr> {
    ensure_user(db, user_id).await?;
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

/// The member's role as stored (set by the game's server API), or `None`
/// when `user_id` is not a member.
pub async fn member_role(
    db: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
) -> Result<Option<Role>, DbErr> {
    let found = member::Entity::find()
        .select_only()
        .column(member::Column::Role)
        .filter(member::Column::RoomId.eq(room_id))
        .filter(member::Column::UserId.eq(user_id))
        .into_tuple::<String>()
        .one(db)
        .await?;
    Ok(found.map(|role| role_of(&role)))
}

fn role_of(stored: &str) -> Role {
    if stored == "moderator" {
        Role::Moderator
    } else {
        Role::Player
    }
}

/// Every member of the room with their stored role, in the order they joined.
pub async fn member_roles(db: &impl ConnectionTrait, room_id: i64) -> Result<Vec<(String, Role)>, DbErr> {
    let rows = member::Entity::find()
        .select_only()
        .column(member::Column::UserId)
        .column(member::Column::Role)
        .filter(member::Column::RoomId.eq(room_id))
        .order_by_asc(member::Column::Id)
        .into_tuple::<(String, String)>()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(user_id, role)| (user_id, role_of(&role))).collect())
}

/// Stores a member's role; whether they are a member.
pub async fn set_member_role(
    db: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
    role: Role,
) -> Result<bool, DbErr> {
    let done = member::Entity::update_many()
        .col_expr(member::Column::Role, Expr::value(role_name(role)))
        .filter(member::Column::RoomId.eq(room_id))
        .filter(member::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}

fn role_name(role: Role) -> &'static str {
    if role == Role::Moderator {
        "moderator"
    } else {
        "player"
    }
}

/// What [`put_member`] changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMember {
    Added,
    RoleChanged,
    Unchanged,
}

/// Makes `user_id` a member with `role`, or gives a member that role: one
/// transaction, so a failure leaves neither half. It writes before it
/// reads anything (a SQLite transaction that read first may not write once
/// another connection has committed).
pub async fn put_member(
    db: &DatabaseConnection,
    room_id: i64,
    user_id: &str,
    role: Role,
) -> Result<PutMember, DbErr> {
    let txn = db.begin().await?;
    let added = add_member(&txn, room_id, user_id).await?;
    let name = role_name(role);
    let changed = member::Entity::update_many()
        .col_expr(member::Column::Role, Expr::value(name))
        .filter(member::Column::RoomId.eq(room_id))
        .filter(member::Column::UserId.eq(user_id))
        .filter(member::Column::Role.ne(name))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(match (added, changed.rows_affected > 0) {
        (true, _) => PutMember::Added,
        (false, true) => PutMember::RoleChanged,
        (false, false) => PutMember::Unchanged,
    })
}

/// Deletes a room and everything in it (members, messages, sanctions and
/// reports go with it: their foreign keys cascade).
pub async fn delete_room(db: &impl ConnectionTrait, room_id: i64) -> Result<(), DbErr> {
    room::Entity::delete_by_id(room_id).exec(db).await?;
    Ok(())
}

/// A room as the rooms' listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSummary {
    pub channel_id: String,
    pub members: i64,
    pub last_seq: i64,
    pub created_at: chrono::DateTime<Utc>,
    /// The newest message's (or moderation event's) time; `None`: none yet.
    pub last_message_at: Option<chrono::DateTime<Utc>>,
}

/// Up to `limit` rooms (channel id, room id) whose channel id sorts after `after`, in that order
/// (the database's: keyset paging on the unique index). One statement:
/// each room's members counted and its newest message found by index.
pub async fn list_rooms(
    db: &impl ConnectionTrait,
    after: &str,
    limit: u64,
) -> Result<Vec<RoomSummary>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT r.channel_id, r.last_seq, r.created_at, \
                (SELECT COUNT(*) FROM member m WHERE m.room_id = r.id) AS members, \
                (SELECT g.created_at FROM message g WHERE g.room_id = r.id ORDER BY g.seq DESC LIMIT 1) AS last_message_at \
         FROM room r WHERE r.channel_id > {} ORDER BY r.channel_id LIMIT {}",
        param(backend, 1),
        param(backend, 2)
    );
    // SQL's LIMIT is a signed 64-bit number.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = db
        .query_all(sea_orm::Statement::from_sql_and_values(backend, sql, [after.into(), limit.into()]))
        .await?;
    rows.iter()
        .map(|row| {
            Ok(RoomSummary {
                channel_id: row.try_get("", "channel_id")?,
                members: row.try_get("", "members")?,
                last_seq: row.try_get("", "last_seq")?,
                created_at: row.try_get("", "created_at")?,
                last_message_at: row.try_get("", "last_message_at")?,
            })
        })
        .collect()
}

/// Up to `limit` of the rooms `user_id` is a member of whose channel id
/// sorts after `after`, in that order, each with the member's role.
pub async fn user_rooms(
    db: &impl ConnectionTrait,
    user_id: &str,
    after: &str,
    limit: u64,
) -> Result<Vec<(String, Role)>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT r.channel_id, m.role FROM member m JOIN room r ON r.id = m.room_id \
         WHERE m.user_id = {} AND r.channel_id > {} ORDER BY r.channel_id LIMIT {}",
        param(backend, 1),
        param(backend, 2),
        param(backend, 3)
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let values = [user_id.into(), after.into(), limit.into()];
    let rows = db.query_all(sea_orm::Statement::from_sql_and_values(backend, sql, values)).await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "channel_id")?, role_of(&row.try_get::<String>("", "role")?))))
        .collect()
}

/// Up to `limit` rooms (channel id, room id) whose channel id sorts after `after`, in that
/// order, in which `user_id` has written a message not removed yet. Walks
/// the rooms, each a seek in the messages' (room, user) index.
pub async fn rooms_with_messages_of(
    db: &impl ConnectionTrait,
    user_id: &str,
    after: &str,
    limit: u64,
) -> Result<Vec<(String, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT r.channel_id, r.id FROM room r WHERE r.channel_id > {} AND EXISTS (SELECT 1 FROM message m \
         WHERE m.room_id = r.id AND m.user_id = {} AND m.removed_at IS NULL AND m.action IS NULL) \
         ORDER BY r.channel_id LIMIT {}",
        param(backend, 1),
        param(backend, 2),
        param(backend, 3)
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let values = [after.into(), user_id.into(), limit.into()];
    let rows = db.query_all(sea_orm::Statement::from_sql_and_values(backend, sql, values)).await?;
    rows.iter().map(|row| Ok((row.try_get("", "channel_id")?, row.try_get("", "id")?))).collect()
}

/// Up to `limit` of the messages `user_id` wrote in the room after
/// `after_seq` that still stand (not removed; no moderation events),
/// oldest first.
pub async fn messages_by(
    db: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<ChatMessage>, DbErr> {
    let rows = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::UserId.eq(user_id))
        .filter(message::Column::Seq.gt(after_seq))
        .filter(message::Column::RemovedAt.is_null())
        .filter(message::Column::Action.is_null())
        .order_by_asc(message::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(ChatMessage::from).collect())
}

/// Whether the database refused a write for want of disk space: SQLite's
/// "database or disk is full" (`SQLITE_FULL`, through the pool or the
/// writer's own connection), PostgreSQL's "No space left on device".
pub fn is_storage_full(err: &DbErr) -> bool {
    let text = err.to_string();
    text.contains("database or disk is full") || text.contains("No space left on device")
}

/// A statement's `n`th parameter as the backend writes it.
fn param(backend: sea_orm::DatabaseBackend, n: usize) -> String {
    if backend == sea_orm::DatabaseBackend::Postgres {
        format!("${n}")
    } else {
        format!("?{n}")
    }
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

/// The time a message is stored with: now, to the millisecond (what pages
/// are told). Finer, a time could read back different from what was
/// delivered live: PostgreSQL keeps microseconds, rounding, which can carry
/// into the next millisecond.
fn message_time() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

/// A message as stored (see [`MessageStore::store`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub message: ChatMessage,
    /// `false` when the same (user, client id) was stored before: the
    /// stored copy is returned and nothing changed.
    pub is_new: bool,
}

/// Stores one message through the pool, as a group of one (see
/// [`MessageStore::store`]): under the room's next `seq`, or, when the
/// same (room, user, client id) was stored before, its stored copy.
pub async fn insert_message(
    db: &DatabaseConnection,
    room_id: i64,
    user_id: &str,
    client_msg_id: &str,
    body: &str,
) -> Result<Inserted, DbErr> {
    let m = NewMessage {
        room_id,
        user_id: user_id.to_owned(),
        client_msg_id: client_msg_id.to_owned(),
        body: body.to_owned(),
        ..Default::default()
    };
    let at = message_time();
    if let Some(seqs) = store_group_through_pool(db, std::slice::from_ref(&m), at).await? {
        return Ok(Inserted { message: m.stored(seqs[0], at), is_new: true });
    }
    let stored = find_message(db, room_id, user_id, client_msg_id).await?;
    let stored = stored.ok_or_else(|| DbErr::RecordNotFound("the conflicting message".to_owned()))?;
    Ok(Inserted { message: stored, is_new: false })
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

/// A message to store with [`MessageStore::store`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewMessage {
    pub room_id: i64,
    pub user_id: String,
    pub client_msg_id: String,
    pub body: String,
    /// Posted by the game itself (see `ChatMessage::system`).
    pub system: bool,
}

impl NewMessage {
    /// The message as stored under `seq` at `at`.
    fn stored(&self, seq: i64, at: chrono::DateTime<Utc>) -> ChatMessage {
        ChatMessage {
            seq,
            user_id: self.user_id.clone(),
            body: self.body.clone(),
            client_msg_id: self.client_msg_id.clone(),
            at_ms: at.timestamp_millis(),
            system: self.system,
            ..Default::default()
        }
    }
}

/// Stores groups of messages: what the message writer (see
/// `server::writer`) stores through, a transaction a group.
///
/// On a SQLite file, through a thread and a connection of its own (see
/// `sqlite_writer`); on PostgreSQL, and on SQLite in memory (tests),
/// through the pool.
pub enum MessageStore {
    Sqlite(sqlite_writer::SqliteWriter),
    Pool(DatabaseConnection),
}

impl MessageStore {
    pub async fn open(db: DatabaseConnection) -> Self {
        match sqlite_file(&db).await {
            Ok(Some(path)) => match sqlite_writer::SqliteWriter::open(&path) {
                Ok(writer) => return MessageStore::Sqlite(writer),
                Err(err) => tracing::warn!(%err, "storing messages through the pool"),
            },
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(%err, "could not tell where the database is; storing messages through the pool")
            }
        }
        MessageStore::Pool(db)
    }

    /// Stores a group of messages (of any rooms), each under its room's
    /// next `seq` in the order given, and answers for each, in order: the
    /// stored message, its stored copy if it was stored before (a retry:
    /// same room, user and client id), or why it could not be stored.
    /// One transaction for the whole group when nothing in it was stored
    /// before, which is what lets the writer store tens of thousands of
    /// messages a second; otherwise message by message.
    pub async fn store(&self, group: Vec<NewMessage>) -> Vec<Result<Inserted, DbErr>> {
        match self {
            MessageStore::Sqlite(writer) => writer.store(group).await,
            MessageStore::Pool(db) => store_through_pool(db, &group).await,
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

/// The group in one transaction, or, when that fails (a retry in it, a
/// message that cannot be stored), each message in a transaction of its
/// own: one bad message fails alone.
async fn store_through_pool(db: &DatabaseConnection, group: &[NewMessage]) -> Vec<Result<Inserted, DbErr>> {
    if group.is_empty() {
        return Vec::new();
    }
    let at = message_time();
    match store_group_through_pool(db, group, at).await {
        Ok(Some(seqs)) => {
            return group
                .iter()
                .zip(seqs)
                .map(|(m, seq)| Ok(Inserted { message: m.stored(seq, at), is_new: true }))
                .collect();
        }
        Ok(None) => {}
        Err(err) => tracing::debug!(%err, "a group failed; storing its messages one by one"),
    }
    let mut outcomes = Vec::with_capacity(group.len());
    for m in group {
        outcomes.push(insert_message(db, m.room_id, &m.user_id, &m.client_msg_id, &m.body).await);
    }
    outcomes
}

/// The one rule for a room's last seq before new messages, as SQL over a
/// `room` row (`greatest` is the dialect's two-argument maximum): the
/// larger of `room.last_seq` and its greatest stored seq, so that a row
/// written by hand (a restore, a fix) that took the next seq without moving
/// `last_seq` is stepped over, never collided with.
fn seq_base_sql(greatest: &str) -> String {
    format!("{greatest}(last_seq, COALESCE((SELECT MAX(m.seq) FROM message m WHERE m.room_id = room.id), 0))")
}

fn seq_base(backend: sea_orm::DatabaseBackend) -> sea_orm::sea_query::SimpleExpr {
    Expr::cust(seq_base_sql(if backend == sea_orm::DatabaseBackend::Postgres { "GREATEST" } else { "max" }))
}

/// A group's messages per room, by room id ascending (the order rows are
/// locked in, the same on every node).
fn room_counts(group: &[NewMessage]) -> Vec<(i64, i64)> {
    let mut counts = std::collections::BTreeMap::new();
    for m in group {
        *counts.entry(m.room_id).or_default() += 1;
    }
    counts.into_iter().collect()
}

/// Each message's seq, given each room's `last_seq` after the group's
/// bump: a room's messages take the numbers just below it, in order.
/// `None` when a room of the group was not bumped (it does not exist).
fn seqs(group: &[NewMessage], last_seqs: &[(i64, i64)]) -> Option<Vec<i64>> {
    let mut next = std::collections::HashMap::new();
    for (room_id, count) in room_counts(group) {
        let (_, last) = last_seqs.iter().find(|(id, _)| *id == room_id)?;
        next.insert(room_id, last - count + 1);
    }
    let mut take = |room_id| {
        let seq = next.get_mut(&room_id).expect("every room of the group is counted");
        *seq += 1;
        *seq - 1
    };
    Some(group.iter().map(|m| take(m.room_id)).collect())
}

/// The group through sea-orm (PostgreSQL, SQLite in memory): row locks
/// first, in one order on every node, so two nodes storing into the same
/// rooms queue up instead of deadlocking. The seqs, or `None`, having
/// changed nothing, when something in the group was stored before.
async fn store_group_through_pool(
    db: &DatabaseConnection,
    group: &[NewMessage],
    at: chrono::DateTime<Utc>,
) -> Result<Option<Vec<i64>>, DbErr> {
    let counts = room_counts(group);
    let room_ids: Vec<i64> = counts.iter().map(|&(id, _)| id).collect();
    let txn = db.begin().await?;
    room::Entity::find()
        .select_only()
        .column(room::Column::Id)
        .filter(room::Column::Id.is_in(room_ids.clone()))
        .order_by_asc(room::Column::Id)
        .lock_exclusive()
        .into_tuple::<i64>()
        .all(&txn)
        .await?;
    let (&(first_room, first_count), rest) = counts.split_first().expect("a group has at least one message");
    let bump = rest
        .iter()
        .fold(Expr::case(room::Column::Id.eq(first_room), first_count), |case, &(room_id, n)| {
            case.case(room::Column::Id.eq(room_id), n)
        })
        .finally(0);
    let last_seqs: Vec<(i64, i64)> = room::Entity::update_many()
        .col_expr(room::Column::LastSeq, seq_base(db.get_database_backend()).add(bump))
        .filter(room::Column::Id.is_in(room_ids))
        .exec_with_returning(&txn)
        .await?
        .into_iter()
        .map(|room| (room.id, room.last_seq))
        .collect();
    let seqs =
        seqs(group, &last_seqs).ok_or_else(|| DbErr::RecordNotFound("a room of the group".to_owned()))?;
    let rows = group.iter().zip(&seqs).map(|(m, &seq)| message::ActiveModel {
        room_id: Set(m.room_id),
        seq: Set(seq),
        user_id: Set(m.user_id.clone()),
        body: Set(m.body.clone()),
        client_msg_id: Set(m.client_msg_id.clone()),
        created_at: Set(at),
        system: Set(m.system),
        ..Default::default()
    });
    let inserted = message::Entity::insert_many(rows)
        .on_conflict(once_per_client_id())
        .do_nothing()
        .exec_without_returning(&txn)
        .await?;
    if matches!(inserted, TryInsertResult::Inserted(n) if n == group.len() as u64) {
        txn.commit().await?;
        Ok(Some(seqs))
    } else {
        txn.rollback().await?;
        Ok(None)
    }
}

/// A message's (room, user, client id) is stored once: a retry conflicts.
fn once_per_client_id() -> OnConflict {
    OnConflict::columns([message::Column::RoomId, message::Column::UserId, message::Column::ClientMsgId])
        .do_nothing()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rooms_messages_take_the_seqs_below_its_new_last_seq_in_order() {
        let new = |room_id, id: &str| NewMessage {
            room_id,
            user_id: "ana".into(),
            client_msg_id: id.into(),
            body: String::new(),
            system: false,
        };
        let group = [new(2, "a"), new(1, "b"), new(2, "c"), new(2, "d"), new(1, "e")];
        assert_eq!(room_counts(&group), [(1, 2), (2, 3)], "by room id, the order rows are locked in");
        assert_eq!(seqs(&group, &[(2, 10), (1, 4)]), Some(vec![8, 3, 9, 10, 4]));
        assert_eq!(seqs(&group, &[(2, 10)]), None, "room 1 was not bumped: it does not exist");
    }

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
        assert_eq!(member_lists::tests::read_whole(&db, a.id).await.unwrap(), ["john"]);
        assert!(remove_member(&db, a.id, "john").await.unwrap());
        assert!(!remove_member(&db, a.id, "john").await.unwrap());
        assert!(member_lists::tests::read_whole(&db, a.id).await.unwrap().is_empty());
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
        let history = messages(&db, r1.id, Side::After, 0, 100).await.unwrap();
        assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(messages(&db, r1.id, Side::After, 2, 100).await.unwrap()[0].body, "three");
    }

    /// A SQLite file with a pool of two, removed on drop: the message
    /// store writes through a connection of its own, the pool serves the
    /// rest.
    struct FileDb {
        _dir: tempfile::TempDir,
    }

    impl FileDb {
        async fn open() -> (Self, DatabaseConnection) {
            use migration::MigratorTrait;
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
            let pool = |max_connections| PoolSettings { max_connections, timeout: Duration::from_secs(5) };
            // Migrated alone first, as the server does (see its startup).
            let migrating = connect(&url, pool(1)).await.unwrap();
            migration::Migrator::up(&migrating, None).await.unwrap();
            migrating.close().await.unwrap();
            (FileDb { _dir: dir }, connect(&url, pool(2)).await.unwrap())
        }
    }

    fn ana_in(room_id: i64) -> impl Fn(&str) -> NewMessage {
        move |id| NewMessage {
            room_id,
            user_id: "ana".into(),
            client_msg_id: id.into(),
            body: "b".into(),
            system: false,
        }
    }

    /// A file's database and an in-memory one: the two ways messages are
    /// stored (the writer's own thread, the pool).
    async fn both_stores() -> Vec<(Option<FileDb>, DatabaseConnection)> {
        let (file, on_file) = FileDb::open().await;
        vec![(Some(file), on_file), (None, fresh().await)]
    }

    fn seqs_and_ids(outcomes: &[Result<Inserted, DbErr>]) -> Vec<(i64, &str, bool)> {
        outcomes
            .iter()
            .map(|o| {
                let o = o.as_ref().expect("stored");
                (o.message.seq, o.message.client_msg_id.as_str(), o.is_new)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_group_takes_consecutive_seqs_per_room_and_a_retry_in_it_gets_its_stored_copy() {
        for (file, db) in both_stores().await {
            let store = MessageStore::open(db.clone()).await;
            assert_eq!(
                matches!(store, MessageStore::Sqlite(_)),
                file.is_some(),
                "a file gets its own writer"
            );
            let r1 = ensure_room(&db, "r1").await.unwrap().id;
            let r2 = ensure_room(&db, "r2").await.unwrap().id;
            ensure_user(&db, "ana").await.unwrap();
            insert_message(&db, r1, "ana", "before", "first").await.unwrap();
            let new = |room_id, id: &str| NewMessage {
                room_id,
                user_id: "ana".into(),
                client_msg_id: id.into(),
                body: format!("text {id}"),
                system: false,
            };
            let group = vec![new(r1, "a"), new(r2, "b"), new(r1, "c"), new(r2, "d"), new(r1, "e")];
            let stored = store.store(group).await;
            assert_eq!(
                seqs_and_ids(&stored),
                [(2, "a", true), (1, "b", true), (3, "c", true), (2, "d", true), (4, "e", true)]
            );
            let in_r1 = messages(&db, r1, Side::After, 0, 10).await.unwrap();
            assert_eq!(
                in_r1.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
                ["first", "text a", "text c", "text e"]
            );
            assert_eq!(
                &in_r1[1],
                &stored[0].as_ref().unwrap().message,
                "what the group returns is what was stored"
            );

            // A retry of a stored message, a new one, and the new one twice.
            let with_retry = vec![new(r2, "f"), new(r1, "c"), new(r2, "f"), new(r1, "before")];
            let outcomes = store.store(with_retry).await;
            assert_eq!(
                seqs_and_ids(&outcomes),
                [(3, "f", true), (3, "c", false), (3, "f", false), (1, "before", false)]
            );
            assert_eq!(outcomes[1].as_ref().unwrap().message, in_r1[2], "the stored copy");
            assert_eq!(messages(&db, r2, Side::After, 0, 10).await.unwrap().len(), 3, "f stored once");
            let next = store.store(vec![new(r1, "g")]).await;
            assert_eq!(seqs_and_ids(&next), [(5, "g", true)], "retries use up no seq");
        }
    }

    #[tokio::test]
    async fn a_message_that_cannot_be_stored_fails_alone() {
        for (_file, db) in both_stores().await {
            let store = MessageStore::open(db.clone()).await;
            let room = ensure_room(&db, "r").await.unwrap().id;
            ensure_user(&db, "ana").await.unwrap();
            let ana = ana_in(room);
            let elsewhere = NewMessage { room_id: room + 100, ..ana("lost") };
            let stranger = NewMessage { user_id: "nobody".into(), ..ana("stranger") };
            let outcomes = store.store(vec![ana("ok"), elsewhere, stranger, ana("ok2")]).await;
            assert!(outcomes[1].is_err(), "no such room");
            assert!(outcomes[2].is_err(), "no such user");
            let stored: Vec<i64> =
                [&outcomes[0], &outcomes[3]].iter().map(|o| o.as_ref().unwrap().message.seq).collect();
            assert_eq!(stored, [1, 2], "the others are stored, with no gap");
            assert_eq!(messages(&db, room, Side::After, 0, 10).await.unwrap().len(), 2);
        }
    }

    #[tokio::test]
    async fn a_row_written_by_hand_is_stepped_over_and_other_rooms_go_on() {
        for (_file, db) in both_stores().await {
            let store = MessageStore::open(db.clone()).await;
            let room = ensure_room(&db, "r").await.unwrap().id;
            let other = ensure_room(&db, "o").await.unwrap().id;
            ensure_user(&db, "ana").await.unwrap();
            let first = store.store(vec![ana_in(room)("m1"), ana_in(other)("o1")]).await;
            assert_eq!(seqs_and_ids(&first), [(1, "m1", true), (1, "o1", true)]);
            // The next seq, taken by hand without moving the room's last_seq
            // (a restore, a fix).
            let by_hand = format!(
                "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) \
                 VALUES ({room}, 2, 'ana', 'by hand', 'hand', '2026-01-01T00:00:00Z')"
            );
            db.execute_unprepared(&by_hand).await.unwrap();
            let next = store.store(vec![ana_in(room)("m2"), ana_in(other)("o2"), ana_in(room)("m3")]).await;
            assert_eq!(seqs_and_ids(&next), [(3, "m2", true), (2, "o2", true), (4, "m3", true)]);
            let history: Vec<(i64, String)> = messages(&db, room, Side::After, 0, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.seq, m.body))
                .collect();
            assert_eq!(history.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
            assert_eq!(history[1].1, "by hand");
            let one = insert_message(&db, room, "ana", "m5", "b").await.unwrap();
            assert_eq!(one.message.seq, 5);
        }
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

        assert_eq!(seqs(messages(&db, room.id, Side::Before, i64::MAX, 3).await.unwrap()), [5, 6, 7]);
        assert_eq!(seqs(messages(&db, room.id, Side::Before, 5, 3).await.unwrap()), [2, 3, 4]);
        assert_eq!(seqs(messages(&db, room.id, Side::Before, 2, 3).await.unwrap()), [1]);
        assert!(messages(&db, room.id, Side::Before, 1, 3).await.unwrap().is_empty());
        assert!(messages(&db, room.id, Side::Before, -5, 3).await.unwrap().is_empty());
        assert_eq!(seqs(messages(&db, other.id, Side::Before, i64::MAX, 3).await.unwrap()), [1]);
    }

    /// A file's database with 50 rooms, its message store (the writer's
    /// own thread), and groups of four messages spread over the rooms.
    struct Busy {
        file: FileDb,
        store: MessageStore,
        rooms: Vec<i64>,
    }

    impl Busy {
        async fn open() -> Self {
            let (file, db) = FileDb::open().await;
            ensure_user(&db, "ana").await.unwrap();
            let mut rooms = Vec::new();
            for i in 0..50 {
                rooms.push(ensure_room(&db, &format!("r{i}")).await.unwrap().id);
            }
            let store = MessageStore::open(db).await;
            assert!(matches!(store, MessageStore::Sqlite(_)));
            Busy { file, store, rooms }
        }

        /// Stores the `n`th group.
        async fn store_group(&self, n: usize) {
            let rooms = &self.rooms;
            let messages =
                (0..4).map(|i| ana_in(rooms[(n * 7 + i * 13) % rooms.len()])(&format!("g{n}-{i}"))).collect();
            let outcomes = self.store.store(messages).await;
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        }

        /// The WAL's pages now, read without touching the database: the
        /// `mxFrame` of the wal-index header at the start of the -shm file
        /// (SQLite's documented WAL format), in native byte order.
        fn wal_pages(&self) -> u32 {
            use std::io::Read;
            let mut header = [0; 20];
            let shm = self.file._dir.path().join("chat.db-shm");
            std::fs::File::open(shm).unwrap().read_exact(&mut header).unwrap();
            u32::from_ne_bytes(header[16..20].try_into().unwrap())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_steady_load_the_wal_starts_over_instead_of_growing() {
        let busy = Busy::open().await;
        // Groups of a few messages over many rooms, back to back, until
        // the WAL has grown past the restart point and then started over.
        let (mut grown, mut started_over) = (false, false);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        for n in 0.. {
            busy.store_group(n).await;
            let pages = busy.wal_pages();
            grown |= pages > 4096;
            started_over = grown && pages < 4096;
            if started_over || std::time::Instant::now() > until {
                break;
            }
        }
        assert!(grown && started_over, "the WAL never started over (grown past 4,096 pages: {grown})");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_on_an_old_snapshot_never_holds_the_writer_up() {
        let busy = Busy::open().await;
        busy.store_group(0).await;
        // A backup's read: one snapshot, held while the writer goes on.
        let reader = rusqlite::Connection::open(busy.file._dir.path().join("chat.db")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader.query_row("SELECT COUNT(*) FROM message", [], |row| row.get(0)).unwrap();
        // Past the point where the writer starts the WAL over, and on for
        // several of its checks (every 200 ms), gently: no group waits for
        // the reader (it would, for the busy handler's 10 s, if the writer
        // waited for it).
        let (mut slowest, mut past_since) = (Duration::ZERO, None);
        for n in 1.. {
            let started = std::time::Instant::now();
            busy.store_group(n).await;
            slowest = slowest.max(started.elapsed());
            if busy.wal_pages() > 4096 {
                past_since.get_or_insert_with(std::time::Instant::now);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if past_since.is_some_and(|at| at.elapsed() > Duration::from_secs(1)) || n > 200_000 {
                break;
            }
        }
        assert!(past_since.is_some(), "the WAL never grew past the restart point");
        assert!(slowest < Duration::from_secs(5), "a group waited {slowest:?} for the reader");
        // Once the reader is done, the WAL starts over again.
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        let until = std::time::Instant::now() + Duration::from_secs(30);
        let mut n = 1_000_000;
        while busy.wal_pages() > 4096 {
            assert!(std::time::Instant::now() < until, "the WAL never started over");
            n += 1;
            busy.store_group(n).await;
        }
    }

    #[tokio::test]
    async fn a_full_database_is_told_apart_from_other_failures() {
        // Through the pool: the file may not grow by a page more.
        let db = fresh().await;
        let room = ensure_room(&db, "r").await.unwrap();
        ensure_user(&db, "ana").await.unwrap();
        insert_message(&db, room.id, "ana", "c1", "fits").await.unwrap();
        let duplicate = db.execute_unprepared("INSERT INTO room (channel_id, last_seq, created_at) SELECT channel_id, 0, created_at FROM room").await.unwrap_err();
        assert!(!is_storage_full(&duplicate), "{duplicate}");
        db.execute_unprepared("PRAGMA max_page_count = 1").await.unwrap();
        let full = insert_message(&db, room.id, "ana", "c2", &"x".repeat(20_000)).await.unwrap_err();
        assert!(is_storage_full(&full), "{full}");
        // Through the writer's own connection.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB); PRAGMA max_page_count = 2;").unwrap();
        let full = conn.execute("INSERT INTO t VALUES (zeroblob(100000))", []).unwrap_err();
        assert!(is_storage_full(&sqlite_writer::err(full)));
    }

    #[tokio::test]
    async fn a_rooms_sanctions_are_listed_while_they_hold() {
        use super::moderation::{self, room_sanctions, RemovedText, Sanction};
        use crate::protocol::moderation::Action;
        let db = fresh().await;
        let room = ensure_room(&db, "r").await.unwrap();
        ensure_user(&db, "mod").await.unwrap();
        let now = Utc::now();
        let minutes = |n: i64| chrono::Duration::minutes(n);
        let until_ms = Some((now + minutes(10)).timestamp_millis());
        let mute = Action::Mute { user_id: "bob".into(), until_ms, reason: "spam".into() };
        let ban = Action::Ban { user_id: "ana".into(), until_ms: None, reason: String::new() };
        for action in [&mute, &ban] {
            moderation::record(&db, room.id, "mod", action, RemovedText::Erase, now).await.unwrap().unwrap();
        }
        let listed = room_sanctions(&db, room.id, now).await.unwrap();
        let kinds: Vec<_> = listed.iter().map(|s| (s.user_id.as_str(), s.kind, s.until_ms)).collect();
        assert_eq!(kinds, [("ana", Sanction::Ban, None), ("bob", Sanction::Mute, until_ms)]);
        assert_eq!((listed[1].reason.as_str(), listed[1].by.as_str()), ("spam", "mod"));
        assert_eq!(listed[1].at_ms, now.timestamp_millis());
        let later = room_sanctions(&db, room.id, now + minutes(11)).await.unwrap();
        assert_eq!(later.iter().map(|s| s.user_id.as_str()).collect::<Vec<_>>(), ["ana"], "the mute ended");
    }
}
