#!/usr/bin/env bash
#
# crash-test.sh - kill -9 of the CA during a burst of signings and renewals, repeated.
#
# Each run starts mtls-ca on the same data directory (so every run after the first also
# recovers from the previous crash), creates join tokens, starts a burst of enrollments and
# renewals against it (the ca_crash_load example: crates/mtls/examples/ca_crash_load.rs), and
# kills the CA with SIGKILL at a random point of the burst. Then, on the dead CA's files:
#   * every certificate a client received is stored, with the same fingerprint;
#   * every stored certificate has its issue or renew audit entry, and every such entry its
#     certificate;
#   * the audit chain replays against the tables (ca_crash_load check and mtls-ca audit
#     verify both run).
# Results: one line per run and a summary, also written as a Markdown table to the work
# directory. docs/reliability.md records the figures. Not part of CI (it takes minutes).
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -P -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$SCRIPT_DIR/lib/proc.sh"

usage() {
    cat <<EOF
Usage: $PROG [--runs 20] [--tokens 300] [--renewals 3] [--concurrency 8]
             [--max-delay-ms 1500] [--seed N] [--debug | --bin-dir DIR] [--keep]

Kills mtls-ca with SIGKILL at a random point of a burst of signings and renewals, --runs
times on one data directory, and checks after each kill that every certificate a client
received is stored, that every stored certificate has its audit entry and that the audit log
verifies. Exit status 0 only if every run passed.

Options:
  --runs N           kills (default 20)
  --tokens N         enrollments per burst, each followed by --renewals renewals (default 300)
  --renewals N       renewals per enrolled certificate (default 3)
  --concurrency N    parallel clients (default 8)
  --max-delay-ms N   the kill comes 0..N ms after the burst's first certificate (default 1500)
  --seed N           seed for the kill points (default: random; printed for a rerun)
  --debug            build and use the debug profile (faster to build)
  --bin-dir DIR      use prebuilt binaries in DIR (mtls-ca and examples/ca_crash_load);
                     no build
  --keep             keep the work directory (logs, data directory, results)
  -h, --help         this text

Needs: bash 4.4+, cargo (unless --bin-dir).
EOF
}

usage_error() {
    printf '%s: %s\n' "$PROG" "$*" >&2
    printf "Try '%s --help' for more information.\n" "$PROG" >&2
    exit 2
}

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

RUNS=20 TOKENS=300 RENEWALS=3 CONCURRENCY=8 MAX_DELAY_MS=1500 SEED='' PROFILE=release
BIN_DIR='' KEEP=0
number() { [[ $2 =~ ^[0-9]+$ ]] || usage_error "$1 needs a whole number, got '$2'"; }
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --runs | --tokens | --renewals | --concurrency | --max-delay-ms | --seed)
        (($# >= 2)) || usage_error "option $1 needs a value"
        number "$1" "$2"
        case $1 in
        --runs) RUNS=$2 ;;
        --tokens) TOKENS=$2 ;;
        --renewals) RENEWALS=$2 ;;
        --concurrency) CONCURRENCY=$2 ;;
        --max-delay-ms) MAX_DELAY_MS=$2 ;;
        --seed) SEED=$2 ;;
        esac
        shift
        ;;
    --debug) PROFILE=debug ;;
    --bin-dir)
        if (($# < 2)) || [[ -z $2 ]]; then
            usage_error "option --bin-dir needs a directory"
        fi
        BIN_DIR=$2
        shift
        ;;
    --keep) KEEP=1 ;;
    *) usage_error "unknown argument '$1'" ;;
    esac
    shift
done
((RUNS >= 1)) || usage_error "--runs must be at least 1"
((TOKENS >= 1)) || usage_error "--tokens must be at least 1"
((CONCURRENCY >= 1)) || usage_error "--concurrency must be at least 1"

proc_cleanup_on_exit

# --- Binaries ---------------------------------------------------------------
if [[ -z $BIN_DIR ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required (or give --bin-dir)"
    build=(cargo build --locked -p mtls --bin mtls-ca --example ca_crash_load)
    [[ $PROFILE == release ]] && build+=(--release)
    printf '== building: %s\n' "${build[*]}"
    (cd "$REPO_DIR" && "${build[@]}") || die "the build failed"
    target=${CARGO_TARGET_DIR:-$REPO_DIR/target}
    [[ $target == /* ]] || target=$REPO_DIR/$target
    BIN_DIR=$target/$PROFILE
fi
CA=$BIN_DIR/mtls-ca
LOAD=$BIN_DIR/examples/ca_crash_load
[[ -x $CA ]] || die "$CA is missing"
[[ -x $LOAD ]] || die "$LOAD is missing (cargo build -p mtls --example ca_crash_load)"

if [[ -z $SEED ]]; then
    SEED=$((RANDOM * 32768 + RANDOM))
fi
RANDOM=$SEED

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtls-crash.XXXXXX")
proc_work_dir "$WORK" "$KEEP"
DATA=$WORK/ca
RESULTS=$WORK/results.md
printf '== %d runs, %d enrollments x (1 + %d renewals) per burst, %d clients, kill 0-%d ms after the first certificate, seed %d\n' \
    "$RUNS" "$TOKENS" "$RENEWALS" "$CONCURRENCY" "$MAX_DELAY_MS" "$SEED"
printf '== work directory %s\n' "$WORK"
{
    printf '| run | kill after | during burst | received (issued + renewed) | unanswered at kill | stored, answer lost | stored in all | audit entries | result |\n'
    printf '|---|---|---|---|---|---|---|---|---|\n'
} >"$RESULTS"

FAILED=0
TOTAL_RECEIVED=0
TOTAL_UNANSWERED=0
TOTAL_LOST=0
STORED_BEFORE=0
for ((run = 1; run <= RUNS; run++)); do
    out=$WORK/run-$run
    mkdir -p "$out"

    proc_start "$out/ca.out" "$out/ca.err" "$CA" --data-dir "$DATA" --listen 127.0.0.1:0
    ca_pid=$PROC_PID
    wait_for_line "$out/ca.out" '^listening on https://127\.0\.0\.1:[0-9]+' 30 "$ca_pid" ||
        die "run $run: the CA did not start (see $out/ca.err)"
    port=${MATCH##*:}

    "$LOAD" tokens --data-dir "$DATA" --count "$TOKENS" --prefix "r$run" >"$out/tokens" ||
        die "run $run: creating tokens failed"

    proc_start "$out/burst.out" "$out/burst.err" "$LOAD" burst \
        --ca-url "https://localhost:$port" --root "$DATA/root.crt" --tokens "$out/tokens" \
        --received "$out/received" --concurrency "$CONCURRENCY" --renewals "$RENEWALS"
    burst_pid=$PROC_PID
    wait_for_line "$out/received" '^issued ' 60 "$burst_pid" ||
        die "run $run: the burst received no certificate (see $out/burst.err, $out/ca.err)"

    delay_ms=$((RANDOM % (MAX_DELAY_MS + 1)))
    sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
    during=yes
    proc_alive "$burst_pid" || during=no
    proc_stop "$ca_pid" KILL
    proc_wait "$burst_pid" 60
    burst_status=$PROC_STATUS

    issued=$(grep -c '^issued ' "$out/received" || true)
    renewed=$(grep -c '^renewed ' "$out/received" || true)
    unanswered=$(sed -n 's/.* \([0-9]*\) request(s) unanswered.*/\1/p' "$out/burst.out")
    unanswered=${unanswered:-?}

    result=ok
    problems=
    if ((burst_status != 0)); then
        result=FAILED
        problems+=" the burst saw refusals (see $out/burst.err);"
    fi
    if ! "$LOAD" check --data-dir "$DATA" --received "$out/received" >"$out/check.out" 2>&1; then
        result=FAILED
        problems+=" $(grep -m3 PROBLEM "$out/check.out" | tr '\n' ' ')"
    fi
    if ! "$CA" --data-dir "$DATA" audit verify >"$out/audit.out" 2>"$out/audit.err"; then
        result=FAILED
        problems+=" mtls-ca audit verify: $(head -n 3 "$out/audit.out" | tr '\n' ' ')"
    fi
    stored=$(sed -n 's/^check: [0-9]* received, \([0-9]*\) stored.*/\1/p' "$out/check.out")
    entries=$(sed -n 's/.* \([0-9]*\) audit entries.*/\1/p' "$out/check.out")
    # Stored by this run but never received: the CA committed, the answer died with it.
    lost='?'
    if [[ -n $stored ]]; then
        lost=$((stored - STORED_BEFORE - issued - renewed))
        STORED_BEFORE=$stored
        TOTAL_LOST=$((TOTAL_LOST + lost))
    fi

    printf 'run %2d: killed %4d ms after the first certificate (during the burst: %s), received %d + %d, %s unanswered, %s stored without an answer, %s stored in all, %s audit entries: %s%s\n' \
        "$run" "$delay_ms" "$during" "$issued" "$renewed" "$unanswered" "$lost" "${stored:-?}" \
        "${entries:-?}" "$result" "${problems:+ -$problems}"
    printf '| %d | %d ms | %s | %d + %d | %s | %s | %s | %s | %s |\n' "$run" "$delay_ms" "$during" \
        "$issued" "$renewed" "$unanswered" "$lost" "${stored:-?}" "${entries:-?}" "$result" >>"$RESULTS"
    [[ $result == ok ]] || FAILED=$((FAILED + 1))
    TOTAL_RECEIVED=$((TOTAL_RECEIVED + issued + renewed))
    [[ $unanswered == '?' ]] || TOTAL_UNANSWERED=$((TOTAL_UNANSWERED + unanswered))
done

printf '\n== %d runs, %d failed; %d certificates received by clients, all checked; %d requests unanswered at the kills, %d of them stored (answer lost); seed %d\n' \
    "$RUNS" "$FAILED" "$TOTAL_RECEIVED" "$TOTAL_UNANSWERED" "$TOTAL_LOST" "$SEED"
printf '== results table: %s\n' "$RESULTS"
((FAILED == 0))
