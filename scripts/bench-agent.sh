#!/usr/bin/env bash
#
# bench-agent.sh - what an mtls-agent costs and how fast it answers (docs/performance.md,
# "mtls-agent").
#
# Starts mtls-ca on a fresh data directory and mtls-agent enrolled as
# spiffe://mesh.local/agent/bench, measures the agent with no entries, then creates ENTRIES
# registration entries of that agent in one `mtls-ca entry create --from-file` call: ENTRIES-1
# for workloads of other uids (the agent mints and renews an SVID for every entry of its own,
# whether or not a local process matches it) and one whose selectors are this user's uid and
# mtls-bench's executable. Then it measures:
#   minting      SVIDs minted per second while all ENTRIES are due at once (the agent's first
#                round after they appear: a fresh key, a CSR and a CA round trip each, one at a
#                time), from the timestamps of its svid_minted events; and its CPU per SVID
#   steady       the agent's resident memory (VmRSS) and CPU (utime+stime) over --window seconds
#                with nothing due (polling entries, CRL and bundles only), with no entries and
#                with ENTRIES; the rotation CPU of ENTRIES at --ttl is added from the CPU per SVID
#                (each is renewed at half its lifetime: ENTRIES / (TTL/2) SVIDs per second)
#   fetch        mtls-bench --mode workload-fetch: --clients concurrent workloads fetching their
#                cached X.509-SVID over the socket for --duration (p50, p99, p99.9, fetches/s),
#                the agent's CPU meanwhile and its peak resident memory (VmHWM); before it, one
#                fetch alone, the first of mtls-bench's executable (the agent hashes the file
#                for the unix:sha256 selector once, then caches it), timed on its own
# and prints one Markdown table with the issue's targets next to the figures. The targets are
# reported, not enforced; the exit status is 0 when every step worked and no fetch failed.
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
Usage: $PROG [--entries 1000] [--ttl 1h] [--clients 100] [--duration 10s] [--rate N]
                     [--window 30] [--smoke] [--bin-dir DIR] [--keep]

Measures an mtls-agent holding ENTRIES registration entries: SVIDs minted per second when all
are due at once, resident memory and CPU in steady state (with no entries and with ENTRIES),
memory per entry, and the latency of cached X.509-SVID fetches over the Workload API socket
with N concurrent workloads. Prints one Markdown table. Exit status 0 when every step worked
and no fetch failed.

Options:
  --entries N      registration entries of the agent (default 1000)
  --ttl D          their SVID lifetime, as mtls-ca entry create --ttl (default 1h)
  --clients N      concurrent workloads fetching (default 100)
  --duration D     length of the fetch run, as mtls-bench --duration (default 10s)
  --rate N         pace the fetches at N per second in total (open loop, latency counted from
                   when each was due); default: as fast as the agent answers (closed loop, so
                   the latency includes queueing behind the other workloads)
  --window S       seconds of each steady-state CPU measurement (default 30)
  --smoke          a tiny run (20 entries, 4 clients, 2 s fetch, 2 s windows) that checks the
                   script works
  --bin-dir DIR    use prebuilt binaries in DIR (mtls-ca, mtls-agent, mtls-bench); default:
                   build them with cargo --release into \${CARGO_TARGET_DIR:-target}
  --keep           keep the work directory (logs, data directory, reports)
  -h, --help       this text

Example:
  scripts/bench-agent.sh --entries 1000 --ttl 1h --clients 100

Needs: bash 4.4+, GNU date, awk, cargo (unless --bin-dir). Linux only (/proc).
USAGE
}

ENTRIES=1000 TTL=1h CLIENTS=100 DURATION=10s RATE='' WINDOW=30 BIN_DIR='' KEEP=0
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --entries)
        need_count "$1" "$#" "${2-}"
        ENTRIES=$2
        shift 2
        ;;
    --ttl)
        need_value "$1" "$#" "${2-}"
        [[ $2 =~ ^[1-9][0-9]*[smh]$ ]] || usage_error "--ttl needs a duration like 30s, 10m or 1h, got '$2'"
        TTL=$2
        shift 2
        ;;
    --clients)
        need_count "$1" "$#" "${2-}"
        CLIENTS=$2
        shift 2
        ;;
    --duration)
        need_value "$1" "$#" "${2-}"
        DURATION=$2
        shift 2
        ;;
    --rate)
        need_count "$1" "$#" "${2-}"
        RATE=$2
        shift 2
        ;;
    --window)
        need_value "$1" "$#" "${2-}"
        [[ $2 =~ ^[1-9][0-9]*$ ]] || usage_error "--window needs whole seconds >= 1, got '$2'"
        WINDOW=$2
        shift 2
        ;;
    --smoke)
        ENTRIES=20 CLIENTS=4 DURATION=2s WINDOW=2
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
case $TTL in
*s) TTL_SECONDS=${TTL%s} ;;
*m) TTL_SECONDS=$((${TTL%m} * 60)) ;;
*h) TTL_SECONDS=$((${TTL%h} * 3600)) ;;
esac
[[ -r /proc/self/status ]] || die "this script reads /proc: Linux only"

proc_cleanup_on_exit

if [[ -z $BIN_DIR ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required (or give --bin-dir)"
    build=(cargo build --locked --release -p mtls --bin mtls-ca --bin mtls-agent --bin mtls-bench)
    printf '== building: %s\n' "${build[*]}"
    (cd "$REPO_DIR" && "${build[@]}") || die "the build failed"
    target=${CARGO_TARGET_DIR:-$REPO_DIR/target}
    [[ $target == /* ]] || target=$REPO_DIR/$target
    BIN_DIR=$target/release
fi
CA=$BIN_DIR/mtls-ca
AGENT=$BIN_DIR/mtls-agent
BENCH=$BIN_DIR/mtls-bench
for p in "$CA" "$AGENT" "$BENCH"; do
    [[ -x $p ]] || die "$p is missing (cargo build --release -p mtls --bins)"
done
# The agent sees the executable a workload runs through /proc/PID/exe: the resolved path.
BENCH=$(readlink -f -- "$BENCH")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtls-bench-agent.XXXXXX")
proc_work_dir "$WORK" "$KEEP"
printf '== work directory %s (%s cores, CA, agent and load generator on the same machine)\n' \
    "$WORK" "$(nproc)"

TD=mesh.local
AGENT_ID=spiffe://$TD/agent/bench
FETCH_ID=spiffe://$TD/bench/fetch
HZ=$(getconf CLK_TCK)

# --- CA and agent -------------------------------------------------------------------------
proc_start "$WORK/ca.out" "$WORK/ca.err" "$CA" --data-dir "$WORK/ca" --listen 127.0.0.1:0
ca_pid=$PROC_PID
wait_for_line "$WORK/ca.out" '^listening on https://127\.0\.0\.1:[0-9]+' 60 "$ca_pid" ||
    die "the CA did not start (see $WORK/ca.err)"
ca_port=${MATCH##*:}
wait_for_line "$WORK/ca.out" '^root fingerprint \(SHA-256\): [0-9a-f]{64}$' 5 "$ca_pid" ||
    die "the CA printed no root fingerprint (see $WORK/ca.out)"
fingerprint=${MATCH##* }
"$CA" --data-dir "$WORK/ca" token --spiffe-id "$AGENT_ID" >"$WORK/agent.token" 2>"$WORK/token.err" ||
    die "creating the agent's join token failed (see $WORK/token.err)"

mkdir "$WORK/run"
socket=$WORK/run/agent.sock
proc_start "$WORK/agent.out" "$WORK/agent.err" "$AGENT" serve --socket "unix://$socket" \
    --ca-url "https://localhost:$ca_port" --ca-fingerprint "$fingerprint" \
    --spiffe-id "$AGENT_ID" --join-token-file "$WORK/agent.token" --log-format json
agent_pid=$PROC_PID
wait_for_line "$WORK/agent.out" '^\[AGENT\] ready$' 60 "$agent_pid" ||
    die "the agent did not start (see $WORK/agent.err)"

# steady LABEL -> the agent's CPU (percent of one core) over WINDOW seconds in STEADY_CPU, its
# VmRSS (KiB) at the end in STEADY_RSS
steady() {
    local before after
    printf '== %s: the agent at rest for %s s\n' "$1" "$WINDOW"
    before=$(cpu_ticks "$agent_pid")
    sleep "$WINDOW"
    after=$(cpu_ticks "$agent_pid")
    proc_alive "$agent_pid" || die "the agent exited (see $WORK/agent.err)"
    STEADY_CPU=$(awk -v t=$((after - before)) -v hz="$HZ" -v w="$WINDOW" \
        'BEGIN { printf "%.2f", 100 * t / hz / w }')
    STEADY_RSS=$(status_kib "$agent_pid" VmRSS)
}

steady "no entries"
idle_cpu=$STEADY_CPU idle_rss=$STEADY_RSS

# --- Entries, minted ----------------------------------------------------------------------
{
    for ((i = 1; i < ENTRIES; i++)); do
        printf '{"parent": "%s", "spiffe_id": "spiffe://%s/bench/w%d", "selectors": ["unix:uid:%d"], "ttl": "%s"}\n' \
            "$AGENT_ID" "$TD" "$i" $((200000 + i)) "$TTL"
    done
    printf '{"parent": "%s", "spiffe_id": "%s", "selectors": ["unix:uid:%d", "unix:path:%s"], "ttl": "%s"}\n' \
        "$AGENT_ID" "$FETCH_ID" "$(id -u)" "$BENCH" "$TTL"
} >"$WORK/entries.jsonl"
minted_before=$(grep -c '"event":"svid_minted"' "$WORK/agent.err" || true)
ticks_before=$(cpu_ticks "$agent_pid")
started=$(date +%s.%N)
"$CA" --data-dir "$WORK/ca" entry create --from-file "$WORK/entries.jsonl" \
    >"$WORK/entries.ids" 2>"$WORK/entries.err" ||
    die "mtls-ca entry create --from-file failed (see $WORK/entries.err)"
create_seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
created=$(wc -l <"$WORK/entries.ids")
((created == ENTRIES)) || die "mtls-ca printed $created entry IDs for $ENTRIES entries"
printf '== created %d entries in %s s; waiting for the agent to mint them\n' "$created" "$create_seconds"

# The agent fetches its entries every 5 s (--entry-refresh) and mints what is due; bounded wait.
limit=$((60 + ENTRIES / 5))
for ((i = 0; ; i++)); do
    minted=$(($(grep -c '"event":"svid_minted"' "$WORK/agent.err" || true) - minted_before))
    ((minted >= ENTRIES)) && break
    proc_alive "$agent_pid" || die "the agent exited (see $WORK/agent.err)"
    ((i < limit * 10)) || die "the agent minted $minted of $ENTRIES SVIDs in $limit s (see $WORK/agent.err)"
    sleep 0.1
done
ticks_after=$(cpu_ticks "$agent_pid")
failed=$(grep -c '"event":"svid_mint_failed"' "$WORK/agent.err" || true)
# The timestamps of the first and last of these mints (RFC 3339, as the JSON log writes them).
mapfile -t stamps < <(grep '"event":"svid_minted"' "$WORK/agent.err" | tail -n "$ENTRIES" |
    sed -n 's/.*"timestamp":"\([^"]*\)".*/\1/p' | sed -n '1p;$p')
((${#stamps[@]} == 2)) || die "no timestamps on the agent's svid_minted events (see $WORK/agent.err)"
first=$(date -d "${stamps[0]}" +%s.%N) last=$(date -d "${stamps[1]}" +%s.%N)
mint_rate=$(awk -v n="$ENTRIES" -v a="$first" -v b="$last" \
    'BEGIN { if (b > a) printf "%.0f", (n - 1) / (b - a); else print "n/a" }')
# CPU per SVID over the whole round (it includes the round's polling, a small share).
ms_per_svid=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$HZ" -v n="$ENTRIES" \
    'BEGIN { printf "%.2f", 1000 * t / hz / n }')

steady "$ENTRIES entries"
busy_cpu=$STEADY_CPU busy_rss=$STEADY_RSS
rotation_cpu=$(awk -v n="$ENTRIES" -v ttl="$TTL_SECONDS" -v ms="$ms_per_svid" \
    'BEGIN { printf "%.2f", 100 * (n / (ttl / 2)) * ms / 1000 }')
total_cpu=$(awk -v a="$busy_cpu" -v b="$rotation_cpu" 'BEGIN { printf "%.2f", a + b }')
per_entry=$(awk -v a="$idle_rss" -v b="$busy_rss" -v n="$ENTRIES" 'BEGIN { printf "%.1f", (b - a) / n }')

# --- Fetches ------------------------------------------------------------------------------
# The first call of an executable the agent has not seen makes it hash the file (the
# unix:sha256 selector; cached by file identity after that): one fetch, timed on its own, so
# the measured run is of cached fetches only.
"$BENCH" "unix://$socket" --mode workload-fetch --concurrency 1 --requests 1 --duration 60s \
    --expect "$FETCH_ID" --json --quiet >"$WORK/first.json" 2>"$WORK/first.err" ||
    die "the first fetch failed (see $WORK/first.json, $WORK/first.err)"
first_ms=$(json_number "$WORK/first.json" p50_ms)
pacing=() paced="unpaced"
if [[ -n $RATE ]]; then
    pacing=(--rate "$RATE") paced="paced at $RATE/s"
fi
printf '== %d workloads fetching for %s, %s\n' "$CLIENTS" "$DURATION" "$paced"
ticks_before=$(cpu_ticks "$agent_pid")
started=$(date +%s.%N)
status=0
"$BENCH" "unix://$socket" --mode workload-fetch --concurrency "$CLIENTS" --duration "$DURATION" \
    "${pacing[@]}" --expect "$FETCH_ID" --json --quiet >"$WORK/fetch.json" 2>"$WORK/fetch.err" ||
    status=$?
ended=$(date +%s.%N)
ticks_after=$(cpu_ticks "$agent_pid")
fetch_cores=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$HZ" -v a="$started" -v b="$ended" \
    'BEGIN { printf "%.2f", t / hz / (b - a) }')
peak_rss=$(status_kib "$agent_pid" VmHWM)
rate=$(json_number "$WORK/fetch.json" requests_per_sec)
p50=$(json_number "$WORK/fetch.json" p50_ms)
p99=$(json_number "$WORK/fetch.json" p99_ms)
p999=$(json_number "$WORK/fetch.json" p999_ms)
errors=$(json_number "$WORK/fetch.json" errors_total)

mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
printf '\n| %s | %s | %s |\n|---|---:|---|\n' "mtls-agent, $ENTRIES entries at $TTL" figure target
printf '| entries created (one entry create --from-file) | %d in %s s | |\n' "$created" "$create_seconds"
printf '| SVIDs minted per second, all due at once | %s/s (%d failed) | |\n' "$mint_rate" "$failed"
printf '| agent CPU per SVID minted | %s ms | |\n' "$ms_per_svid"
printf '| agent RSS, no entries | %s | |\n' "$(mib "$idle_rss")"
printf '| agent RSS, %d entries | %s | < 50 MiB |\n' "$ENTRIES" "$(mib "$busy_rss")"
printf '| memory per entry | %s KiB | |\n' "$per_entry"
printf '| agent CPU at rest, no entries | %s%% of a core | |\n' "$idle_cpu"
printf '| agent CPU at rest, %d entries (polling) | %s%% of a core | |\n' "$ENTRIES" "$busy_cpu"
printf '| + renewing %d SVIDs of %s at half life | %s%% of a core | |\n' "$ENTRIES" "$TTL" "$rotation_cpu"
printf '| agent CPU, %d entries in steady state | %s%% of a core | < 5%% |\n' "$ENTRIES" "$total_cpu"
printf '| cached X.509-SVID fetch, %d workloads, %s: p50 / p99 / p99.9 | %.2f / %.2f / %.2f ms | p99 < 2 ms |\n' \
    "$CLIENTS" "$paced" "${p50:-0}" "${p99:-0}" "${p999:-0}"
printf '| fetches per second | %.0f | |\n' "${rate:-0}"
printf '| first fetch of an executable (the agent hashes it) | %.2f ms | |\n' "${first_ms:-0}"
printf '| agent CPU while fetching | %s cores | |\n' "$fetch_cores"
printf '| agent peak RSS (VmHWM) | %s | |\n' "$(mib "$peak_rss")"
printf '| fetch errors | %s | 0 |\n' "${errors:-?}"

if ((status != 0)) || [[ ${errors:-x} != 0 ]] || ((failed != 0)); then
    printf '%s: the fetch run or the minting had errors (run with --keep, then see fetch.err and agent.err in the work directory)\n' "$PROG" >&2
    exit 1
fi
