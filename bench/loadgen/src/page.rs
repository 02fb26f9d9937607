//! The CPU one room page costs: a room with `members` members and
//! `messages` messages, opened `pages` times by its members (a few at a
//! time), first as a browser asks for it (compressed), then as it is made
//! (no compression). Each page is what a player's first request costs the
//! server: the join (idempotent for a member), the room's members and
//! latest history read, the render, and the compression.
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::cli::{PageArgs, Target};
use crate::history;
use crate::http::{self, plain, Timed};
use crate::procstat::CpuMark;
use crate::proto::{self, Proto};
use crate::report::{self, num, record};

/// What browsers offer over HTTPS.
const BROWSER_ENCODINGS: &str = "gzip, deflate, br, zstd";

pub async fn run(target: &Target, args: &PageArgs) -> Result<bool, String> {
    if target.proto != Proto::Ours {
        return Err("the page scenario needs our server (the room page is ours alone)".to_owned());
    }
    let (addr, pid) = (target.addr, target.server_pid);
    let room = format!("{}-room", args.scenario);
    let members: Vec<String> = (0..args.members.max(1)).map(|i| format!("{}-m{i}", args.scenario)).collect();
    for member in &members {
        proto::join_room(addr, &room, member).await?;
    }
    if args.messages > 0 {
        history::seed(addr, &room, &args.scenario, args.messages, 1, 16).await?;
    }
    let paths: Arc<Vec<String>> = Arc::new(
        members
            .iter()
            .map(|m| format!("/chat_room?user_id={}&channel_id={}", plain(m), plain(&room)))
            .collect(),
    );
    // Warm: the first renders pay for what is made once.
    fetch_pages(addr, &paths, 50, args.in_flight, Some(BROWSER_ENCODINGS)).await?;

    let mut line = record([
        ("server", Value::from(target.proto.label())),
        ("kind", Value::from("page")),
        ("scenario", Value::from(args.scenario.as_str())),
        ("members", Value::from(members.len())),
        ("messages", Value::from(args.messages)),
        ("pages", Value::from(args.pages)),
    ]);
    let mut human = format!(
        "[ours] {}: room page with {} members and {} messages, {} pages each way",
        args.scenario,
        members.len(),
        args.messages,
        args.pages
    );
    for (key, encoding) in [("compressed", Some(BROWSER_ENCODINGS)), ("plain", None)] {
        let before = CpuMark::now(pid);
        let replies = fetch_pages(addr, &paths, args.pages, args.in_flight, encoding).await?;
        let spent = CpuMark::now(pid).since(&before);
        let cpu_us = spent.server.map(|s| s * 1e6 / args.pages as f64);
        let mut totals: Vec<f64> = replies.iter().map(|r| r.total.as_secs_f64() * 1000.0).collect();
        totals.sort_by(f64::total_cmp);
        let p50 = totals[totals.len() / 2];
        let p99 = totals[(totals.len() * 99 / 100).min(totals.len() - 1)];
        let bytes = replies.iter().map(|r| r.body_bytes).sum::<usize>() / replies.len();
        line.insert(format!("{key}_cpu_us_per_page"), num(cpu_us));
        line.insert(format!("{key}_pages_per_s"), num(Some(args.pages as f64 / spent.wall)));
        line.insert(format!("{key}_p50_ms"), num(Some(p50)));
        line.insert(format!("{key}_p99_ms"), num(Some(p99)));
        line.insert(format!("{key}_bytes"), Value::from(bytes));
        human.push_str(&format!(
            "; {key}: {} µs server CPU per page, {:.0} pages/s, p50 {p50:.1} ms, p99 {p99:.1} ms, {bytes} bytes",
            cpu_us.map_or("-".to_owned(), |c| format!("{c:.0}")),
            args.pages as f64 / spent.wall,
        ));
    }
    report::emit(line, human);
    Ok(true)
}

/// GETs `count` pages, `in_flight` at a time, cycling through `paths`;
/// fails on the first answer that is not 200.
async fn fetch_pages(
    addr: std::net::SocketAddr,
    paths: &Arc<Vec<String>>,
    count: usize,
    in_flight: usize,
    encoding: Option<&'static str>,
) -> Result<Vec<Timed>, String> {
    let slots = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        let permit = slots.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let paths = paths.clone();
        tasks.push(tokio::spawn(async move {
            let reply = http::get_encoded(addr, &paths[i % paths.len()], encoding).await;
            drop(permit);
            reply
        }));
    }
    let mut replies = Vec::with_capacity(count);
    for task in tasks {
        let reply = task.await.map_err(|e| e.to_string())?.map_err(|e| format!("GET a room page: {e}"))?;
        if reply.status != 200 {
            return Err(format!("a room page answered {}", reply.status));
        }
        replies.push(reply);
    }
    Ok(replies)
}
