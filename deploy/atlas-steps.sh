#!/usr/bin/env bash
# The two steps of a sharded collection, shared by every recipe in deploy/ (local-shards.sh, the
# Slurm array job, the Kubernetes Indexed Job), so that all of them run the same commands:
#
#   atlas-steps.sh collect-shard I   collect shard I of $SHARDS (0-based) into $WORK/shards/I;
#                                    a rerun resumes the shard from its saved chunks
#   atlas-steps.sh merge-build       merge the shards into $WORK/run, then build $WORK/atlas
#                                    (the merge is skipped when $WORK/run is already complete;
#                                    the build resumes by itself)
#
# Configuration, from the environment (every path on a filesystem all workers share):
#   ATLAS         the atlas binary (default: atlas on the PATH)
#   MODEL         the model file (its .json sidecar beside it)
#   IMAGES        the image folder (class subfolders give labels)
#   WORK          the shared work folder
#   SHARDS        the number of shards N
#   COLLECT_ARGS  more `atlas collect` flags, the same for every shard (split on spaces),
#                 e.g. "--layers head --samples 1 --seed 0"
#   BUILD_LAYER   the layer to build the atlas of
#   BUILD_ARGS    more `atlas build` flags (split on spaces)
set -euo pipefail

: "${ATLAS:=atlas}"
for var in MODEL IMAGES WORK SHARDS; do
    if [ -z "${!var:-}" ]; then
        echo "atlas-steps.sh: set $var (see the top of $0)" >&2
        exit 2
    fi
done
read -r -a collect_args <<< "${COLLECT_ARGS:-}"
read -r -a build_args <<< "${BUILD_ARGS:-}"

shard_dir() { echo "$WORK/shards/$1"; }

collect_shard() {
    local index="$1"
    mkdir -p "$WORK/shards"
    "$ATLAS" collect --model "$MODEL" --images "$IMAGES" --out "$(shard_dir "$index")" \
        --shard "$index/$SHARDS" "${collect_args[@]}"
}

merge_build() {
    : "${BUILD_LAYER:?atlas-steps.sh: set BUILD_LAYER, the layer to build the atlas of}"
    if [ -f "$WORK/run/run.json" ]; then
        echo "$WORK/run is already merged"
    else
        local shards=()
        for ((i = 0; i < SHARDS; i++)); do shards+=("$(shard_dir "$i")"); done
        "$ATLAS" merge --out "$WORK/run" "${shards[@]}"
    fi
    "$ATLAS" build --run "$WORK/run" --layer "$BUILD_LAYER" --out "$WORK/atlas" "${build_args[@]}"
}

case "${1:-}" in
    collect-shard)
        [ $# -eq 2 ] || { echo "usage: $0 collect-shard INDEX" >&2; exit 2; }
        collect_shard "$2"
        ;;
    merge-build)
        merge_build
        ;;
    *)
        echo "usage: $0 collect-shard INDEX | merge-build" >&2
        exit 2
        ;;
esac
