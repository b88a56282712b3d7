#!/usr/bin/env bash
#
# soak-test.sh - one CA, N servers and N clients with short certificates under steady load,
# for a long time, with revocations and CA restarts along the way.
#
# Everything runs on 127.0.0.1 in a temporary directory: mtls-ca, --pairs mtls-servers and as
# many mtls-clients (client i calls server i, --rate requests a second on keep-alive
# connections), all enrolled with --cert-ttl certificates that they renew at half life. While
# the load runs for --duration:
#   * every --revoke-every one client's current certificate is revoked with `mtls-ca revoke`;
#     the time from the revocation (the revoke command's own audit log line) to the server's
#     log line that closes or refuses that client is measured; that client is then replaced by
#     a newly enrolled one (its later refusals are expected and counted apart);
#   * every --ca-restart-every the CA gets SIGTERM and is started again on the same data
#     directory and port; meanwhile every server's /readyz (admin listener) is polled each
#     second and must stay 200;
#   * every --sample-every the RSS and open file descriptors of every server and client are
#     read from /proc.
# At the end: requests ok/failed from the clients' per-request lines, connections the servers
# kept open past their peer's NotAfter (the servers' handshake lines carry the peer's
# not_after, their connection_ended lines the end), revocation latencies (max, p50), RSS and
# fds after the warm-up against the end, CA restarts and readiness failures. Exit status 0
# only when nothing was found. docs/reliability.md ("Soak") records the figures. Not CI.
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -P -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$SCRIPT_DIR/lib/proc.sh"

usage() {
    cat <<EOF
Usage: $PROG [--duration 1h] [--pairs 10] [--rate 20] [--cert-ttl 30s] [--crl-refresh 2s]
             [--revoke-every 60s] [--ca-restart-every 30s] [--sample-every 10s]
             [--warmup 2m] [--debug | --bin-dir DIR] [--keep]

Runs one mtls-ca, --pairs mtls-servers and --pairs mtls-clients on 127.0.0.1 under steady
load for --duration, revoking a client certificate every --revoke-every and restarting the CA
every --ca-restart-every, and checks: zero failed requests, zero connections alive past their
peer's NotAfter, every revocation enforced within --crl-refresh + 1s, services ready
throughout, RSS and open fds of every server and client at the end within 10% of their value
after --warmup. Prints a summary; exit status 0 only when nothing was found.

Options:
  --duration D          how long the load runs (default 1h; 24h for the long soak)
  --pairs N             servers, and clients (one per server) (default 10)
  --rate N              requests per second of each client (default 20)
  --cert-ttl D          lifetime of every certificate (default 30s; renewed at half life)
  --crl-refresh D       how often services fetch the CRL (default 2s)
  --revoke-every D      one revocation per D (default 60s; 0 for none)
  --ca-restart-every D  SIGTERM and restart the CA every D (default 30s; 0 for never)
  --sample-every D      RSS/fd sampling period (default 10s)
  --warmup D            memory and fds are judged from this long after a process started
                        (default 2m)
  --debug               build and use the debug profile
  --bin-dir DIR         use prebuilt binaries in DIR (mtls-ca, mtls-server, mtls-client);
                        no build. Default: \$MTLS_BIN_DIR when set
  --keep                keep the work directory (logs, samples, data directory)
  -h, --help            this text

Durations: a whole number with s, m, h or d (90s, 10m, 1h, 1d).
Needs: bash 4.4+, curl, awk, cargo (unless --bin-dir). Linux (/proc). The work directory
(\$TMPDIR) takes about 150 MB an hour, mostly the clients' per-request lines.
Examples:
  $PROG --duration 3m --warmup 1m          # a quick check
  $PROG                                    # the 1 h soak
  $PROG --duration 24h --bin-dir target/release --keep
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

# seconds OPTION VALUE -> prints VALUE (N followed by s, m, h or d) in seconds
seconds() {
    local opt=$1 v=$2
    [[ $v =~ ^([0-9]{1,7})([smhd])$ ]] ||
        usage_error "$opt needs a duration like 90s, 10m, 1h or 1d, got '$v'"
    local n=$((10#${BASH_REMATCH[1]}))
    case ${BASH_REMATCH[2]} in
    s) printf '%d' "$n" ;;
    m) printf '%d' $((n * 60)) ;;
    h) printf '%d' $((n * 3600)) ;;
    d) printf '%d' $((n * 86400)) ;;
    esac
}

DURATION=3600 PAIRS=10 RATE=20 CERT_TTL=30 CRL_REFRESH=2 REVOKE_EVERY=60 RESTART_EVERY=30
SAMPLE_EVERY=10 WARMUP=120 PROFILE=release BIN_DIR=${MTLS_BIN_DIR-} KEEP=0
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --duration | --cert-ttl | --crl-refresh | --revoke-every | --ca-restart-every | \
        --sample-every | --warmup)
        (($# >= 2)) || usage_error "option $1 needs a value"
        secs=$(seconds "$1" "$2") || exit 2
        case $1 in
        --duration) DURATION=$secs ;;
        --cert-ttl) CERT_TTL=$secs ;;
        --crl-refresh) CRL_REFRESH=$secs ;;
        --revoke-every) REVOKE_EVERY=$secs ;;
        --ca-restart-every) RESTART_EVERY=$secs ;;
        --sample-every) SAMPLE_EVERY=$secs ;;
        --warmup) WARMUP=$secs ;;
        esac
        shift
        ;;
    --pairs | --rate)
        (($# >= 2)) || usage_error "option $1 needs a value"
        [[ $2 =~ ^[1-9][0-9]{0,3}$ ]] || usage_error "$1 needs a whole number from 1 to 9999, got '$2'"
        case $1 in
        --pairs) PAIRS=$2 ;;
        --rate) RATE=$2 ;;
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
((DURATION >= 60)) || usage_error "--duration must be at least 1m"
((CERT_TTL >= 10)) || usage_error "--cert-ttl must be at least 10s"
((CRL_REFRESH >= 1)) || usage_error "--crl-refresh must be at least 1s"
((SAMPLE_EVERY >= 1)) || usage_error "--sample-every must be at least 1s"
((RATE <= 100)) || usage_error "--rate must be at most 100 (mtls-client's --interval floor is 10ms)"
# mtls-client paces its own requests: one every 1000/RATE ms.
INTERVAL_MS=$((1000 / RATE))

command -v curl >/dev/null 2>&1 || die "curl is required (Debian/Ubuntu: apt-get install curl)"
command -v awk >/dev/null 2>&1 || die "awk is required"
[[ -d /proc/self/fd ]] || die "/proc is required (Linux)"

proc_cleanup_on_exit

# --- Binaries ---------------------------------------------------------------
if [[ -z $BIN_DIR ]]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required (or give --bin-dir)"
    build=(cargo build --locked -p mtls --bin mtls-ca --bin mtls-server --bin mtls-client)
    [[ $PROFILE == release ]] && build+=(--release)
    printf '== building: %s\n' "${build[*]}"
    (cd "$REPO_DIR" && "${build[@]}") || die "the build failed"
    target=${CARGO_TARGET_DIR:-$REPO_DIR/target}
    [[ $target == /* ]] || target=$REPO_DIR/$target
    BIN_DIR=$target/$PROFILE
fi
BIN_DIR=$(cd -P -- "$BIN_DIR" && pwd) || die "binary directory '$BIN_DIR' does not exist"
CA=$BIN_DIR/mtls-ca
SERVER=$BIN_DIR/mtls-server
CLIENT=$BIN_DIR/mtls-client
for b in "$CA" "$SERVER" "$CLIENT"; do
    [[ -x $b ]] || die "$b is missing (cargo build --release -p mtls)"
done
# None of our settings may come from the caller's environment.
unset MTLS_JOIN_TOKEN MTLS_CA_DATA_DIR
export NO_COLOR=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtls-soak.XXXXXX")
proc_work_dir "$WORK" "$KEEP"
DATA=$WORK/ca
LOGS=$WORK/logs
mkdir -p "$LOGS"
SAMPLES=$WORK/samples.tsv       # epoch name pid rss_kb fds
PROCS=$WORK/procs.tsv           # name pid started_epoch
REVOCATIONS=$WORK/revocations.tsv # no client serial latency_s
READINESS=$WORK/readiness.log   # every non-200 answer
touch "$SAMPLES" "$PROCS" "$REVOCATIONS" "$READINESS"

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
now_s() { printf '%s' "${EPOCHREALTIME%[.,]*}"; }
# log_epoch LINE -> the epoch (with fraction) of a log line's leading RFC 3339 timestamp
log_epoch() {
    local ts=${1%% *}
    date -u -d "$ts" +%s.%N 2>/dev/null || printf 'nan'
}

FINDINGS=()
finding() {
    FINDINGS+=("$*")
    printf '   FINDING: %s\n' "$*"
}

printf '== %s: %d servers + %d clients at %d req/s each (one request every %d ms), %ds certificates, CRL refresh %ds,\n' \
    "$(date -u +%FT%TZ)" "$PAIRS" "$PAIRS" "$RATE" "$INTERVAL_MS" "$CERT_TTL" "$CRL_REFRESH"
printf '   one revocation every %ss, CA restart every %ss, samples every %ds after a %ds warm-up, for %ds\n' \
    "$REVOKE_EVERY" "$RESTART_EVERY" "$SAMPLE_EVERY" "$WARMUP" "$DURATION"
printf '== work directory %s, binaries %s\n' "$WORK" "$BIN_DIR"

# --- The CA -----------------------------------------------------------------
CA_PID='' CA_PORT=0 CA_STARTS=0 CA_RESTARTS=0 CA_DOWN_MAX=0 CA_BAD_EXITS=0
start_ca() {
    CA_STARTS=$((CA_STARTS + 1))
    local out=$LOGS/ca-$CA_STARTS
    RUST_LOG=info proc_start "$out.out" "$out.err" "$CA" --data-dir "$DATA" \
        --listen "127.0.0.1:$CA_PORT" --cert-duration "${CERT_TTL}s" --drain 5s
    CA_PID=$PROC_PID
    wait_for_line "$out.out" '^listening on https://127\.0\.0\.1:[0-9]+' 30 "$CA_PID" ||
        die "the CA did not start (start $CA_STARTS; see $out.err)"
    CA_PORT=${MATCH##*:}
}
start_ca
FP=$(sed -n 's/^root fingerprint (SHA-256): \([0-9a-f]\{64\}\)$/\1/p' "$LOGS/ca-1.out")
[[ -n $FP ]] || die "the CA printed no root fingerprint (see $LOGS/ca-1.out)"
CA_URL=https://localhost:$CA_PORT
printf '== CA on %s\n' "$CA_URL"

restart_ca() {
    local t0 took
    t0=$(now)
    PROC_STOP_TIMEOUT=15 proc_stop "$CA_PID" TERM
    if ((PROC_STATUS != 0)); then
        CA_BAD_EXITS=$((CA_BAD_EXITS + 1))
        finding "the CA exited with status $PROC_STATUS on SIGTERM (start $CA_STARTS)"
    fi
    start_ca
    took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')
    CA_DOWN_MAX=$(awk -v a="$CA_DOWN_MAX" -v b="$took" 'BEGIN { print (b > a) ? b : a }')
    CA_RESTARTS=$((CA_RESTARTS + 1))
}

# token ID [SAN options] -> writes a join token for ID to $WORK/tokens/<n>
TOKENS=0
token() {
    local id=$1
    shift
    TOKENS=$((TOKENS + 1))
    mkdir -p "$WORK/tokens"
    TOKEN_FILE=$WORK/tokens/$TOKENS
    "$CA" --data-dir "$DATA" token --spiffe-id "$id" --ttl 10m "$@" >"$TOKEN_FILE" \
        2>>"$LOGS/tokens.err" || die "mtls-ca token for $id failed (see $LOGS/tokens.err)"
}

# --- Servers ----------------------------------------------------------------
SERVER_PIDS=() SERVER_PORTS=() ADMIN_URLS=()
for ((i = 1; i <= PAIRS; i++)); do
    id=spiffe://mesh.local/soak/server-$i
    token "$id" --dns localhost --ip 127.0.0.1
    # wire=debug adds the connection_ended line of every connection (its end, for NotAfter).
    RUST_LOG=info,wire=debug proc_start "$LOGS/server-$i.out" "$LOGS/server-$i.err" "$SERVER" \
        --ca-url "$CA_URL" --ca-fingerprint "$FP" --spiffe-id "$id" \
        --join-token-file "$TOKEN_FILE" --ttl "${CERT_TTL}s" --crl-refresh "${CRL_REFRESH}s" \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
    SERVER_PIDS[i]=$PROC_PID
    printf 'server-%d %d %s\n' "$i" "$PROC_PID" "$(now_s)" >>"$PROCS"
done
for ((i = 1; i <= PAIRS; i++)); do
    wait_for_line "$LOGS/server-$i.out" '^listening on https://127\.0\.0\.1:[0-9]+' 120 "${SERVER_PIDS[i]}" ||
        die "server-$i did not start (see $LOGS/server-$i.err)"
    SERVER_PORTS[i]=${MATCH##*:}
    wait_for_line "$LOGS/server-$i.out" '^admin listening on http://127\.0\.0\.1:[0-9]+' 5 "${SERVER_PIDS[i]}" ||
        die "server-$i printed no admin address (see $LOGS/server-$i.out)"
    ADMIN_URLS[i]=http://${MATCH##*http://}/readyz
done
printf '== %d servers listening\n' "$PAIRS"

# --- Clients ----------------------------------------------------------------
# Client i, generation g (a revoked client is replaced by generation g+1, a new identity).
CLIENT_PIDS=() CLIENT_GEN=() CLIENT_COUNT=$((DURATION * RATE * 2))
start_client() {
    local i=$1 g=$2 id=spiffe://mesh.local/soak/client-$1-$2
    token "$id"
    RUST_LOG=info proc_start "$LOGS/client-$i-$g.out" "$LOGS/client-$i-$g.err" "$CLIENT" \
        --ca-url "$CA_URL" --ca-fingerprint "$FP" --spiffe-id "$id" \
        --join-token-file "$TOKEN_FILE" --ttl "${CERT_TTL}s" --crl-refresh "${CRL_REFRESH}s" \
        --server "https://localhost:${SERVER_PORTS[i]}" \
        --server-id "spiffe://mesh.local/soak/server-$i" \
        --count "$CLIENT_COUNT" --interval "${INTERVAL_MS}ms" --quiet
    CLIENT_PIDS[i]=$PROC_PID
    CLIENT_GEN[i]=$g
    printf 'client-%d-%d %d %s\n' "$i" "$g" "$PROC_PID" "$(now_s)" >>"$PROCS"
}
for ((i = 1; i <= PAIRS; i++)); do
    start_client "$i" 1
done
for ((i = 1; i <= PAIRS; i++)); do
    wait_for_line "$LOGS/client-$i-1.out" '^\[CLIENT\] request 1/' 120 "${CLIENT_PIDS[i]}" ||
        die "client-$i made no request (see $LOGS/client-$i-1.err)"
done
printf '== %d clients calling\n' "$PAIRS"

# --- During the run ---------------------------------------------------------
# Expected refusals: the lines of a revoked client after its revocation (file:first_line).
EXPECTED_FROM=()
REVOKED=0 REVOKE_MISSED=0 REVOKE_SLOW=0 READY_POLLS=0 READY_FAILS=0 DEGRADED=0 DIED=0

poll_ready() {
    local -a args=()
    local url line code body
    for url in "${ADMIN_URLS[@]}"; do
        args+=(--url "$url")
    done
    READY_POLLS=$((READY_POLLS + PAIRS))
    # One curl for all servers; each answer is its body, a tab, the status code.
    while IFS= read -r line; do
        [[ -n $line ]] || continue
        code=${line##*$'\t'}
        body=${line%$'\t'*}
        if [[ $code != 200 ]]; then
            READY_FAILS=$((READY_FAILS + 1))
            printf '%s %s %s\n' "$(date -u +%FT%T.%3NZ)" "$code" "$body" >>"$READINESS"
        elif [[ $body != *'"status":"ready"'* ]]; then
            DEGRADED=$((DEGRADED + 1))
            printf '%s %s %s\n' "$(date -u +%FT%T.%3NZ)" "$code" "$body" >>"$READINESS"
        fi
    done < <(curl --silent --max-time 2 --write-out '\t%{http_code}\n' "${args[@]}" 2>/dev/null || true)
}

sample() {
    local t=$1 name pid key value rss fds i
    local -a fd_list
    for ((i = 1; i <= PAIRS; i++)); do
        for name in "server-$i ${SERVER_PIDS[i]}" "client-$i-${CLIENT_GEN[i]} ${CLIENT_PIDS[i]}"; do
            pid=${name##* }
            name=${name% *}
            rss=
            while read -r key value _; do
                [[ $key == VmRSS: ]] && rss=$value
            done <"/proc/$pid/status" 2>/dev/null || true
            fd_list=("/proc/$pid/fd/"*)
            fds=${#fd_list[@]}
            [[ -n $rss ]] && printf '%s %s %s %s %s\n' "$t" "$name" "$pid" "$rss" "$fds" >>"$SAMPLES"
        done
    done
}

check_alive() {
    local i
    for ((i = 1; i <= PAIRS; i++)); do
        if ! proc_alive "${SERVER_PIDS[i]}"; then
            DIED=$((DIED + 1))
            die "server-$i exited during the run (see $LOGS/server-$i.err)"
        fi
        if ! proc_alive "${CLIENT_PIDS[i]}"; then
            DIED=$((DIED + 1))
            die "client-$i-${CLIENT_GEN[i]} exited during the run (see $LOGS/client-$i-${CLIENT_GEN[i]}.out)"
        fi
    done
}

# revoke N -> revokes the current certificate of client ((N-1) % PAIRS) + 1, measures the
# time to the server's refusal, then replaces the client.
revoke() {
    local n=$1 i g out serial server_mark client_mark revoke_ts server_ts latency
    i=$(((n - 1) % PAIRS + 1))
    g=${CLIENT_GEN[i]}
    out=$LOGS/client-$i-$g.out
    serial=$(sed -n 's/^\[CLIENT\] connected: .* own_serial=\([0-9a-f]*\)$/\1/p' "$out" | tail -n 1)
    if [[ -z $serial ]]; then
        finding "revocation $n: client-$i-$g has no connection to revoke"
        return
    fi
    server_mark=$(line_count "$LOGS/server-$i.err")
    client_mark=$(line_count "$out")
    RUST_LOG=info "$CA" --data-dir "$DATA" revoke --serial "$serial" --reason keyCompromise \
        >"$LOGS/revoke-$n.out" 2>"$LOGS/revoke-$n.err" ||
        die "revocation $n: mtls-ca revoke failed (see $LOGS/revoke-$n.err)"
    EXPECTED_FROM+=("$out:$((client_mark + 1))")
    revoke_ts=$(log_epoch "$(grep -m1 'event="audit_append"' "$LOGS/revoke-$n.err" || true)")
    # The server closes the open connection (peer certificate S revoked) or, if the client
    # reconnected meanwhile, refuses its handshake.
    if wait_for_line "$LOGS/server-$i.err" 'peer certificate [0-9a-f]+ revoked|failed: client certificate revoked' \
        $((CRL_REFRESH * 5 + 30)) "${SERVER_PIDS[i]}" "$server_mark"; then
        server_ts=$(log_epoch "$MATCH")
        latency=$(awk -v a="$revoke_ts" -v b="$server_ts" 'BEGIN { printf "%.3f", b - a }')
        printf '%d client-%d-%d %s %s\n' "$n" "$i" "$g" "$serial" "$latency" >>"$REVOCATIONS"
        REVOKED=$((REVOKED + 1))
        if awk -v l="$latency" -v lim="$((CRL_REFRESH + 1))" 'BEGIN { exit !(l == "nan" || l > lim) }'; then
            REVOKE_SLOW=$((REVOKE_SLOW + 1))
            finding "revocation $n (client-$i-$g, serial $serial): enforced after ${latency}s, more than crl-refresh + 1s"
        fi
    else
        REVOKE_MISSED=$((REVOKE_MISSED + 1))
        printf '%d client-%d-%d %s never\n' "$n" "$i" "$g" "$serial" >>"$REVOCATIONS"
        finding "revocation $n (client-$i-$g, serial $serial): server-$i never refused it"
    fi
    proc_stop "${CLIENT_PIDS[i]}"
    start_client "$i" $((g + 1))
}

START=$(now_s)
END=$((START + DURATION))
NEXT_SAMPLE=$START
NEXT_RESTART=$((RESTART_EVERY > 0 ? START + RESTART_EVERY : END + 1))
# Revocations fall between restarts (half a restart period later).
NEXT_REVOKE=$((REVOKE_EVERY > 0 ? START + REVOKE_EVERY / 2 + RESTART_EVERY / 2 : END + 1))
N_REVOKE=0
LAST_REPORT=$START
printf '== load running until %s\n' "$(date -u -d "@$END" +%FT%TZ)"
while (($(now_s) < END)); do
    tick=$(now_s)
    check_alive
    poll_ready
    if ((tick >= NEXT_SAMPLE)); then
        sample "$tick"
        NEXT_SAMPLE=$((NEXT_SAMPLE + SAMPLE_EVERY))
    fi
    if ((tick >= NEXT_RESTART)); then
        restart_ca
        NEXT_RESTART=$((NEXT_RESTART + RESTART_EVERY))
    fi
    if ((tick >= NEXT_REVOKE)); then
        N_REVOKE=$((N_REVOKE + 1))
        revoke "$N_REVOKE"
        NEXT_REVOKE=$((NEXT_REVOKE + REVOKE_EVERY))
    fi
    if ((tick - LAST_REPORT >= 300)); then
        LAST_REPORT=$tick
        printf '   %s: %d min, %d CA restarts, %d revocations, %d readiness failures, %d findings\n' \
            "$(date -u +%T)" $(((tick - START) / 60)) "$CA_RESTARTS" "$REVOKED" "$READY_FAILS" "${#FINDINGS[@]}"
    fi
    # Pace the loop at about one round a second (readiness is polled each round).
    sleep 1
done
sample "$(now_s)"

# --- Stop: clients first (so their requests end cleanly), then servers, then the CA -------
for ((i = 1; i <= PAIRS; i++)); do
    proc_stop "${CLIENT_PIDS[i]}"
done
for ((i = 1; i <= PAIRS; i++)); do
    PROC_STOP_TIMEOUT=15 proc_stop "${SERVER_PIDS[i]}"
    ((PROC_STATUS == 0)) || finding "server-$i exited with status $PROC_STATUS on SIGTERM"
done
PROC_STOP_TIMEOUT=15 proc_stop "$CA_PID"
((PROC_STATUS == 0)) || finding "the CA exited with status $PROC_STATUS on SIGTERM"
STOPPED=$(now)

# --- Figures ------------------------------------------------------------------
# Requests: every per-request line of every client; a revoked client's failures after its
# revocation are the refusals we asked for.
OK=0 FAILED=0 EXPECTED=0
declare -A FROM=()
for e in "${EXPECTED_FROM[@]}"; do
    FROM[${e%:*}]=${e##*:}
done
for f in "$LOGS"/client-*.out; do
    read -r ok failed expected < <(awk -v from="${FROM[$f]:-0}" '
        /^\[CLIENT\] request [0-9]+\/[0-9]+: 2[0-9][0-9] / { ok++; next }
        /^\[CLIENT\] request [0-9]+\/[0-9]+: / {
            if (from > 0 && NR >= from) expected++; else failed++
        }
        END { print ok + 0, failed + 0, expected + 0 }' "$f")
    OK=$((OK + ok))
    FAILED=$((FAILED + failed))
    EXPECTED=$((EXPECTED + expected))
    ((failed == 0)) || finding "$failed failed request(s) in ${f##*/} (grep -v ': 2[0-9][0-9] ' for them)"
done

# Connections past NotAfter: each server's handshake_ok line (time, peer_addr, not_after)
# is paired with the next connection_ended line of the same peer_addr; a connection
# without one counts as open until the servers stopped. A connection may live through the
# second of NotAfter (webpki's whole seconds, docs/security.md) plus a request in flight: we
# flag one that ended more than 2 s after NotAfter.
# shellcheck disable=SC2016 # awk program
EPOCH_AWK='
function epoch(s,   y, mo, d, h, mi, se, fr, era, yoe, doy, doe, z) {
    y = substr(s, 1, 4) + 0; mo = substr(s, 6, 2) + 0; d = substr(s, 9, 2) + 0
    h = substr(s, 12, 2) + 0; mi = substr(s, 15, 2) + 0; se = substr(s, 18, 2) + 0
    fr = 0
    if (substr(s, 20, 1) == ".") { z = index(s, "Z"); fr = ("0" substr(s, 20, z - 20)) + 0 }
    if (mo <= 2) y--
    era = int(y / 400); yoe = y - era * 400
    doy = int((153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5) + d - 1
    doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
    return (era * 146097 + doe - 719468) * 86400 + h * 3600 + mi * 60 + se + fr
}
function field(line, name,   m) {
    if (match(line, name "=[^ ]+")) { m = substr(line, RSTART + length(name) + 1, RLENGTH - length(name) - 1); return m }
    return ""
}'
CONNS=0 PAST=0 OVERSHOOT_MAX=-999
for ((i = 1; i <= PAIRS; i++)); do
    read -r conns past overshoot < <(awk -v stopped="$STOPPED" "$EPOCH_AWK"'
        /event="handshake_ok"/ {
            a = field($0, "peer_addr"); na[a] = epoch(field($0, "not_after")); open[a] = 1; conns++
            next
        }
        /event="connection_ended"/ {
            a = field($0, "peer_addr")
            if (open[a]) { o = epoch($1) - na[a]; judge(o); delete open[a] }
        }
        function judge(o) { if (o > max || max == "") max = o; if (o > 2) past++ }
        END {
            for (a in open) judge(stopped - na[a])
            printf "%d %d %.3f\n", conns, past + 0, (max == "" ? -999 : max)
        }' "$LOGS/server-$i.err")
    CONNS=$((CONNS + conns))
    PAST=$((PAST + past))
    OVERSHOOT_MAX=$(awk -v a="$OVERSHOOT_MAX" -v b="$overshoot" 'BEGIN { print (b > a) ? b : a }')
    ((past == 0)) || finding "server-$i kept $past connection(s) open more than 2s past the peer's NotAfter"
done

# Revocation latencies.
read -r LAT_N LAT_MAX LAT_P50 < <(awk '$4 != "never" { print $4 }' "$REVOCATIONS" | sort -g |
    awk '{ v[NR] = $1 } END { if (NR == 0) print 0, "-", "-"; else printf "%d %.3f %.3f\n", NR, v[NR], v[int((NR + 1) / 2)] }')

# Memory and fds: per process, the median of its first three samples from --warmup after
# its start against the median of its last three; judged when at least six samples follow
# the warm-up. A finding when the end is more than 10% above the warm-up value (fds: and
# more than one descriptor, as one connection being replaced holds one for a moment).
MEM_REPORT=$WORK/memory.txt
awk -v warmup="$WARMUP" '
    NR == FNR { started[$2] = $3; next }
    {
        key = $2 " " $3
        if ($1 - started[$3] < warmup) next
        n[key]++; rss[key, n[key]] = $4; fds[key, n[key]] = $5
    }
    function med3(arr, key, a,   x, y, z, t) {
        x = arr[key, a]; y = arr[key, a + 1]; z = arr[key, a + 2]
        if (x > y) { t = x; x = y; y = t }
        if (y > z) { t = y; y = z; z = t }
        if (x > y) { t = x; x = y; y = t }
        return y
    }
    END {
        for (key in n) {
            if (n[key] < 6) { printf "%s samples=%d not-judged\n", key, n[key]; continue }
            r0 = med3(rss, key, 1); r1 = med3(rss, key, n[key] - 2)
            f0 = med3(fds, key, 1); f1 = med3(fds, key, n[key] - 2)
            verdict = "ok"
            if (r1 > r0 * 1.10) verdict = "RSS-GREW"
            if (f1 > f0 * 1.10 && f1 - f0 > 1) verdict = verdict == "ok" ? "FDS-GREW" : verdict ",FDS-GREW"
            printf "%s samples=%d rss_kb=%d->%d (%+.1f%%) fds=%d->%d %s\n", key, n[key], r0, r1, (r1 - r0) * 100 / r0, f0, f1, verdict
        }
    }' "$PROCS" "$SAMPLES" |
    sort -V >"$MEM_REPORT"
JUDGED=$(grep -vc 'not-judged' "$MEM_REPORT" || true)
while IFS= read -r line; do
    finding "memory/fds: $line"
done < <(grep -E 'GREW' "$MEM_REPORT" || true)
RSS_SERVERS=$(awk '/^server-/ && !/not-judged/ { split($4, a, "[=>-]+"); if (a[3] > m) m = a[3]; s += a[3]; c++ } END { if (c) printf "%.1f MiB mean, %.1f MiB max", s / c / 1024, m / 1024; else print "-" }' "$MEM_REPORT")
RSS_CLIENTS=$(awk '/^client-/ && !/not-judged/ { split($4, a, "[=>-]+"); if (a[3] > m) m = a[3]; s += a[3]; c++ } END { if (c) printf "%.1f MiB mean, %.1f MiB max", s / c / 1024, m / 1024; else print "-" }' "$MEM_REPORT")
GROWTH_MAX=$(awk '!/not-judged/ { g = $5; gsub(/[()%+]/, "", g); if (g + 0 > m || m == "") m = g + 0 } END { printf "%+.1f%%", m }' "$MEM_REPORT")

((READY_FAILS == 0)) || finding "$READY_FAILS readiness poll(s) answered other than 200 (see $READINESS)"

# --- Summary ------------------------------------------------------------------
cat <<EOF

== soak summary ($((DURATION / 60)) min, $PAIRS servers + $PAIRS clients, ${CERT_TTL}s certificates, CRL refresh ${CRL_REFRESH}s)
requests:        $OK ok, $FAILED failed ($EXPECTED refused after their client's revocation, as intended)
connections:     $CONNS accepted by the servers, $PAST alive more than 2s past the peer's NotAfter (latest end relative to NotAfter: ${OVERSHOOT_MAX}s)
revocations:     $REVOKED enforced, $REVOKE_MISSED never, $REVOKE_SLOW slower than crl-refresh + 1s; latency max ${LAT_MAX}s, p50 ${LAT_P50}s (n=$LAT_N)
CA restarts:     $CA_RESTARTS (SIGTERM, restart on the same data directory and port; longest down ${CA_DOWN_MAX}s), $CA_BAD_EXITS bad exits
readiness:       $READY_POLLS polls, $READY_FAILS not 200, $DEGRADED 200 but not "ready"
memory and fds:  $JUDGED processes judged (RSS at the end: servers $RSS_SERVERS, clients $RSS_CLIENTS; largest RSS change $GROWTH_MAX)
EOF
sed 's/^/  /' "$MEM_REPORT"
if ((${#FINDINGS[@]} > 0)); then
    printf '\n== %d finding(s):\n' "${#FINDINGS[@]}"
    printf '  - %s\n' "${FINDINGS[@]}"
    exit 1
fi
printf '\n== no findings\n'
