#!/usr/bin/env bash
# Starts a server from the debug build on a temporary data directory and runs the Python interop
# test (authlib and PyJWT against the OAuth token endpoint) against it, in a venv kept under
# target/interop-venv. Usage: bash tests/interop/python/run.sh  (after `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=target/interop-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/interop/python/requirements.txt
source tests/start-server.sh
"$venv/bin/python" tests/interop/python/test_client_credentials.py
