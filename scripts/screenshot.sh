#!/usr/bin/env bash
# Takes a real screenshot of the running app under Xvfb: scripts/screenshot.sh OUT.png [SECONDS] [atlas args...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
out="$1"; wait_s="${2:-20}"; shift 2 || true
display=":$((90 + RANDOM % 9))"
Xvfb "$display" -screen 0 1200x800x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $app $xvfb 2>/dev/null || true' EXIT
sleep 1
DISPLAY="$display" "$ROOT/target/release/atlas" "$@" &
app=$!
sleep "$wait_s"
# SHOT_CLICK="x y" clicks there first (e.g. a button), SHOT_AFTER seconds before the screenshot.
if [ -n "${SHOT_CLICK:-}" ]; then
    # Move first, then press and release apart: egui sees a hover, then a click (a bare
    # `click` right after the move can arrive within one frame and be missed).
    DISPLAY="$display" xdotool mousemove $SHOT_CLICK; sleep 1
    DISPLAY="$display" xdotool mousedown 1; sleep 0.2; DISPLAY="$display" xdotool mouseup 1
    sleep "${SHOT_AFTER:-3}"
fi
DISPLAY="$display" import -window root "$out"
echo "wrote $out"
