# Sourced by the browser and interop test runners: starts target/debug/portcullis on a free port
# over a temporary data directory, stops it and removes the directory on exit, and sets
#   PORTCULLIS_URL      the server's URL by name (http://localhost:PORT): its public URL, the
#                       issuer of its tokens, and the only host browsers allow passkeys on
#   PORTCULLIS_API_KEY  the operator tenant's first administrator key
#   PORTCULLIS_MAIL_DIR where the messages the server mails arrive (<n>.eml and their text in
#                       <n>.txt), when PORTCULLIS_TEST_SMTP_PYTHON names a Python with aiosmtpd:
#                       an SMTP server (tests/smtp/sink.py) is started for the run
# With PORTCULLIS_TEST_DATABASE_URL set (a PostgreSQL URL whose user may create databases), the
# server runs on a fresh PostgreSQL database made for this run and dropped after it; otherwise
# on the embedded SQLite store. Run from the repository root, after `cargo build` (or `cargo test`).
bin=${CARGO_TARGET_DIR:-target}/debug/portcullis
data=$(mktemp -d)
out="$data/stdout"
server=""
scratch_db=""
sink=""
cleanup() {
    [ -z "$sink" ] || kill "$sink" 2>/dev/null || true
    [ -z "$server" ] || kill "$server" 2>/dev/null || true
    [ -z "$server" ] || wait "$server" 2>/dev/null || true
    if [ -n "$scratch_db" ]; then
        psql "$PORTCULLIS_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$scratch_db\" WITH (FORCE)" || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT
store_args=()
if [ -n "${PORTCULLIS_TEST_DATABASE_URL:-}" ]; then
    scratch_db="pc_t_$(basename "$data" | tr -dc 'a-z0-9' | head -c 20)_$$"
    psql "$PORTCULLIS_TEST_DATABASE_URL" -qc "CREATE DATABASE \"$scratch_db\""
    store_args=(--database-url "${PORTCULLIS_TEST_DATABASE_URL%/*}/$scratch_db")
    echo "start-server.sh: on PostgreSQL database $scratch_db"
fi
mail_args=()
if [ -n "${PORTCULLIS_TEST_SMTP_PYTHON:-}" ]; then
    export PORTCULLIS_MAIL_DIR="$data/mail"
    mkdir -p "$PORTCULLIS_MAIL_DIR"
    "$PORTCULLIS_TEST_SMTP_PYTHON" tests/smtp/sink.py --dir "$PORTCULLIS_MAIL_DIR" --port-file "$data/smtp-port" --forever &
    sink=$!
    for _ in $(seq 1 100); do [ -s "$data/smtp-port" ] && break; sleep 0.1; done
    mail_args=(--smtp-url "smtp://127.0.0.1:$(cat "$data/smtp-port")?tls=none" --mail-from "Sign-in <no-reply@example.com>")
fi
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" "${store_args[@]}" "${mail_args[@]}" --log-format text --log warn >"$out" 2>"$data/stderr" &
server=$!
for _ in $(seq 1 100); do grep -q "listening on" "$out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^portcullis: listening on //p' "$out")
[ -n "$url" ] || { cat "$data/stderr"; echo "the server did not start" >&2; exit 1; }
export PORTCULLIS_URL=${url/127.0.0.1/localhost}
PORTCULLIS_API_KEY=$(cat "$data/bootstrap-credential")
export PORTCULLIS_API_KEY
