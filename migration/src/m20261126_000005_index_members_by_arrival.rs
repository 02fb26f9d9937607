//! An index of a room's members in the order they joined (`member.id`):
//! a node keeps big rooms' member lists and reads only who joined after
//! the last one it has (`engine::store::member_lists`), a seek here
//! rather than a walk through the whole room.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "member_room_arrival";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(Member::Table)
                    .col(Member::RoomId)
                    .col(Member::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(NAME).table(Member::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Member {
    Table,
    Id,
    RoomId,
}
