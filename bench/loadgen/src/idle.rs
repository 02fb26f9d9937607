//! Memory per idle connection: how many players a box can hold open.
//!
//! The server's resident memory is read before and after `clients`
//! connections (rooms of `room_size`) open and settle; the difference over
//! the count is the price of one connection. On our server the members
//! join over HTTP first and the "before" reading is taken after that, so
//! the number covers the open stream only (what joining stored is
//! reported apart). The connections then stay open a few seconds more to
//! show what idling costs in CPU (heartbeat timers and the like).
use std::time::Duration;

use serde_json::Value;

use crate::cli::{IdleArgs, Target};
use crate::clients::{self, Correctness, Layout, Shared};
use crate::procstat::{self, CpuMark};
use crate::proto::Proto;
use crate::report::{self, num, record};

pub async fn run(target: &Target, args: &IdleArgs) -> Result<bool, String> {
    let pid = target.server_pid;
    let rss = || pid.and_then(|pid| procstat::rss_bytes(pid).ok());
    let layout = Layout::new(&args.scenario, args.clients, args.room_size, 0);
    let shared = Shared::new(target.proto, layout.clone());
    let rss_start = rss();
    if target.proto == Proto::Ours {
        clients::join_all(target.addr, &layout, target.concurrency).await?;
    }
    let rss_before = rss();

    let clients::Started { phase, tasks, started } =
        clients::spawn_all(&shared, target.addr, target.concurrency);
    let opened = clients::wait_until_open(&shared, Duration::from_secs(600)).await;
    let open_s = started.elapsed().as_secs_f64();
    if let Err(err) = opened {
        clients::close_all(&phase, tasks).await;
        return Err(err);
    }
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
    let rss_after = rss();
    let before_hold = CpuMark::now(pid);
    tokio::time::sleep(Duration::from_secs_f64(args.hold_secs)).await;
    let hold = CpuMark::now(pid).since(&before_hold);
    let (hold_cpu, hold_wall) = (hold.server, hold.wall);
    let outcomes = clients::close_all(&phase, tasks).await;
    let correctness = Correctness::tally(&shared, &outcomes);
    let still_open = outcomes.iter().all(|o| o.closed_by_server.is_none() && !o.broken);

    let per_conn = |before: Option<u64>| -> Option<f64> {
        let (before, after) = (before?, rss_after?);
        Some(after.saturating_sub(before) as f64 / 1024.0 / layout.clients as f64)
    };
    let mut line = record([
        ("server", Value::from(target.proto.label())),
        ("kind", Value::from("idle")),
        ("scenario", Value::from(args.scenario.as_str())),
        ("clients", Value::from(layout.clients)),
        ("room_size", Value::from(layout.room_size)),
        ("open_s", num(Some(open_s))),
        ("opens_per_s", num(Some(layout.clients as f64 / open_s))),
        ("rss_start_mib", num(rss_start.map(report::mib))),
        ("rss_before_mib", num(rss_before.map(report::mib))),
        ("rss_after_mib", num(rss_after.map(report::mib))),
        ("kib_per_connection", num(per_conn(rss_before))),
        ("kib_per_member_joined", num(per_conn(rss_start).zip(per_conn(rss_before)).map(|(a, b)| a - b))),
        ("idle_cpu_pct", num(hold_cpu.map(|c| 100.0 * c / hold_wall))),
        ("all_stayed_open", Value::from(still_open)),
    ]);
    report::merge(&mut line, &correctness);
    let human = format!(
        "[{}] {}: {} connections open in {open_s:.1} s, RSS {} → {} MiB = {} KiB per connection, idle CPU {}",
        target.proto.label(),
        args.scenario,
        layout.clients,
        rss_before.map_or("-".to_owned(), |b| format!("{:.1}", report::mib(b))),
        rss_after.map_or("-".to_owned(), |b| format!("{:.1}", report::mib(b))),
        per_conn(rss_before).map_or("-".to_owned(), |k| format!("{k:.1}")),
        hold_cpu.map_or("-".to_owned(), |c| format!("{:.1}%", 100.0 * c / hold_wall)),
    );
    report::emit(line, human);
    Ok(still_open)
}
