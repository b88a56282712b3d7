#!/usr/bin/env bash
#
# bench-ca.sh - the CA's durable issuance rate over HTTPS (docs/performance.md, "CA issuance").
#
# Starts mtls-ca on a fresh data directory (SQLite store, WAL, synchronous=FULL, group commit),
# or one or more replicas on a throwaway PostgreSQL (--store postgres: fsync and
# synchronous_commit on), creates join tokens in its store, and has mtls-bench --mode ca-sign
# redeem them through POST /api/v1/sign with N concurrent keep-alive clients (spread evenly over
# the replicas, one mtls-bench per replica): each request is a CSR check, a signature, one token
# redemption + certificate record + audit entry committed durably, and the JSON answer. Prints
# certificates/s, p50, p99, the CPU (cores busy) of the CA processes and of PostgreSQL, and
# PostgreSQL's WAL fsyncs per second, per client count, as a Markdown table.
set -euo pipefail

SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -P -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$SCRIPT_DIR/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$SCRIPT_DIR/lib/proc.sh"
# shellcheck source-path=SCRIPTDIR source=lib/measure.sh
. "$SCRIPT_DIR/lib/measure.sh"
# shellcheck source-path=SCRIPTDIR source=lib/pg.sh
. "$SCRIPT_DIR/lib/pg.sh"

usage() {
    cat <<USAGE
Usage: $PROG [--store sqlite|postgres] [--replicas N] [--clients "16 64"] [--tokens N]
       [--smoke] [--bin-dir DIR] [--keep]

Measures certificates/s, p50 and p99 of POST /api/v1/sign against mtls-ca (durable) for each
client count, and the CPU of the CA and of PostgreSQL. Exit status 0 when every run had zero
errors.

Options:
  --store KIND       sqlite (default: the CA's SQLite store with group commit) or postgres (a
                     throwaway PostgreSQL started in the work directory, fsync and
                     synchronous_commit on; needs the Debian package postgresql)
  --replicas N       CA replicas on the one PostgreSQL database, clients spread evenly over
                     them (default 1; more than 1 needs --store postgres)
                     e.g. $PROG --store postgres --replicas 2
  --clients "N..."   concurrent clients, one run each (default "16 64")
  --tokens N         join tokens per run: the run lasts until they are used (default 30000)
  --smoke            a tiny run (4 clients, 40 tokens) that checks the script works
  --bin-dir DIR      use prebuilt binaries in DIR (mtls-ca, mtls-bench, examples/ca_crash_load);
                     default: build them with cargo --release
  --keep             keep the work directory (logs, data directory, reports)
  -h, --help         this text

Needs: bash 4.4+, openssl, cargo (unless --bin-dir); for --store postgres the Debian package
postgresql (initdb, postgres, psql).
USAGE
}

CLIENTS="16 64" TOKENS=30000 BIN_DIR='' KEEP=0 STORE=sqlite REPLICAS=1
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --store)
        need_value "$1" "$#" "${2-}"
        [[ $2 == sqlite || $2 == postgres ]] || usage_error "--store must be sqlite or postgres, got '$2'"
        STORE=$2
        shift 2
        ;;
    --replicas)
        need_count "$1" "$#" "${2-}"
        REPLICAS=$2
        shift 2
        ;;
    --clients)
        need_value "$1" "$#" "${2-}"
        CLIENTS=$2
        shift 2
        ;;
    --tokens)
        need_count "$1" "$#" "${2-}"
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
    ((c >= REPLICAS)) || usage_error "--clients $c is fewer than --replicas $REPLICAS (each replica needs a client)"
done
if ((REPLICAS > 1)) && [[ $STORE != postgres ]]; then
    usage_error "--replicas $REPLICAS needs --store postgres (replicas share one PostgreSQL database)"
fi
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
if [[ $STORE == postgres ]]; then
    # The server runs as nobody when we are root: it must reach its directory.
    chmod 711 "$WORK"
    pg_start "$WORK/pg"
    printf '== PostgreSQL %s on 127.0.0.1:%s (fsync, synchronous_commit on), %d CA replica(s)\n' \
        "$(pg_psql postgres 'SHOW server_version')" "$PG_PORT" "$REPLICAS"
fi

# mtls-bench reads a client certificate even when, as in ca-sign mode, it presents none.
WORKDIR=$WORK
run_openssl "making the (unused) client certificate" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -subj /CN=bench \
    -days 1 -keyout "$WORK/client.key" -out "$WORK/client.crt"

# start_ca DIR OUT_PREFIX -> starts a CA on DIR with the run's store; sets CA_PID, CA_PORT
start_ca() {
    local dir=$1 prefix=$2
    proc_start "$prefix.out" "$prefix.err" "$CA" --data-dir "$dir" "${STORE_ARGS[@]}" \
        --listen 127.0.0.1:0
    CA_PID=$PROC_PID
    wait_for_line "$prefix.out" '^listening on https://127\.0\.0\.1:[0-9]+' 60 "$CA_PID" ||
        die "the CA did not start (see $prefix.err)"
    CA_PORT=${MATCH##*:}
}

# ca_ticks -> clock ticks used so far by the run's CA processes (pids)
ca_ticks() {
    local total=0 p
    for p in "${pids[@]}"; do
        total=$((total + $(cpu_ticks "$p")))
    done
    printf '%d' "$total"
}

# wal_syncs -> PostgreSQL's WAL fsyncs so far
wal_syncs() {
    pg_psql postgres 'SELECT wal_sync FROM pg_stat_wal'
}

printf '| clients | certificates/s | p50 | p99 | CA CPU (cores) | PostgreSQL CPU (cores) | WAL fsyncs/s | errors |\n'
printf '|---:|---:|---:|---:|---:|---:|---:|---:|\n'
FAILED=0
HZ=$(getconf CLK_TCK)
for clients in $CLIENTS; do
    out=$WORK/c$clients
    mkdir -p "$out"
    STORE_ARGS=()
    if [[ $STORE == postgres ]]; then
        pg_psql postgres "CREATE DATABASE bench_c$clients" >/dev/null
        STORE_ARGS=(--store "postgres://postgres@127.0.0.1:$PG_PORT/bench_c$clients")
    fi
    pids=() ports=()
    start_ca "$out/ca" "$out/ca"
    pids+=("$CA_PID") ports+=("$CA_PORT")
    # Every replica gets a copy of the first one's root (what docs/operations.md says to do).
    for ((r = 2; r <= REPLICAS; r++)); do
        mkdir -m 700 "$out/ca$r"
        cp -p "$out/ca/root.crt" "$out/ca/root.key" "$out/ca/jwt.key" "$out/ca$r/"
        start_ca "$out/ca$r" "$out/ca$r"
        pids+=("$CA_PID") ports+=("$CA_PORT")
    done
    "$LOAD" tokens --data-dir "$out/ca" "${STORE_ARGS[@]}" --count "$TOKENS" \
        --prefix "c$clients" >"$out/tokens" || die "creating tokens failed"
    # One token file and one mtls-bench per replica, clients and tokens shared out evenly.
    split -n "l/$REPLICAS" -d -a 3 "$out/tokens" "$out/tokens."

    ticks_before=$(ca_ticks)
    if [[ $STORE == postgres ]]; then
        pg_before=$(pg_cpu_ticks) syncs_before=$(wal_syncs)
    fi
    started=$(date +%s.%N)
    benches=()
    for ((r = 0; r < REPLICAS; r++)); do
        share=$((clients / REPLICAS + (r < clients % REPLICAS ? 1 : 0)))
        proc_start "$out/report.$r.json" "$out/bench.$r.err" "$BENCH" \
            "https://localhost:${ports[r]}/api/v1/sign" --mode ca-sign \
            --tokens "$(printf '%s.%03d' "$out/tokens" "$r")" --concurrency "$share" \
            --duration 10m --cert "$WORK/client.crt" --key "$WORK/client.key" \
            --ca-cert "$out/ca/root.crt" --json --quiet
        benches+=("$PROC_PID")
    done
    status=0
    for b in "${benches[@]}"; do
        proc_wait "$b" 900
        ((PROC_STATUS == 0)) || status=$PROC_STATUS
    done
    ended=$(date +%s.%N)
    ticks_after=$(ca_ticks)
    pg_cores=- syncs=-
    if [[ $STORE == postgres ]]; then
        pg_after=$(pg_cpu_ticks) syncs_after=$(wal_syncs)
        pg_cores=$(awk -v t=$((pg_after - pg_before)) -v hz="$HZ" -v a="$started" -v b="$ended" \
            'BEGIN { printf "%.2f", t / hz / (b - a) }')
        syncs=$(awk -v n=$((syncs_after - syncs_before)) -v a="$started" -v b="$ended" \
            'BEGIN { printf "%.0f", n / (b - a) }')
    fi
    for p in "${pids[@]}"; do
        proc_stop "$p"
    done

    # Totals over the replicas: the rate is every certificate over the wall time of the whole
    # run; p50 and p99 are the highest of the per-replica figures (percentiles of separate
    # processes cannot be merged exactly; the clients are alike, so they differ little).
    requests=0 errors=0 p50=0 p99=0
    for ((r = 0; r < REPLICAS; r++)); do
        report=$out/report.$r.json
        requests=$((requests + $(json_number "$report" requests)))
        errors=$((errors + $(json_number "$report" errors_total)))
        p50=$(awk -v a="$p50" -v b="$(json_number "$report" p50_ms)" 'BEGIN { print (b > a ? b : a) }')
        p99=$(awk -v a="$p99" -v b="$(json_number "$report" p99_ms)" 'BEGIN { print (b > a ? b : a) }')
    done
    rate=$(awk -v n="$requests" -v a="$started" -v b="$ended" 'BEGIN { printf "%.0f", n / (b - a) }')
    cores=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$HZ" -v a="$started" -v b="$ended" \
        'BEGIN { printf "%.2f", t / hz / (b - a) }')
    printf '| %d | %s | %.1f ms | %.1f ms | %s | %s | %s | %s |\n' \
        "$clients" "$rate" "$p50" "$p99" "$cores" "$pg_cores" "$syncs" "$errors"
    if ((status != 0)) || [[ $errors != 0 ]] || ((requests != TOKENS)); then
        printf '%s: the run with %d clients had errors or left tokens unused (%d of %d issued; see %s)\n' \
            "$PROG" "$clients" "$requests" "$TOKENS" "$out" >&2
        FAILED=1
    fi
done
pg_stop
exit "$FAILED"
