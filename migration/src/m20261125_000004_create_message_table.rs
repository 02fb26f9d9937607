//! `message`: the conversation. `seq` numbers a room's messages 1, 2, 3, …
//! with no gap (unique per room); `client_msg_id` is the sender's id for the
//! message, unique per (room, user), so a retried send is stored once.
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
                    .table(Message::Table)
                    .col(ColumnDef::new(Message::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Message::RoomId).big_integer().not_null())
                    .col(ColumnDef::new(Message::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Message::UserId).string_len(64).not_null())
                    .col(ColumnDef::new(Message::Body).text().not_null())
                    .col(ColumnDef::new(Message::ClientMsgId).string_len(64).not_null())
                    .col(ColumnDef::new(Message::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Message::Table, Message::RoomId)
                            .to(Room::Table, Room::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Message::Table, Message::UserId)
                            .to(AppUser::Table, AppUser::UserId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("message_room_seq_unique")
                    .table(Message::Table)
                    .col(Message::RoomId)
                    .col(Message::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("message_room_user_client_msg_unique")
                    .table(Message::Table)
                    .col(Message::RoomId)
                    .col(Message::UserId)
                    .col(Message::ClientMsgId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Message::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Message {
    Table,
    Id,
    RoomId,
    Seq,
    UserId,
    Body,
    ClientMsgId,
    CreatedAt,
}
