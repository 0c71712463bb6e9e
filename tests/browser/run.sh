#!/usr/bin/env bash
# Starts a server from the debug build on a temporary data directory and runs the browser tests
# against it. Usage: bash tests/browser/run.sh  (after `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/start-server.sh
node tests/browser/signin.mjs
node tests/browser/authorize.mjs
node tests/browser/device.mjs
node tests/browser/enrol.mjs
node tests/browser/terms.mjs
node tests/browser/console.mjs
node tests/browser/recovery.mjs
