//! Retention (`MESSAGE_RETENTION_DAYS`): what is older than the limit is
//! deleted when a node sweeps; what is newer, open reports, rooms and their
//! seqs stay. Rows are made old by writing their times back in the
//! database. (Its own test process: the metric counts are this file's.)
mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{spawn_app_with, TestApp};
use engine::store::entities::{message, report};
use reqwest::Method;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};
use server::config::Secret;

const KEY: &str = "game-backend-key-0123456789abcdefghij";

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = app.http.request(method, format!("{}{path}", app.base)).bearer_auth(KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    let text = response.text().await.unwrap();
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// Posts `body` in `room` as `user`; returns its seq.
async fn post(app: &TestApp, room: &str, user: &str, id: &str, body: &str) -> i64 {
    let message = json!({ "client_msg_id": id, "body": body, "user_id": user });
    let posted = call(app, Method::POST, &format!("/api/v1/rooms/{room}/messages"), Some(message)).await;
    posted["seq"].as_i64().unwrap()
}

async fn seqs(app: &TestApp, room: &str) -> Vec<i64> {
    let page = call(app, Method::GET, &format!("/api/v1/rooms/{room}/messages?after_seq=0"), None).await;
    page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
}

async fn metric(app: &TestApp, key: &str) -> f64 {
    let (_, text) = app.get(&format!("{}/metrics", app.base)).await;
    let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} missing"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// Dates the messages of `room` with seqs in `seqs` at `at`, as the
/// database would hold them had they been written then.
async fn date(db: &DatabaseConnection, room: &str, seqs: std::ops::RangeInclusive<i64>, at: DateTime<Utc>) {
    let room_id = call_room_id(db, room).await;
    message::Entity::update_many()
        .col_expr(message::Column::CreatedAt, Expr::value(at))
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::Seq.between(*seqs.start(), *seqs.end()))
        .exec(db)
        .await
        .unwrap();
}

/// Makes every report, and its handling, 40 days old.
async fn age_reports(db: &DatabaseConnection) {
    let old = days_ago(40);
    report::Entity::update_many()
        .col_expr(report::Column::CreatedAt, Expr::value(old))
        .exec(db)
        .await
        .unwrap();
    report::Entity::update_many()
        .col_expr(report::Column::HandledAt, Expr::value(old))
        .filter(report::Column::HandledAt.is_not_null())
        .exec(db)
        .await
        .unwrap();
}

fn days_ago(days: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(days)
}

/// Waits until the sweep has deleted `count` messages in all.
async fn swept(app: &TestApp, count: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(app, "chat_retention_deleted_total{what=\"messages\"}").await < count {
        assert!(tokio::time::Instant::now() < deadline, "the sweep has not deleted {count} messages");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call_room_id(db: &DatabaseConnection, channel_id: &str) -> i64 {
    use engine::store::entities::room;
    room::Entity::find().filter(room::Column::ChannelId.eq(channel_id)).one(db).await.unwrap().unwrap().id
}

#[tokio::test]
async fn what_is_older_than_the_limit_goes_and_rooms_go_on_from_their_last_seq() {
    let mut app = spawn_app_with(|c| c.api_keys = vec![Secret(KEY.into())]).await;
    let db = Database::connect(&app.config.database_url).await.unwrap();
    for room in ["gone", "mixed"] {
        call(&app, Method::POST, "/api/v1/rooms", Some(json!({ "channel_id": room }))).await;
        for user in ["ana", "bob"] {
            call(
                &app,
                Method::POST,
                &format!("/api/v1/rooms/{room}/members"),
                Some(json!({ "user_id": user })),
            )
            .await;
        }
    }
    // More than one sweep's batch, all old but one dated in the future
    // (a clock set wrong), which must not stop the sweep.
    for i in 1..=450 {
        post(&app, "gone", "ana", &format!("g{i}"), "an old line").await;
    }
    for i in 1..=4 {
        post(&app, "mixed", if i % 2 == 0 { "bob" } else { "ana" }, &format!("m{i}"), "a line").await;
    }
    // ana reports bob's two lines; one report is handled, one stays open.
    for seq in [2, 4] {
        let report = json!({ "channel_id": "mixed", "user_id": "ana", "request": { "report": { "seq": seq, "reason": "rude" } } });
        let response =
            app.http.post(format!("{}/api/moderate", app.base)).json(&report).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let reports = call(&app, Method::GET, "/api/v1/rooms/mixed/reports", None).await;
    let handled = reports.as_array().unwrap().iter().find(|r| r["seq"] == 2).unwrap()["id"].as_i64().unwrap();
    let close = Some(json!({ "outcome": "dismissed" }));
    call(&app, Method::POST, &format!("/api/v1/rooms/mixed/reports/{handled}/close"), close).await;

    date(&db, "gone", 1..=450, days_ago(40)).await;
    date(&db, "gone", 100..=100, days_ago(-3650)).await;
    date(&db, "mixed", 1..=2, days_ago(40)).await;
    age_reports(&db).await;

    // Without a limit, nothing goes, however old.
    app.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seqs(&app, "gone").await.len(), 450);
    assert_eq!(seqs(&app, "mixed").await, [1, 2, 3, 4]);

    // Thirty days: a node sweeps as it starts.
    app.config.message_retention_days = Some(30);
    app.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while metric(&app, "chat_retention_deleted_total{what=\"reports\"}").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "the sweep has not finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seqs(&app, "mixed").await, [3, 4]);
    assert_eq!(seqs(&app, "gone").await, [100], "all but the one dated in the future");
    assert_eq!(message::Entity::find().count(&db).await.unwrap(), 3, "nothing else left in the table");
    assert_eq!(metric(&app, "chat_retention_deleted_total{what=\"messages\"}").await, 451.0);

    // The handled report went with its time; the open one stays in the
    // moderators' queue, old or not.
    let left: Vec<i64> = report::Entity::find().all(&db).await.unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(left, [4]);
    let open = call(&app, Method::GET, "/api/v1/rooms/mixed/reports", None).await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    assert_eq!(metric(&app, "chat_retention_deleted_total{what=\"reports\"}").await, 1.0);

    // Seqs are never given twice: each room goes on after its last one.
    assert_eq!(post(&app, "gone", "bob", "g451", "still here").await, 451);
    assert_eq!(post(&app, "mixed", "bob", "m5", "still here").await, 5);
    // A page opened now starts at the oldest message kept.
    let (status, html) = app.open_room("ana", "mixed").await;
    assert_eq!(status, 200);
    let lines = common::list_items(&html, "messages");
    assert_eq!(lines.len(), 3, "{lines:?}");
    let (mut page, _) = app.connect("bob", "mixed", 0).await;
    assert_eq!(page.next_message().await.seq, 3);

    // The next sweep deletes what has grown old since, and only that.
    date(&db, "mixed", 3..=3, days_ago(31)).await;
    app.restart().await;
    swept(&app, 452.0).await;
    assert_eq!(seqs(&app, "mixed").await, [4, 5]);
    assert_eq!(seqs(&app, "gone").await, [100, 451]);
}
