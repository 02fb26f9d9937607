//! A join storm: `clients` players enter one room at once (a match
//! starting) and each must be admitted and receive the room's history. The
//! room is given `history` messages first. On our server each player does
//! what a page does — join over HTTP (the answer carries the members and
//! the history), open the stream, receive the welcome and the replay — and
//! every join is announced to everyone already connected. The other servers
//! only connect and join. Reported: time until every player is welcomed
//! and has the history.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::cli::{StormArgs, Target};
use crate::clients::{self, Correctness, Entry, Layout, Phase, Role, Shared};
use crate::history;
use crate::procstat::{self, CpuMark};
use crate::proto::Proto;
use crate::report::{self, num, record};

pub async fn run(target: &Target, args: &StormArgs) -> Result<bool, String> {
    let pid = target.server_pid;
    let layout = Layout::new(&args.scenario, args.clients, args.room_size.unwrap_or(args.clients), 0);
    let shared = Shared::new(target.proto, layout.clone());
    let ours = target.proto == Proto::Ours;
    if ours && args.history > 0 {
        for room in 0..layout.rooms() {
            history::seed(target.addr, &layout.room_name(room), &args.scenario, args.history, 1, 16).await?;
        }
    }

    let before = CpuMark::now(pid);
    let (phase, phase_rx) = watch::channel(Phase::Wait);
    let at_once = if args.via_page { args.clients } else { target.concurrency };
    let opening = Arc::new(Semaphore::new(at_once.max(1)));
    let started = Instant::now();
    let entry = match (ours, args.via_page) {
        (true, true) => Entry::Page,
        (true, false) => Entry::JoinCall,
        (false, _) => Entry::Direct,
    };
    let tasks: Vec<_> = (0..layout.clients)
        .map(|client| {
            let role = Role { client, started };
            clients::spawn_client(shared.clone(), target.addr, role, entry, opening.clone(), phase_rx.clone())
        })
        .collect();
    let limit = Duration::from_secs_f64(args.max_secs);
    let opened = clients::wait_until_open(&shared, limit).await;
    let deadline = started + limit;
    while shared.history_done.load(Ordering::Relaxed) < shared.ready.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let spent = CpuMark::now(pid).since(&before);
    let (storm_cpu, storm_wall) = (spent.server, spent.wall);
    let rss_after = pid.and_then(|pid| procstat::rss_bytes(pid).ok());
    let rss_peak = pid.and_then(|pid| procstat::peak_rss_bytes(pid).ok());
    let outcomes = clients::close_all(&phase, tasks).await;
    let correctness = Correctness::tally(&shared, &outcomes);

    let max_secs = |pick: fn(&clients::Outcome) -> Option<Duration>| -> Option<f64> {
        let times: Vec<Duration> = outcomes.iter().filter_map(pick).collect();
        (times.len() == layout.clients).then(|| times.iter().max().map_or(0.0, Duration::as_secs_f64))
    };
    let all_welcomed_s = max_secs(|o| o.welcomed_after);
    let all_history_s = max_secs(|o| o.history_after);
    let presence_frames: u64 = outcomes.iter().map(|o| o.other_frames).sum();
    // Slowness is a result, not a failure; wrong deliveries are failures.
    let correct = correctness.seq_gaps == 0 && correctness.seq_repeats == 0;
    let complete = opened.is_ok()
        && all_history_s.is_some()
        && correctness.errors == 0
        && correctness.server_closes.is_empty();
    let ok = correct && (complete || !args.assert_complete);
    let mut line = record([
        ("server", Value::from(target.proto.label())),
        ("kind", Value::from("storm")),
        ("scenario", Value::from(args.scenario.as_str())),
        ("clients", Value::from(layout.clients)),
        ("room_size", Value::from(layout.room_size)),
        ("rooms", Value::from(layout.rooms())),
        ("via_page", Value::from(args.via_page)),
        ("history", Value::from(if ours { args.history } else { 0 })),
        ("all_welcomed_s", num(all_welcomed_s)),
        ("all_history_s", num(all_history_s)),
        ("welcomed", Value::from(shared.ready.load(Ordering::Relaxed))),
        ("with_history", Value::from(shared.history_done.load(Ordering::Relaxed))),
        ("storm_cpu_s", num(storm_cpu)),
        ("storm_wall_s", num(Some(storm_wall))),
        ("server_rss_mib", num(rss_after.map(report::mib))),
        ("server_peak_rss_mib", num(rss_peak.map(report::mib))),
        ("retries", Value::from(shared.retries.load(Ordering::Relaxed))),
        ("other_frames", Value::from(presence_frames)),
        ("history_messages_received", Value::from(correctness.unstamped)),
        ("failed", Value::from(shared.failed.load(Ordering::Relaxed))),
        ("error", opened.as_ref().err().map_or(Value::Null, |e| Value::from(e.as_str()))),
    ]);
    line.insert("complete".into(), Value::from(complete));
    line.insert("seq_gaps".into(), Value::from(correctness.seq_gaps));
    line.insert("seq_repeats".into(), Value::from(correctness.seq_repeats));
    line.insert("errors".into(), Value::from(correctness.errors));
    line.insert("server_closes".into(), serde_json::to_value(&correctness.server_closes).unwrap_or_default());
    let human = format!(
        "[{}] {}: {} players joined {} room(s){} ({} welcomed, {} retries): all welcomed after {} s, all \
         with history after {} s, server CPU {} s, peak RSS {} MiB, {} other frames (presence); {} history \
         messages received, seq gaps {} repeats {}, errors {}, closed by the server {:?}",
        target.proto.label(),
        args.scenario,
        layout.clients,
        layout.rooms(),
        if args.via_page { " through the page" } else { "" },
        shared.ready.load(Ordering::Relaxed),
        shared.retries.load(Ordering::Relaxed),
        all_welcomed_s.map_or("-".to_owned(), |s| format!("{s:.2}")),
        all_history_s.map_or("-".to_owned(), |s| format!("{s:.2}")),
        storm_cpu.map_or("-".to_owned(), |s| format!("{s:.2}")),
        rss_peak.map_or("-".to_owned(), |b| format!("{:.0}", report::mib(b))),
        presence_frames,
        correctness.unstamped,
        correctness.seq_gaps,
        correctness.seq_repeats,
        correctness.errors,
        correctness.server_closes,
    );
    report::emit(line, human);
    Ok(ok)
}
