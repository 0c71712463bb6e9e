#!/usr/bin/env bash
# Starts a server from the debug build on a temporary data directory and runs the Node interop
# tests against it: openid-client 6 as a relying party (sign-in through the pages, code + PKCE,
# refresh, introspection, revocation), and oauth4webapi signing a person in to the admin API
# with the device grant. Usage: bash tests/interop/node/run.sh  (after `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
npm ci --prefix tests/interop/node --no-audit --no-fund
source tests/start-server.sh
node tests/interop/node/openid_client.mjs
node tests/interop/node/device_grant.mjs
