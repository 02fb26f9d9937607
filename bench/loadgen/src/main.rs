//! The benchmark's load generator: many websocket clients, in rooms,
//! against our server, a socket.io server or a naive Rust fan-out, with the
//! same workload for all three. Results are JSON lines (one per scenario)
//! that `loadgen table` turns into the comparison table; `bench/run` drives
//! the whole comparison. Loopback only, bounded in count and time.
mod body;
mod cli;
mod clients;
mod fanout;
mod history;
mod http;
mod idle;
mod page;
mod procstat;
mod proto;
mod report;
mod storm;
mod table;
mod track;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Table { file } = &cli.command {
        return match std::fs::read_to_string(file).map_err(|e| e.to_string()).and_then(|t| table::render(&t))
        {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("loadgen table: {err}");
                ExitCode::FAILURE
            }
        };
    }
    procstat::raise_open_files_limit();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads).enable_all().build()
    };
    let runtime = runtime.expect("a tokio runtime");
    let outcome = runtime.block_on(async {
        match &cli.command {
            Command::Fanout { target, args } => {
                let clean = fanout::run(target, args).await?;
                Ok(clean || !args.assert_clean)
            }
            Command::Idle { target, args } => idle::run(target, args).await,
            Command::Storm { target, args } => storm::run(target, args).await,
            Command::History { target, args } => history::run(target, args).await,
            Command::Page { target, args } => page::run(target, args).await,
            Command::Table { .. } => unreachable!("handled above"),
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: the run was not clean (see the counts above)");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}
