#!/usr/bin/env bash
# Starts a server from the debug build on a temporary data directory and runs the browser tests
# against it. Usage: bash tests/browser/run.sh  (after `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/debug/portcullis
data=$(mktemp -d)
out="$data/stdout"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --log-format text --log warn >"$out" 2>"$data/stderr" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^portcullis: listening on //p' "$out")
[ -n "$url" ] || { cat "$data/stderr"; echo "the server did not start" >&2; exit 1; }
# By name, as people reach it: browsers refuse passkeys on an IP address.
url=${url/127.0.0.1/localhost}
PORTCULLIS_URL="$url" PORTCULLIS_API_KEY=$(cat "$data/bootstrap-credential") \
    node tests/browser/signin.mjs
