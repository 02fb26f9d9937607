# Sourced by the project's scripts: where project-local tools live and how
# they come first on PATH. Nothing here installs anything.
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export TOOLS_DIR="$ROOT_DIR/.tools"
export PATH="$TOOLS_DIR/node_modules/.bin:${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
