//! `block`: the players a player has blocked, in every room. A player's
//! pages do not show what a blocked player writes (their messages, their
//! typing); the blocked player is not told. One row per (player, blocked
//! player), so blocking twice keeps one; the unique index also serves the
//! list of one player's blocks (a seek on its first column).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UNIQUE: &str = "block_user_blocked_unique";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Block::Table)
                    .col(ColumnDef::new(Block::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Block::UserId).string_len(64).not_null())
                    .col(ColumnDef::new(Block::BlockedUserId).string_len(64).not_null())
                    .col(ColumnDef::new(Block::CreatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(UNIQUE)
                    .table(Block::Table)
                    .col(Block::UserId)
                    .col(Block::BlockedUserId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Block::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Block {
    Table,
    Id,
    UserId,
    BlockedUserId,
    CreatedAt,
}
