//! An index of sanctions by user: a user's mutes and bans in every room
//! (the server API's `/users/{user_id}/sanctions`) are a seek here rather
//! than a walk through every room's sanctions.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "sanction_user";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(Index::create().name(NAME).table(Sanction::Table).col(Sanction::UserId).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(NAME).table(Sanction::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Sanction {
    Table,
    UserId,
}
