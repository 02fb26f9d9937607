//! The schema can be created, removed and created again on an empty
//! database, and `down` really removes every table.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseBackend, Statement};

async fn table_names(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Vec<String> {
    let rows = db
        .query_all(Statement::from_string(
            DatabaseBackend::Sqlite,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ))
        .await
        .unwrap();
    rows.iter().map(|r| r.try_get::<String>("", "name").unwrap()).collect()
}

/// Every table the migrations make.
const TABLES: [&str; 10] = [
    "app_user",
    "block",
    "member",
    "message",
    "report",
    "room",
    "sanction",
    "seaql_migrations",
    "webhook_lease",
    "webhook_outbox",
];

#[tokio::test]
async fn migrations_run_up_down_and_up_again_on_an_empty_database() {
    let db = Database::connect("sqlite::memory:").await.unwrap();

    migration::Migrator::up(&db, None).await.unwrap();
    assert_eq!(table_names(&db).await, TABLES);

    migration::Migrator::down(&db, None).await.unwrap();
    assert_eq!(table_names(&db).await, ["seaql_migrations"]);

    migration::Migrator::up(&db, None).await.unwrap();
    assert_eq!(table_names(&db).await, TABLES);
    assert!(migration::Migrator::get_pending_migrations(&db).await.unwrap().is_empty());
}
