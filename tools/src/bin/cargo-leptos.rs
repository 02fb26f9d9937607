//! `cargo leptos`, as its own crate's binary does it (cargo-leptos 0.3).
use cargo_leptos::config::Cli;
use clap::Parser;

#[tokio::main]
async fn main() -> color_eyre::Result<()> {
    color_eyre::install()?;
    let mut args: Vec<String> = std::env::args().collect();
    // Run as `cargo leptos …`, cargo passes "leptos" as the first argument.
    if args.get(1).is_some_and(|a| a == "leptos") {
        args.remove(1);
    }
    let args = Cli::parse_from(&args);
    let verbose = args.opts().map_or(0, |o| o.verbose);
    cargo_leptos::logger::setup(verbose, &args.log);
    cargo_leptos::run(args).await
}
