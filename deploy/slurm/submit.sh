#!/usr/bin/env bash
# Submits the sharded collection as a Slurm array job (one task per shard) and the merge and
# build as a job that waits for all of them (afterok). Configure with the environment variables
# of deploy/atlas-steps.sh, all paths on the shared filesystem, e.g.
#
#   export ATLAS=/shared/atlas/bin/atlas MODEL=/shared/models/efficientnet-lite0.pt \
#          IMAGES=/shared/imagenet/train WORK=/shared/atlas-work SHARDS=64 \
#          COLLECT_ARGS="--layers head --samples 1" BUILD_LAYER=head
#   deploy/slurm/submit.sh [extra sbatch flags for both jobs, e.g. --partition=cpu]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${SHARDS:?set SHARDS (see deploy/atlas-steps.sh)}"
export DEPLOY="${DEPLOY:-$(dirname "$here")}"
array_job="$(sbatch --parsable --export=ALL --array="0-$((SHARDS - 1))" "$@" \
    "$here/collect-array.sbatch")"
array_job="${array_job%%;*}"
merge_job="$(sbatch --parsable --export=ALL --dependency="afterok:$array_job" "$@" \
    "$here/merge-build.sbatch")"
echo "collect array job $array_job ($SHARDS shards), then merge and build job $merge_job"
