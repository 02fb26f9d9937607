//! Persist-then-publish and per-room `seq`: what later delivery work relies
//! on. Reconnecting with the last seq replays exactly what was missed; a
//! retried send is stored and delivered once; concurrent senders get
//! consecutive seqs.
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use app::protocol::ServerFrame;
use common::spawn_app;

#[tokio::test]
async fn reconnecting_with_the_last_seq_replays_exactly_the_missed_messages() {
    let app = spawn_app().await;
    let mut sender = app.join("ana", "game_1").await;
    let mut reader = app.join("john", "game_1").await;
    sender.next().await; // john joined
    sender.send_and_ack("m1", "one").await;
    assert_eq!(reader.next_message().await.seq, 1);
    drop(reader);

    for i in 2..=5 {
        sender.send_and_ack(&format!("m{i}"), &format!("n{i}")).await;
    }
    let (mut reader, _) = app.connect("john", "game_1", 1).await;
    let replayed: Vec<i64> = [
        reader.next_message().await,
        reader.next_message().await,
        reader.next_message().await,
        reader.next_message().await,
    ]
    .iter()
    .map(|m| m.seq)
    .collect();
    assert_eq!(replayed, [2, 3, 4, 5]);
    reader.expect_silence(Duration::from_millis(300)).await;

    // Live messages continue after the replay.
    sender.send_and_ack("m6", "six").await;
    assert_eq!(reader.next_message().await.seq, 6);
}

#[tokio::test]
async fn a_retried_send_is_stored_once_and_delivered_once() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "game_1").await;
    let mut john = app.join("john", "game_1").await;
    ana.next().await;

    let first = ana.send_and_ack("same-id", "hello").await;
    let second = ana.send_and_ack("same-id", "hello").await;
    assert_eq!(first, second);
    assert_eq!(john.next_message().await.seq, first);
    john.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(ana.send_and_ack("next", "again").await, first + 1);
}

#[tokio::test]
async fn concurrent_senders_get_unique_consecutive_seqs_and_readers_see_them_in_order() {
    let app = spawn_app().await;
    let mut reader = app.join("reader", "room").await;
    let senders = 4;
    let per_sender = 25;
    let mut tasks = Vec::new();
    for s in 0..senders {
        let mut client = app.join(&format!("s{s}"), "room").await;
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..per_sender {
                seqs.push(client.send_and_ack(&format!("s{s}-{i}"), &format!("message {i}")).await);
            }
            seqs
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for seq in task.await.unwrap() {
            assert!(all.insert(seq), "seq {seq} given twice");
        }
    }
    let total = senders * per_sender;
    assert_eq!(all, (1..=total as i64).collect());

    let mut seen = Vec::new();
    while seen.len() < total {
        if let ServerFrame::Message(m) = reader.next().await {
            seen.push(m.seq);
        }
    }
    assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_reader_dropped_in_the_middle_of_a_burst_catches_up_exactly() {
    let app = spawn_app().await;
    let mut reader = app.join("reader", "burst").await;
    let mut sender = app.join("sender", "burst").await;
    reader.next().await; // sender joined
    let total = 60;
    let sending = tokio::spawn(async move {
        for i in 1..=total {
            sender.send_and_ack(&format!("m{i}"), &format!("n{i}")).await;
        }
    });

    // Read a few, drop the connection while the sender keeps going.
    let mut seen = Vec::new();
    while seen.len() < 10 {
        seen.push(reader.next_message().await.seq);
    }
    drop(reader);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (mut reader, _) = app.connect("reader", "burst", *seen.last().unwrap()).await;
    while seen.len() < total {
        seen.push(reader.next_message().await.seq);
    }
    sending.await.unwrap();
    assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>());
    reader.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_page_may_pipeline_sends_and_gets_acks_in_order_while_messages_keep_flowing() {
    let app = spawn_app().await;
    let mut ana = app.join("ana", "pipes").await;
    let mut john = app.join("john", "pipes").await;
    ana.next().await; // john joined

    // Fifteen sends without waiting, then a resend of the sixth (a page
    // that retried before its ack came).
    let ids: Vec<String> = (0..15).map(|i| format!("p{i}")).chain(["p5".to_owned()]).collect();
    for id in &ids {
        ana.say(id, &format!("body {id}")).await;
    }
    let mut acks = Vec::new();
    let mut own_copies = Vec::new();
    while acks.len() < ids.len() || own_copies.len() < 15 {
        match ana.next().await {
            ServerFrame::Ack { client_msg_id, seq } => acks.push((client_msg_id, seq)),
            ServerFrame::Message(m) => own_copies.push(m.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    let acked_ids: Vec<&str> = acks.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(acked_ids, ids.iter().map(String::as_str).collect::<Vec<_>>(), "acks in the order sent");
    let seqs: Vec<i64> = acks.iter().map(|(_, seq)| *seq).collect();
    assert_eq!(seqs[..15], (1..=15).collect::<Vec<_>>());
    assert_eq!(seqs[15], 6, "the resend is the stored sixth message");
    assert_eq!(own_copies, (1..=15).collect::<Vec<_>>());

    let received: Vec<i64> = message_seqs(&mut john, 15).await;
    assert_eq!(received, (1..=15).collect::<Vec<_>>());
    john.expect_silence(Duration::from_millis(300)).await;
}

async fn message_seqs(client: &mut common::Client, n: usize) -> Vec<i64> {
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        seqs.push(client.next_message().await.seq);
    }
    seqs
}

/// A row put into `message` by hand while the server runs (a restore, a
/// manual fix) that takes the room's next seq: the server steps over it.
/// Sends go on with the seqs after it, and every room's pages still open.
#[tokio::test]
async fn a_message_row_written_by_hand_while_the_server_runs_is_stepped_over() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    assert_eq!(ana.send_and_ack("m1", "one").await, 1);
    assert_eq!(ana.send_and_ack("m2", "two").await, 2);
    let mut elsewhere = app.join("ana", "other").await;
    assert_eq!(elsewhere.send_and_ack("o1", "other one").await, 1);

    let db = sea_orm::Database::connect(&app.config.database_url).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO message (room_id, seq, user_id, body, client_msg_id, created_at) \
         SELECT id, 3, 'ana', 'written by hand', 'hand-3', '2026-12-06T10:00:00Z' FROM room WHERE channel_id = 'r'",
    )
    .await
    .unwrap();
    db.close().await.unwrap();

    assert_eq!(ana.send_and_ack("m4", "four").await, 4, "the next send steps over the row by hand");
    assert_eq!(ana.send_and_ack("m5", "five").await, 5);
    assert_eq!(elsewhere.send_and_ack("o2", "other two").await, 2, "other rooms go on");
    for room in ["r", "other"] {
        let (status, _) = app.open_room("ana", room).await;
        assert_eq!(status, 200, "room {room} opens");
    }
    let (status, html) = app.open_room("ana", "r").await;
    assert_eq!(status, 200);
    let shown = common::list_items(&html, "messages");
    let bodies = ["one", "two", "written by hand", "four", "five"];
    assert_eq!(shown.len(), bodies.len(), "{shown:?}");
    for (item, body) in shown.iter().zip(bodies) {
        assert!(item.contains(body), "{item} should show {body}");
    }
}
