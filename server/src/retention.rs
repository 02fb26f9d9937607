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
//! How: each node sweeps when it starts, then about every [`SWEEP_EVERY`]
//! (a few minutes more or less, so that nodes started together drift
//! apart). A sweep walks `message` in the order of its ids, which grow
//! with time (each row takes the next), a batch of [`BATCH`] at a time,
//! deletes a batch's expired rows in one short statement, and stops at
//! the first batch with nothing expired: with nothing to delete, a sweep
//! reads one batch, and no index on the time is needed (which every commit
//! would pay for). A row dated in the future (a clock set wrong) does not
//! stop it. Rows are deleted by id *and* seq: an id can be given again
//! once the newest row is gone, a seq never. After each delete the sweep
//! rests as long as the delete took, so on SQLite (one writer at a time)
//! the message writer always gets its turn between two deletes. Nodes of
//! a cluster may sweep at once: a row deleted twice is deleted once.
//!
//! Not covered: open reports keep their copy of the text until handled;
//! webhook events waiting for a receiver are bounded by number
//! (`WEBHOOK_QUEUE`), not age. On SQLite the file does not shrink (the
//! space is reused for new messages), and deleted text may stay in free
//! pages until they are reused.
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use engine::store::entities::{message, report};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio_util::sync::CancellationToken;

/// Time between two sweeps of a node (plus up to [`SWEEP_SPREAD`]).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
const SWEEP_SPREAD: Duration = Duration::from_secs(300);
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
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                _ = stopping.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = SWEEP_EVERY + SWEEP_SPREAD.mul_f64(crate::admission::random_unit());
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
        let rows: Vec<(i64, i64, DateTime<Utc>)> = message::Entity::find()
            .select_only()
            .columns([message::Column::Id, message::Column::Seq, message::Column::CreatedAt])
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
        let rows = batch.expired.iter().fold(Condition::any(), |any, &(id, seq)| {
            any.add(message::Column::Id.eq(id).and(message::Column::Seq.eq(seq)))
        });
        let deleted = message::Entity::delete_many().filter(rows).exec(db).await?;
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

/// A batch of `message` rows (id, seq, time), read in the order of their
/// ids, sorted out.
#[derive(Debug, PartialEq, Eq)]
struct Batch {
    /// Id and seq of the rows created before the cutoff.
    expired: Vec<(i64, i64)>,
    /// Where the next batch starts (after this id), or `None` when the
    /// sweep is done: the batch was the last one, or held nothing expired
    /// (the rows after it are newer still).
    next_after: Option<i64>,
}

fn expired(rows: &[(i64, i64, DateTime<Utc>)], cutoff: DateTime<Utc>) -> Batch {
    let expired: Vec<(i64, i64)> =
        rows.iter().filter(|(_, _, at)| *at < cutoff).map(|(id, seq, _)| (*id, *seq)).collect();
    let go_on = !expired.is_empty() && rows.len() as u64 == BATCH;
    Batch { expired, next_after: rows.last().map(|(id, _, _)| *id).filter(|_| go_on) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    /// Rows with ids and seqs 1, 2, … at the given minutes.
    fn rows(minutes: &[i64]) -> Vec<(i64, i64, DateTime<Utc>)> {
        minutes.iter().enumerate().map(|(i, m)| (i as i64 + 1, i as i64 + 1, at(*m))).collect()
    }

    #[test]
    fn a_full_batch_with_old_rows_goes_and_the_sweep_goes_on() {
        let batch = expired(&rows(&vec![1; BATCH as usize]), at(10));
        assert_eq!(batch.expired.len(), BATCH as usize);
        assert_eq!(batch.next_after, Some(BATCH as i64));
    }

    #[test]
    fn a_row_dated_in_the_future_does_not_stop_the_sweep() {
        let mut minutes = vec![1; BATCH as usize];
        minutes[3] = 1_000_000;
        let batch = expired(&rows(&minutes), at(10));
        assert_eq!(batch.expired.len(), BATCH as usize - 1);
        assert!(!batch.expired.contains(&(4, 4)));
        assert_eq!(batch.next_after, Some(BATCH as i64));
    }

    #[test]
    fn an_old_row_after_a_newer_one_goes_too() {
        // A clock set back, or a row written by hand: its time decides.
        assert_eq!(expired(&rows(&[1, 9, 2]), at(5)).expired, [(1, 1), (3, 3)]);
    }

    #[test]
    fn the_sweep_stops_at_a_batch_with_nothing_old_or_at_the_last_one() {
        assert_eq!(expired(&[], at(0)), Batch { expired: vec![], next_after: None });
        let fresh = expired(&rows(&vec![6; BATCH as usize]), at(5));
        assert_eq!(fresh, Batch { expired: vec![], next_after: None });
        assert_eq!(expired(&rows(&[1, 2]), at(5)).next_after, None, "a short batch is the last");
    }
}
