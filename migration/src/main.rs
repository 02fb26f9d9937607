//! Command-line runner for the schema migrations:
//! `DATABASE_URL=sqlite://embedded-chat.db?mode=rwc cargo run -p migration -- up`
//! (also `down`, `status`, `fresh`, `refresh`, `reset`).
use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}
