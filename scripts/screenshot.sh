#!/usr/bin/env bash
# Takes a real screenshot of the running app under Xvfb: scripts/screenshot.sh OUT.png [SECONDS] [atlas args...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
out="$1"; wait_s="${2:-20}"; shift 2 || true
display=":$((90 + RANDOM % 9))"
Xvfb "$display" -screen 0 1280x860x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true' EXIT
sleep 1
DISPLAY="$display" "$ROOT/target/release/atlas" "$@" &
app=$!
sleep "$wait_s"
DISPLAY="$display" import -window root "$out"
echo "wrote $out"
