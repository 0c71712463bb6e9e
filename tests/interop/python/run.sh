#!/usr/bin/env bash
# Starts a server from the debug build on a temporary data directory and runs the Python interop
# test (authlib and PyJWT against the OAuth token endpoint) against it, in a venv kept under
# target/interop-venv. Usage: bash tests/interop/python/run.sh  (after `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/../../.."
bin=target/debug/portcullis
venv=target/interop-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/interop/python/requirements.txt
data=$(mktemp -d)
out="$data/stdout"
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --log-format text --log warn >"$out" 2>"$data/stderr" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^portcullis: listening on //p' "$out")
[ -n "$url" ] || { cat "$data/stderr"; echo "the server did not start" >&2; exit 1; }
# The public URL the server names itself by (and so the issuer) is on localhost.
url=${url/127.0.0.1/localhost}
PORTCULLIS_URL="$url" PORTCULLIS_API_KEY=$(cat "$data/bootstrap-credential") \
    "$venv/bin/python" tests/interop/python/test_client_credentials.py
