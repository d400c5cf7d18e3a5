#!/usr/bin/env bash
# The cluster recipes' flow on one machine: the $SHARDS shards as concurrent local processes,
# then merge and build, with the same commands (deploy/atlas-steps.sh) and configuration
# (MODEL, IMAGES, WORK, SHARDS, COLLECT_ARGS, BUILD_LAYER, BUILD_ARGS; see atlas-steps.sh).
#
#   SHARDS=4 MODEL=models/efficientnet-lite0.pt IMAGES=assets/images WORK=/tmp/atlas-work \
#   BUILD_LAYER=head deploy/local-shards.sh
#
# Each shard's output goes to $WORK/logs/shard-I.log. Unless OMP_NUM_THREADS is set, the CPU
# cores are split between the shards (libtorch would otherwise start one thread per core in
# every process). A rerun resumes: finished shards return at once, unfinished ones resume.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SHARDS:?local-shards.sh: set SHARDS, the number of concurrent shards}"
: "${WORK:?local-shards.sh: set WORK, the work folder}"
if [ -z "${OMP_NUM_THREADS:-}" ]; then
    cores="$(nproc 2>/dev/null || echo 1)"
    export OMP_NUM_THREADS=$((cores / SHARDS > 0 ? cores / SHARDS : 1))
fi
mkdir -p "$WORK/logs"

pids=()
for ((i = 0; i < SHARDS; i++)); do
    "$here/atlas-steps.sh" collect-shard "$i" > "$WORK/logs/shard-$i.log" 2>&1 &
    pids+=("$!")
done
failed=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "shard $i/$SHARDS failed; its log:" >&2
        cat "$WORK/logs/shard-$i.log" >&2
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
echo "all $SHARDS shards collected"
"$here/atlas-steps.sh" merge-build
