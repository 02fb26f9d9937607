//! What the drill prints: a markdown table that can be pasted into the
//! README or a CI summary, the details behind it, and a last line
//! `drill: N passed, M failed` for scripts and people skimming logs.
use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::ClientStats;
use crate::verify::Verdict;

/// The drill's own counts, next to the verdict.
#[derive(Debug, Default)]
pub struct RunFacts {
    pub rooms: u32,
    pub clients: u32,
    /// Restarts planned, the kills among them.
    pub restarts_planned: u32,
    pub kills_planned: u32,
    /// How long each restart kept the server away (signal to ready).
    pub restarts: Vec<Duration>,
    pub restart_errors: Vec<String>,
    pub elapsed: Duration,
    pub stats: ClientStats,
    /// One line per client that ran out of time.
    pub unfinished: Vec<String>,
}

/// Adds one client's counters to the totals.
pub fn add_stats(total: &mut ClientStats, one: &ClientStats) {
    total.sent += one.sent;
    total.resent += one.resent;
    total.cuts += one.cuts;
    total.connects += one.connects;
    total.failed_connects += one.failed_connects;
    total.broken += one.broken;
    total.truncated_replays += one.truncated_replays;
    for (code, n) in &one.closes {
        *total.closes.entry(*code).or_default() += n;
    }
    total.errors.extend(one.errors.iter().cloned());
}

pub fn table(facts: &RunFacts, verdict: &Verdict) -> String {
    let header = "| rooms | clients | restarts | cuts | sent | acknowledged | delivered | lost | duplicated \
                  | out of order | seconds |";
    let rule = "|---|---|---|---|---|---|---|---|---|---|---|";
    let row = format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
        facts.rooms,
        facts.clients,
        facts.restarts.len(),
        facts.stats.cuts,
        facts.stats.sent,
        verdict.acknowledged,
        verdict.delivered,
        verdict.lost,
        verdict.duplicated,
        verdict.out_of_order,
        facts.elapsed.as_secs_f64(),
    );
    format!("{header}\n{rule}\n{row}")
}

/// Lines about how the run went (connections, closes, restarts).
pub fn details(facts: &RunFacts) -> Vec<String> {
    let s = &facts.stats;
    let mut lines = vec![
        format!(
            "connections: {} opened, {} refused or failed while connecting, {} broken without a close frame",
            s.connects, s.failed_connects, s.broken
        ),
        format!("re-sent under the same client id: {}", s.resent),
        format!("server close codes: {}", close_codes(&s.closes)),
    ];
    let downtimes: Vec<String> = facts.restarts.iter().map(|d| format!("{:.1}s", d.as_secs_f64())).collect();
    lines.push(format!(
        "restarts: {} of {}, {} of them by SIGKILL (down for {})",
        facts.restarts.len(),
        facts.restarts_planned,
        facts.kills_planned,
        if downtimes.is_empty() { "-".to_owned() } else { downtimes.join(", ") }
    ));
    lines.extend(facts.restart_errors.iter().map(|e| format!("restart failed: {e}")));
    if s.truncated_replays > 0 {
        lines.push(format!("welcomes that did not resume where asked: {}", s.truncated_replays));
    }
    lines.extend(s.errors.iter().take(10).map(|e| format!("error frame: {e}")));
    lines.extend(facts.unfinished.iter().map(|u| format!("unfinished: {u}")));
    lines
}

fn close_codes(closes: &BTreeMap<u16, u64>) -> String {
    if closes.is_empty() {
        return "none".to_owned();
    }
    closes.iter().map(|(code, n)| format!("{code}×{n}")).collect::<Vec<_>>().join(", ")
}

/// The failed checks with their problems (nothing when all passed).
pub fn failures(verdict: &Verdict) -> Vec<String> {
    let mut lines = Vec::new();
    for check in verdict.checks.iter().filter(|c| !c.passed()) {
        lines.push(format!("FAILED {}:", check.name));
        lines.extend(check.problems.iter().map(|p| format!("  - {p}")));
    }
    lines
}

pub fn last_line(verdict: &Verdict) -> String {
    format!("drill: {} passed, {} failed", verdict.passed(), verdict.failed())
}
