//! History paging: a room page holds the latest messages only, and older
//! pages come by `seq` cursor, in order, without gaps or repeats.
mod common;

use app::protocol::HistoryPage;
use common::{list_items, spawn_app};

async fn older(app: &common::TestApp, user: &str, before_seq: i64) -> (u16, Option<HistoryPage>) {
    let cursor = before_seq.to_string();
    let response = app
        .post_fn("older_messages", &[("channel_id", "r"), ("user_id", user), ("before_seq", &cursor)])
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.ok())
}

#[tokio::test]
async fn a_room_opens_with_its_latest_fifty_and_older_pages_follow_by_cursor() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    for n in 1..=120 {
        ana.send_and_ack(&format!("m{n}"), &format!("message {n}")).await;
    }
    let (_, html) = app.open_room("ana", "r").await;
    let shown = list_items(&html, "messages");
    assert_eq!(shown.len(), 50);
    assert!(shown[0].contains("message 71") && shown[49].contains("message 120"), "{shown:?}");

    let (status, page) = older(&app, "ana", 71).await;
    assert_eq!(status, 200);
    let page = page.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), (21..=70).collect::<Vec<_>>());
    assert!(page.has_older);
    let (_, page) = older(&app, "ana", 21).await;
    let page = page.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    assert!(!page.has_older);
    let (_, page) = older(&app, "ana", 1).await;
    assert!(page.unwrap().messages.is_empty());
}

#[tokio::test]
async fn only_members_page_through_a_rooms_history() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    ana.send_and_ack("m1", "secret plans").await;
    let (status, _) = older(&app, "mallory", 100).await;
    assert_eq!(status, 403);
}
