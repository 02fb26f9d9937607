//! `member`: who belongs to which room. Unique per (room, user), so joining
//! twice is a no-op.
use sea_orm_migration::prelude::*;

use crate::m20261125_000001_create_room_table::Room;
use crate::m20261125_000002_create_app_user_table::AppUser;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Member::Table)
                    .col(ColumnDef::new(Member::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Member::RoomId).big_integer().not_null())
                    .col(ColumnDef::new(Member::UserId).string_len(64).not_null())
                    .col(ColumnDef::new(Member::JoinedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Member::Table, Member::RoomId)
                            .to(Room::Table, Room::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Member::Table, Member::UserId)
                            .to(AppUser::Table, AppUser::UserId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("member_room_user_unique")
                    .table(Member::Table)
                    .col(Member::RoomId)
                    .col(Member::UserId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Member::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Member {
    Table,
    Id,
    RoomId,
    UserId,
    JoinedAt,
}
