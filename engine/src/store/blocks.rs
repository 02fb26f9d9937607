//! Who each player has blocked (`block`): one row per (player, blocked
//! player), for every room at once.
use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::entities::block;

/// What blocking did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// Newly blocked.
    Added,
    /// Blocked already: nothing changed.
    Already,
    /// Not blocked: the player has `max` blocks already.
    Full,
}

/// The players `user_id` has blocked, in the order they were blocked.
pub async fn blocked_by(db: &impl ConnectionTrait, user_id: &str) -> Result<Vec<String>, DbErr> {
    block::Entity::find()
        .select_only()
        .column(block::Column::BlockedUserId)
        .filter(block::Column::UserId.eq(user_id))
        .order_by_asc(block::Column::Id)
        .into_tuple()
        .all(db)
        .await
}

/// Records that `user_id` blocks `target`, unless they have `max` blocks
/// already. Two requests at the same moment may both pass the count: the
/// bound is there to keep a list small, not to be exact.
pub async fn block(
    db: &impl ConnectionTrait,
    user_id: &str,
    target: &str,
    max: u64,
    at: DateTime<Utc>,
) -> Result<Blocked, DbErr> {
    let theirs = block::Entity::find().filter(block::Column::UserId.eq(user_id));
    if theirs.clone().filter(block::Column::BlockedUserId.eq(target)).count(db).await? > 0 {
        return Ok(Blocked::Already);
    }
    if theirs.count(db).await? >= max {
        return Ok(Blocked::Full);
    }
    let row = block::ActiveModel {
        user_id: Set(user_id.to_owned()),
        blocked_user_id: Set(target.to_owned()),
        created_at: Set(at),
        ..Default::default()
    };
    let inserted = block::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([block::Column::UserId, block::Column::BlockedUserId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(if inserted > 0 { Blocked::Added } else { Blocked::Already })
}

/// Lifts `user_id`'s block of `target`; whether there was one.
pub async fn unblock(db: &impl ConnectionTrait, user_id: &str, target: &str) -> Result<bool, DbErr> {
    let deleted = block::Entity::delete_many()
        .filter(block::Column::UserId.eq(user_id))
        .filter(block::Column::BlockedUserId.eq(target))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// Lifts every block `user_id` made; whom they had blocked, in the order
/// they were blocked. One statement, so a block made meanwhile is either
/// lifted and named or kept.
pub async fn unblock_all(db: &impl ConnectionTrait, user_id: &str) -> Result<Vec<String>, DbErr> {
    let mut lifted = block::Entity::delete_many()
        .filter(block::Column::UserId.eq(user_id))
        .exec_with_returning(db)
        .await?;
    lifted.sort_unstable_by_key(|row| row.id);
    Ok(lifted.into_iter().map(|row| row.blocked_user_id).collect())
}
