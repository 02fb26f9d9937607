//! `room`: one row per `channel_id`. `last_seq` is the sequence number of
//! the room's newest message; sending bumps it in the same transaction as
//! the insert, which is what keeps `message.seq` gap-free.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Room::Table)
                    .col(ColumnDef::new(Room::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Room::ChannelId).string_len(64).not_null().unique_key())
                    .col(ColumnDef::new(Room::LastSeq).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Room::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Room::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
pub enum Room {
    Table,
    Id,
    ChannelId,
    LastSeq,
    CreatedAt,
}
