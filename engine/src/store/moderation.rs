//! What moderation keeps: actions recorded in a room's seq order (with
//! their effect, in the same transaction), sanctions (mutes and bans) and
//! reports.
//!
//! An action is a row of `message` with `action` set, under the room's
//! next seq by the one rule every writer follows (`seq_base_sql`), so it
//! sits in the conversation where it happened and replays like a message.
//! Its effect (a message marked removed, a sanction, a member gone, the
//! room's slow mode) is written in the same transaction, after the seq is
//! taken: the first statement of a SQLite transaction is then a write,
//! which takes the write lock at once (a read first could not be upgraded
//! once the message writer's thread has committed since), and on
//! PostgreSQL the room row is locked first, as the message writer does. An
//! effect that changes nothing (a message removed already, a mute lifted
//! already, the same mute asked for again) records nothing.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::entities::{message, report, room, sanction};
use crate::protocol::moderation::{Action, Mute, Report};
use crate::protocol::ChatMessage;

/// What happens to a removed message's text (the server's setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemovedText {
    /// The text is erased from the database (the default).
    #[default]
    Erase,
    /// The text is kept in the database, never sent to a page again.
    Keep,
}

/// The kinds of sanction, as `sanction.kind` spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sanction {
    Mute,
    Ban,
}

impl Sanction {
    pub fn as_str(self) -> &'static str {
        match self {
            Sanction::Mute => "mute",
            Sanction::Ban => "ban",
        }
    }
}

/// What recording an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The event, stored under the room's next seq.
    pub event: ChatMessage,
    /// Whether the action took a member out of the room (a kick, or a ban
    /// of someone who was in it).
    pub left: bool,
}

/// How close two ends of a sanction count as the same (a retried request).
const SAME_SANCTION_WITHIN_MS: i64 = 60_000;

/// Records `action`, done by `actor` in the room, with its effect, at
/// `at`. `None` when the effect changed nothing (then nothing is stored):
/// a message removed already, a mute lifted already, the same mute or ban
/// asked for again.
///
/// The room's seq is taken first: the room row is the lock every writer
/// takes first on PostgreSQL (no deadlock with the message writer), and on
/// SQLite the first statement is a write.
pub async fn record(
    db: &DatabaseConnection,
    room_id: i64,
    actor: &str,
    action: &Action,
    removed_text: RemovedText,
    at: DateTime<Utc>,
) -> Result<Option<Recorded>, DbErr> {
    let txn = db.begin().await?;
    let bumped = room::Entity::update_many()
        .col_expr(room::Column::LastSeq, super::seq_base(db.get_database_backend()).add(1))
        .filter(room::Column::Id.eq(room_id))
        .exec_with_returning(&txn)
        .await?;
    let seq = bumped.first().map(|r| r.last_seq).ok_or_else(|| DbErr::RecordNotFound("room".into()))?;
    let Some(left) = apply(&txn, room_id, actor, action, removed_text, at).await? else {
        txn.rollback().await?;
        return Ok(None);
    };
    let json = serde_json::to_string(action).expect("actions serialize");
    // A space: no page's message id can take it (see `valid_client_msg_id`).
    let client_msg_id = format!("action {seq}");
    let row = message::ActiveModel {
        room_id: Set(room_id),
        seq: Set(seq),
        user_id: Set(actor.to_owned()),
        body: Set(String::new()),
        client_msg_id: Set(client_msg_id.clone()),
        created_at: Set(at),
        action: Set(Some(json)),
        ..Default::default()
    };
    message::Entity::insert(row).exec_without_returning(&txn).await?;
    txn.commit().await?;
    let event = ChatMessage {
        seq,
        user_id: actor.to_owned(),
        client_msg_id,
        at_ms: at.timestamp_millis(),
        action: Some(action.clone()),
        ..Default::default()
    };
    Ok(Some(Recorded { event, left }))
}

/// Writes an action's effect: `None` if it changed nothing, else whether
/// it took a member out of the room.
async fn apply(
    txn: &impl ConnectionTrait,
    room_id: i64,
    actor: &str,
    action: &Action,
    removed_text: RemovedText,
    at: DateTime<Utc>,
) -> Result<Option<bool>, DbErr> {
    let changed = |changed: bool| changed.then_some(false);
    Ok(match action {
        Action::Remove { seq } => {
            let which = message::Column::Seq.eq(*seq);
            changed(remove_messages(txn, room_id, actor, removed_text, at, which).await?)
        }
        Action::Purge { user_id } => {
            let theirs = message::Column::UserId.eq(user_id.as_str());
            changed(remove_messages(txn, room_id, actor, removed_text, at, theirs).await?)
        }
        Action::Mute { user_id, until_ms, reason } => {
            let fresh =
                put_sanction(txn, room_id, user_id, Sanction::Mute, *until_ms, reason, actor, at).await?;
            changed(fresh)
        }
        Action::Ban { user_id, until_ms, reason } => {
            let fresh =
                put_sanction(txn, room_id, user_id, Sanction::Ban, *until_ms, reason, actor, at).await?;
            let left = super::remove_member(txn, room_id, user_id).await?;
            (fresh || left).then_some(left)
        }
        Action::Unmute { user_id } => changed(lift(txn, room_id, user_id, Sanction::Mute).await?),
        Action::Unban { user_id } => changed(lift(txn, room_id, user_id, Sanction::Ban).await?),
        Action::Kick { user_id, .. } => super::remove_member(txn, room_id, user_id).await?.then_some(true),
        Action::SlowMode { seconds } => {
            let done = room::Entity::update_many()
                .col_expr(room::Column::SlowModeSecs, Expr::value(*seconds as i32))
                .filter(room::Column::Id.eq(room_id))
                .filter(room::Column::SlowModeSecs.ne(*seconds as i32))
                .exec(txn)
                .await?;
            changed(done.rows_affected > 0)
        }
    })
}

/// Marks the room's messages that `which` picks (not removed yet, and not
/// events) removed by `actor` at `at`; unless the text is kept, erases it
/// and the copies kept with their reports. Whether any was removed.
async fn remove_messages(
    txn: &impl ConnectionTrait,
    room_id: i64,
    actor: &str,
    removed_text: RemovedText,
    at: DateTime<Utc>,
    which: sea_orm::sea_query::SimpleExpr,
) -> Result<bool, DbErr> {
    let mut update = message::Entity::update_many()
        .col_expr(message::Column::RemovedBy, Expr::value(actor))
        .col_expr(message::Column::RemovedAt, Expr::value(at));
    if removed_text == RemovedText::Erase {
        update = update.col_expr(message::Column::Body, Expr::value(""));
        // Gone for good: the copies kept with their reports too.
        let reported = sea_orm::QueryTrait::into_query(
            message::Entity::find()
                .select_only()
                .column(message::Column::Seq)
                .filter(message::Column::RoomId.eq(room_id))
                .filter(which.clone()),
        );
        report::Entity::update_many()
            .col_expr(report::Column::Body, Expr::value(""))
            .filter(report::Column::RoomId.eq(room_id))
            .filter(report::Column::Seq.in_subquery(reported))
            .exec(txn)
            .await?;
    }
    let done = update
        .filter(message::Column::RoomId.eq(room_id))
        .filter(which)
        .filter(message::Column::RemovedAt.is_null())
        .filter(message::Column::Action.is_null())
        .exec(txn)
        .await?;
    Ok(done.rows_affected > 0)
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// Puts a sanction in force; `false` when the same one (same reason, an
/// end within a minute of it) holds already: a retried request.
#[allow(clippy::too_many_arguments)]
async fn put_sanction(
    txn: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
    kind: Sanction,
    until_ms: Option<i64>,
    reason: &str,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let same = |held: &Mute| {
        held.reason == reason
            && match (held.until_ms, until_ms) {
                (None, None) => true,
                (Some(a), Some(b)) => (a - b).abs() < SAME_SANCTION_WITHIN_MS,
                _ => false,
            }
    };
    if sanctions_in_force(txn, room_id, user_id, at).await?.of(kind).as_ref().is_some_and(same) {
        return Ok(false);
    }
    let row = sanction::ActiveModel {
        room_id: Set(room_id),
        user_id: Set(user_id.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        until: Set(until_ms.and_then(millis)),
        reason: Set(reason.to_owned()),
        by_user: Set(actor.to_owned()),
        created_at: Set(at),
        ..Default::default()
    };
    let on_conflict =
        OnConflict::columns([sanction::Column::RoomId, sanction::Column::UserId, sanction::Column::Kind])
            .update_columns([
                sanction::Column::Until,
                sanction::Column::Reason,
                sanction::Column::ByUser,
                sanction::Column::CreatedAt,
            ])
            .to_owned();
    sanction::Entity::insert(row).on_conflict(on_conflict).exec_without_returning(txn).await?;
    Ok(true)
}

/// Lifts a sanction; whether one was in force. (Deleted first, looked at
/// after: the transaction's first statement stays a write.)
async fn lift(
    txn: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
    kind: Sanction,
) -> Result<bool, DbErr> {
    let lifted = sanction::Entity::delete_many()
        .filter(sanction::Column::RoomId.eq(room_id))
        .filter(sanction::Column::UserId.eq(user_id))
        .filter(sanction::Column::Kind.eq(kind.as_str()))
        .exec_with_returning(txn)
        .await?;
    let now = Utc::now().timestamp_millis();
    Ok(lifted.iter().any(|s| s.until.is_none_or(|until| until.timestamp_millis() > now)))
}

/// A user's sanctions in a room that hold at a moment.
#[derive(Debug, Default)]
pub struct InForce {
    pub mute: Option<Mute>,
    pub ban: Option<Mute>,
}

impl InForce {
    fn of(self, kind: Sanction) -> Option<Mute> {
        match kind {
            Sanction::Mute => self.mute,
            Sanction::Ban => self.ban,
        }
    }
}

/// The user's mute and ban in the room that hold at `now` (one read).
pub async fn sanctions_in_force(
    db: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<InForce, DbErr> {
    let rows = sanction::Entity::find()
        .filter(sanction::Column::RoomId.eq(room_id))
        .filter(sanction::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    let mut in_force = InForce::default();
    for row in rows {
        let sanction = Mute { until_ms: row.until.map(|t| t.timestamp_millis()), reason: row.reason };
        if !sanction.holds_at(now.timestamp_millis()) {
            continue;
        }
        match row.kind.as_str() {
            "mute" => in_force.mute = Some(sanction),
            "ban" => in_force.ban = Some(sanction),
            _ => {}
        }
    }
    Ok(in_force)
}

/// A mute or ban in force, with who gave it and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SanctionRecord {
    pub user_id: String,
    pub kind: Sanction,
    /// When it ends, Unix ms (none: until lifted).
    pub until_ms: Option<i64>,
    pub reason: String,
    pub by: String,
    pub at_ms: i64,
}

/// The room's mutes and bans that hold at `now`, by user (a ban before a
/// mute).
pub async fn room_sanctions(
    db: &impl ConnectionTrait,
    room_id: i64,
    now: DateTime<Utc>,
) -> Result<Vec<SanctionRecord>, DbErr> {
    let rows = sanction::Entity::find()
        .filter(sanction::Column::RoomId.eq(room_id))
        .order_by_asc(sanction::Column::UserId)
        .order_by_asc(sanction::Column::Kind)
        .all(db)
        .await?;
    Ok(holding(rows.into_iter(), now).map(|(_, record)| record).collect())
}

/// `user_id`'s mutes and bans that hold at `now`, in every room: each with
/// its room's channel id, by room (a ban before a mute).
pub async fn user_sanctions(
    db: &impl ConnectionTrait,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(String, SanctionRecord)>, DbErr> {
    let rows = sanction::Entity::find()
        .filter(sanction::Column::UserId.eq(user_id))
        .order_by_asc(sanction::Column::Kind)
        .all(db)
        .await?;
    let room_ids: Vec<i64> = rows.iter().map(|row| row.room_id).collect();
    let rooms: std::collections::HashMap<i64, String> = room::Entity::find()
        .select_only()
        .column(room::Column::Id)
        .column(room::Column::ChannelId)
        .filter(room::Column::Id.is_in(room_ids))
        .into_tuple()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let mut records: Vec<(String, SanctionRecord)> = holding(rows.into_iter(), now)
        .filter_map(|(room_id, record)| Some((rooms.get(&room_id)?.clone(), record)))
        .collect();
    // By room; within one, as read (a ban before a mute).
    records.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(records)
}

/// The sanctions among `rows` that hold at `now`, each with its room id.
fn holding(
    rows: impl Iterator<Item = sanction::Model>,
    now: DateTime<Utc>,
) -> impl Iterator<Item = (i64, SanctionRecord)> {
    rows.filter_map(move |row| {
        let kind = if row.kind == Sanction::Ban.as_str() { Sanction::Ban } else { Sanction::Mute };
        let until_ms = row.until.map(|t| t.timestamp_millis());
        let holds = Mute { until_ms, reason: String::new() }.holds_at(now.timestamp_millis());
        let record = SanctionRecord {
            user_id: row.user_id,
            kind,
            until_ms,
            reason: row.reason,
            by: row.by_user,
            at_ms: row.created_at.timestamp_millis(),
        };
        holds.then_some((row.room_id, record))
    })
}

/// The kick of `user_id` among the room's moderation events after
/// `after_seq`, if it is the newest kick, ban or unban of them there (a
/// ban is told as a ban; after an unban they are free to come back).
pub async fn kick_since(
    db: &impl ConnectionTrait,
    room_id: i64,
    user_id: &str,
    after_seq: i64,
) -> Result<Option<ChatMessage>, DbErr> {
    let events = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::Seq.gt(after_seq))
        .filter(message::Column::Action.is_not_null())
        .order_by_desc(message::Column::Seq)
        .all(db)
        .await?;
    let newest = events.into_iter().map(ChatMessage::from).find(|m| match &m.action {
        Some(
            Action::Kick { user_id: u, .. } | Action::Ban { user_id: u, .. } | Action::Unban { user_id: u },
        ) => u == user_id,
        _ => false,
    });
    Ok(newest.filter(|m| matches!(m.action, Some(Action::Kick { .. }))))
}

/// The author of the room's message `seq`, and its text as pages see it
/// (empty when removed); `None` for no such message or for an action.
pub async fn message_at(
    db: &impl ConnectionTrait,
    room_id: i64,
    seq: i64,
) -> Result<Option<ChatMessage>, DbErr> {
    let found = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::Seq.eq(seq))
        .one(db)
        .await?;
    Ok(found.map(ChatMessage::from).filter(|m| m.action.is_none()))
}

/// Files a report of a message by `reporter` (once per reporter and
/// message: a second report changes nothing). The report, and whether it
/// is new.
pub async fn add_report(
    db: &impl ConnectionTrait,
    room_id: i64,
    reported: &ChatMessage,
    reporter: &str,
    reason: &str,
) -> Result<(Report, bool), DbErr> {
    let at = Utc::now();
    let row = report::ActiveModel {
        room_id: Set(room_id),
        seq: Set(reported.seq),
        reporter: Set(reporter.to_owned()),
        author: Set(reported.user_id.clone()),
        body: Set(reported.body.clone()),
        reason: Set(reason.to_owned()),
        created_at: Set(at),
        status: Set("open".to_owned()),
        ..Default::default()
    };
    let on_conflict =
        OnConflict::columns([report::Column::RoomId, report::Column::Seq, report::Column::Reporter])
            .do_nothing()
            .to_owned();
    let inserted = report::Entity::insert(row).on_conflict(on_conflict).exec_without_returning(db).await?;
    let stored = report::Entity::find()
        .filter(report::Column::RoomId.eq(room_id))
        .filter(report::Column::Seq.eq(reported.seq))
        .filter(report::Column::Reporter.eq(reporter))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("the report just filed".into()))?;
    Ok((stored.into(), inserted > 0))
}

/// Erases the reasons `reporter` gave with their reports, in every room
/// (their words; the reports stay, about someone else's message).
pub async fn erase_reasons_by(db: &impl ConnectionTrait, reporter: &str) -> Result<(), DbErr> {
    report::Entity::update_many()
        .col_expr(report::Column::Reason, Expr::value(""))
        .filter(report::Column::Reporter.eq(reporter))
        .filter(report::Column::Reason.ne(""))
        .exec(db)
        .await?;
    Ok(())
}

/// How many of the room's reports by `reporter` are open.
pub async fn open_reports_by(db: &impl ConnectionTrait, room_id: i64, reporter: &str) -> Result<u64, DbErr> {
    report::Entity::find()
        .filter(report::Column::RoomId.eq(room_id))
        .filter(report::Column::Reporter.eq(reporter))
        .filter(report::Column::Status.eq("open"))
        .count(db)
        .await
}

/// The room's open reports with an id after `after_id`, oldest first (at
/// most `limit`).
pub async fn open_reports(
    db: &impl ConnectionTrait,
    room_id: i64,
    after_id: i64,
    limit: u64,
) -> Result<Vec<Report>, DbErr> {
    let open = report::Entity::find()
        .filter(report::Column::RoomId.eq(room_id))
        .filter(report::Column::Status.eq("open"))
        .filter(report::Column::Id.gt(after_id))
        .order_by_asc(report::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    Ok(open.into_iter().map(Into::into).collect())
}

/// Closes an open report of the room as resolved or dismissed by `by`;
/// whether it was open.
pub async fn close_report(
    db: &impl ConnectionTrait,
    room_id: i64,
    id: i64,
    by: &str,
    resolved: bool,
) -> Result<bool, DbErr> {
    let done = report::Entity::update_many()
        .col_expr(report::Column::Status, Expr::value(if resolved { "resolved" } else { "dismissed" }))
        .col_expr(report::Column::HandledBy, Expr::value(by))
        .col_expr(report::Column::HandledAt, Expr::value(Utc::now()))
        .filter(report::Column::RoomId.eq(room_id))
        .filter(report::Column::Id.eq(id))
        .filter(report::Column::Status.eq("open"))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}
