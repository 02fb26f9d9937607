# Sourced by the project's scripts: where project-local tools live and how
# they come first on PATH. Nothing here installs anything.
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TOOLS_DIR="$ROOT_DIR/.tools"
export PATH="$TOOLS_DIR/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# Where the active toolchain keeps the standard library's sources (present
# when rust-src is installed); scripts/build-release compiles std from them.
std_sources_dir() { echo "$(rustc --print sysroot)/lib/rustlib/src/rust/library/std"; }
