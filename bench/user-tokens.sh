#!/usr/bin/env bash
# Token issuance after a user's sign-in, per second over HTTP, Portcullis against npm
# oidc-provider (v9) on the same machine, with the same load generator (wrk, keep-alive).
#
# Usage: bash bench/user-tokens.sh [--grant refresh|code|authorize] [--duration 20s] [--connections 64] [--runs 3] [--warmup 3s] [--peer-workers 2]
#
# --grant says what is measured (default refresh):
#   refresh    grant_type=refresh_token. Refresh tokens rotate: each answer carries a new one and
#              the one sent is dead (using it again revokes its chain, in both servers), so wrk
#              sends each token exactly once and the next request uses a token a previous answer
#              brought (bench/user-tokens.lua keeps a queue of live tokens per wrk thread: wrk
#              has no per-connection state, and a thread-wide queue is as good). Each wrk run
#              starts from its own 2 x --connections (+2 per wrk thread) refresh tokens, issued
#              before the measurement, each from its own code.
#   code       grant_type=authorization_code with the PKCE verifier: what an application does
#              right after its user signed in, answered with an access token, an ID token and a
#              refresh token. Codes are single-use and live 60 s (both servers), so right before
#              each wrk run a pool of codes is issued by a signed-in session (wrk on the
#              authorization endpoint, sized from the rates seen so far) and the run hands out
#              a distinct code per request. The pool takes about as long to issue as to use up,
#              all within the codes' 60 s, so --duration and --warmup are at most 25s here.
#   authorize  the authorization endpoint itself: a signed-in browser session (its cookie) GETs
#              the authorization request, and each answer must be a 303 to the redirect URI with
#              a code (no sign-in, no consent: the session and the approval exist).
#
# Both servers: a confidential client (client_secret_basic) allowed authorization_code and
# refresh_token, redirect URI https://app.example.com/callback, PKCE S256 (required), scope
# "openid api:read" and resource https://api.example.com; the answers carry an ES256 RFC 9068 JWT
# access token for that resource (300 s), an ES256 ID token (300 s) and a refresh token (14 days
# unused; bound to the sign-in session, as the requests do not ask for offline_access, which
# oidc-provider grants only with prompt=consent). Not quite the same tokens: Portcullis's access
# token also names openid in its scope and carries the sign-in (auth_time, acr, amr, sid), and
# its ID token has auth_time, acr, amr, sid, azp and at_hash, where oidc-provider's has only
# iss, sub, aud, iat and exp (~1,580 against ~950 bytes per answer). oidc-provider keeps one grant
# per session and client (every code and token of a sign-in hangs off it); Portcullis one per
# authorization. One user, "bench-user", signed in with a password through each server's
# sign-in page without JavaScript (bench/user-tokens.mjs, the same minimal browser for both).
# Portcullis runs from target/release/portcullis (run `cargo build --release` first) in
# development mode (no --production: development KEK, embedded SQLite in a temporary data
# directory), which writes every code, grant and refresh-token rotation durably before it answers.
# oidc-provider runs as a Node cluster of --peer-workers workers (bench/peers/oidc-provider/
# server.mjs) with everything in memory: its own in-memory adapter keeps each worker's codes
# and tokens apart (Node's cluster hands each connection to either worker, so a code issued by
# one would be unknown to the other) and is an LRU of ~1,000 entries (a code pool would not fit),
# so it runs with bench/peers/oidc-provider/shared-memory-adapter.mjs: each worker keeps all
# artifacts in memory, and every write is copied to the other workers (relayed by the cluster's
# primary, in batches) before it returns; reads never leave the process. That is kinder to the
# peer than the shared store (e.g. Redis) a real cluster would need. --peer-workers 1 runs a
# single process, with nothing to copy.
# The load generator shares the machine's cores with the server under test.
#
# For each server: bench/user-tokens.mjs checks one sign-in, code and refresh (and that a rotated
# refresh token is refused and revokes its chain, and that a code used twice is refused and
# revokes what it gave), a warm-up (--warmup) is discarded, then --runs wrk
# runs (-t2, --connections keep-alive connections, --duration each). Printed per server:
# requests/s of each run, the median, p50/p99 latency (medians over the runs), failed responses
# (non-2xx, or for authorize anything but a 303 with a code) and socket errors; then the ratio
# Portcullis / oidc-provider of the median rates. Exits non-zero if any response failed or a
# pool ran out.
#
# Environment:
#   PORTCULLIS_BIN  another portcullis binary (e.g. target/debug/portcullis for a smoke run: not
#                   a measurement)
#   BENCH_KEEP=1    keep the temporary directory (server logs, raw wrk output, pools; why
#                   oidc-provider refused a grant is in its oidc-provider.err)
set -euo pipefail
cd "$(dirname "$0")/.."

grant=refresh
duration=20s
connections=64
runs=3
warmup=3s
threads=2
peer_workers=2
usage() { sed -n 5p "$0" | sed 's/^# //' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --grant) grant=${2:?}; shift 2 ;;
        --duration) duration=${2:?}; shift 2 ;;
        --connections) connections=${2:?}; shift 2 ;;
        --runs) runs=${2:?}; shift 2 ;;
        --warmup) warmup=${2:?}; shift 2 ;;
        --peer-workers) peer_workers=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) echo "user-tokens.sh: unknown argument $1" >&2; usage ;;
    esac
done
case "$grant" in
    refresh|code|authorize) ;;
    *) echo "user-tokens.sh: --grant must be refresh, code or authorize" >&2; exit 2 ;;
esac
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "user-tokens.sh: --runs must be a positive integer" >&2; exit 2; }
[[ "$connections" =~ ^[1-9][0-9]*$ ]] || { echo "user-tokens.sh: --connections must be a positive integer" >&2; exit 2; }
[ "$connections" -ge "$threads" ] || { echo "user-tokens.sh: --connections must be at least $threads" >&2; exit 2; }
[[ "$peer_workers" =~ ^[1-9][0-9]*$ ]] || { echo "user-tokens.sh: --peer-workers must be a positive integer" >&2; exit 2; }
seconds() { # a wrk duration (20, 20s, 1m) in seconds
    case "$1" in
        *m) echo $(( ${1%m} * 60 )) ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}
for d in "$duration" "$warmup"; do
    [[ "$d" =~ ^[1-9][0-9]*[sm]?$ ]] || { echo "user-tokens.sh: durations are whole seconds or minutes (20s, 1m)" >&2; exit 2; }
done
duration_s=$(seconds "$duration")
warmup_s=$(seconds "$warmup")
code_seconds=60 # how long a code lives, in both servers
if [ "$grant" = code ] && { [ "$duration_s" -gt 25 ] || [ "$warmup_s" -gt 25 ]; }; then
    echo "user-tokens.sh: with --grant code, --duration and --warmup are at most 25s (codes live 60 s)" >&2
    exit 2
fi

me=user-tokens.sh
lua=bench/user-tokens.lua
# shellcheck source=bench/lib.sh
. bench/lib.sh

resource=https://api.example.com
scope="openid api:read"
redirect_uri=https://app.example.com/callback
user=bench-user
password="violet tugboat parsley orbit"

bench_prerequisites
bench_workdir portcullis-user-tokens

random() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

# ------------------------------------------------------------------------------ Portcullis
start_portcullis
user_id=$(api POST /v1/users "{\"user_name\": \"$user\"}" | json_field id) \
    || die "POST /v1/users: no id in the response"
api PUT "/v1/users/$user_id/password" "{\"password\": \"$password\", \"must_change\": false}" >/dev/null
pc_id=$(api POST /v1/service-principals '{"name": "bench-web"}' | json_field id) \
    || die "POST /v1/service-principals: no id in the response"
api PUT "/v1/service-principals/$pc_id/oauth-client" \
    "{\"grant_types\": [\"authorization_code\", \"refresh_token\"], \"redirect_uris\": [\"$redirect_uri\"], \"scopes\": [\"api:read\"], \"resources\": [\"$resource\"], \"access_token_seconds\": 300}" \
    >/dev/null
pc_secret=$(api POST "/v1/service-principals/$pc_id/api-keys" '{}' | json_field secret) \
    || die "POST /v1/service-principals/$pc_id/api-keys: no secret in the response"

# ------------------------------------------------------------------------------ oidc-provider
start_oidc_provider WORKERS="$peer_workers" BENCH_ADAPTER=shared BENCH_USER_PASSWORD="$password"
op_id=bench-web

# ------------------------------------------------------------------------------ the two sides
declare -A authorize_url token_url client_id client_secret verifier
authorize_url[Portcullis]="$pc_url/t/operator/oauth/authorize"
token_url[Portcullis]="$pc_url/t/operator/oauth/token"
client_id[Portcullis]=$pc_id
client_secret[Portcullis]=$pc_secret
authorize_url[oidc-provider]="$op_url/auth"
token_url[oidc-provider]="$op_url/token"
client_id[oidc-provider]=$op_id
client_secret[oidc-provider]=$op_secret
for name in Portcullis oidc-provider; do verifier[$name]=$(random); done

helper() { # name command [arg]: bench/user-tokens.mjs for that server
    local name=$1
    shift
    BENCH_NAME="$name" BENCH_AUTHORIZE_URL="${authorize_url[$name]}" BENCH_TOKEN_URL="${token_url[$name]}" \
        BENCH_CLIENT_ID="${client_id[$name]}" BENCH_CLIENT_SECRET="${client_secret[$name]}" \
        BENCH_USER="$user" BENCH_PASSWORD="$password" BENCH_VERIFIER="${verifier[$name]}" \
        BENCH_REDIRECT_URI="$redirect_uri" BENCH_SCOPE="$scope" BENCH_RESOURCE="$resource" \
        node bench/user-tokens.mjs "$@"
}
origin() { sed -E 's|^(https?://[^/]+).*|\1|' <<<"$1"; }

[ "$grant" != authorize ] || failure_label=non-303 # or a 303 without a code
case "$grant" in
    refresh) what="refresh_token grants (rotating)" ;;
    code) what="authorization_code grants (PKCE), ID + access + refresh token" ;;
    authorize) what="authorization requests of a signed-in session (303 with a code)" ;;
esac
echo "== $what over HTTP: Portcullis vs oidc-provider =="
if [ "$peer_workers" = 1 ]; then peer_setup="1 process"; else peer_setup="$peer_workers cluster workers"; fi
print_environment "$peer_setup, in memory (shared-memory-adapter.mjs)"
echo "tokens:"
for name in Portcullis oidc-provider; do
    helper "$name" check || die "$name: the sign-in and token checks failed"
done

# ------------------------------------------------------------------------------ per-run set-up
declare -A session_cookie code_rate mint_rate
per_run_seeds=$(( 2 * connections + 2 * threads ))

if [ "$grant" = refresh ]; then
    for name in Portcullis oidc-provider; do
        helper "$name" seed $(( (runs + 1) * per_run_seeds )) >"$work/seeds-$name.txt" \
            || die "$name: could not issue the seed refresh tokens"
    done
    seed_round=0
fi
if [ "$grant" != refresh ]; then
    for name in Portcullis oidc-provider; do
        session_cookie[$name]=$(helper "$name" session) || die "$name: could not sign in"
    done
fi

# Issues a pool of codes: wrk on the authorization endpoint for $3 seconds.
mint() { # name label seconds -> the number of codes in $work/codes-NAME-LABEL.txt
    local name=$1 out="$work/codes-$1-$2" log="$work/wrk-$1-$2-mint.txt" url result
    url="$(origin "${authorize_url[$name]}")$(helper "$name" query)"
    BENCH_GRANT=authorize BENCH_COOKIE="${session_cookie[$name]}" BENCH_CODES_OUT="$out" BENCH_THREADS="$threads" \
        wrk -t"$threads" -c"$connections" -d"$3s" --timeout 10s -s "$lua" "$url" >"$log" 2>&1 \
        || { cat "$log" >&2; die "$name: wrk (issuing codes) failed"; }
    result=$(grep '^RESULT ' "$log" | tail -n1)
    [ "$(field "$result" non2xx)" = 0 ] && [ "$(field "$result" socket_errors)" = 0 ] || {
        grep 'first failure' "$log" >&2; die "$name: issuing codes failed: $result"; }
    cat "$out".* >"$out.txt"
    rm -f "$out".[0-9]*
    wc -l <"$out.txt"
}

bench_prepare() { # name label: the artifacts for the next wrk run
    local name=$1 label=$2 run_s codes seconds need budget
    case "$grant" in
        refresh)
            sed -n "$(( seed_round * per_run_seeds + 1 )),$(( (seed_round + 1) * per_run_seeds ))p" \
                "$work/seeds-$name.txt" >"$work/seeds-$name-$label.txt"
            seed_round=$(( seed_round + 1 ))
            [ "$label" != "run$runs" ] || seed_round=0
            wrk_env=(BENCH_GRANT=refresh BENCH_SEEDS="$work/seeds-$name-$label.txt" BENCH_THREADS="$threads"
                BENCH_CLIENT_ID="${client_id[$name]}" BENCH_CLIENT_SECRET="${client_secret[$name]}")
            ;;
        code)
            if [ "$label" = warmup ]; then run_s=$warmup_s; else run_s=$duration_s; fi
            budget=$(( code_seconds - run_s - 5 )) # the oldest code must outlive the run
            if [ -z "${code_rate[$name]:-}" ]; then
                seconds=$(( 2 * run_s < budget ? 2 * run_s : budget ))
            else
                # 20 % more than the fastest redemption rate seen so far would use up.
                need=$(awk -v r="${code_rate[$name]}" -v d="$run_s" -v c="$connections" \
                    'BEGIN { printf "%d", r * d * 1.2 + 2 * c }')
                seconds=$(awk -v n="$need" -v m="${mint_rate[$name]}" 'BEGIN { s = int(n / m) + 1; print (s < 1 ? 1 : s) }')
                if [ "$seconds" -gt "$budget" ]; then
                    echo "  ($name: $need codes would take ${seconds}s to issue, more than the ${budget}s the codes' lifetime leaves: the pool may run out; use a shorter --duration)"
                    seconds=$budget
                fi
            fi
            codes=$(mint "$name" "$label" "$seconds")
            [ "$codes" -gt 0 ] || die "$name: no codes issued"
            mint_rate[$name]=$(awk -v n="$codes" -v s="$seconds" 'BEGIN { print n / s }')
            wrk_env=(BENCH_GRANT=code BENCH_CODES="$work/codes-$name-$label.txt" BENCH_THREADS="$threads"
                BENCH_CLIENT_ID="${client_id[$name]}" BENCH_CLIENT_SECRET="${client_secret[$name]}"
                BENCH_VERIFIER="${verifier[$name]}" BENCH_REDIRECT_URI="$redirect_uri")
            ;;
        authorize)
            wrk_env=(BENCH_GRANT=authorize BENCH_COOKIE="${session_cookie[$name]}" BENCH_THREADS="$threads")
            ;;
    esac
}

# After each code run: the redemption rate the next pool must cover.
bench_after() { # name label
    [ "$grant" = code ] || return 0
    local log="$work/wrk-$1-$2.txt" result rps
    result=$(grep '^RESULT ' "$log" | tail -n1)
    rps=$(field "$result" rps)
    if [ "$(field "$result" exhausted)" != 0 ]; then
        # It ran out: the true rate is higher than this run shows.
        rps=$(awk -v r="$rps" 'BEGIN { print 2 * r }')
    fi
    code_rate[$1]=$(awk -v a="${code_rate[$1]:-0}" -v b="$rps" 'BEGIN { print (b > a ? b : a) }')
}

# ------------------------------------------------------------------------------ measure
for name in Portcullis oidc-provider; do
    if [ "$grant" = authorize ]; then
        target="$(origin "${authorize_url[$name]}")$(helper "$name" query)"
    else
        target=${token_url[$name]}
    fi
    measure "$name" "$target"
done

# ------------------------------------------------------------------------------ report
report
[ "$failed" = 0 ] || die "some responses failed or a pool ran out (see above): these numbers do not count"
