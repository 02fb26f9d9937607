//! The webhooks' outbox in the database (tables made by the migration
//! `m20261207_000009_webhook_outbox`): each event saved once per URL, read
//! back oldest first, deleted once its receiver took it; and the lease
//! that makes one node at a time the one delivering a URL's events.
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

mod event {
    use sea_orm::entity::prelude::*;

    /// An event (its JSON as sent) waiting for the receiver at `url`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(column_type = "Text")]
        pub url: String,
        #[sea_orm(column_type = "Text")]
        pub body: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

mod lease {
    use sea_orm::entity::prelude::*;

    /// Which node delivers `url`'s events, until when (Unix ms).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_lease")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
        pub url: String,
        pub holder: String,
        pub until_ms: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Rows per insert statement (SQLite takes 32,766 parameters at most).
const ROWS_PER_INSERT: usize = 1000;

/// Saves events, each `(url, body)`, in that order, all or none.
pub async fn save(db: &DatabaseConnection, events: &[(&str, &str)]) -> Result<(), DbErr> {
    let now = chrono::Utc::now();
    let txn = db.begin().await?;
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let rows = chunk.iter().map(|(url, body)| event::ActiveModel {
            url: Set((*url).to_owned()),
            body: Set((*body).to_owned()),
            created_at: Set(now),
            ..Default::default()
        });
        event::Entity::insert_many(rows).exec_without_returning(&txn).await?;
    }
    txn.commit().await
}

/// The oldest `limit` events waiting for `url` (up to the row `last`, when
/// given): their row ids and bodies.
pub async fn oldest(
    db: &impl ConnectionTrait,
    url: &str,
    last: Option<i64>,
    limit: u64,
) -> Result<Vec<(i64, String)>, DbErr> {
    event::Entity::find()
        .select_only()
        .column(event::Column::Id)
        .column(event::Column::Body)
        .filter(event::Column::Url.eq(url))
        .filter(event::Column::Id.lte(last.unwrap_or(i64::MAX)))
        .order_by_asc(event::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// The newest event waiting for `url`, its row id.
pub async fn newest(db: &impl ConnectionTrait, url: &str) -> Result<Option<i64>, DbErr> {
    event::Entity::find()
        .select_only()
        .column(event::Column::Id)
        .filter(event::Column::Url.eq(url))
        .order_by_desc(event::Column::Id)
        .into_tuple()
        .one(db)
        .await
}

/// The events `ids` were taken by their receiver (or refused for good).
pub async fn done(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    event::Entity::delete_many().filter(event::Column::Id.is_in(ids.iter().copied())).exec(db).await.map(drop)
}

/// How many events wait for `url`.
pub async fn waiting(db: &impl ConnectionTrait, url: &str) -> Result<u64, DbErr> {
    event::Entity::find().filter(event::Column::Url.eq(url)).count(db).await
}

/// The URLs events wait for, with how many wait for each, other than
/// those of `delivered` (the URLs this node delivers to).
pub async fn waiting_elsewhere(
    db: &impl ConnectionTrait,
    delivered: &[String],
) -> Result<Vec<(String, i64)>, DbErr> {
    event::Entity::find()
        .select_only()
        .column(event::Column::Url)
        .column_as(event::Column::Id.count(), "waiting")
        .filter(event::Column::Url.is_not_in(delivered.iter().cloned()))
        .group_by(event::Column::Url)
        .order_by_asc(event::Column::Url)
        .into_tuple()
        .all(db)
        .await
}

/// Keeps the newest `keep` events waiting for `url`, besides those with ids
/// within `spare` (the batch being sent), and deletes the older ones; how
/// many it deleted.
pub async fn trim(
    db: &impl ConnectionTrait,
    url: &str,
    keep: u64,
    spare: Option<(i64, i64)>,
) -> Result<u64, DbErr> {
    let outside = |(first, last): (i64, i64)| event::Column::Id.lt(first).or(event::Column::Id.gt(last));
    let outside_spare = spare.map_or(Condition::all(), |range| Condition::all().add(outside(range)));
    // Ids are unique: rows within a span of `keep` ids are `keep` at most,
    // found by two seeks instead of counting `keep` of them.
    let span: Option<(Option<i64>, Option<i64>)> = event::Entity::find()
        .select_only()
        .column_as(event::Column::Id.min(), "low")
        .column_as(event::Column::Id.max(), "high")
        .filter(event::Column::Url.eq(url))
        .into_tuple()
        .one(db)
        .await?;
    let Some((Some(low), Some(high))) = span else { return Ok(0) };
    if u64::try_from(high - low).unwrap_or(0) < keep {
        return Ok(0);
    }
    let cut: Option<i64> = event::Entity::find()
        .select_only()
        .column(event::Column::Id)
        .filter(event::Column::Url.eq(url))
        .filter(outside_spare.clone())
        .order_by_desc(event::Column::Id)
        .offset(keep)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    let Some(cut) = cut else { return Ok(0) };
    let deleted = event::Entity::delete_many()
        .filter(event::Column::Url.eq(url))
        .filter(event::Column::Id.lte(cut))
        .filter(outside_spare)
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

/// The database's clock, in Unix milliseconds: the time leases are given
/// and judged by, so that nodes whose clocks disagree never both hold one.
pub async fn now_ms(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now_ms",
        _ => "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now_ms",
    };
    let row = db.query_one(Statement::from_string(backend, sql)).await?;
    row.ok_or_else(|| DbErr::Custom("the database told no time".to_owned()))?.try_get("", "now_ms")
}

/// Takes or renews `holder`'s lease on `url` until `until_ms`: granted when
/// nobody holds it, `holder` does, or it ran out before `now_ms`.
pub async fn lease(
    db: &impl ConnectionTrait,
    url: &str,
    holder: &str,
    now_ms: i64,
    until_ms: i64,
) -> Result<bool, DbErr> {
    let row = lease::ActiveModel {
        url: Set(url.to_owned()),
        holder: Set(holder.to_owned()),
        until_ms: Set(until_ms),
    };
    let held = |column: lease::Column| Expr::col((lease::Entity, column));
    let takeover = OnConflict::column(lease::Column::Url)
        .update_columns([lease::Column::Holder, lease::Column::UntilMs])
        .action_and_where(held(lease::Column::Holder).eq(holder).or(held(lease::Column::UntilMs).lt(now_ms)))
        .to_owned();
    let changed = lease::Entity::insert(row).on_conflict(takeover).exec_without_returning(db).await?;
    Ok(changed == 1)
}

/// Gives `holder`'s lease on `url` up, for another node to take at once.
pub async fn release(db: &impl ConnectionTrait, url: &str, holder: &str) -> Result<(), DbErr> {
    lease::Entity::delete_many()
        .filter(lease::Column::Url.eq(url))
        .filter(lease::Column::Holder.eq(holder))
        .exec(db)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use migration::MigratorTrait;

    async fn fresh() -> sea_orm::DatabaseConnection {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        db
    }

    #[tokio::test]
    async fn events_come_back_oldest_first_per_url_and_trimming_spares_the_one_being_sent() {
        let db = fresh().await;
        save(&db, &[("a", "1"), ("b", "x"), ("a", "2"), ("a", "3"), ("a", "4")]).await.unwrap();
        let (first, body) = oldest(&db, "a", None, 1).await.unwrap().remove(0);
        assert_eq!(body, "1");
        assert_eq!(oldest(&db, "b", None, 10).await.unwrap().len(), 1);
        assert_eq!(
            trim(&db, "a", 2, Some((first, first))).await.unwrap(),
            1,
            "\"2\" goes; \"1\" is being sent"
        );
        assert_eq!(waiting(&db, "a").await.unwrap(), 3);
        done(&db, &[first]).await.unwrap();
        let bodies: Vec<String> =
            oldest(&db, "a", None, 10).await.unwrap().into_iter().map(|(_, b)| b).collect();
        assert_eq!(bodies, ["3", "4"]);
        let top = newest(&db, "a").await.unwrap().unwrap();
        save(&db, &[("a", "5")]).await.unwrap();
        let upto: Vec<String> =
            oldest(&db, "a", Some(top), 10).await.unwrap().into_iter().map(|(_, b)| b).collect();
        assert_eq!(upto, ["3", "4"], "not what came after");
        assert_eq!(newest(&db, "c").await.unwrap(), None);
        assert_eq!(trim(&db, "a", 5, None).await.unwrap(), 0);
        assert_eq!(waiting(&db, "b").await.unwrap(), 1, "another URL's events untouched");
    }

    #[tokio::test]
    async fn trimming_spares_the_whole_batch_being_sent() {
        let db = fresh().await;
        save(&db, &[("a", "1"), ("a", "2"), ("a", "3"), ("a", "4"), ("a", "5"), ("a", "6")]).await.unwrap();
        let batch: Vec<i64> =
            oldest(&db, "a", None, 3).await.unwrap().into_iter().map(|(id, _)| id).collect();
        // "1" was delivered (its row waits to be deleted), "2" is being
        // sent, "3" comes next: none is counted as dropped.
        assert_eq!(trim(&db, "a", 2, Some((batch[0], batch[2]))).await.unwrap(), 1, "only \"4\" goes");
        let left: Vec<String> =
            oldest(&db, "a", None, 10).await.unwrap().into_iter().map(|(_, b)| b).collect();
        assert_eq!(left, ["1", "2", "3", "5", "6"]);
    }

    #[tokio::test]
    async fn events_waiting_for_urls_no_longer_delivered_to_are_counted_by_url() {
        let db = fresh().await;
        assert_eq!(waiting_elsewhere(&db, &[]).await.unwrap(), []);
        save(&db, &[("https://old.example/hook", "1"), ("https://now.example/hook", "2")]).await.unwrap();
        save(&db, &[("https://old.example/hook", "3")]).await.unwrap();
        let now = ["https://now.example/hook".to_owned()];
        assert_eq!(waiting_elsewhere(&db, &now).await.unwrap(), [("https://old.example/hook".to_owned(), 2)]);
        assert_eq!(waiting_elsewhere(&db, &[]).await.unwrap().len(), 2, "no URLs: every one is elsewhere");
    }

    #[tokio::test]
    async fn the_databases_clock_is_read_in_unix_milliseconds() {
        let db = fresh().await;
        let mine = chrono::Utc::now().timestamp_millis();
        let its = now_ms(&db).await.unwrap();
        assert!((its - mine).abs() < 2_000, "{its} against {mine}");
    }

    #[tokio::test]
    async fn a_lease_is_one_nodes_until_it_runs_out_or_is_given_up() {
        let db = fresh().await;
        assert!(lease(&db, "u", "n1", 1_000, 2_000).await.unwrap());
        assert!(!lease(&db, "u", "n2", 1_500, 2_500).await.unwrap(), "n1 holds it");
        assert!(lease(&db, "u", "n1", 1_500, 2_500).await.unwrap(), "n1 renews");
        assert!(lease(&db, "v", "n2", 1_500, 2_500).await.unwrap(), "another URL's is apart");
        assert!(lease(&db, "u", "n2", 2_600, 3_600).await.unwrap(), "run out: n2 takes it");
        assert!(!lease(&db, "u", "n1", 2_700, 3_700).await.unwrap());
        release(&db, "u", "n1").await.unwrap();
        assert!(!lease(&db, "u", "n1", 2_700, 3_700).await.unwrap(), "only its holder gives it up");
        release(&db, "u", "n2").await.unwrap();
        assert!(lease(&db, "u", "n1", 2_700, 3_700).await.unwrap());
    }
}
