//! Project automation, run as `cargo xtask <task>` (an alias in
//! `.cargo/config.toml`; the usual Rust pattern for build steps that are
//! more than a cargo build).
//!
//! `site` turns the browser build of the app (`frontend`, compiled to
//! `wasm32-unknown-unknown` by `scripts/build-release`) into the site the
//! server serves, laid out as `cargo leptos build` lays it out, with
//! content hashes in the names:
//!
//! ```text
//! target/site/
//!   pkg/embedded-chat.<hash>.js     JS glue (wasm-bindgen, `--target web`)
//!   pkg/embedded-chat.<hash>.wasm   the WASM, run through `wasm-opt -Oz`
//!   pkg/embedded-chat.<hash>.css    style/main.css
//!   pkg/*.br, pkg/*.gz              each of them compressed, at the best levels
//!   ...                             the files of public/, copied as they are
//! ```
//!
//! `<hash>` is 16 hex digits of the file's SHA-256: the server finds the
//! names in `pkg/` when it starts and lets browsers cache them for good.
//! (`cargo leptos watch` makes the same files without the hashes; the
//! server then has them revalidated on every load.)
//!
//! Why not cargo-leptos for this: the release build needs three steps
//! around cargo (wasm-bindgen, wasm-opt, copies), and cargo-leptos costs a
//! 16-minute build of its own on two cores before the first page can be
//! served. wasm-bindgen is used here as the library its CLI is made of,
//! at the version in the workspace's lock file, so nothing is installed
//! for it. `cargo leptos watch` stays the tool for development
//! (`scripts/dev`).
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod site;

const USAGE: &str = "usage: cargo xtask site --wasm FILE [--site-root DIR] [--no-opt]

  --wasm FILE       the frontend's compiled WASM (cargo build -p frontend --target wasm32-unknown-unknown)
  --site-root DIR   where the site goes (default: target/site)
  --no-opt          skip wasm-opt (a larger WASM; for debugging the build)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("xtask: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("site") => site::build(&site::Options::parse(&args[1..])?),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task `{other}`\n{USAGE}")),
    }
}

/// The workspace's root (this crate sits one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives inside the workspace").to_owned()
}

/// Runs a program, failing with its name when it cannot start or fails.
fn run_tool(command: &mut Command) -> Result<(), String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command.status().map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => {
            format!("`{program}` was not found on PATH (scripts/setup installs it)")
        }
        _ => format!("`{program}` could not start: {err}"),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program}` failed ({status})"))
    }
}
