//! Delivery through trouble: replay bounds, heartbeats, slow readers,
//! graceful shutdown and restarts in the middle of a burst of sends.
mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use app::protocol::{ClientFrame, ServerFrame};
use common::{spawn_app, spawn_app_with, Event};
use futures::StreamExt;

#[tokio::test]
async fn a_page_too_far_behind_gets_only_the_latest_messages() {
    let app = spawn_app_with(|c| c.replay_limit = 3).await;
    let mut ana = app.join("ana", "r").await;
    for i in 1..=10 {
        ana.send_and_ack(&format!("m{i}"), "x").await;
    }
    let (mut late, welcome) = app.hello("ana", "r", 1).await;
    match welcome {
        ServerFrame::Welcome { last_seq, resume_after, .. } => assert_eq!((last_seq, resume_after), (10, 7)),
        other => panic!("{other:?}"),
    }
    let seqs = [late.next_message().await.seq, late.next_message().await.seq, late.next_message().await.seq];
    assert_eq!(seqs, [8, 9, 10]);

    // A page within the limit resumes exactly where it was.
    let (mut near, welcome) = app.hello("ana", "r", 8).await;
    assert!(matches!(welcome, ServerFrame::Welcome { resume_after: 8, .. }));
    assert_eq!(near.next_message().await.seq, 9);
}

#[tokio::test]
async fn pings_are_answered_and_a_silent_connection_is_dropped() {
    let app = spawn_app_with(|c| {
        c.heartbeat_secs = 1;
        c.idle_timeout_secs = 3;
    })
    .await;
    let (mut talker, welcome) = {
        app.open_room("ana", "r").await;
        app.hello("ana", "r", 0).await
    };
    assert!(matches!(welcome, ServerFrame::Welcome { heartbeat_ms: 1000, .. }));
    talker.send(&ClientFrame::Ping).await;
    assert_eq!(talker.next().await, ServerFrame::Pong);

    // Bob's connection reads nothing, so it cannot even answer the server's
    // websocket pings: the room sees him go offline once the idle timeout
    // is over. The talker, kept alive meanwhile, stays.
    app.open_room("bob", "r").await;
    let (_silent, _) = app.connect("bob", "r", 0).await;
    let started = Instant::now();
    loop {
        talker.send(&ClientFrame::Ping).await;
        match talker.next_any().await {
            ServerFrame::Presence { user_id, online: false } if user_id == "bob" => break,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    assert!(started.elapsed() > Duration::from_millis(2500), "dropped before the idle timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    talker.send(&ClientFrame::Ping).await;
    assert_eq!(talker.next().await, ServerFrame::Pong, "the talking page stays connected");
}

/// A hidden tab's timers may run once a minute, so its own heartbeats come
/// late; the server then pings the socket itself, which the browser answers
/// without the page (as this test client answers while it reads).
#[tokio::test]
async fn a_page_whose_heartbeats_are_late_stays_while_its_socket_answers_pings() {
    let app = spawn_app_with(|c| {
        c.heartbeat_secs = 1;
        c.idle_timeout_secs = 3;
    })
    .await;
    app.open_room("ana", "r").await;
    let (mut hidden, _) = app.connect("ana", "r", 0).await;
    hidden.expect_silence(Duration::from_secs(7)).await;
    hidden.send(&ClientFrame::Ping).await;
    assert_eq!(hidden.next().await, ServerFrame::Pong, "still connected after twice the idle timeout");
}

/// Resident memory of this test process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_reader_that_never_reads_slows_nobody_and_is_dropped_without_growing_memory() {
    let app = spawn_app_with(|c| {
        c.room_buffer = 64;
        c.write_timeout_secs = 1;
        c.replay_limit = 100_000;
        // These test clients send no heartbeats.
        c.heartbeat_secs = 300;
        c.idle_timeout_secs = 600;
    })
    .await;
    let mut sender = app.join("sender", "r").await;
    let mut reader = app.join("reader", "r").await;
    app.open_room("stuck", "r").await;
    // The stuck page: a tiny receive buffer, admitted, then never reads.
    let mut stuck = app.raw_stream_with_receive_buffer(4096).await;
    stuck
        .send(&ClientFrame::Hello {
            channel_id: "r".into(),
            user_id: "stuck".into(),
            after_seq: 0,
            token: None,
        })
        .await;
    sender.next().await; // reader joined
    sender.next().await; // stuck joined
    reader.next().await; // stuck joined

    let rss_before = rss_kib();
    let body = "y".repeat(1900);
    let mut worst = Duration::ZERO;
    let total = 2000;
    for i in 1..=total {
        let sent = Instant::now();
        sender.say(&format!("m{i}"), &body).await;
        let got = reader.next_message().await;
        assert_eq!(got.seq, i as i64);
        worst = worst.max(sent.elapsed());
        // The sender's own copy and its ack.
        sender.next().await;
        sender.next().await;
    }
    let grown_kib = rss_kib().saturating_sub(rss_before);
    assert!(worst < Duration::from_secs(1), "a reader waited {worst:?} for a message");
    // ~4 MB went to the stuck page; what the server keeps for it is bounded
    // by the room buffer and the socket buffers, not by the traffic.
    assert!(grown_kib < 48 * 1024, "memory grew by {grown_kib} KiB");

    // The server gave up on it: reading now ends in a close (a resync
    // request, or the dropped connection after the write deadline).
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stuck.next_event().await {
                Event::Frame(_) => continue,
                Event::Closed(code) => break code,
            }
        }
    })
    .await
    .expect("the stuck page is disconnected");
    assert!(matches!(ended, None | Some(4409)), "closed with {ended:?}");

    // Catching up from the store gets it everything, in order, once.
    let (mut caught_up, _) = app.connect("stuck", "r", 0).await;
    for seq in 1..=total as i64 {
        assert_eq!(caught_up.next_message().await.seq, seq);
    }
}

#[tokio::test]
async fn shutdown_closes_streams_with_going_away_and_refuses_new_ones() {
    let mut app = spawn_app().await;
    let mut ana = app.join("ana", "r").await;
    let (closed, ()) = tokio::join!(ana.next_event(), app.stop());
    assert_eq!(closed, Event::Closed(Some(1001)));
    assert!(tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/api/stream", app.port))
        .await
        .is_err());
}

#[tokio::test]
async fn every_acknowledged_message_survives_a_restart_in_the_middle_of_a_burst() {
    let mut app = spawn_app().await;
    let senders = ["s1", "s2", "s3"];
    for s in senders {
        app.open_room(s, "burst").await;
    }
    let per_sender = 40;
    // Each sender sends its messages in order, retrying an unacknowledged
    // one (same client id) after reconnecting, as the page does.
    let port = app.port;
    let mut tasks = Vec::new();
    for s in senders {
        tasks.push(tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let mut i = 0;
            'outer: while i < per_sender {
                let Ok((ws, _)) =
                    tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/api/stream")).await
                else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let mut client = common::Client::new(ws);
                client
                    .send(&ClientFrame::Hello {
                        channel_id: "burst".into(),
                        user_id: s.into(),
                        after_seq: 0,
                        token: None,
                    })
                    .await;
                while i < per_sender {
                    let id = format!("{s}-{i}");
                    if futures::SinkExt::send(
                        &mut client.ws,
                        tokio_tungstenite::tungstenite::Message::text(
                            serde_json::to_string(&ClientFrame::Send {
                                client_msg_id: id.clone(),
                                body: format!("{i}"),
                            })
                            .unwrap(),
                        ),
                    )
                    .await
                    .is_err()
                    {
                        continue 'outer;
                    }
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), client.ws.next()).await {
                            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t)))) => {
                                if let Ok(ServerFrame::Ack { client_msg_id, seq }) =
                                    serde_json::from_str(t.as_str())
                                {
                                    if client_msg_id == id {
                                        acked.insert(id.clone(), seq);
                                        i += 1;
                                        break;
                                    }
                                }
                            }
                            Ok(Some(Ok(_))) => {}
                            _ => continue 'outer,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.restart().await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.restart().await;

    let mut acked = BTreeMap::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    assert_eq!(acked.len(), senders.len() * per_sender);

    // The history holds each acknowledged message once, under its seq, gap-free.
    let (mut reader, _) = app.connect("s1", "burst", 0).await;
    let mut seen = HashSet::new();
    for seq in 1..=acked.len() as i64 {
        let m = reader.next_message().await;
        assert_eq!(m.seq, seq);
        assert!(seen.insert(m.client_msg_id.clone()), "{} stored twice", m.client_msg_id);
        assert_eq!(acked.get(&m.client_msg_id), Some(&seq), "ack and history disagree");
    }
    reader.expect_silence(Duration::from_millis(300)).await;
}
