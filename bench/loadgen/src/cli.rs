//! The command line: one subcommand per scenario, each taking the server
//! to drive ([`Target`]) and its own sizes. Every run is bounded: counts
//! and durations are flags with small defaults.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::proto::Proto;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Drives a chat server with many websocket clients and reports cost, latency, memory and \
             correctness (one JSON line per result on stdout, a readable line on stderr)"
)]
pub struct Cli {
    /// Runtime worker threads (1: a single-threaded runtime, the cheapest
    /// when the load generator is pinned to one core).
    #[arg(long, default_value_t = 1, global = true)]
    pub threads: usize,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Room fan-out at a fixed offered load, or stepping the load up to
    /// find the knee (`--steps`).
    Fanout {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: FanoutArgs,
    },
    /// Many idle connections: server memory per connection.
    Idle {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: IdleArgs,
    },
    /// Many players join one room at once.
    Storm {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: StormArgs,
    },
    /// Our server only: seed a room with a long history, then time opening it.
    History {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: HistoryArgs,
    },
    /// Our server only: the CPU one room page costs, rendered again and
    /// again for the members of a room of a given size and history.
    Page {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: PageArgs,
    },
    /// Turns the JSON lines of a run into one markdown table.
    Table {
        /// File of JSON lines written by the other subcommands.
        file: PathBuf,
    },
}

/// The server under test.
#[derive(Clone, Debug, Args)]
pub struct Target {
    /// Protocol of the server.
    #[arg(long, value_enum)]
    pub proto: Proto,
    /// Where it listens (loopback).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Its process id: CPU time and memory are read from /proc/<pid>.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Connections (and HTTP joins) opened at the same time while setting up.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
}

#[derive(Clone, Debug, Args)]
pub struct FanoutArgs {
    /// Name of the scenario (also prefixes its rooms and users).
    #[arg(long, default_value = "fanout")]
    pub scenario: String,
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    #[arg(long, default_value_t = 100)]
    pub room_size: usize,
    /// Members of each room that send.
    #[arg(long, default_value_t = 5)]
    pub senders_per_room: usize,
    /// Offered load in deliveries per second (a message to a room of N is
    /// N deliveries, the sender's own copy included).
    #[arg(long, default_value_t = 100_000)]
    pub offered: u64,
    /// Step the offered load through these values (deliveries/s, rising)
    /// and stop at the first that does not keep up: the knee.
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<u64>,
    /// A step keeps up while its p99 stays at or under this.
    #[arg(long, default_value_t = 50.0)]
    pub max_p99_ms: f64,
    /// Sending before each measurement window.
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Length of each measurement window.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// After the last send, give up waiting for messages still on their
    /// way once this long passes without a single delivery.
    #[arg(long, default_value_t = 10.0)]
    pub drain_secs: f64,
    /// Exit non-zero unless nothing was lost, duplicated, reordered or refused.
    #[arg(long)]
    pub assert_clean: bool,
    /// Which of several interleaved rounds of the same scenario this is
    /// (bench/run alternates the servers round by round; the table shows
    /// each server's median round). Rounds use rooms of their own.
    #[arg(long)]
    pub round: Option<u32>,
}

#[derive(Clone, Debug, Args)]
pub struct IdleArgs {
    #[arg(long, default_value = "idle")]
    pub scenario: String,
    #[arg(long, default_value_t = 5000)]
    pub clients: usize,
    #[arg(long, default_value_t = 100)]
    pub room_size: usize,
    /// Wait after the last connection opened before reading memory.
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
    /// Time the connections then stay open (idle CPU is measured over it).
    #[arg(long, default_value_t = 5.0)]
    pub hold_secs: f64,
}

#[derive(Clone, Debug, Args)]
pub struct StormArgs {
    #[arg(long, default_value = "storm")]
    pub scenario: String,
    #[arg(long, default_value_t = 5000)]
    pub clients: usize,
    /// Messages in the room before the storm (our server).
    #[arg(long, default_value_t = 200)]
    pub history: u64,
    /// Players per room (default: all in one room).
    #[arg(long)]
    pub room_size: Option<usize>,
    /// Each player loads the room page first, as a browser does, instead
    /// of calling `join_room` (our server), all at once: `--concurrency`
    /// is ignored.
    #[arg(long)]
    pub via_page: bool,
    /// Give up waiting for the last player after this long (the result
    /// then says how many made it).
    #[arg(long, default_value_t = 120.0)]
    pub max_secs: f64,
    /// Exit non-zero unless every player was welcomed and got the history
    /// within `--max-secs`.
    #[arg(long)]
    pub assert_complete: bool,
}

#[derive(Clone, Debug, Args)]
pub struct HistoryArgs {
    #[arg(long, default_value = "history")]
    pub scenario: String,
    /// Messages to store in the room before opening it.
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Seeding connections.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Sends each seeding connection keeps awaiting their ack (our server
    /// takes up to 32 in flight per connection).
    #[arg(long, default_value_t = 32)]
    pub window: u64,
}

#[derive(Clone, Debug, Args)]
pub struct PageArgs {
    #[arg(long, default_value = "page")]
    pub scenario: String,
    /// Members of the room (each page is one of them opening it).
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Messages in the room (the page shows the latest, up to its page size).
    #[arg(long, default_value_t = 50)]
    pub messages: u64,
    /// Pages measured, for each way of asking (compressed and not).
    #[arg(long, default_value_t = 2000)]
    pub pages: usize,
    /// Pages asked for at the same time.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
}
