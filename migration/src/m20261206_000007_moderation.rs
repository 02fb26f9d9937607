//! Moderation: what moderators do to messages and members, kept.
//!
//! - `message.action`: a moderation event stored in the room's seq order
//!   (a message removed, a member muted, kicked, banned, slow mode set), as
//!   the JSON of the protocol's `Action`; `NULL` for a player's message.
//!   Stored in the conversation's order, an event reaches every page and
//!   every replay after a reconnect the way messages do.
//! - `message.removed_by`, `message.removed_at`: who removed a message and
//!   when (the text is erased or kept, by the server's setting).
//! - `room.slow_mode_secs`: one message per this many seconds per member
//!   (0: off).
//! - `member.role`: `player` or `moderator`, as the game's server API set
//!   it (a token's claim, or the open mode's list, may also make a
//!   moderator: either is enough).
//! - `message.system`: a message the game posted as itself (shown apart
//!   from players' messages).
//! - `sanction`: a member muted or banned in a room, until a time or (no
//!   time) until lifted; one of each kind per member. Kept apart from
//!   `member` so that leaving and coming back lifts nothing.
//! - `report`: a message reported by a member, with a copy of its text at
//!   that moment, open until a moderator resolves or dismisses it.
use sea_orm_migration::prelude::*;

use crate::m20261125_000001_create_room_table::Room;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        let add = |column: &mut ColumnDef| Table::alter().table(Message::Table).add_column(column).to_owned();
        manager.alter_table(add(ColumnDef::new(Message::Action).text().null())).await?;
        manager.alter_table(add(ColumnDef::new(Message::RemovedBy).string_len(64).null())).await?;
        manager
            .alter_table(add(ColumnDef::new(Message::RemovedAt).timestamp_with_time_zone().null()))
            .await?;
        manager.alter_table(add(ColumnDef::new(Message::System).boolean().not_null().default(false))).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(MemberRole::Member)
                    .add_column(ColumnDef::new(MemberRole::Role).string_len(16).not_null().default("player"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Room::Table)
                    .add_column(ColumnDef::new(RoomSlowMode::SlowModeSecs).integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sanction::Table)
                    .col(ColumnDef::new(Sanction::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Sanction::RoomId).big_integer().not_null())
                    .col(ColumnDef::new(Sanction::UserId).string_len(64).not_null())
                    .col(ColumnDef::new(Sanction::Kind).string_len(8).not_null())
                    .col(ColumnDef::new(Sanction::Until).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Sanction::Reason).text().not_null())
                    .col(ColumnDef::new(Sanction::ByUser).string_len(64).not_null())
                    .col(ColumnDef::new(Sanction::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sanction::Table, Sanction::RoomId)
                            .to(Room::Table, Room::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sanction_room_user_kind_unique")
                    .table(Sanction::Table)
                    .col(Sanction::RoomId)
                    .col(Sanction::UserId)
                    .col(Sanction::Kind)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Report::Table)
                    .col(ColumnDef::new(Report::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Report::RoomId).big_integer().not_null())
                    .col(ColumnDef::new(Report::Seq).big_integer().not_null())
                    .col(ColumnDef::new(Report::Reporter).string_len(64).not_null())
                    .col(ColumnDef::new(Report::Author).string_len(64).not_null())
                    .col(ColumnDef::new(Report::Body).text().not_null())
                    .col(ColumnDef::new(Report::Reason).text().not_null())
                    .col(ColumnDef::new(Report::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Report::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Report::HandledBy).string_len(64).null())
                    .col(ColumnDef::new(Report::HandledAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Report::Table, Report::RoomId)
                            .to(Room::Table, Room::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("report_room_seq_reporter_unique")
                    .table(Report::Table)
                    .col(Report::RoomId)
                    .col(Report::Seq)
                    .col(Report::Reporter)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Report::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Sanction::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Room::Table).drop_column(RoomSlowMode::SlowModeSecs).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(MemberRole::Member).drop_column(MemberRole::Role).to_owned())
            .await?;
        for column in [Message::System, Message::RemovedAt, Message::RemovedBy, Message::Action] {
            manager.alter_table(Table::alter().table(Message::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Message {
    Table,
    Action,
    RemovedBy,
    RemovedAt,
    System,
}

#[derive(DeriveIden)]
enum MemberRole {
    Member,
    Role,
}

#[derive(DeriveIden)]
enum RoomSlowMode {
    SlowModeSecs,
}

#[derive(DeriveIden)]
enum Sanction {
    Table,
    Id,
    RoomId,
    UserId,
    Kind,
    Until,
    Reason,
    ByUser,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Report {
    Table,
    Id,
    RoomId,
    Seq,
    Reporter,
    Author,
    Body,
    Reason,
    CreatedAt,
    Status,
    HandledBy,
    HandledAt,
}
