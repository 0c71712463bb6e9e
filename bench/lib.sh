# Shared by the side-by-side HTTP benchmarks (bench/tokens.sh, bench/user-tokens.sh): sourced,
# not run. The sourcing script sets `me` (its name, for messages) and parses its own options
# (duration, connections, runs, warmup, threads) first; it is run from the repository's root.
#
#   bench_prerequisites              picks the Portcullis binary (bin, stale, smoke), checks for
#                                    node, npm, curl, installs wrk and the peer's packages
#   bench_workdir PREFIX             makes $work and the clean-up trap (stops pc_pid, op_pid)
#   start_portcullis                 pc_url, admin_key; api METHOD PATH [JSON] calls its admin API
#   start_oidc_provider [VAR=value]  op_url; the variables go to bench/peers/oidc-provider
#   print_environment                the lines saying what runs where
#   measure NAME URL                 a warm-up and $runs wrk runs with $lua, the environment in
#                                    the array wrk_env; calls bench_prepare NAME LABEL before
#                                    each and bench_after NAME LABEL after each, if defined
#                                    (LABEL: warmup, run1, ...)
#   report                           the table, the ratio; RATIO_PC / RATIO_OP for the caller
# failure_label names the failed responses (default non-2xx).

die() { echo "$me: $*" >&2; exit 1; }

peer=bench/peers/oidc-provider

# ------------------------------------------------------------------------------ prerequisites
bench_prerequisites() {
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
        local as_root=""
        [ "$(id -u)" -eq 0 ] || as_root="sudo"
        $as_root apt-get update -qq
        $as_root apt-get install -y -qq wrk >/dev/null
    fi
    if [ ! -d "$peer/node_modules/oidc-provider" ]; then
        npm ci --prefix "$peer" --no-audit --no-fund
    fi
}

# ------------------------------------------------------------------------------ clean-up
bench_workdir() { # prefix
    work=$(mktemp -d -t "$1.XXXXXX")
    pc_pid=""
    op_pid=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local status=$?
    for pid in $pc_pid $op_pid; do kill "$pid" 2>/dev/null || true; done
    for pid in $pc_pid $op_pid; do wait "$pid" 2>/dev/null || true; done
    if [ "${BENCH_KEEP:-}" = 1 ]; then
        echo "$me: kept $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}

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
start_portcullis() {
    data="$work/portcullis"
    mkdir -p "$data"
    "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" --log-format text --log warn \
        >"$work/portcullis.out" 2>"$work/portcullis.err" &
    pc_pid=$!
    wait_for_line "$work/portcullis.out" "listening on" Portcullis "$pc_pid" || {
        cat "$work/portcullis.err" >&2; die "Portcullis did not start"; }
    pc_url=$(sed -n 's/^portcullis: listening on //p' "$work/portcullis.out" | head -n1)
    admin_key=$(cat "$data/bootstrap-credential")
}

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

# ------------------------------------------------------------------------------ oidc-provider
start_oidc_provider() { # [VAR=value ...]: more environment for server.mjs
    op_secret=$(head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    env PORT=0 WORKERS=2 BENCH_CLIENT_SECRET="$op_secret" NODE_ENV=production "$@" \
        node "$peer/server.mjs" >"$work/oidc-provider.out" 2>"$work/oidc-provider.err" &
    op_pid=$!
    wait_for_line "$work/oidc-provider.out" "listening on" oidc-provider "$op_pid" || {
        cat "$work/oidc-provider.err" >&2; die "oidc-provider did not start"; }
    op_url=$(sed -n 's/^oidc-provider: listening on \([^ ]*\).*/\1/p' "$work/oidc-provider.out" | head -n1)
}

version_of() { node -p "require('./$peer/node_modules/$1/package.json').version"; }

print_environment() { # [what oidc-provider runs as: default "2 cluster workers"]
    [ -z "$smoke" ] || echo "!! $smoke"
    [ -z "$stale" ] || echo "!! $bin is older than $stale: rebuild it (cargo build --release) or this measures old code"
    echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
    echo "Portcullis: $bin ($("$bin" --version 2>/dev/null || echo '?')), git $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'), development mode, SQLite, at $pc_url"
    echo "oidc-provider $(version_of oidc-provider) (jose $(version_of jose)) on Node $(node --version), ${1:-2 cluster workers}, at $op_url"
    echo "load: wrk -t$threads -c$connections -d$duration (keep-alive), $runs run(s) each after a $warmup warm-up"
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }' \
        && echo "!! the machine is not idle (1-minute load $load1): numbers will be low and noisy"
    return 0
}

# ------------------------------------------------------------------------------ measure
failed=0
wrk_env=()
failure_label=non-2xx
hook() { if declare -F "$1" >/dev/null; then "$@"; fi; }
run_wrk() { # name url duration label -> RESULT line
    local log="$work/wrk-$1-$4.txt"
    env "${wrk_env[@]}" wrk -t"$threads" -c"$connections" -d"$3" --timeout 10s -s "$lua" "$2" >"$log" 2>&1 \
        || { cat "$log" >&2; die "$1: wrk failed"; }
    grep '^RESULT ' "$log" | tail -n1 | grep . || { cat "$log" >&2; die "$1: no RESULT line from wrk"; }
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A rates p50s p99s non2xx sockets
measure() { # name url
    local name=$1 result i rps
    echo "$name:"
    hook bench_prepare "$name" warmup
    run_wrk "$1" "$2" "$warmup" warmup >/dev/null
    hook bench_after "$name" warmup
    for i in $(seq 1 "$runs"); do
        hook bench_prepare "$name" "run$i"
        result=$(run_wrk "$1" "$2" "$duration" "run$i")
        hook bench_after "$name" "run$i"
        rps=$(field "$result" rps)
        rates[$name]+="$rps "
        p50s[$name]+="$(field "$result" p50_ms) "
        p99s[$name]+="$(field "$result" p99_ms) "
        local bad=$(( $(field "$result" non2xx) + $(field "$result" bad_body) ))
        local sock=$(field "$result" socket_errors)
        local ran_out=$(field "$result" exhausted)
        non2xx[$name]=$(( ${non2xx[$name]:-0} + bad ))
        sockets[$name]=$(( ${sockets[$name]:-0} + sock ))
        printf "  run %d: %10.1f req/s   p50 %8.3f ms   p99 %8.3f ms   $failure_label %d   socket errors %d\n" \
            "$i" "$rps" "$(field "$result" p50_ms)" "$(field "$result" p99_ms)" "$bad" "$sock"
        if [ "$bad" -gt 0 ] || [ "$sock" -gt 0 ]; then
            failed=1
            grep 'first failure' "$work/wrk-$name-run$i.txt" | head -n2 | sed 's/^/    /'
        fi
        if [ "${ran_out:-0}" -gt 0 ]; then
            failed=1
            echo "    $ran_out wrk thread(s) ran out of codes or tokens and stopped early: this rate does not count"
        fi
    done
}

# ------------------------------------------------------------------------------ report
report() {
    echo
    [ -z "$smoke" ] || echo "!! $smoke"
    printf '%-28s %16s %16s\n' "" Portcullis oidc-provider
    for i in $(seq 1 "$runs"); do
        printf '%-28s %16.1f %16.1f\n' "run $i (req/s)" \
            "$(cut -d' ' -f"$i" <<<"${rates[Portcullis]}")" "$(cut -d' ' -f"$i" <<<"${rates[oidc-provider]}")"
    done
    RATIO_PC=$(median <<<"${rates[Portcullis]}")
    RATIO_OP=$(median <<<"${rates[oidc-provider]}")
    printf '%-28s %16.1f %16.1f\n' "median (req/s)" "$RATIO_PC" "$RATIO_OP"
    printf '%-28s %16.3f %16.3f\n' "p50 latency (ms, median)" \
        "$(median <<<"${p50s[Portcullis]}")" "$(median <<<"${p50s[oidc-provider]}")"
    printf '%-28s %16.3f %16.3f\n' "p99 latency (ms, median)" \
        "$(median <<<"${p99s[Portcullis]}")" "$(median <<<"${p99s[oidc-provider]}")"
    printf '%-28s %16d %16d\n' "$failure_label (all runs)" "${non2xx[Portcullis]}" "${non2xx[oidc-provider]}"
    printf '%-28s %16d %16d\n' "socket errors (all runs)" "${sockets[Portcullis]}" "${sockets[oidc-provider]}"
    awk -v a="$RATIO_PC" -v b="$RATIO_OP" 'BEGIN {
        printf "ratio Portcullis / oidc-provider: %.2fx\n", (b > 0 ? a / b : 0)
    }'
}
