//! A room with a long past (our server only): seeding it through the
//! stream, as players would, and then timing what a newcomer waits for —
//! the rendered page (`GET /chat_room`, first byte and whole), the JSON a
//! script gets from `join_room`, and the stream's welcome and replay.
//!
//! Seeding is itself a measurement: messages stored per second and server
//! CPU per stored message, with a few connections each keeping a window
//! of sends in flight.
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::{HistoryArgs, Target};
use crate::procstat::{self, CpuMark};
use crate::proto::{self, Incoming, Proto};
use crate::report::{self, num, record};

/// What seeding achieved.
#[derive(Clone, Copy, Debug)]
pub struct Seeded {
    pub stored: u64,
    pub secs: f64,
}

/// A history line: no stamp (receivers count it apart), chat-line sized.
fn history_body(seeder: usize, n: u64) -> String {
    let mut body = format!("history line {n} from seeder {seeder} ");
    let pad = crate::body::BODY_LEN.saturating_sub(body.len());
    body.extend(std::iter::repeat_n('.', pad));
    body
}

/// Stores `total` messages in `room` through `connections` streams, each
/// with up to `window` sends awaiting their ack.
pub async fn seed(
    addr: std::net::SocketAddr,
    room: &str,
    prefix: &str,
    total: u64,
    connections: usize,
    window: u64,
) -> Result<Seeded, String> {
    let connections = connections.max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for seeder in 0..connections {
        let share = total / connections as u64 + u64::from((seeder as u64) < total % connections as u64);
        let room = room.to_owned();
        let user = format!("{prefix}-seeder{seeder}");
        tasks.push(tokio::spawn(async move { seed_one(addr, &room, &user, seeder, share, window).await }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await.map_err(|e| format!("seeder: {e}"))??;
    }
    Ok(Seeded { stored, secs: started.elapsed().as_secs_f64() })
}

async fn seed_one(
    addr: std::net::SocketAddr,
    room: &str,
    user: &str,
    seeder: usize,
    share: u64,
    window: u64,
) -> Result<u64, String> {
    proto::join_room(addr, room, user).await?;
    let mut ws = proto::open(Proto::Ours, addr, room, user).await?.ws;
    let (mut sent, mut acked) = (0u64, 0u64);
    while acked < share {
        while sent < share && sent - acked < window.max(1) {
            sent += 1;
            let frame = proto::send(Proto::Ours, &format!("h{seeder}-{sent}"), &history_body(seeder, sent));
            ws.feed(frame).await.map_err(|e| format!("seed send: {e}"))?;
        }
        ws.flush().await.map_err(|e| format!("seed flush: {e}"))?;
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| "seeding stalled: no frame for 30 s".to_owned())?;
        match next {
            Some(Ok(Message::Text(text))) => match proto::decode(Proto::Ours, text.as_str()) {
                Incoming::Ack => acked += 1,
                Incoming::Error(err) => return Err(format!("seeding refused: {err}")),
                Incoming::Reply(reply) => ws.send(reply).await.map_err(|e| format!("seed reply: {e}"))?,
                Incoming::Message { .. } | Incoming::Other => {}
            },
            Some(Ok(Message::Close(frame))) => return Err(format!("seeding connection closed: {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(format!("seeding connection failed: {err}")),
            None => return Err("seeding connection ended".to_owned()),
        }
    }
    let _ = ws.close(None).await;
    Ok(acked)
}

pub async fn run(target: &Target, args: &HistoryArgs) -> Result<bool, String> {
    if target.proto != Proto::Ours {
        return Err("the history scenario needs our server (room history is ours alone)".to_owned());
    }
    let (addr, pid) = (target.addr, target.server_pid);
    let room = format!("{}-room", args.scenario);
    let before = CpuMark::now(pid);
    let seeded = seed(addr, &room, &args.scenario, args.messages, args.connections, args.window).await?;
    let seed_cpu = CpuMark::now(pid).since(&before).server;

    let reader = format!("{}-reader", args.scenario);
    let page = crate::http::get(addr, &format!("/chat_room?user_id={reader}&channel_id={room}"))
        .await
        .map_err(|e| format!("GET /chat_room: {e}"))?;
    let json_reader = format!("{}-reader2", args.scenario);
    let joined = proto::join_room(addr, &room, &json_reader).await?;

    // The stream a page opens next: welcome, then the replay of the latest
    // messages (at most the server's replay limit).
    let opened_at = Instant::now();
    let session = proto::open(Proto::Ours, addr, &room, &reader).await?;
    let welcome_ms = opened_at.elapsed().as_secs_f64() * 1000.0;
    let mut ws = session.ws;
    let mut replayed = 0u64;
    let mut last = session.resume_after;
    while last < session.last_seq {
        let next = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .map_err(|_| "replay stalled".to_owned())?;
        match next {
            Some(Ok(Message::Text(text))) => {
                if let Incoming::Message { seq: Some(seq), .. } = proto::decode(Proto::Ours, text.as_str()) {
                    replayed += 1;
                    last = seq;
                }
            }
            Some(Ok(_)) => {}
            _ => return Err("the stream ended during the replay".to_owned()),
        }
    }
    let replay_ms = opened_at.elapsed().as_secs_f64() * 1000.0;
    let _ = ws.close(None).await;
    let rss = pid.and_then(|pid| procstat::rss_bytes(pid).ok());

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ok = page.status == 200 && seeded.stored == args.messages;
    let line = record([
        ("server", Value::from(target.proto.label())),
        ("kind", Value::from("history")),
        ("scenario", Value::from(args.scenario.as_str())),
        ("messages", Value::from(seeded.stored)),
        ("seed_s", num(Some(seeded.secs))),
        ("seed_per_s", num(Some(seeded.stored as f64 / seeded.secs))),
        ("seed_cpu_us_per_message", num(seed_cpu.map(|c| c * 1e6 / seeded.stored.max(1) as f64))),
        ("page_status", Value::from(page.status)),
        ("page_first_byte_ms", num(Some(ms(page.first_byte)))),
        ("page_total_ms", num(Some(ms(page.total)))),
        ("page_bytes", Value::from(page.body_bytes)),
        ("join_json_first_byte_ms", num(Some(ms(joined.first_byte)))),
        ("join_json_total_ms", num(Some(ms(joined.total)))),
        ("join_json_bytes", Value::from(joined.body_bytes)),
        ("stream_welcome_ms", num(Some(welcome_ms))),
        ("stream_replay_ms", num(Some(replay_ms))),
        ("stream_replayed", Value::from(replayed)),
        ("server_rss_mib", num(rss.map(report::mib))),
    ]);
    let human = format!(
        "[ours] {}: seeded {} messages in {:.1} s ({:.0}/s, {} µs server CPU each); page: first byte {:.0} ms, \
         whole {:.0} ms, {:.0} KiB; join_room JSON {:.0} ms, {:.0} KiB; stream welcome {welcome_ms:.0} ms, \
         replay of {replayed} done at {replay_ms:.0} ms",
        args.scenario,
        seeded.stored,
        seeded.secs,
        seeded.stored as f64 / seeded.secs,
        seed_cpu.map_or("-".to_owned(), |c| format!("{:.0}", c * 1e6 / seeded.stored.max(1) as f64)),
        ms(page.first_byte),
        ms(page.total),
        page.body_bytes as f64 / 1024.0,
        ms(joined.total),
        joined.body_bytes as f64 / 1024.0,
    );
    report::emit(line, human);
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_are_unstamped_and_chat_line_sized() {
        let body = history_body(3, 12);
        assert_eq!(body.len(), crate::body::BODY_LEN);
        assert_eq!(crate::body::decode(&body), None);
    }
}
