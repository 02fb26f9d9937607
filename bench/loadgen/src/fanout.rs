//! Room fan-out at a fixed offered load, or at a rising one (the step-up
//! that finds a server's knee).
//!
//! Clients are spread over rooms; the first members of each room send
//! stamped bodies on a fixed schedule. The offered load is counted in
//! deliveries per second — a message to a room of 100 is 100 deliveries —
//! because that is the work a fan-out server does. Each measurement window
//! (after a warm-up) reads the server's CPU time from `/proc` at both ends:
//! CPU time per delivery is the number that stays comparable on a small
//! machine, where "messages per second at saturation" mostly measures the
//! load generator. After the last window senders stop, everything still on
//! its way is drained, and loss, duplication and order are settled.
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::cli::{FanoutArgs, Target};
use crate::clients::{self, Correctness, Layout, Phase, Shared};
use crate::procstat::{self, CpuMark};
use crate::proto::Proto;
use crate::report::{self, num, record};

/// Share of the offered load a window must deliver to count as keeping up.
const KEEPING_UP: f64 = 0.95;
/// Above this the load generator, not the server, is the likely limit.
const LOADGEN_BUSY: f64 = 0.90;

/// Numbers of one measurement window.
#[derive(Clone, Debug, serde::Serialize)]
struct Window {
    offered_per_s: u64,
    offered_actual_per_s: f64,
    delivered_per_s: f64,
    window_s: f64,
    server_cpu_pct: Option<f64>,
    /// Share of the window the server was runnable but waiting for its
    /// core (other processes on it): high values make latency meaningless.
    server_cpu_wait_pct: Option<f64>,
    cpu_us_per_delivery: Option<f64>,
    loadgen_cpu_pct: f64,
    server_rss_mib: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p999_ms: Option<f64>,
    max_ms: Option<f64>,
}

impl Window {
    fn keeps_up(&self, max_p99_ms: f64) -> bool {
        self.delivered_per_s >= KEEPING_UP * self.offered_per_s as f64
            && self.p99_ms.is_some_and(|p99| p99 <= max_p99_ms)
    }

    /// Why a window that does not keep up fails.
    fn limit(&self, max_p99_ms: f64) -> &'static str {
        if self.loadgen_cpu_pct >= LOADGEN_BUSY * 100.0
            && self.server_cpu_pct.is_none_or(|s| s < LOADGEN_BUSY * 100.0)
        {
            "load generator"
        } else if self.delivered_per_s < KEEPING_UP * self.offered_per_s as f64 {
            "throughput"
        } else if self.p99_ms.is_none_or(|p99| p99 > max_p99_ms) {
            "latency"
        } else {
            "none"
        }
    }

    fn human(&self) -> String {
        let ms = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}"));
        format!(
            "offered {}/s → delivered {:.0}/s, server CPU {} = {} µs/delivery (waited for CPU {}), p50 {} p99 {} \
             p999 {} ms, RSS {} MiB, loadgen CPU {:.0}%",
            self.offered_per_s,
            self.delivered_per_s,
            self.server_cpu_pct.map_or("-".to_owned(), |c| format!("{c:.0}%")),
            self.cpu_us_per_delivery.map_or("-".to_owned(), |c| format!("{c:.2}")),
            self.server_cpu_wait_pct.map_or("-".to_owned(), |w| format!("{w:.0}%")),
            ms(self.p50_ms),
            ms(self.p99_ms),
            ms(self.p999_ms),
            self.server_rss_mib.map_or("-".to_owned(), |m| format!("{m:.1}")),
            self.loadgen_cpu_pct,
        )
    }
}

pub async fn run(target: &Target, args: &FanoutArgs) -> Result<bool, String> {
    let prefix = match args.round {
        Some(round) => format!("{}-r{round}", args.scenario),
        None => args.scenario.clone(),
    };
    let layout = Layout::new(&prefix, args.clients, args.room_size, args.senders_per_room);
    if layout.senders_per_room == 0 {
        return Err("a fan-out needs at least one sender per room".to_owned());
    }
    let shared = Shared::new(target.proto, layout.clone());
    if target.proto == Proto::Ours {
        clients::join_all(target.addr, &layout, target.concurrency).await?;
    }
    let clients::Started { phase, tasks, .. } = clients::spawn_all(&shared, target.addr, target.concurrency);
    if let Err(err) = clients::wait_until_open(&shared, Duration::from_secs(300)).await {
        clients::close_all(&phase, tasks).await;
        return Err(err);
    }

    let steps = if args.steps.is_empty() { vec![args.offered] } else { args.steps.clone() };
    let stepping = !args.steps.is_empty();
    let per_round = layout.deliveries_per_round().max(1);
    let mut windows: Vec<Window> = Vec::new();
    let mut knee_limit = "none";
    for (step, &offered) in steps.iter().enumerate() {
        // One round (a message from every sender) makes `per_round`
        // deliveries; `offered` deliveries per second set the round length.
        let interval_us = (1e6 * per_round as f64 / offered.max(1) as f64).round() as u64;
        shared.interval_us.store(interval_us.max(1), Ordering::Relaxed);
        if step == 0 {
            phase.send_replace(Phase::Send);
        }
        tokio::time::sleep(Duration::from_secs_f64(args.warmup_secs)).await;
        let window = measure(&shared, target.server_pid, offered, args.secs).await;
        if stepping {
            let mut line = header(target, args, &layout, "step");
            line.insert("step".into(), Value::from(step));
            report::merge(&mut line, &window);
            let human =
                format!("[{}] {} step {step}: {}", target.proto.label(), args.scenario, window.human());
            report::emit(line, human);
        }
        let keeps_up = window.keeps_up(args.max_p99_ms);
        if !keeps_up {
            knee_limit = window.limit(args.max_p99_ms);
        }
        windows.push(window);
        if stepping && !keeps_up {
            break;
        }
    }

    // The latency target is set at half the knee: a steady load, so the
    // senders stop until what the last step left on its way has arrived
    // (that step overloaded the server or the load generator), then send
    // at half the knee for a window as long as a fixed-load run's.
    let knee_offered = windows.iter().rev().find(|w| w.keeps_up(args.max_p99_ms)).map(|w| w.offered_per_s);
    let half_knee = match knee_offered.filter(|_| stepping) {
        Some(knee) => {
            clients::pause(&phase, &shared, Duration::from_secs_f64(args.drain_secs)).await;
            let offered = knee / 2;
            let interval_us = (1e6 * per_round as f64 / offered.max(1) as f64).round() as u64;
            shared.interval_us.store(interval_us.max(1), Ordering::Relaxed);
            phase.send_replace(Phase::Send);
            tokio::time::sleep(Duration::from_secs_f64(args.warmup_secs.max(2.0))).await;
            let window = measure(&shared, target.server_pid, offered, args.secs.max(5.0)).await;
            let human =
                format!("[{}] {} at half the knee: {}", target.proto.label(), args.scenario, window.human());
            eprintln!("{human}");
            Some(window)
        }
        None => None,
    };

    clients::drain(&phase, &shared, Duration::from_secs_f64(args.drain_secs)).await;
    let outcomes = clients::close_all(&phase, tasks).await;
    let correctness = Correctness::tally(&shared, &outcomes);
    let clean = correctness.is_clean(target.proto);

    let (mut line, human) = if stepping {
        let knee = windows.iter().rev().find(|w| w.keeps_up(args.max_p99_ms));
        let mut line = header(target, args, &layout, "knee");
        line.insert("max_p99_ms".into(), Value::from(args.max_p99_ms));
        line.insert("knee_offered_per_s".into(), knee.map_or(Value::Null, |w| Value::from(w.offered_per_s)));
        line.insert("knee_delivered_per_s".into(), num(knee.map(|w| w.delivered_per_s)));
        line.insert("knee_p99_ms".into(), num(knee.and_then(|w| w.p99_ms)));
        line.insert("knee_cpu_us_per_delivery".into(), num(knee.and_then(|w| w.cpu_us_per_delivery)));
        line.insert("limited_by".into(), Value::from(knee_limit));
        let half = half_knee.as_ref();
        line.insert(
            "half_knee_offered_per_s".into(),
            half.map_or(Value::Null, |w| Value::from(w.offered_per_s)),
        );
        line.insert("half_knee_p50_ms".into(), num(half.and_then(|w| w.p50_ms)));
        line.insert("half_knee_p99_ms".into(), num(half.and_then(|w| w.p99_ms)));
        line.insert("half_knee_p999_ms".into(), num(half.and_then(|w| w.p999_ms)));
        line.insert("half_knee_cpu_us_per_delivery".into(), num(half.and_then(|w| w.cpu_us_per_delivery)));
        let human = format!(
            "[{}] {}: knee at {} deliveries/s offered (p99 ≤ {} ms and ≥ {:.0}% delivered), next step limited by {knee_limit}",
            target.proto.label(),
            args.scenario,
            knee.map_or("none of the steps".to_owned(), |w| w.offered_per_s.to_string()),
            args.max_p99_ms,
            KEEPING_UP * 100.0,
        );
        (line, human)
    } else {
        let window = windows.last().expect("one window at least");
        let mut line = header(target, args, &layout, "fanout");
        report::merge(&mut line, window);
        let human = format!("[{}] {}: {}", target.proto.label(), args.scenario, window.human());
        (line, human)
    };
    report::merge(&mut line, &correctness);
    line.insert("clean".into(), Value::from(clean));
    report::emit(line, format!("{human}\n    {}", correctness.summary()));
    Ok(clean)
}

/// One measurement window at the current rate.
async fn measure(shared: &Shared, server_pid: Option<u32>, offered: u64, secs: f64) -> Window {
    let before = CpuMark::now(server_pid);
    shared.open_window();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let hist = shared.close_window();
    let after = CpuMark::now(server_pid);
    let spent = after.since(&before);
    let (server_cpu, own_cpu, wall) = (spent.server, spent.own, spent.wall);
    let delivered = shared.window_delivered.load(Ordering::Relaxed);
    let offered_actual = shared.window_offered.load(Ordering::Relaxed);
    Window {
        offered_per_s: offered,
        offered_actual_per_s: report::round3(offered_actual as f64 / wall),
        delivered_per_s: report::round3(delivered as f64 / wall),
        window_s: report::round3(wall),
        server_cpu_pct: server_cpu.map(|c| report::round3(100.0 * c / wall)),
        server_cpu_wait_pct: spent.server_wait.map(|w| report::round3(100.0 * w / wall)),
        cpu_us_per_delivery: server_cpu
            .filter(|_| delivered > 0)
            .map(|c| report::round3(c * 1e6 / delivered as f64)),
        loadgen_cpu_pct: report::round3(100.0 * own_cpu / wall),
        server_rss_mib: server_pid.and_then(|pid| procstat::rss_bytes(pid).ok()).map(report::mib),
        p50_ms: report::quantile_ms(&hist, 0.5),
        p99_ms: report::quantile_ms(&hist, 0.99),
        p999_ms: report::quantile_ms(&hist, 0.999),
        max_ms: (!hist.is_empty()).then(|| report::round3(hist.max() as f64 / 1000.0)),
    }
}

fn header(target: &Target, args: &FanoutArgs, layout: &Layout, kind: &str) -> Map<String, Value> {
    record([
        ("server", Value::from(target.proto.label())),
        ("kind", Value::from(kind)),
        ("scenario", Value::from(args.scenario.as_str())),
        ("clients", Value::from(layout.clients)),
        ("room_size", Value::from(layout.room_size)),
        ("rooms", Value::from(layout.rooms())),
        ("senders", Value::from(layout.rooms() * layout.senders_per_room)),
        ("round", args.round.map_or(Value::Null, Value::from)),
    ])
}
