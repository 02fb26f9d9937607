//! Database schema of Embedded Chat, as sea-orm migrations.
//!
//! The server runs these at start-up (unless told not to), and the
//! `migration` binary runs them by hand (`cargo run -p migration -- up`).
//! Every migration has a `down`, and all of them run on SQLite and
//! PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_room_table;
mod m20261125_000002_create_app_user_table;
mod m20261125_000003_create_member_table;
mod m20261125_000004_create_message_table;
mod m20261126_000005_index_members_by_arrival;
mod m20261203_000006_message_ids_without_autoincrement;
mod m20261206_000007_moderation;
mod m20261207_000008_index_members_by_user;
mod m20261207_000009_webhook_outbox;
mod m20261207_000010_index_sanctions_by_user;
mod m20261207_000011_blocks;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_room_table::Migration),
            Box::new(m20261125_000002_create_app_user_table::Migration),
            Box::new(m20261125_000003_create_member_table::Migration),
            Box::new(m20261125_000004_create_message_table::Migration),
            Box::new(m20261126_000005_index_members_by_arrival::Migration),
            Box::new(m20261203_000006_message_ids_without_autoincrement::Migration),
            Box::new(m20261206_000007_moderation::Migration),
            Box::new(m20261207_000008_index_members_by_user::Migration),
            Box::new(m20261207_000009_webhook_outbox::Migration),
            Box::new(m20261207_000010_index_sanctions_by_user::Migration),
            Box::new(m20261207_000011_blocks::Migration),
        ]
    }
}
