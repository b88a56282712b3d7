#!/usr/bin/env bash
#
# bench-ca.sh - the CA's durable issuance rate over HTTPS (docs/performance.md, "CA issuance").
#
# Starts mtls-ca on a fresh data directory (SQLite store, WAL, synchronous=FULL, group commit),
# creates join tokens in its store, and has mtls-bench --mode ca-sign redeem them through
# POST /api/v1/sign with N concurrent keep-alive clients: each request is a CSR check, a
# signature, one token redemption + certificate record + audit entry committed durably, and the
# JSON answer. Prints certificates/s, p50, p99 and the CA process's CPU (cores busy) per client
# count, as a Markdown table.
set -euo pipefail

SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -P -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$SCRIPT_DIR/lib/proc.sh"
# shellcheck source-path=SCRIPTDIR source=lib/measure.sh
. "$SCRIPT_DIR/lib/measure.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--clients "16 64"] [--tokens N] [--smoke] [--bin-dir DIR] [--keep]

Measures certificates/s, p50 and p99 of POST /api/v1/sign against mtls-ca (SQLite store with
group commit, durable) for each client count, and the CA's CPU. Exit status 0 when every run
had zero errors.

Options:
  --clients "N..."   concurrent clients, one run each (default "16 64")
  --tokens N         join tokens per run: the run lasts until they are used (default 30000)
  --smoke            a tiny run (4 clients, 40 tokens) that checks the script works
  --bin-dir DIR      use prebuilt binaries in DIR (mtls-ca, mtls-bench, examples/ca_crash_load);
                     default: build them with cargo --release
  --keep             keep the work directory (logs, data directory, reports)
  -h, --help         this text

Needs: bash 4.4+, openssl, cargo (unless --bin-dir).
USAGE
}

CLIENTS="16 64" TOKENS=30000 BIN_DIR='' KEEP=0
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --clients)
        need_value "$1" "$#" "${2-}"
        CLIENTS=$2
        shift 2
        ;;
    --tokens)
        need_value "$1" "$#" "${2-}"
        [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "--tokens needs a whole number >= 1, got '$2'"
        TOKENS=$2
        shift 2
        ;;
    --smoke)
        CLIENTS=4 TOKENS=40
        shift
        ;;
    --bin-dir)
        need_value "$1" "$#" "${2-}"
        BIN_DIR=$2
        shift 2
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    *) usage_error "unknown option '$1'" ;;
    esac
done
for c in $CLIENTS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || usage_error "--clients needs whole numbers >= 1, got '$c'"
done
require_openssl

proc_cleanup_on_exit

if [[ -z $BIN_DIR ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required (or give --bin-dir)"
    build=(cargo build --locked --release -p mtls --bin mtls-ca --bin mtls-bench --example ca_crash_load)
    printf '== building: %s\n' "${build[*]}"
    (cd "$REPO_DIR" && "${build[@]}") || die "the build failed"
    target=${CARGO_TARGET_DIR:-$REPO_DIR/target}
    [[ $target == /* ]] || target=$REPO_DIR/$target
    BIN_DIR=$target/release
fi
CA=$BIN_DIR/mtls-ca
BENCH=$BIN_DIR/mtls-bench
LOAD=$BIN_DIR/examples/ca_crash_load
for p in "$CA" "$BENCH" "$LOAD"; do
    [[ -x $p ]] || die "$p is missing (cargo build -p mtls --bins --example ca_crash_load)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtls-bench-ca.XXXXXX")
proc_work_dir "$WORK" "$KEEP"
printf '== work directory %s (%s cores, load generator on the same machine)\n' "$WORK" "$(nproc)"

# mtls-bench reads a client certificate even when, as in ca-sign mode, it presents none.
WORKDIR=$WORK
run_openssl "making the (unused) client certificate" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -subj /CN=bench \
    -days 1 -keyout "$WORK/client.key" -out "$WORK/client.crt"

printf '| clients | certificates/s | p50 | p99 | CA CPU (cores) | errors |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
FAILED=0
HZ=$(getconf CLK_TCK)
for clients in $CLIENTS; do
    out=$WORK/c$clients
    mkdir -p "$out"
    proc_start "$out/ca.out" "$out/ca.err" "$CA" --data-dir "$out/ca" --listen 127.0.0.1:0
    ca_pid=$PROC_PID
    wait_for_line "$out/ca.out" '^listening on https://127\.0\.0\.1:[0-9]+' 60 "$ca_pid" ||
        die "the CA did not start (see $out/ca.err)"
    port=${MATCH##*:}
    "$LOAD" tokens --data-dir "$out/ca" --count "$TOKENS" --prefix "c$clients" >"$out/tokens" ||
        die "creating tokens failed"

    ticks_before=$(cpu_ticks "$ca_pid")
    started=$(date +%s.%N)
    status=0
    "$BENCH" "https://localhost:$port/api/v1/sign" --mode ca-sign --tokens "$out/tokens" \
        --concurrency "$clients" --duration 10m --cert "$WORK/client.crt" \
        --key "$WORK/client.key" --ca-cert "$out/ca/root.crt" --json --quiet \
        >"$out/report.json" 2>"$out/bench.err" || status=$?
    ended=$(date +%s.%N)
    ticks_after=$(cpu_ticks "$ca_pid")
    proc_stop "$ca_pid"

    rate=$(json_number "$out/report.json" requests_per_sec)
    p50=$(json_number "$out/report.json" p50_ms)
    p99=$(json_number "$out/report.json" p99_ms)
    errors=$(json_number "$out/report.json" errors_total)
    cores=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$HZ" -v a="$started" -v b="$ended" \
        'BEGIN { printf "%.2f", t / hz / (b - a) }')
    printf '| %d | %.0f | %.1f ms | %.1f ms | %s | %s |\n' \
        "$clients" "${rate:-0}" "${p50:-0}" "${p99:-0}" "$cores" "${errors:-?}"
    if ((status != 0)) || [[ ${errors:-x} != 0 ]]; then
        printf '%s: the run with %d clients had errors (see %s)\n' "$PROG" "$clients" "$out" >&2
        FAILED=1
    fi
done
exit "$FAILED"
