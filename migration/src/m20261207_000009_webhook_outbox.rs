//! The webhooks' outbox: events waiting for a receiver are kept in the
//! database, not only in a node's memory, so that a restart, a crash or a
//! receiver down for hours loses none of them, and any node can deliver
//! what another one saved.
//!
//! `webhook_outbox` holds one row per event and URL, in the order saved
//! (`id`); a row is deleted once its receiver took the event. The
//! `(url, id)` index is the delivery order. `webhook_lease` names the node
//! that delivers a URL's events, until `until_ms` unless it renews (one
//! node at a time: each event once, in order).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const ORDER: &str = "webhook_outbox_url_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookOutbox::Table)
                    .col(
                        ColumnDef::new(WebhookOutbox::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(WebhookOutbox::Url).text().not_null())
                    .col(ColumnDef::new(WebhookOutbox::Body).text().not_null())
                    .col(ColumnDef::new(WebhookOutbox::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ORDER)
                    .table(WebhookOutbox::Table)
                    .col(WebhookOutbox::Url)
                    .col(WebhookOutbox::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookLease::Table)
                    .col(ColumnDef::new(WebhookLease::Url).text().not_null().primary_key())
                    .col(ColumnDef::new(WebhookLease::Holder).string_len(64).not_null())
                    .col(ColumnDef::new(WebhookLease::UntilMs).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(WebhookLease::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookOutbox::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum WebhookOutbox {
    Table,
    Id,
    Url,
    Body,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookLease {
    Table,
    Url,
    Holder,
    UntilMs,
}
