//! `drill`: a fault drill for Embedded Chat.
//!
//! The server promises that every page of a room receives every message
//! exactly once and in `seq` order, across reconnects and restarts, and
//! that a retried send is stored once. Unit and integration tests check
//! each mechanism alone; this drill checks the promise as a whole, under
//! the faults that break such promises in production: many clients at once,
//! sockets dropped mid-conversation, and the server restarted under load.
//!
//! It starts the release server as a child process (loopback, a fresh
//! SQLite file), runs the simulated clients of [`client`], restarts the
//! server at even steps of progress, then judges the clients' records with
//! the pure [`verify::verify`] and prints a markdown table. Everything is
//! bounded: a fixed number of clients and messages, and a hard deadline.
//! Exit code 0 means no message was lost, duplicated or reordered and every
//! client finished in time.
mod cli;
mod client;
mod report;
mod rng;
mod server;
mod verify;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use cli::Args;
use client::{ClientReport, ClientSpec, RoomProgress, Shared};
use report::RunFacts;
use rng::XorShift;
use server::{RunDir, Server, ServerSpec, Stop};
use verify::{ClientLog, RoomLog};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(err) = args.validate() {
        eprintln!("drill: {err}");
        return ExitCode::from(2);
    }
    match run(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("drill: {err}");
            ExitCode::from(2)
        }
    }
}

/// Runs the drill and prints its report; true when it passed.
async fn run(args: &Args) -> Result<bool, String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_seconds);
    let mut run_dir = RunDir::create().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let spec = server_spec(args, &run_dir)?;
    let http = reqwest::Client::builder().build().map_err(|e| format!("http client: {e}"))?;
    println!(
        "drill: {} rooms × {} clients × {} messages, {} restart(s) and {} kill(s), cut probability {}, seed {}, server on port {}",
        args.rooms,
        args.clients_per_room,
        args.messages_per_client,
        args.restarts,
        args.kills,
        args.cut_probability,
        args.seed,
        spec.port
    );
    let mut server = Server::start(spec, &http).await.inspect_err(|_| run_dir.keep())?;

    let acked = Arc::new(AtomicU64::new(0));
    let shared = Shared {
        http: http.clone(),
        base_url: server.spec().base_url(),
        stream_url: server.spec().stream_url(),
        deadline,
        acked: acked.clone(),
    };
    let handles = spawn_clients(args, &shared);
    let clients_done = AtomicBool::new(false);
    let (reports, (restarts, restart_errors)) = tokio::join!(
        async {
            let reports = collect(handles).await;
            clients_done.store(true, Ordering::SeqCst);
            reports
        },
        restart_on_schedule(&mut server, &http, args, &acked, &clients_done, deadline),
    );
    server.stop().await;
    drop(server);

    let mut facts = RunFacts {
        rooms: args.rooms,
        clients: args.total_clients(),
        restarts_planned: args.restarts + args.kills,
        kills_planned: args.kills,
        restarts,
        restart_errors,
        elapsed: started.elapsed(),
        ..RunFacts::default()
    };
    let rooms = group_by_room(args, reports, &mut facts);
    let verdict = verify::verify(&rooms);
    let passed = verdict.clean() && facts.restart_errors.is_empty();

    print_report(&facts, &verdict, passed, &mut run_dir);
    Ok(passed)
}

/// Prints the details, the table, the failed checks (with the server's
/// log and the kept run folder as evidence) and the last line.
fn print_report(facts: &RunFacts, verdict: &verify::Verdict, passed: bool, run_dir: &mut RunDir) {
    for line in report::details(facts) {
        println!("{line}");
    }
    println!("\n{}\n", report::table(facts, verdict));
    for line in report::failures(verdict) {
        println!("{line}");
    }
    if !passed {
        run_dir.keep();
        println!("evidence kept in {} (server.log, drill.db)", run_dir.path().display());
        print_server_log_tail(run_dir);
    }
    println!("{}", report::last_line(verdict));
}

fn server_spec(args: &Args, run_dir: &RunDir) -> Result<ServerSpec, String> {
    let port = server::free_port().map_err(|e| format!("no free port: {e}"))?;
    Ok(ServerSpec {
        bin: args.server_bin.clone(),
        site_root: args.site_root.clone(),
        port,
        database_url: format!("sqlite://{}", run_dir.path().join("drill.db").display()),
        log: run_dir.path().join("server.log"),
    })
}

fn room_name(room: u32) -> String {
    format!("drill-room-{room}")
}

fn user_name(room: u32, client: u32) -> String {
    format!("r{room}-user{client}")
}

/// One task per client; the handles come back in room order.
fn spawn_clients(args: &Args, shared: &Shared) -> Vec<(u32, JoinHandle<ClientReport>)> {
    let mut handles = Vec::new();
    for room in 0..args.rooms {
        let progress = RoomProgress::new(args.clients_per_room as usize);
        for client in 0..args.clients_per_room {
            let spec = ClientSpec {
                channel_id: room_name(room),
                user_id: user_name(room, client),
                messages: args.messages_per_client,
                send_interval: Duration::from_millis(args.send_interval_ms),
                cut_probability: args.cut_probability,
                rng: XorShift::new(args.seed, u64::from(room * args.clients_per_room + client)),
            };
            let task = client::run_client(spec, shared.clone(), progress.clone());
            handles.push((room, tokio::spawn(task)));
        }
    }
    handles
}

/// Waits for every client; a client task that panicked counts as a client
/// that did not finish.
async fn collect(handles: Vec<(u32, JoinHandle<ClientReport>)>) -> Vec<(u32, ClientReport)> {
    let mut reports = Vec::with_capacity(handles.len());
    for (room, handle) in handles {
        let report = handle.await.unwrap_or_else(|err| ClientReport {
            log: ClientLog { name: format!("(task failed: {err})"), ..ClientLog::default() },
            stats: Default::default(),
            unfinished: Some("its task failed".to_owned()),
        });
        reports.push((room, report));
    }
    reports
}

/// Restart `k` of `n` happens once `k / (n + 1)` of all messages are
/// acknowledged, so restarts land at even steps of the run whatever its
/// speed; graceful ones and kills take turns (see [`stops`]). Stops early
/// when the clients are done or time is up.
async fn restart_on_schedule(
    server: &mut Server,
    http: &reqwest::Client,
    args: &Args,
    acked: &AtomicU64,
    clients_done: &AtomicBool,
    deadline: Instant,
) -> (Vec<Duration>, Vec<String>) {
    let (mut downtimes, mut errors) = (Vec::new(), Vec::new());
    let total = args.total_messages();
    let plan = stops(args.restarts, args.kills);
    for (k, how) in (1..).zip(plan.iter().copied()) {
        let threshold = total * k / (plan.len() as u64 + 1);
        while acked.load(Ordering::Relaxed) < threshold {
            if clients_done.load(Ordering::SeqCst) || Instant::now() >= deadline {
                return (downtimes, errors);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match server.restart(http, how).await {
            Ok(downtime) => downtimes.push(downtime),
            Err(err) => {
                errors.push(err);
                break;
            }
        }
    }
    (downtimes, errors)
}

/// The order of the run's restarts: graceful ones and kills taking turns,
/// a graceful one first, the rest of whichever is more at the end.
fn stops(restarts: u32, kills: u32) -> Vec<Stop> {
    let (mut graceful, mut kill) = (restarts, kills);
    let mut plan = Vec::new();
    while graceful + kill > 0 {
        if graceful > 0 {
            plan.push(Stop::Graceful);
            graceful -= 1;
        }
        if kill > 0 {
            plan.push(Stop::Kill);
            kill -= 1;
        }
    }
    plan
}

/// The clients' logs per room (for the verdict) and their summed counters.
fn group_by_room(args: &Args, reports: Vec<(u32, ClientReport)>, facts: &mut RunFacts) -> Vec<RoomLog> {
    let mut rooms: Vec<RoomLog> =
        (0..args.rooms).map(|r| RoomLog { name: room_name(r), clients: Vec::new() }).collect();
    for (room, report) in reports {
        report::add_stats(&mut facts.stats, &report.stats);
        if let Some(why) = &report.unfinished {
            facts.unfinished.push(format!("{} in {}: {why}", report.log.name, room_name(room)));
        }
        rooms[room as usize].clients.push(report.log);
    }
    rooms
}

/// The server's warnings and errors, for a failed run's evidence.
fn print_server_log_tail(run_dir: &RunDir) {
    const LINES: usize = 40;
    let Ok(log) = std::fs::read_to_string(run_dir.path().join("server.log")) else { return };
    let lines: Vec<&str> = log.lines().collect();
    if lines.is_empty() {
        println!("server.log is empty (the server logged no warning or error)");
        return;
    }
    println!("last {} lines of server.log:", LINES.min(lines.len()));
    for line in &lines[lines.len().saturating_sub(LINES)..] {
        println!("  {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::{stops, Stop};

    #[test]
    fn graceful_restarts_and_kills_take_turns() {
        use Stop::{Graceful as G, Kill as K};
        assert_eq!(stops(2, 2), [G, K, G, K]);
        assert_eq!(stops(3, 1), [G, K, G, G]);
        assert_eq!(stops(0, 2), [K, K]);
        assert!(stops(0, 0).is_empty());
    }
}
