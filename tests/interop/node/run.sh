#!/usr/bin/env bash
# Starts a server from the debug build on a temporary data directory and runs the Node interop
# test (openid-client 6 as a relying party: sign-in through the pages, code + PKCE, refresh,
# introspection, revocation) against it. Usage: bash tests/interop/node/run.sh  (after `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
npm ci --prefix tests/interop/node --no-audit --no-fund
source tests/start-server.sh
node tests/interop/node/openid_client.mjs
