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

/// The room's members in the order they joined.
///
/// Read as one string (the ids joined by newlines, which ids never
/// contain) rather than one row per member: a room of thousands is read
/// on every page open, and rows come from the database one by one.
pub async fn members(db: &impl ConnectionTrait, room_id: i64) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "SELECT string_agg(user_id, E'\\n' ORDER BY id) AS ids FROM member WHERE room_id = $1"
        }
        _ => "SELECT group_concat(user_id, char(10) ORDER BY id) AS ids FROM member WHERE room_id = ?",
    };
    let row = db.query_one(sea_orm::Statement::from_sql_and_values(backend, sql, [room_id.into()])).await?;
    let ids: Option<String> = match row {
        Some(row) => row.try_get("", "ids")?,
        None => None,
    };
    Ok(ids.map_or_else(Vec::new, |ids| ids.split('\n').map(str::to_owned).collect()))
}

/// Messages with `seq > after_seq`, oldest first, at most `limit`.
pub async fn messages_after(
    db: &impl ConnectionTrait,
    room_id: i64,
    after_seq: i64,
    limit: u64,
) -> Result<Vec<ChatMessage>, DbErr> {
    let rows = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::Seq.gt(after_seq))
        .order_by_asc(message::Column::Seq)
        // SQL's LIMIT is a signed 64-bit number.
        .limit(limit.min(i64::MAX as u64))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(ChatMessage::from).collect())
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
    let rows = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::Seq.lt(before_seq))
        .order_by_desc(message::Column::Seq)
        .limit(limit.min(i64::MAX as u64))
        .all(db)
        .await?;
    Ok(rows.into_iter().rev().map(ChatMessage::from).collect())
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
    let created_at = Utc::now();
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
            let existing = message::Entity::find()
                .filter(message::Column::RoomId.eq(room_id))
                .filter(message::Column::UserId.eq(user_id))
                .filter(message::Column::ClientMsgId.eq(client_msg_id))
                .one(db)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("the conflicting message".to_owned()))?;
            Ok(Inserted { message: existing.into(), is_new: false })
        }
    }
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
/// On SQLite it keeps one connection of the pool for itself (when the pool
/// has more than one): a connection whose last transaction was not its own
/// finds the write-ahead log changed and drops its page cache, so groups
/// stored through whichever connection was free re-read the pages they
/// touch from the file each time, and re-prepare their statements. A pool
/// of one is shared with everything else and not kept.
pub struct MessageStore {
    db: DatabaseConnection,
    kept: Option<sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Sqlite>>,
}

impl MessageStore {
    pub fn new(db: DatabaseConnection) -> Self {
        MessageStore { db, kept: None }
    }

    /// The database, for what is not stored in groups.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Stores many messages (of any rooms) in one transaction, each under
    /// its room's next `seq` in the order given: one statement bumps every
    /// room's `last_seq` by its count of messages (returning the new
    /// values), one multi-row insert stores them. A handful of statements
    /// for the whole group, where [`insert_message`] needs four per
    /// message: this is what lets the writer store tens of thousands of
    /// messages a second on SQLite, where the whole group is one round trip
    /// to the database's thread.
    ///
    /// Returns `None`, having changed nothing, when any of them was stored
    /// before (a retry: same room, user and client id) — the caller then
    /// stores them one by one with [`insert_message`], which sorts retries
    /// out. The messages given must not repeat a (room, user, client id).
    pub async fn insert_messages(
        &mut self,
        messages: &[NewMessage],
    ) -> Result<Option<Vec<ChatMessage>>, DbErr> {
        if messages.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let plan = GroupPlan::new(messages);
        let last_seqs = match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => self.store_on_sqlite(&plan, messages).await?,
            _ => store_group_generic(&self.db, &plan, messages).await?,
        };
        Ok(last_seqs.map(|last_seqs| plan.stored(messages, &last_seqs)))
    }

    async fn store_on_sqlite(
        &mut self,
        plan: &GroupPlan,
        messages: &[NewMessage],
    ) -> Result<Option<Vec<(i64, i64)>>, DbErr> {
        let pool = self.db.get_sqlite_connection_pool();
        let mut conn = match self.kept.take() {
            Some(conn) => conn,
            None => pool.acquire().await.map_err(sqlite_group::err)?,
        };
        let stored = sqlite_group::store(&mut conn, plan, messages).await;
        if !stored.connection_ok {
            tracing::warn!("a failed group could not be rolled back; dropping the connection");
            conn.close_on_drop();
        } else if pool.options().get_max_connections() > 1 {
            self.kept = Some(conn);
        }
        stored.result
    }
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
        GroupPlan { counts, created_at: Utc::now() }
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
            Some(missing) => Err(DbErr::RecordNotFound(format!("room {missing}"))),
            None => Ok(()),
        }
    }
}

/// The group through sea-orm (PostgreSQL): row locks first, in one order on
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

/// The group on SQLite as one script, sent to the connection's thread in
/// one go (each statement through sea-orm would be a round trip of its
/// own, and those hand-offs between threads cost more than the writing).
mod sqlite_group {
    use sea_orm::sqlx::{self, Row, SqliteConnection};
    use sea_orm::DbErr;

    use super::{GroupPlan, NewMessage};

    /// SQLite's code for a broken UNIQUE constraint (a retry in the group).
    const CONSTRAINT_UNIQUE: &str = "2067";

    fn script(plan: &GroupPlan, messages: usize) -> String {
        let rooms = plan.counts.len();
        let mut sql = String::with_capacity(200 + rooms * 16 + messages * 20);
        sql.push_str("BEGIN IMMEDIATE;\nUPDATE room SET last_seq = last_seq + CASE id");
        sql.push_str(&" WHEN ? THEN ?".repeat(rooms));
        sql.push_str(" ELSE 0 END WHERE id IN (");
        sql.push_str(&vec!["?"; rooms].join(", "));
        sql.push_str(") RETURNING id, last_seq;\n");
        sql.push_str("INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) VALUES ");
        let row = "(?, (SELECT last_seq FROM room WHERE id = ?) - ?, ?, ?, ?, ?)";
        sql.push_str(&vec![row; messages].join(", "));
        sql.push_str(";\nCOMMIT;");
        sql
    }

    pub(super) fn err(e: sqlx::Error) -> DbErr {
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(e))
    }

    /// What storing a group did, and whether the connection is fit to
    /// keep (a failed group that could not be rolled back leaves it in a
    /// transaction).
    pub(super) struct Stored {
        pub result: Result<Option<Vec<(i64, i64)>>, DbErr>,
        pub connection_ok: bool,
    }

    pub(super) async fn store(
        conn: &mut SqliteConnection,
        plan: &GroupPlan,
        messages: &[NewMessage],
    ) -> Stored {
        let sql = script(plan, messages.len());
        let mut query = sqlx::query(&sql);
        for (&room_id, &n) in &plan.counts {
            query = query.bind(room_id).bind(n);
        }
        for &room_id in plan.counts.keys() {
            query = query.bind(room_id);
        }
        for (m, below) in messages.iter().zip(plan.below_last(messages)) {
            query = query
                .bind(m.room_id)
                .bind(m.room_id)
                .bind(below)
                .bind(m.user_id.as_str())
                .bind(m.body.as_str())
                .bind(m.client_msg_id.as_str())
                .bind(plan.created_at);
        }
        match query.fetch_all(&mut *conn).await {
            Ok(rows) => {
                let last_seqs = rows
                    .iter()
                    .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(err)
                    .and_then(|last_seqs| plan.check_bumped(&last_seqs).map(|()| Some(last_seqs)));
                Stored { result: last_seqs, connection_ok: true }
            }
            Err(e) => {
                // The script stopped part way: undo what it did.
                let connection_ok = match sqlx::query("ROLLBACK").execute(&mut *conn).await {
                    Ok(_) => true,
                    Err(rollback) => rollback.to_string().contains("no transaction is active"),
                };
                let retry = matches!(&e, sqlx::Error::Database(db) if db.code().as_deref() == Some(CONSTRAINT_UNIQUE));
                Stored { result: if retry { Ok(None) } else { Err(err(e)) }, connection_ok }
            }
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
    /// store keeps one connection for itself, the other serves the rest.
    struct FileDb(std::path::PathBuf);

    impl FileDb {
        async fn open(name: &str) -> (Self, DatabaseConnection) {
            use migration::MigratorTrait;
            let path = std::env::temp_dir().join(format!("chat-store-{name}-{}.db", std::process::id()));
            let file = FileDb(path);
            file.remove();
            let url = format!("sqlite://{}?mode=rwc", file.0.display());
            let db = connect(&url, PoolSettings { max_connections: 2, timeout: Duration::from_secs(5) })
                .await
                .unwrap();
            migration::Migrator::up(&db, None).await.unwrap();
            (file, db)
        }

        fn remove(&self) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
            }
        }
    }

    impl Drop for FileDb {
        fn drop(&mut self) {
            self.remove();
        }
    }

    #[tokio::test]
    async fn a_group_takes_consecutive_seqs_per_room_and_a_group_with_a_retry_changes_nothing() {
        groups_take_consecutive_seqs_and_a_retry_changes_nothing(fresh().await).await;
    }

    #[tokio::test]
    async fn groups_on_a_kept_connection_see_and_are_seen_by_the_other_connections() {
        let (_file, db) = FileDb::open("kept").await;
        groups_take_consecutive_seqs_and_a_retry_changes_nothing(db.clone()).await;
        // The store keeps its connection between groups; the pool's other
        // connection still serves reads and single inserts, which the next
        // group sees.
        let room = ensure_room(&db, "r1").await.unwrap().id;
        let mut store = MessageStore::new(db.clone());
        let group = |ids: &[&str]| -> Vec<NewMessage> {
            ids.iter()
                .map(|id| NewMessage {
                    room_id: room,
                    user_id: "ana".into(),
                    client_msg_id: (*id).into(),
                    body: "b".into(),
                })
                .collect()
        };
        let first = store.insert_messages(&group(&["k1", "k2"])).await.unwrap().unwrap();
        assert!(store.kept.is_some(), "a pool of two: the store keeps one");
        let single = insert_message(&db, room, "ana", "k3", "b").await.unwrap();
        assert_eq!(single.message.seq, first[1].seq + 1);
        assert_eq!(store.insert_messages(&group(&["k3"])).await.unwrap(), None, "k3 is a retry");
        let next = store.insert_messages(&group(&["k4"])).await.unwrap().unwrap();
        assert_eq!(next[0].seq, single.message.seq + 1);
        let history = messages_after(&db, room, 0, 100).await.unwrap();
        assert_eq!(history.last().map(|m| m.client_msg_id.as_str()), Some("k4"));
    }

    async fn groups_take_consecutive_seqs_and_a_retry_changes_nothing(db: DatabaseConnection) {
        let mut store = MessageStore::new(db.clone());
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
