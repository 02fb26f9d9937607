//! The `wasm-bindgen` CLI, as its own crate's binary does it.
fn main() {
    env_logger::init();
    if let Err(err) = wasm_bindgen_cli::wasm_bindgen::run_cli_with_args(std::env::args_os()) {
        eprintln!("error: {err:?}");
        std::process::exit(1);
    }
}
