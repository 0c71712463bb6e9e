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

me=tokens.sh
lua=bench/tokens.lua
# shellcheck source=bench/lib.sh
. bench/lib.sh

resource=https://api.example.com
scope=api:read

bench_prerequisites
bench_workdir portcullis-tokens

# ------------------------------------------------------------------------------ Portcullis
start_portcullis
pc_id=$(api POST /v1/service-principals '{"name": "bench"}' | json_field id) \
    || die "POST /v1/service-principals: no id in the response"
api PUT "/v1/service-principals/$pc_id/oauth-client" \
    "{\"grant_types\": [\"client_credentials\"], \"scopes\": [\"$scope\"], \"resources\": [\"$resource\"], \"access_token_seconds\": 300}" \
    >/dev/null
pc_secret=$(api POST "/v1/service-principals/$pc_id/api-keys" '{}' | json_field secret) \
    || die "POST /v1/service-principals/$pc_id/api-keys: no secret in the response"
pc_token_url="$pc_url/t/operator/oauth/token"

# ------------------------------------------------------------------------------ oidc-provider
start_oidc_provider
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

echo "== client_credentials tokens over HTTP: Portcullis vs oidc-provider =="
print_environment
echo "tokens:"
check_token Portcullis "$pc_token_url" "$pc_id" "$pc_secret"
check_token oidc-provider "$op_token_url" "$op_id" "$op_secret"

# ------------------------------------------------------------------------------ measure
wrk_env=(BENCH_CLIENT_ID="$pc_id" BENCH_CLIENT_SECRET="$pc_secret" BENCH_RESOURCE="$resource" BENCH_SCOPE="$scope")
measure Portcullis "$pc_token_url"
wrk_env=(BENCH_CLIENT_ID="$op_id" BENCH_CLIENT_SECRET="$op_secret" BENCH_RESOURCE="$resource" BENCH_SCOPE="$scope")
measure oidc-provider "$op_token_url"

# ------------------------------------------------------------------------------ report
report
awk -v a="$RATIO_PC" 'BEGIN {
    printf "target >= 10,000 tokens/s: %s (%.0f/s)\n", (a >= 10000 ? "met" : "NOT met"), a
}'
[ "$failed" = 0 ] || die "some responses failed (see above): these numbers do not count"
