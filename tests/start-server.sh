# Sourced by the browser and interop test runners: starts target/debug/portcullis on a free port
# over a temporary data directory, stops it and removes the directory on exit, and sets
#   PORTCULLIS_URL      the server's URL by name (http://localhost:PORT): its public URL, the
#                       issuer of its tokens, and the only host browsers allow passkeys on
#   PORTCULLIS_API_KEY  the operator tenant's first administrator key
# Run from the repository root, after `cargo build` (or `cargo test`).
bin=target/debug/portcullis
data=$(mktemp -d)
out="$data/stdout"
server=""
trap '[ -z "$server" ] || kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --log-format text --log warn >"$out" 2>"$data/stderr" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^portcullis: listening on //p' "$out")
[ -n "$url" ] || { cat "$data/stderr"; echo "the server did not start" >&2; exit 1; }
export PORTCULLIS_URL=${url/127.0.0.1/localhost}
PORTCULLIS_API_KEY=$(cat "$data/bootstrap-credential")
export PORTCULLIS_API_KEY
