//! The comparison table: the JSON lines of a run (all servers, all
//! scenarios) as one markdown table, a row per metric and a column per
//! server, plus our server's ratio to each peer. Step-by-step lines of the
//! knee search stay in the raw file; the table shows the knee itself.
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
    let mut groups: Vec<Group> = Vec::new();
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
        match groups.iter_mut().find(|g| g.kind == kind && g.scenario == scenario) {
            Some(group) => {
                group.by_server.insert(server, record);
            }
            None => groups.push(Group { kind, scenario, by_server: BTreeMap::from([(server, record)]) }),
        }
    }
    if groups.is_empty() {
        return Err("no results in the file".to_owned());
    }
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
            let what = format!(
                "rooms of {} ({} clients, {} deliveries/s offered)",
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
            let what = format!("join storm, {} players into one room", g.field("clients"));
            vec![
                number_row(g, &format!("{what}: s until all welcomed"), "all_welcomed_s", 2),
                number_row(g, &format!("{what}: s until all have the history"), "all_history_s", 2),
                number_row(g, &format!("{what}: players welcomed"), "welcomed", 0),
                number_row(g, &format!("{what}: players with the history"), "with_history", 0),
                number_row(g, &format!("{what}: server CPU s"), "storm_cpu_s", 2),
                number_row(g, &format!("{what}: member and presence frames received"), "other_frames", 0),
            ]
        }
        "history" => {
            let what = format!("room with {} messages", g.field("messages"));
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
        "wasm" => vec![text_row(g, "wasm bundle, gzip KiB", |r| {
            fixed(number(r, "gzip_bytes").map(|b| b / 1024.0), 0)
        })],
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
    fn an_empty_run_is_an_error() {
        assert!(render("nothing here\n").is_err());
    }
}
