//! How long the chat keeps what people wrote (`MESSAGE_RETENTION_DAYS`;
//! unset: for ever). A game that opens a room per match, or a guild room
//! that lives for years, otherwise grows its database without end, and
//! many studios owe their players a limit on how long words are kept.
//!
//! What goes, once older than the limit: every row of `message` (players'
//! lines, the game's own, moderation events), and reports a moderator has
//! already handled (by when they were handled; the report keeps a copy of
//! the text). What stays: each room's `last_seq` (a seq is never given
//! twice, so a page that comes back catches up from the right place),
//! open reports (a moderator's queue loses nothing unseen), mutes and bans
//! in force, members and rooms. A page already open keeps what it shows;
//! a page opened later starts at the oldest message kept, and paging back
//! ends there.
//!
//! How: each node sweeps when it starts, then every [`SWEEP_EVERY`]. A
//! sweep walks `message` in the order of its ids, which grow with time
//! (each row takes the next), a batch of [`BATCH`] at a time, deletes a
//! batch's expired rows in one short statement, and stops at the first
//! batch with nothing expired: with nothing to delete, a sweep reads one
//! batch, and no index on the time is needed (which every commit would
//! pay for). After each delete it rests as long as the delete took, so on
//! SQLite (one writer at a time) the message writer always gets its turn
//! between two deletes. Nodes of a cluster may sweep at once: a row
//! deleted twice is deleted once. The database file does not shrink on
//! SQLite; the space is reused for new messages.
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use engine::store::entities::{message, report};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_util::sync::CancellationToken;

/// Time between two sweeps of a node.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Rows looked at, and at most deleted, per statement.
const BATCH: u64 = 200;
/// Counter of the messages and reports deleted for their age.
pub const EXPIRED: &str = "chat_retention_deleted_total";

/// What the chat keeps, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub keep: chrono::Duration,
}

impl Retention {
    pub fn days(days: u32) -> Self {
        Retention { keep: chrono::Duration::days(days.into()) }
    }
}

pub fn describe() {
    metrics::describe_counter!(
        EXPIRED,
        "Rows deleted because they were older than MESSAGE_RETENTION_DAYS, by what"
    );
}

/// Registers the counters at zero.
pub fn at_zero() {
    for what in ["messages", "reports"] {
        metrics::counter!(EXPIRED, "what" => what).increment(0);
    }
}

/// Sweeps now and every [`SWEEP_EVERY`] until `stopping`.
pub fn keep_sweeping(db: DatabaseConnection, retention: Retention, stopping: CancellationToken) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopping.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let started = Instant::now();
            // A sweep stops between two batches when the node stops.
            tokio::select! {
                _ = stopping.cancelled() => return,
                swept = sweep(&db, Utc::now() - retention.keep) => match swept {
                    Ok(Swept { messages: 0, reports: 0 }) => {}
                    Ok(swept) => tracing::info!(
                        messages = swept.messages,
                        reports = swept.reports,
                        secs = started.elapsed().as_secs_f64(),
                        "retention: deleted what was older than the limit"
                    ),
                    // The next sweep starts over; nothing is half done
                    // (each delete is one statement).
                    Err(err) => tracing::warn!(%err, "retention sweep failed"),
                },
            }
        }
    });
}

/// Rows a sweep deleted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub messages: u64,
    pub reports: u64,
}

/// Deletes the messages created before `cutoff` and the reports handled
/// before it.
pub async fn sweep(db: &DatabaseConnection, cutoff: DateTime<Utc>) -> Result<Swept, DbErr> {
    let mut swept = Swept::default();
    let mut after = 0;
    loop {
        let rows: Vec<(i64, DateTime<Utc>)> = message::Entity::find()
            .select_only()
            .columns([message::Column::Id, message::Column::CreatedAt])
            .filter(message::Column::Id.gt(after))
            .order_by_asc(message::Column::Id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let batch = expired(&rows, cutoff);
        if batch.expired.is_empty() {
            break;
        }
        let started = Instant::now();
        let deleted =
            message::Entity::delete_many().filter(message::Column::Id.is_in(batch.expired)).exec(db).await?;
        swept.messages += deleted.rows_affected;
        metrics::counter!(EXPIRED, "what" => "messages").increment(deleted.rows_affected);
        rest_as_long_as_since(started).await;
        match batch.next_after {
            Some(id) => after = id,
            None => break,
        }
    }
    // Reports' ids do not follow when they were handled: every handled one
    // is looked at (a moderator handles few, compared with messages).
    let mut after = 0;
    loop {
        let rows: Vec<(i64, Option<DateTime<Utc>>)> = report::Entity::find()
            .select_only()
            .columns([report::Column::Id, report::Column::HandledAt])
            .filter(report::Column::Id.gt(after))
            .filter(report::Column::Status.ne("open"))
            .order_by_asc(report::Column::Id)
            .limit(BATCH)
            .into_tuple()
            .all(db)
            .await?;
        let Some(&(last, _)) = rows.last() else { break };
        let old: Vec<i64> =
            rows.iter().filter(|(_, at)| at.is_some_and(|at| at < cutoff)).map(|(id, _)| *id).collect();
        if !old.is_empty() {
            let started = Instant::now();
            let deleted =
                report::Entity::delete_many().filter(report::Column::Id.is_in(old)).exec(db).await?;
            swept.reports += deleted.rows_affected;
            metrics::counter!(EXPIRED, "what" => "reports").increment(deleted.rows_affected);
            rest_as_long_as_since(started).await;
        }
        after = last;
    }
    Ok(swept)
}

/// Waits as long as has passed since `started` (when a delete began): the
/// sweep holds the database's write lock at most half the time.
async fn rest_as_long_as_since(started: Instant) {
    tokio::time::sleep(started.elapsed()).await;
}

/// A batch of `message` rows, read in the order of their ids, sorted out.
#[derive(Debug, PartialEq, Eq)]
struct Batch {
    /// Ids of the rows created before the cutoff.
    expired: Vec<i64>,
    /// Where the next batch starts (after this id), or `None` when the
    /// sweep is done: the batch was the last one, or reached rows newer
    /// than the cutoff (those after them are newer still).
    next_after: Option<i64>,
}

fn expired(rows: &[(i64, DateTime<Utc>)], cutoff: DateTime<Utc>) -> Batch {
    let expired: Vec<i64> = rows.iter().filter(|(_, at)| *at < cutoff).map(|(id, _)| *id).collect();
    let reached_new = rows.iter().any(|(_, at)| *at >= cutoff);
    let full = rows.len() as u64 == BATCH;
    let next_after = if reached_new || !full { None } else { rows.last().map(|(id, _)| *id) };
    Batch { expired, next_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    #[test]
    fn a_full_batch_of_old_rows_goes_and_the_sweep_goes_on() {
        let rows: Vec<_> = (1..=BATCH as i64).map(|id| (id, at(id))).collect();
        let batch = expired(&rows, at(10_000));
        assert_eq!(batch.expired.len(), BATCH as usize);
        assert_eq!(batch.next_after, Some(BATCH as i64));
    }

    #[test]
    fn the_sweep_stops_where_rows_are_newer_than_the_cutoff() {
        let rows = vec![(4, at(1)), (7, at(2)), (9, at(5)), (12, at(6))];
        let batch = expired(&rows, at(5));
        assert_eq!(batch, Batch { expired: vec![4, 7], next_after: None });
    }

    #[test]
    fn an_old_row_after_a_newer_one_in_the_same_batch_goes_too() {
        // A clock set back, or a row written by hand: its time decides.
        let rows = vec![(1, at(1)), (2, at(9)), (3, at(2))];
        assert_eq!(expired(&rows, at(5)).expired, vec![1, 3]);
    }

    #[test]
    fn nothing_old_means_nothing_to_delete() {
        assert_eq!(expired(&[], at(0)), Batch { expired: vec![], next_after: None });
        let rows = vec![(1, at(5)), (2, at(6))];
        assert_eq!(expired(&rows, at(5)), Batch { expired: vec![], next_after: None });
    }

    #[test]
    fn a_short_batch_is_the_last() {
        let rows = vec![(1, at(1)), (2, at(2))];
        assert_eq!(expired(&rows, at(5)).next_after, None);
    }
}
