//! Command line of the drill. The defaults are a small run that fits a CI
//! job (3 rooms × 4 clients × 25 messages, one graceful restart and one
//! kill, a few seconds); raise them for a soak.
use std::path::PathBuf;

use clap::Parser;

#[derive(Clone, Debug, Parser)]
#[command(
    name = "drill",
    about = "Fault drill for Embedded Chat: clients chat while their sockets are cut and the server restarts; \
             then every client's history is checked for lost, duplicated and reordered messages."
)]
pub struct Args {
    /// The server binary to drill (started as a child process on loopback).
    #[arg(long, env = "DRILL_SERVER_BIN", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/server"))]
    pub server_bin: PathBuf,

    /// The built site the server serves (`LEPTOS_SITE_ROOT`).
    #[arg(long, env = "DRILL_SITE_ROOT", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site"))]
    pub site_root: PathBuf,

    /// Rooms, each with its own clients.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rooms: u32,

    /// Clients (distinct users) per room.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub clients_per_room: u32,

    /// Messages each client sends (each must be acknowledged).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub messages_per_client: u32,

    /// Pause between an acknowledgement and the client's next message.
    #[arg(long, default_value_t = 20)]
    pub send_interval_ms: u64,

    /// Chance, after each frame sent or received, that a client drops its
    /// socket without a close frame and reconnects 0–300 ms later.
    #[arg(long, default_value_t = 0.05)]
    pub cut_probability: f64,

    /// Server restarts (SIGTERM, wait, start again), spread evenly over the
    /// run by progress (acknowledged messages).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub restarts: u32,

    /// Server crashes (SIGKILL: no goodbye, nothing flushed, then start
    /// again), taking turns with the restarts over the run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub kills: u32,

    /// Hard deadline: the drill stops here and reports what it has.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(5..=86_400))]
    pub max_seconds: u64,

    /// Seed of the clients' random decisions (cuts, pauses).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Args {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.cut_probability) {
            return Err(format!("--cut-probability must be within 0..=1, not {}", self.cut_probability));
        }
        if !self.server_bin.is_file() {
            return Err(format!("server binary {} not found", self.server_bin.display()));
        }
        Ok(())
    }

    pub fn total_clients(&self) -> u32 {
        self.rooms * self.clients_per_room
    }

    pub fn total_messages(&self) -> u64 {
        u64::from(self.total_clients()) * u64::from(self.messages_per_client)
    }
}
