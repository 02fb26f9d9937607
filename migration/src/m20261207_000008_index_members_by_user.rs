//! An index of members by user: the rooms a user is in (the server API's
//! `/users/{user_id}/rooms`, which lists them and takes a user out of all
//! of them) are a seek here rather than a walk through every room's
//! members.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "member_user";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(Index::create().name(NAME).table(Member::Table).col(Member::UserId).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(NAME).table(Member::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Member {
    Table,
    UserId,
}
