#!/usr/bin/env bash
# The standard set of the in-process authorization benchmark (docs/benchmarks.md, "Authorization
# engine (in process)"): the Portcullis snapshot and the hash-map index at full scale, then the
# growth series where cedar-policy and casbin join them (both scan every policy per check, so
# full scale is out of their reach). Tables go to stdout, progress to stderr.
#
#   bash bench/engine/run.sh [extra engine-bench options, e.g. --runs 5 --seed 7]
#
# PEERS_AT_FULL_SCALE=1 adds one run of cedar-policy and casbin at full scale, to show their
# load time and memory there (about 3 minutes and 10 GB of memory; a few checks each).
set -euo pipefail
cd "$(dirname "$0")"

echo "run.sh: building engine-bench (release, -j2)" >&2
cargo build --release -j2 >&2
bin=target/release/engine-bench

echo "run.sh: machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "run.sh: full scale, Portcullis and the hash-map index" >&2
"$bin" --scale 1.0 --engines portcullis,hashmap "$@"

for scale in 0.001 0.01 0.1; do
    echo "run.sh: scale $scale, every engine" >&2
    "$bin" --scale "$scale" --engines portcullis,hashmap,cedar,casbin "$@"
done
if [ "${PEERS_AT_FULL_SCALE:-0}" = 1 ]; then
    echo "run.sh: full scale, cedar-policy and casbin (one run, a few checks)" >&2
    "$bin" --scale 1.0 --engines portcullis,cedar,casbin --runs 1 --checks 2000 "$@"
fi
echo "run.sh: done; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
