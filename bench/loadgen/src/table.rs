//! The comparison table: the JSON lines of a run (all servers, all
//! scenarios) as one markdown table, a row per metric and a column per
//! server, plus our server's ratio to each peer. Step-by-step lines of the
//! knee search stay in the raw file; the table shows the knee itself.
//!
//! A fan-out scenario may come in several rounds, the servers taking turns
//! round by round (`bench/run`): the host's speed drifts over minutes, and
//! two windows measured far apart compare that drift as much as the
//! servers. A server's cell is then its median round by CPU per delivery
//! (every figure of the row from that one round), while lost, duplicated
//! and out-of-order messages add up over all rounds.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Column order of the servers.
const SERVERS: [&str; 3] = ["ours", "socket.io", "naive"];

type Record = Map<String, Value>;

/// Records of one scenario, by server.
struct Group {
    kind: String,
    scenario: String,
    by_server: BTreeMap<String, Record>,
}

impl Group {
    fn any(&self) -> &Record {
        self.by_server.values().next().expect("a group has a record")
    }

    fn field(&self, key: &str) -> String {
        match self.any().get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "?".to_owned(),
        }
    }
}

pub fn render(lines: &str) -> Result<String, String> {
    // Every record of each (kind, scenario), by server, in file order.
    let mut rounds: Vec<(String, String, BTreeMap<String, Vec<Record>>)> = Vec::new();
    for (number, line) in lines.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with('{') {
            continue;
        }
        let record: Record =
            serde_json::from_str(line).map_err(|e| format!("line {}: not a JSON object: {e}", number + 1))?;
        let text = |key: &str| record.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (kind, scenario, server) = (text("kind"), text("scenario"), text("server"));
        if kind == "step" {
            continue;
        }
        match rounds.iter_mut().find(|(k, s, _)| *k == kind && *s == scenario) {
            Some((_, _, by_server)) => by_server.entry(server).or_default().push(record),
            None => rounds.push((kind, scenario, BTreeMap::from([(server, vec![record])]))),
        }
    }
    if rounds.is_empty() {
        return Err("no results in the file".to_owned());
    }
    let groups: Vec<Group> = rounds
        .into_iter()
        .map(|(kind, scenario, by_server)| {
            let by_server =
                by_server.into_iter().map(|(server, records)| (server, median_round(records))).collect();
            Group { kind, scenario, by_server }
        })
        .collect();
    let mut out = String::from(
        "| metric | ours | socket.io | naive | ours ÷ socket.io | ours ÷ naive |\n|---|---:|---:|---:|---:|---:|\n",
    );
    let idle: Vec<&Group> = groups.iter().filter(|g| g.kind == "idle").collect();
    for group in &groups {
        for row in rows(group) {
            out.push_str(&row);
            out.push('\n');
        }
        if idle.len() >= 2 && std::ptr::eq(group, *idle.last().expect("two idle groups")) {
            out.push_str(&marginal_row(idle[0], group));
            out.push('\n');
        }
    }
    Ok(out)
}

/// One server's record of a scenario measured in rounds: the median round
/// by CPU per delivery (the lower middle one of an even count), with the
/// correctness counters summed over every round and the number of rounds.
/// A scenario measured once is its record as it is (the last one, should
/// it have been repeated without rounds).
fn median_round(mut records: Vec<Record>) -> Record {
    let in_rounds = records.iter().filter(|r| r.get("round").is_some_and(|v| !v.is_null())).count();
    if in_rounds < 2 || in_rounds != records.len() {
        return records.pop().expect("a server has a record");
    }
    let sums: Vec<(&str, u64)> = ["lost", "duplicated", "out_of_order"]
        .into_iter()
        .map(|key| (key, records.iter().filter_map(|r| r.get(key).and_then(Value::as_u64)).sum()))
        .collect();
    let count = records.len();
    records.sort_by(|a, b| {
        let cpu = |r: &Record| number(r, "cpu_us_per_delivery").unwrap_or(f64::INFINITY);
        cpu(a).total_cmp(&cpu(b))
    });
    let mut median = records.swap_remove((count - 1) / 2);
    for (key, sum) in sums {
        median.insert(key.to_owned(), Value::from(sum));
    }
    median.insert("rounds".to_owned(), Value::from(count));
    median
}

/// Memory per connection between two idle scenarios: the growth from the
/// smaller count to the larger, which leaves out what any number of
/// connections costs once (runtime and heap set-up, allocator arenas).
fn marginal_row(small: &Group, large: &Group) -> String {
    let grown = |g: &Group, server: &str| -> Option<(f64, f64)> {
        let r = g.by_server.get(server)?;
        let kib = (number(r, "rss_after_mib")? - number(r, "rss_before_mib")?) * 1024.0;
        Some((kib, number(r, "clients")?))
    };
    let value = |server: &str| -> Option<f64> {
        let ((kib_a, n_a), (kib_b, n_b)) = (grown(small, server)?, grown(large, server)?);
        (n_b > n_a).then(|| (kib_b - kib_a) / (n_b - n_a))
    };
    let label = format!(
        "idle connections, {} → {}: **KiB per added connection**",
        small.field("clients"),
        large.field("clients")
    );
    let cells: Vec<String> = SERVERS.iter().map(|s| fixed(value(s), 1)).collect();
    format!(
        "| {label} | {} | {} | {} | {} | {} |",
        cells[0],
        cells[1],
        cells[2],
        ratio(value("ours"), value("socket.io")),
        ratio(value("ours"), value("naive"))
    )
}

fn rows(g: &Group) -> Vec<String> {
    match g.kind.as_str() {
        "fanout" => {
            let rounds = match g.any().get("rounds").and_then(Value::as_u64) {
                Some(n) => format!(", median of {n} interleaved rounds"),
                None => String::new(),
            };
            let what = format!(
                "rooms of {} ({} clients, {} deliveries/s offered{rounds})",
                g.field("room_size"),
                g.field("clients"),
                g.field("offered_per_s")
            );
            vec![
                number_row(g, &format!("{what}: **server CPU µs per delivery**"), "cpu_us_per_delivery", 2),
                number_row(g, &format!("{what}: deliveries/s"), "delivered_per_s", 0),
                number_row(g, &format!("{what}: server CPU %"), "server_cpu_pct", 0),
                number_row(g, &format!("{what}: server waiting for its core %"), "server_cpu_wait_pct", 0),
                number_row(g, &format!("{what}: latency p50 ms"), "p50_ms", 2),
                number_row(g, &format!("{what}: latency p99 ms"), "p99_ms", 2),
                number_row(g, &format!("{what}: latency p999 ms"), "p999_ms", 2),
                text_row(g, &format!("{what}: lost / duplicated / out of order"), |r| {
                    format!("{} / {} / {}", int(r, "lost"), int(r, "duplicated"), int(r, "out_of_order"))
                }),
                number_row(g, &format!("{what}: server RSS MiB"), "server_rss_mib", 1),
                number_row(g, &format!("{what}: load generator CPU %"), "loadgen_cpu_pct", 0),
            ]
        }
        "knee" => {
            let what =
                format!("knee, rooms of {} (p99 ≤ {} ms)", g.field("room_size"), g.field("max_p99_ms"));
            vec![
                number_row(g, &format!("{what}: deliveries/s offered"), "knee_offered_per_s", 0),
                number_row(g, &format!("{what}: CPU µs per delivery there"), "knee_cpu_us_per_delivery", 2),
                text_row(g, &format!("{what}: next step limited by"), |r| {
                    r.get("limited_by").and_then(Value::as_str).unwrap_or("?").to_owned()
                }),
                number_row(g, &format!("{what}: half the knee, deliveries/s"), "half_knee_offered_per_s", 0),
                number_row(g, &format!("{what}: half the knee, **latency p99 ms**"), "half_knee_p99_ms", 2),
                number_row(g, &format!("{what}: half the knee, **latency p999 ms**"), "half_knee_p999_ms", 2),
                number_row(
                    g,
                    &format!("{what}: half the knee, CPU µs per delivery"),
                    "half_knee_cpu_us_per_delivery",
                    2,
                ),
            ]
        }
        "idle" => {
            let what = format!("{} idle connections", g.field("clients"));
            vec![
                number_row(g, &format!("{what}: **KiB per connection**"), "kib_per_connection", 1),
                number_row(g, &format!("{what}: opened per second"), "opens_per_s", 0),
                number_row(g, &format!("{what}: idle server CPU %"), "idle_cpu_pct", 1),
            ]
        }
        "storm" => {
            let rooms = match g.field("rooms").as_str() {
                "1" | "?" => "one room".to_owned(),
                n => format!("{n} rooms"),
            };
            let via = if g.field("via_page") == "true" { ", each loading the page first" } else { "" };
            let what = format!("join storm, {} players into {rooms}{via}", g.field("clients"));
            vec![
                number_row(g, &format!("{what}: s until all welcomed"), "all_welcomed_s", 2),
                number_row(g, &format!("{what}: s until all have the history"), "all_history_s", 2),
                number_row(g, &format!("{what}: players welcomed"), "welcomed", 0),
                number_row(g, &format!("{what}: players with the history"), "with_history", 0),
                number_row(g, &format!("{what}: server CPU s"), "storm_cpu_s", 2),
                number_row(g, &format!("{what}: member and presence frames received"), "other_frames", 0),
                number_row(g, &format!("{what}: server peak RSS MiB"), "server_peak_rss_mib", 0),
                number_row(g, &format!("{what}: retries (turned away, then back)"), "retries", 0),
            ]
        }
        "history" => {
            let store = if g.scenario.starts_with("history-pg") { "PostgreSQL" } else { "SQLite" };
            let what = format!("room with {} messages on {store}", g.field("messages"));
            vec![
                number_row(g, &format!("{what}: seeding, messages stored/s"), "seed_per_s", 0),
                number_row(
                    g,
                    &format!("{what}: seeding, server CPU µs per message"),
                    "seed_cpu_us_per_message",
                    1,
                ),
                number_row(g, &format!("{what}: page first byte ms"), "page_first_byte_ms", 0),
                number_row(g, &format!("{what}: page complete ms"), "page_total_ms", 0),
                text_row(g, &format!("{what}: page size KiB"), |r| {
                    fixed(number(r, "page_bytes").map(to_kib), 0)
                }),
                number_row(g, &format!("{what}: join_room JSON ms"), "join_json_total_ms", 0),
                text_row(g, &format!("{what}: join_room JSON KiB"), |r| {
                    fixed(number(r, "join_json_bytes").map(to_kib), 0)
                }),
                number_row(g, &format!("{what}: stream welcome + replay ms"), "stream_replay_ms", 0),
            ]
        }
        "page" => {
            let what =
                format!("room page, {} members and {} messages", g.field("members"), g.field("messages"));
            vec![
                number_row(
                    g,
                    &format!("{what}: **server CPU µs per page**, compressed as browsers ask"),
                    "compressed_cpu_us_per_page",
                    0,
                ),
                number_row(
                    g,
                    &format!("{what}: server CPU µs per page, uncompressed"),
                    "plain_cpu_us_per_page",
                    0,
                ),
                number_row(g, &format!("{what}: pages/s, compressed"), "compressed_pages_per_s", 0),
                number_row(g, &format!("{what}: p99 ms, compressed"), "compressed_p99_ms", 1),
                text_row(g, &format!("{what}: bytes over the wire, compressed / uncompressed"), |r| {
                    format!("{} / {}", int(r, "compressed_bytes"), int(r, "plain_bytes"))
                }),
            ]
        }
        "first_second" => {
            let what = format!(
                "time to chatting in Chromium, {} kbit/s down, {} ms RTT ({} runs)",
                g.field("down_kbps"),
                g.field("rtt_ms"),
                g.field("runs")
            );
            vec![
                number_row(g, &format!("{what}: **cold cache, median s**"), "cold_median_s", 2),
                number_row(g, &format!("{what}: cold cache, max s"), "cold_max_s", 2),
                number_row(g, &format!("{what}: **warm cache, median s**"), "warm_median_s", 2),
                number_row(g, &format!("{what}: warm cache, max s"), "warm_max_s", 2),
                text_row(g, &format!("{what}: bytes over the wire, cold / warm"), |r| {
                    format!("{} / {}", int(r, "cold_bytes"), int(r, "warm_bytes"))
                }),
            ]
        }
        "wasm" => vec![
            text_row(g, "WASM over the wire, brotli KiB (what browsers take over HTTPS)", |r| {
                fixed(number(r, "brotli_bytes").map(to_kib), 0)
            }),
            text_row(g, "WASM over the wire, gzip KiB", |r| fixed(number(r, "gzip_bytes").map(to_kib), 0)),
            text_row(g, "WASM as built, KiB", |r| fixed(number(r, "raw_bytes").map(to_kib), 0)),
        ],
        other => vec![format!("| {other} {}: (unknown result kind) | | | | | |", g.scenario)],
    }
}

fn number(record: &Record, key: &str) -> Option<f64> {
    record.get(key).and_then(Value::as_f64)
}

fn int(record: &Record, key: &str) -> String {
    record.get(key).and_then(Value::as_u64).map_or("?".to_owned(), |v| v.to_string())
}

fn to_kib(bytes: f64) -> f64 {
    bytes / 1024.0
}

fn fixed(x: Option<f64>, decimals: usize) -> String {
    x.map_or("—".to_owned(), |v| format!("{v:.decimals$}"))
}

fn ratio(ours: Option<f64>, other: Option<f64>) -> String {
    match (ours, other) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_owned(),
    }
}

fn number_row(g: &Group, label: &str, key: &str, decimals: usize) -> String {
    let value = |server: &str| g.by_server.get(server).and_then(|r| number(r, key));
    let cells: Vec<String> = SERVERS.iter().map(|s| fixed(value(s), decimals)).collect();
    format!(
        "| {label} | {} | {} | {} | {} | {} |",
        cells[0],
        cells[1],
        cells[2],
        ratio(value("ours"), value("socket.io")),
        ratio(value("ours"), value("naive"))
    )
}

fn text_row(g: &Group, label: &str, cell: impl Fn(&Record) -> String) -> String {
    let cells: Vec<String> =
        SERVERS.iter().map(|s| g.by_server.get(*s).map_or("—".to_owned(), &cell)).collect();
    format!("| {label} | {} | {} | {} | — | — |", cells[0], cells[1], cells[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_share_a_row_and_ours_is_compared_to_each_peer() {
        let lines = [
            r#"{"server":"ours","kind":"fanout","scenario":"f","room_size":100,"clients":1000,"offered_per_s":1000,"cpu_us_per_delivery":5.0,"lost":0,"duplicated":0,"out_of_order":0}"#,
            r#"{"server":"socket.io","kind":"fanout","scenario":"f","room_size":100,"clients":1000,"offered_per_s":1000,"cpu_us_per_delivery":10.0,"lost":0,"duplicated":0,"out_of_order":0}"#,
            r#"{"server":"ours","kind":"step","scenario":"k","step":0}"#,
            "a human line is ignored",
        ]
        .join("\n");
        let table = render(&lines).unwrap();
        let cpu = table.lines().find(|l| l.contains("CPU µs per delivery")).unwrap();
        assert!(cpu.contains("| 5.00 | 10.00 | — | 0.50× | — |"), "{cpu}");
        assert!(table.contains("| 0 / 0 / 0 | 0 / 0 / 0 | — |"), "{table}");
        assert!(!table.contains("step"));
    }

    #[test]
    fn two_idle_counts_give_the_memory_of_an_added_connection() {
        let lines = [
            r#"{"server":"naive","kind":"idle","scenario":"i1","clients":1000,"rss_before_mib":10.0,"rss_after_mib":30.0}"#,
            r#"{"server":"naive","kind":"idle","scenario":"i2","clients":3000,"rss_before_mib":10.0,"rss_after_mib":50.0}"#,
        ]
        .join("\n");
        let table = render(&lines).unwrap();
        let row = table.lines().find(|l| l.contains("per added connection")).unwrap();
        // (40 MiB - 20 MiB) over 2000 more connections.
        assert!(row.contains("| — | — | 10.2 |"), "{row}");
    }

    #[test]
    fn rounds_give_each_server_its_median_round_and_every_rounds_errors() {
        let line = |server: &str, round: u32, cpu: f64, lost: u32| {
            format!(
                r#"{{"server":"{server}","kind":"fanout","scenario":"f","round":{round},"room_size":10,"clients":100,"offered_per_s":1000,"cpu_us_per_delivery":{cpu},"p99_ms":{round},"lost":{lost},"duplicated":0,"out_of_order":0}}"#
            )
        };
        let lines = [
            line("ours", 1, 9.0, 0),
            line("naive", 1, 6.0, 2),
            line("ours", 2, 4.0, 0),
            line("naive", 2, 8.0, 0),
            line("ours", 3, 5.0, 0),
            line("naive", 3, 7.0, 1),
        ]
        .join("\n");
        let table = render(&lines).unwrap();
        let cpu = table.lines().find(|l| l.contains("CPU µs per delivery")).unwrap();
        assert!(cpu.contains("median of 3 interleaved rounds"), "{cpu}");
        assert!(cpu.contains("| 5.00 | — | 7.00 | — | 0.71× |"), "{cpu}");
        // The rest of a row comes from the same (median) round.
        let p99 = table.lines().find(|l| l.contains("latency p99")).unwrap();
        assert!(p99.contains("| 3.00 | — | 3.00 |"), "{p99}");
        let errors = table.lines().find(|l| l.contains("lost /")).unwrap();
        assert!(errors.contains("| 0 / 0 / 0 | — | 3 / 0 / 0 |"), "{errors}");
    }

    #[test]
    fn an_empty_run_is_an_error() {
        assert!(render("nothing here\n").is_err());
    }
}
