#!/usr/bin/env bash
# Starts a server from the debug build on a temporary data directory and runs the commands of
# docs/getting-started.md against it. Usage: bash tests/docs/run.sh  (after `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v jq >/dev/null || { echo "tests/docs/run.sh needs jq (apt-get install jq)" >&2; exit 1; }
source tests/start-server.sh
python3 tests/docs/getting_started.py "$data"
