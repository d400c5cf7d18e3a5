# Sourced by the other scripts: use the project's Python (with the torch wheel) for libtorch.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$ROOT/.venv/bin:$HOME/.cargo/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
# libtorch's own thread pool; rayon decoders share the remaining cores.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/atlas-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
