#!/usr/bin/env bash
# client_credentials tokens per second over HTTP, Portcullis against npm oidc-provider (v9, the
# certified Node provider) on the same machine, with the same load generator (wrk, keep-alive).
#
# Usage: bash bench/tokens.sh [--duration 20s] [--connections 64] [--runs 3] [--warmup 3s]
#
# Both servers issue the same thing: an ES256-signed RFC 9068 JWT access token (typ at+jwt) with
# aud https://api.example.com (RFC 8707 resource) and scope api:read, 300 s lifetime, to a
# confidential client authenticating with client_secret_basic. Portcullis runs from
# target/release/portcullis (run `cargo build --release` first) in development mode (no
# --production: development KEK, embedded SQLite in a temporary data directory) on all cores;
# oidc-provider runs as a Node cluster of 2 workers (bench/peers/oidc-provider/server.mjs).
# The load generator shares the machine's cores with the server under test, as the issue asks.
#
# For each server: one curl checks that a token comes back (and its header and claims), a warm-up
# (--warmup) is discarded, then --runs wrk runs (-t2, --connections keep-alive connections,
# --duration each). Printed per server: requests/s of each run, the median, p50/p99 latency
# (medians over the runs), non-2xx responses and socket errors; then the ratio
# Portcullis / oidc-provider of the median rates. Exits non-zero if any response failed.
#
# Environment:
#   PORTCULLIS_BIN  another portcullis binary (e.g. target/debug/portcullis for a smoke run: not
#                   a measurement)
#   BENCH_KEEP=1    keep the temporary directory (server logs, raw wrk output)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=20s
connections=64
runs=3
warmup=3s
threads=2
usage() { sed -n 5p "$0" | sed 's/^# //' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=${2:?}; shift 2 ;;
        --connections) connections=${2:?}; shift 2 ;;
        --runs) runs=${2:?}; shift 2 ;;
        --warmup) warmup=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) echo "tokens.sh: unknown argument $1" >&2; usage ;;
    esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "tokens.sh: --runs must be a positive integer" >&2; exit 2; }
[[ "$connections" =~ ^[1-9][0-9]*$ ]] || { echo "tokens.sh: --connections must be a positive integer" >&2; exit 2; }
[ "$connections" -ge "$threads" ] || { echo "tokens.sh: --connections must be at least $threads" >&2; exit 2; }

die() { echo "tokens.sh: $*" >&2; exit 1; }

resource=https://api.example.com
scope=api:read
peer=bench/peers/oidc-provider

# ------------------------------------------------------------------------------ prerequisites
if [ -n "${PORTCULLIS_BIN:-}" ]; then
    bin=$PORTCULLIS_BIN
    [ -x "$bin" ] || die "PORTCULLIS_BIN=$bin is not an executable"
else
    bin=target/release/portcullis
    [ -x "$bin" ] || die "$bin is missing: run \`cargo build --release\` first (or set PORTCULLIS_BIN for a smoke run)"
fi
stale=$(find crates Cargo.toml Cargo.lock -newer "$bin" \( -name '*.rs' -o -name 'Cargo.*' \) -print 2>/dev/null | head -n1)
case "$bin" in
    *release*) smoke="" ;;
    *) smoke="SMOKE RUN ($bin is not target/release/portcullis): not a measurement" ;;
esac

for tool in node npm curl; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
if ! command -v wrk >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo"
    $as_root apt-get update -qq
    $as_root apt-get install -y -qq wrk >/dev/null
fi
if [ ! -d "$peer/node_modules/oidc-provider" ]; then
    npm ci --prefix "$peer" --no-audit --no-fund
fi

work=$(mktemp -d -t portcullis-tokens.XXXXXX)
pc_pid=""
op_pid=""
cleanup() {
    local status=$?
    for pid in $pc_pid $op_pid; do kill "$pid" 2>/dev/null || true; done
    for pid in $pc_pid $op_pid; do wait "$pid" 2>/dev/null || true; done
    if [ "${BENCH_KEEP:-}" = 1 ]; then
        echo "tokens.sh: kept $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One field of a JSON object on stdin.
json_field() {
    node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
        const v = JSON.parse(s)[process.argv[1]];
        if (v === undefined || v === null) process.exit(1);
        console.log(typeof v === "object" ? JSON.stringify(v) : v);
    });' "$1"
}

wait_for_line() { # file pattern what pid
    for _ in $(seq 1 150); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$4" 2>/dev/null || break
        sleep 0.1
    done
    return 1
}

# ------------------------------------------------------------------------------ Portcullis
data="$work/portcullis"
mkdir -p "$data"
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --log-format text --log warn \
    >"$work/portcullis.out" 2>"$work/portcullis.err" &
pc_pid=$!
wait_for_line "$work/portcullis.out" "listening on" Portcullis "$pc_pid" || {
    cat "$work/portcullis.err" >&2; die "Portcullis did not start"; }
pc_url=$(sed -n 's/^portcullis: listening on //p' "$work/portcullis.out" | head -n1)
admin_key=$(cat "$data/bootstrap-credential")

api() { # method path [json body]; prints the response body, fails loudly on a non-2xx
    local out code
    out=$(curl -sS -X "$1" "$pc_url$2" -H "Authorization: Bearer $admin_key" \
        -H 'Content-Type: application/json' ${3:+--data "$3"} -w '\n%{http_code}') \
        || die "$1 $2: curl failed"
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    [[ "$code" == 2* ]] || die "$1 $2: HTTP $code: $out${stale:+ (note: $bin is older than $stale: rebuild it)}"
    printf '%s' "$out"
}
pc_id=$(api POST /v1/service-principals '{"name": "bench"}' | json_field id) \
    || die "POST /v1/service-principals: no id in the response"
api PUT "/v1/service-principals/$pc_id/oauth-client" \
    "{\"grant_types\": [\"client_credentials\"], \"scopes\": [\"$scope\"], \"resources\": [\"$resource\"], \"access_token_seconds\": 300}" \
    >/dev/null
pc_secret=$(api POST "/v1/service-principals/$pc_id/api-keys" '{}' | json_field secret) \
    || die "POST /v1/service-principals/$pc_id/api-keys: no secret in the response"
pc_token_url="$pc_url/t/operator/oauth/token"

# ------------------------------------------------------------------------------ oidc-provider
op_secret=$(head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
PORT=0 WORKERS=2 BENCH_CLIENT_SECRET="$op_secret" NODE_ENV=production \
    node "$peer/server.mjs" >"$work/oidc-provider.out" 2>"$work/oidc-provider.err" &
op_pid=$!
wait_for_line "$work/oidc-provider.out" "listening on" oidc-provider "$op_pid" || {
    cat "$work/oidc-provider.err" >&2; die "oidc-provider did not start"; }
op_url=$(sed -n 's/^oidc-provider: listening on \([^ ]*\).*/\1/p' "$work/oidc-provider.out" | head -n1)
op_id=bench
op_token_url="$op_url/token"

# ------------------------------------------------------------------------------ one token each
check_token() { # name url client_id secret
    local out code
    out=$(curl -sS -u "$3:$4" -d grant_type=client_credentials --data-urlencode "resource=$resource" \
        --data-urlencode "scope=$scope" "$2" -w '\n%{http_code}') || die "$1: curl to $2 failed"
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    [ "$code" = 200 ] || die "$1: the token request got HTTP $code: $out"
    printf '%s' "$out" | node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
        const [name, resource, scope] = process.argv.slice(1);
        const fail = (m) => { console.error(`tokens.sh: ${name}: ${m}: ${s}`); process.exit(1); };
        let body;
        try { body = JSON.parse(s); } catch { fail("the token response is not JSON"); }
        const parts = String(body.access_token ?? "").split(".");
        if (parts.length !== 3) fail("no JWT access_token in the response");
        const decode = (p) => JSON.parse(Buffer.from(p, "base64url").toString());
        const header = decode(parts[0]);
        const claims = decode(parts[1]);
        if (header.alg !== "ES256") fail(`access token alg is ${header.alg}, not ES256`);
        if (String(header.typ).toLowerCase() !== "at+jwt") fail(`access token typ is ${header.typ}, not at+jwt`);
        const aud = [].concat(claims.aud);
        if (!aud.includes(resource)) fail(`access token aud is ${JSON.stringify(claims.aud)}`);
        if (claims.scope !== scope) fail(`access token scope is ${JSON.stringify(claims.scope)}`);
        console.log(`  ${name}: ${parts.join(".").length}-byte token, header ${JSON.stringify(header)},`
            + ` iss ${claims.iss}, aud ${JSON.stringify(claims.aud)}, scope ${claims.scope},`
            + ` lifetime ${claims.exp - claims.iat} s, response ${s.length} bytes`);
    });' "$1" "$resource" "$scope" || exit 1
}

version_of() { node -p "require('./$peer/node_modules/$1/package.json').version"; }
echo "== client_credentials tokens over HTTP: Portcullis vs oidc-provider =="
[ -z "$smoke" ] || echo "!! $smoke"
[ -z "$stale" ] || echo "!! $bin is older than $stale: rebuild it (cargo build --release) or this measures old code"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
echo "Portcullis: $bin ($("$bin" --version 2>/dev/null || echo '?')), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), development mode, SQLite, at $pc_url"
echo "oidc-provider $(version_of oidc-provider) (jose $(version_of jose)) on Node $(node --version), 2 cluster workers, at $op_url"
echo "load: wrk -t$threads -c$connections -d$duration (keep-alive), $runs run(s) each after a $warmup warm-up"
load1=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }' \
    && echo "!! the machine is not idle (1-minute load $load1): numbers will be low and noisy"
echo "tokens:"
check_token Portcullis "$pc_token_url" "$pc_id" "$pc_secret"
check_token oidc-provider "$op_token_url" "$op_id" "$op_secret"

# ------------------------------------------------------------------------------ measure
failed=0
run_wrk() { # name url id secret duration label -> RESULT line
    local log="$work/wrk-$1-$6.txt"
    BENCH_CLIENT_ID="$3" BENCH_CLIENT_SECRET="$4" BENCH_RESOURCE="$resource" BENCH_SCOPE="$scope" \
        wrk -t"$threads" -c"$connections" -d"$5" --timeout 10s -s bench/tokens.lua "$2" >"$log" 2>&1 \
        || { cat "$log" >&2; die "$1: wrk failed"; }
    grep '^RESULT ' "$log" | tail -n1 | grep . || { cat "$log" >&2; die "$1: no RESULT line from wrk"; }
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A rates p50s p99s non2xx sockets
measure() { # name url id secret
    local name=$1 result i rps
    echo "$name:"
    run_wrk "$@" "$warmup" warmup >/dev/null
    for i in $(seq 1 "$runs"); do
        result=$(run_wrk "$@" "$duration" "run$i")
        rps=$(field "$result" rps)
        rates[$name]+="$rps "
        p50s[$name]+="$(field "$result" p50_ms) "
        p99s[$name]+="$(field "$result" p99_ms) "
        local bad=$(( $(field "$result" non2xx) + $(field "$result" bad_body) ))
        local sock=$(field "$result" socket_errors)
        non2xx[$name]=$(( ${non2xx[$name]:-0} + bad ))
        sockets[$name]=$(( ${sockets[$name]:-0} + sock ))
        printf '  run %d: %10.1f req/s   p50 %8.3f ms   p99 %8.3f ms   non-2xx %d   socket errors %d\n' \
            "$i" "$rps" "$(field "$result" p50_ms)" "$(field "$result" p99_ms)" "$bad" "$sock"
        if [ "$bad" -gt 0 ] || [ "$sock" -gt 0 ]; then
            failed=1
            grep '^tokens.lua: first failure' "$work/wrk-$name-run$i.txt" | head -n2 | sed 's/^/    /'
        fi
    done
}
measure Portcullis "$pc_token_url" "$pc_id" "$pc_secret"
measure oidc-provider "$op_token_url" "$op_id" "$op_secret"

# ------------------------------------------------------------------------------ report
echo
[ -z "$smoke" ] || echo "!! $smoke"
printf '%-28s %16s %16s\n' "" Portcullis oidc-provider
for i in $(seq 1 "$runs"); do
    printf '%-28s %16.1f %16.1f\n' "run $i (req/s)" \
        "$(cut -d' ' -f"$i" <<<"${rates[Portcullis]}")" "$(cut -d' ' -f"$i" <<<"${rates[oidc-provider]}")"
done
pc_median=$(median <<<"${rates[Portcullis]}")
op_median=$(median <<<"${rates[oidc-provider]}")
printf '%-28s %16.1f %16.1f\n' "median (req/s)" "$pc_median" "$op_median"
printf '%-28s %16.3f %16.3f\n' "p50 latency (ms, median)" \
    "$(median <<<"${p50s[Portcullis]}")" "$(median <<<"${p50s[oidc-provider]}")"
printf '%-28s %16.3f %16.3f\n' "p99 latency (ms, median)" \
    "$(median <<<"${p99s[Portcullis]}")" "$(median <<<"${p99s[oidc-provider]}")"
printf '%-28s %16d %16d\n' "non-2xx (all runs)" "${non2xx[Portcullis]}" "${non2xx[oidc-provider]}"
printf '%-28s %16d %16d\n' "socket errors (all runs)" "${sockets[Portcullis]}" "${sockets[oidc-provider]}"
awk -v a="$pc_median" -v b="$op_median" 'BEGIN {
    printf "ratio Portcullis / oidc-provider: %.2fx\n", (b > 0 ? a / b : 0)
    printf "target >= 10,000 tokens/s: %s (%.0f/s)\n", (a >= 10000 ? "met" : "NOT met"), a
}'
[ "$failed" = 0 ] || die "some responses failed (see above): these numbers do not count"
