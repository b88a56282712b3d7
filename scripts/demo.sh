#!/usr/bin/env bash
#
# demo.sh - the five-minute tour of mtls-mesh, as one command.
#
# Builds the binaries, then, in a temporary directory on this machine only
# (127.0.0.1): starts the CA, enrolls a server and a client, makes an mTLS
# call, shows three clients refused for the right reasons, and rotates the
# server's certificate under traffic without a failed request. Every outcome
# is checked; the script prints "DEMO OK" and exits 0 only if all of them
# happened. Run with --help for the options.
set -euo pipefail

PROG=${0##*/}
SCRIPT_DIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -P -- "$SCRIPT_DIR/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$SCRIPT_DIR/lib/proc.sh"

SERVER_ID=spiffe://mesh.local/service/api-server
CLIENT_ID=spiffe://mesh.local/service/payment-worker
OLD_ID=spiffe://mesh.local/service/old-worker

# Bounds (seconds). Normal runs take a fraction of each.
START_TIMEOUT=30   # a service prints its listening line
CALL_TIMEOUT=30    # a one-shot client or tool finishes
REVOKE_TIMEOUT=15  # the server refuses a revoked client (CRL refresh is 1 s)
ROTATE_TIMEOUT=60  # the rotation client (60 requests, 200 ms apart) finishes
STOP_TIMEOUT=5     # a process exits after SIGTERM (then SIGKILL)
PROC_STOP_TIMEOUT=$STOP_TIMEOUT

usage() {
    cat <<EOF
Usage: $PROG [--debug | --no-build [--bin-dir DIR]] [--keep]

The mtls-mesh demo in one command. It builds the programs (mtls-ca,
mtls-server, mtls-client, mtls-inspect: cargo build -p mtls), then, in a
temporary directory and on 127.0.0.1 only:

  1. starts the CA (mtls-ca) on a free port and reads its root fingerprint
  2. enrolls a server ($SERVER_ID) with a join token
  3. enrolls a client ($CLIENT_ID) and calls the
     server over mutual TLS 1.3; both identities are shown and checked
  4. shows a client with no certificate refused           (curl)
  5. shows a certificate from another CA refused           (scripts/*.sh + mtls-client)
  6. shows a revoked certificate refused within seconds    (mtls-ca revoke)
  7. rotates the server's 6-second certificates while a client makes 60
     calls, with zero failures, and shows the serials change
  8. shows what the CA recorded (mtls-ca list, mtls-ca audit verify)

Each step is narrated: the command, its key output and the checks made.
The script stops every process it started and removes the temporary
directory on exit. It prints "DEMO OK" and exits 0 only if every expected
outcome happened; otherwise it prints what was expected, what was seen and
the end of the relevant logs, and exits 1.

Options:
  --debug          Build with the debug profile (cargo build) instead of
                   --release, and use target/debug.
  --no-build       Do not build; use binaries already in the target directory
                   (target/release, or target/debug with --debug).
  --bin-dir DIR    Use the binaries in DIR (implies --no-build). Default:
                   \$MTLS_BIN_DIR when set (the variable the tests read
                   too), else the target directory.
  --keep           Keep the temporary directory (logs, certificates, CA data)
                   for inspection; the processes are stopped anyway.
  -h, --help       Show this help and exit.

Needs: bash 4.4+, cargo (unless --no-build), openssl 3 and curl.
Exit status: 0 all checks passed, 1 a check failed, 2 usage error.

Examples:
  scripts/demo.sh                      # release build, then the demo
  scripts/demo.sh --debug              # quicker build for development
  scripts/demo.sh --bin-dir target/debug --keep
EOF
}

usage_error() {
    printf '%s: %s\n' "$PROG" "$*" >&2
    printf "Try '%s --help' for more information.\n" "$PROG" >&2
    exit 2
}

# --- Options --------------------------------------------------------------
PROFILE=release
BUILD=1
# Prebuilt binaries, as for the tests (crates/testkit/src/bins.rs); --bin-dir overrides it.
BIN_DIR=${MTLS_BIN_DIR-}
[[ -z $BIN_DIR ]] || BUILD=0
KEEP=0
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --debug) PROFILE=debug ;;
    --no-build) BUILD=0 ;;
    --bin-dir)
        if (($# < 2)) || [[ -z $2 ]]; then
            usage_error "option --bin-dir needs a directory"
        fi
        BIN_DIR=$2
        BUILD=0
        shift
        ;;
    --bin-dir=*)
        BIN_DIR=${1#--bin-dir=}
        [[ -n $BIN_DIR ]] || usage_error "option --bin-dir needs a directory"
        BUILD=0
        ;;
    --keep) KEEP=1 ;;
    *) usage_error "unknown argument '$1'" ;;
    esac
    shift
done

# --- Output helpers -------------------------------------------------------
if [[ -t 1 && -z ${NO_COLOR-} ]]; then
    BOLD=$'\e[1m' GREEN=$'\e[32m' RED=$'\e[31m' DIM=$'\e[2m' RESET=$'\e[0m'
else
    BOLD='' GREEN='' RED='' DIM='' RESET=''
fi

STEP_NO=0
STEP_TOTAL=8
STEP_NAME=
RELEVANT_LOGS=()

# step TITLE -> numbered header
step() {
    STEP_NO=$((STEP_NO + 1))
    STEP_NAME=$1
    RELEVANT_LOGS=()
    printf '\n%s== Step %d/%d: %s ==%s\n' "$BOLD" "$STEP_NO" "$STEP_TOTAL" "$1" "$RESET"
}

# say TEXT... -> a line of narration
say() { printf '%s\n' "$*"; }

# quote_arg ARG -> ARG as the shell would need it typed
quote_arg() {
    local a=$1
    if [[ $a =~ ^[A-Za-z0-9_./:=@,+%^-]+$ ]]; then
        printf '%s' "$a"
    else
        printf "'%s'" "${a//\'/\'\\\'\'}"
    fi
}

# show_cmd ARGV... -> "  $ argv", wrapped before an option when the line
# would grow past 96 columns. SHOW_SUFFIX (e.g. "> server.token") is
# appended when set.
show_cmd() {
    local -a args=("$@")
    local line="  \$" out='' word next i
    for ((i = 0; i < ${#args[@]}; i++)); do
        word=$(quote_arg "${args[i]}")
        next=''
        if [[ ${args[i]} == --* ]] && ((i + 1 < ${#args[@]})) && [[ ${args[i + 1]} != --* ]]; then
            next=" $(quote_arg "${args[i + 1]}")"
        fi
        if [[ ${args[i]} == --* ]] && ((${#line} + 1 + ${#word} + ${#next} > 96)) && [[ $line != '     ' ]]; then
            out+="$line \\"$'\n'
            line="     "
        fi
        line+=" $word$next"
        [[ -n $next ]] && i=$((i + 1))
    done
    [[ -n ${SHOW_SUFFIX-} ]] && line+=" $SHOW_SUFFIX"
    printf '%s%s%s\n' "$DIM" "$out$line" "$RESET"
}

# show_lines FILE REGEX [MAX] -> the matching lines of FILE, indented
show_lines() {
    local file=$1 re=$2 max=${3:-40}
    grep -E -- "$re" "$file" 2>/dev/null | head -n "$max" | sed 's/^/    | /' || true
}

# trim_log LINE -> a tracing line without its structured key=value tail
trim_log() {
    local l=$1
    l=${l%% event=*}
    printf '%s' "$l"
}

# show_log_lines FILE REGEX [FROM_LINE] -> matching log lines, trimmed
show_log_lines() {
    local file=$1 re=$2 from=${3:-0} l
    while IFS= read -r l; do
        printf '    | %s\n' "$(trim_log "$l")"
    done < <(tail -n +"$((from + 1))" "$file" | grep -E -- "$re" | head -n 20 || true)
}

ok() { printf '  %sok%s  %s\n' "$GREEN" "$RESET" "$*"; }

# fail EXPECTED SEEN -> report and exit 1 (the EXIT trap cleans up)
fail() {
    local expected=$1 seen=${2-} f
    {
        printf '\n%sDEMO FAILED%s in step %d (%s)\n' "$RED$BOLD" "$RESET" "$STEP_NO" "$STEP_NAME"
        printf '  expected: %s\n' "$expected"
        if [[ -n $seen ]]; then
            printf '  seen:\n'
            printf '%s\n' "$seen" | tail -n 15 | sed 's/^/    /'
        fi
        for f in "${RELEVANT_LOGS[@]}"; do
            [[ -s $f ]] || continue
            printf '  --- last lines of %s ---\n' "$f"
            tail -n 15 "$f" | sed 's/^/    /'
        done
    } >&2
    exit 1
}

# logs FILE... -> the logs shown if the current step fails
logs() { RELEVANT_LOGS+=("$@"); }

# expect_in FILE REGEX WHAT [FROM_LINE] -> check that FILE has a line
# matching REGEX (after line FROM_LINE)
expect_in() {
    local file=$1 re=$2 what=$3 from=${4:-0}
    if tail -n +"$((from + 1))" "$file" 2>/dev/null | grep -Eq -- "$re"; then
        ok "$what"
    else
        fail "$what (a line matching /$re/ in $file)" "$(tail -n +"$((from + 1))" "$file" 2>/dev/null)"
    fi
}

now() {
    if [[ -n ${EPOCHREALTIME-} ]]; then
        printf '%s' "${EPOCHREALTIME/,/.}"
    else
        printf '%s' "$SECONDS"
    fi
}

# elapsed START -> seconds since START with one decimal
elapsed() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

# --- Processes ------------------------------------------------------------
# Started, tracked, waited on and stopped through scripts/lib/proc.sh.
WORK=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if ((rc >= 129 && ${#PROC_PIDS[@]} > 0)); then
        printf '\n%s: interrupted; stopping the %d process(es) it started\n' "$PROG" "${#PROC_PIDS[@]}" >&2
    elif ((rc >= 129)); then
        printf '\n%s: interrupted\n' "$PROG" >&2
    fi
    proc_stop_all
    if [[ -n $WORK && -d $WORK ]]; then
        if ((KEEP)); then
            printf '\nKept the demo directory: %s\n' "$WORK"
        else
            rm -rf -- "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# start_bg NAME ARGV... -> runs ARGV in the background, stdout to NAME.out
# and stderr to NAME.err; sets BG_PID
start_bg() {
    local name=$1
    shift
    proc_start "$name.out" "$name.err" "$@"
    BG_PID=$PROC_PID
}

# stop_pid PID -> SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL; reaps it
stop_pid() {
    proc_stop "$1"
}

# run_bounded NAME LIMIT ARGV... -> runs ARGV to completion (at most LIMIT
# seconds, then it is stopped), stdout to NAME.out, stderr to NAME.err; sets
# RC (124 when it was stopped)
run_bounded() {
    local name=$1 limit=$2
    shift 2
    start_bg "$name" "$@"
    proc_wait "$BG_PID" "$limit"
    RC=$PROC_STATUS
}

# wait_for FILE REGEX LIMIT PID WHAT [FROM_LINE] -> waits until FILE has a
# line matching REGEX (after FROM_LINE); fails after LIMIT seconds or if
# PID exits first. Sets MATCH to the first matching line.
wait_for() {
    local file=$1 re=$2 limit=$3 pid=$4 what=$5 from=${6:-0} rc=0
    wait_for_line "$file" "$re" "$limit" "$pid" "$from" || rc=$?
    case $rc in
    0) return 0 ;;
    2) fail "$what (a line matching /$re/ in $file), but the process exited" \
        "$(tail -n +"$((from + 1))" "$file" 2>/dev/null)" ;;
    *) fail "$what within ${limit}s (a line matching /$re/ in $file)" \
        "$(tail -n +"$((from + 1))" "$file" 2>/dev/null)" ;;
    esac
}

need_tool() {
    command -v "$1" >/dev/null 2>&1 || {
        printf '%s: error: %s is required (%s)\n' "$PROG" "$1" "$2" >&2
        exit 1
    }
}

# --- Build ----------------------------------------------------------------
need_tool openssl "Debian/Ubuntu: apt-get install openssl"
need_tool curl "Debian/Ubuntu: apt-get install curl"
need_tool awk "POSIX awk"

target_dir() {
    local meta dir
    if [[ -n ${CARGO_TARGET_DIR-} ]]; then
        dir=$CARGO_TARGET_DIR
        [[ $dir == /* ]] || dir=$REPO_DIR/$dir
        printf '%s' "$dir"
        return
    fi
    meta=$(cd "$REPO_DIR" && cargo metadata --format-version 1 --no-deps 2>/dev/null) || meta=
    if [[ $meta =~ \"target_directory\":\"([^\"]+)\" ]]; then
        printf '%s' "${BASH_REMATCH[1]}"
    else
        printf '%s' "$REPO_DIR/target"
    fi
}

printf '%smtls-mesh demo%s: a CA, a server and clients talking mutual TLS 1.3 on 127.0.0.1\n' "$BOLD" "$RESET"

if ((BUILD)); then
    need_tool cargo "install Rust with rustup: https://rustup.rs"
    build=(cargo build --locked -p mtls)
    [[ $PROFILE == release ]] && build+=(--release)
    printf '\n%s== Building the binaries (%s) ==%s\n' "$BOLD" "$PROFILE" "$RESET"
    show_cmd "${build[@]}"
    (cd "$REPO_DIR" && "${build[@]}") || {
        printf '%s: error: the build failed (see the cargo output above)\n' "$PROG" >&2
        exit 1
    }
fi
if [[ -z $BIN_DIR ]]; then
    BIN_DIR=$(target_dir)/$PROFILE
fi
[[ -d $BIN_DIR ]] || {
    printf '%s: error: binary directory %s does not exist (build first, or drop --no-build)\n' \
        "$PROG" "$BIN_DIR" >&2
    exit 1
}
BIN_DIR=$(cd -P -- "$BIN_DIR" && pwd)
hint="cargo build -p mtls"
[[ $PROFILE == release ]] && hint+=" --release"
for b in mtls-ca mtls-server mtls-client mtls-inspect; do
    [[ -x $BIN_DIR/$b ]] || {
        printf '%s: error: %s/%s is missing; build it (%s) or run without --no-build\n' \
            "$PROG" "$BIN_DIR" "$b" "$hint" >&2
        exit 1
    }
done
# The commands below are shown as they are run: by name, from BIN_DIR.
export PATH="$BIN_DIR:$PATH"
# Services log at info (rotations, CRL updates, handshakes); none of our
# settings may come from the caller's environment.
export RUST_LOG=info
unset MTLS_JOIN_TOKEN MTLS_CA_DATA_DIR

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mtls-demo.XXXXXX")
cd "$WORK"
say "binaries:  $BIN_DIR"
say "work dir:  $WORK (removed at exit; every process started here is stopped)"
say "All commands below run in the work dir; logs go to NAME.out / NAME.err there."

# --- 1. CA ----------------------------------------------------------------
step "Start the certificate authority"
say "The first start creates an ECDSA P-384 root in ./ca and prints its SHA-256 fingerprint;"
say "services pin that fingerprint, so nothing is trusted on first use."
cmd=(mtls-ca --data-dir ca --listen 127.0.0.1:0 --cert-duration 1h)
show_cmd "${cmd[@]}"
start_bg ca "${cmd[@]}"
CA_PID=$BG_PID
logs ca.out ca.err
wait_for ca.out '^listening on https://127\.0\.0\.1:[0-9]+' "$START_TIMEOUT" "$CA_PID" "the CA to listen"
CA_PORT=${MATCH##*:}
CA_PORT=${CA_PORT%%/*}
FP=$(sed -n 's/^root fingerprint (SHA-256): \([0-9a-f]\{64\}\)$/\1/p' ca.out | head -n 1)
show_lines ca.out '^(root fingerprint|listening on)'
[[ -n $FP ]] || fail "a line 'root fingerprint (SHA-256): <64 hex>' on the CA's stdout" "$(cat ca.out)"
CA_URL=https://localhost:$CA_PORT
ok "CA listening on $CA_URL"
say "The fingerprint is just SHA-256 over the root certificate's DER; OpenSSL agrees:"
SHOW_SUFFIX="| openssl dgst -sha256" show_cmd openssl x509 -in ca/root.crt -outform DER
FP_OPENSSL=$(openssl x509 -in ca/root.crt -outform DER | openssl dgst -sha256 | sed 's/^.*= *//')
say "    | $FP_OPENSSL"
[[ $FP_OPENSSL == "$FP" ]] || fail "openssl's SHA-256 of ca/root.crt to equal the printed fingerprint $FP" "$FP_OPENSSL"
ok "fingerprint $FP matches ca/root.crt"

# --- 2. Server ------------------------------------------------------------
step "Enroll the server"
say "An operator authorises the server with a one-time join token, bound to its SPIFFE ID and"
say "to the names it may carry. The server makes its own key and sends only a CSR."
cmd=(mtls-ca --data-dir ca token --spiffe-id "$SERVER_ID" --dns localhost --ip 127.0.0.1 --ttl 10m)
SHOW_SUFFIX="> server.token" show_cmd "${cmd[@]}"
"${cmd[@]}" >server.token 2>token.err || fail "mtls-ca token to succeed" "$(cat token.err)"
show_lines token.err 'join token'
cmd=(mtls-server --ca-url "$CA_URL" --ca-fingerprint "$FP" --spiffe-id "$SERVER_ID"
    --join-token-file server.token --listen 127.0.0.1:0 --crl-refresh 1s)
show_cmd "${cmd[@]}"
start_bg server "${cmd[@]}"
SERVER_PID=$BG_PID
logs server.out server.err ca.err
wait_for server.out '^listening on https://127\.0\.0\.1:[0-9]+' "$START_TIMEOUT" "$SERVER_PID" "the server to listen"
SERVER_PORT=${MATCH##*:}
SERVER_URL=https://localhost:$SERVER_PORT
show_lines server.out '^(\[SERVER\]|  (Identity|Serial|Issuer|SAN|Valid)|listening on)'
expect_in server.out "^  Identity: $SERVER_ID\$" "the server holds a certificate for $SERVER_ID"
expect_in server.out '^  SAN DNS: localhost$' "it is valid for the name localhost"
ok "server listening on $SERVER_URL"

# --- 3. Client call ---------------------------------------------------------
step "Enroll a client and call the server over mutual TLS"
say "The client enrolls the same way, checks that the server is $SERVER_ID,"
say "and the server learns who called from the client's certificate alone."
cmd=(mtls-ca --data-dir ca token --spiffe-id "$CLIENT_ID")
SHOW_SUFFIX="> client.token" show_cmd "${cmd[@]}"
"${cmd[@]}" >client.token 2>token.err || fail "mtls-ca token to succeed" "$(cat token.err)"
server_mark=$(line_count server.err)
cmd=(mtls-client --ca-url "$CA_URL" --ca-fingerprint "$FP" --spiffe-id "$CLIENT_ID"
    --join-token-file client.token --server "$SERVER_URL" --server-id "$SERVER_ID")
show_cmd "${cmd[@]}"
logs client.out client.err server.err
run_bounded client "$CALL_TIMEOUT" "${cmd[@]}"
show_lines client.out '^(\[CLIENT\]|  (Identity|Serial|TLS Version|Cipher Suite|Key Exchange|Server Identity|Our Identity|Body))'
((RC == 0)) || fail "mtls-client to exit 0 (got $RC)" "$(cat client.out client.err)"
expect_in client.out '^  TLS Version: TLS 1\.3$' "TLS 1.3"
expect_in client.out "^  Server Identity: $SERVER_ID\$" "the client verified the server as $SERVER_ID"
expect_in client.out "^  Our Identity: $CLIENT_ID\$" "the client presented $CLIENT_ID"
expect_in client.out '^\[CLIENT\] Response: 200 OK$' "the server answered 200 OK"
expect_in client.out "^  Body: .*\"caller\":\"$CLIENT_ID\"" "the server saw the caller as $CLIENT_ID"
say "The server's log of the same connection:"
wait_for server.err "connection from .*: $CLIENT_ID" 10 "$SERVER_PID" "the server to log the client's handshake" "$server_mark"
show_log_lines server.err "connection from .*: $CLIENT_ID|GET /api/status from $CLIENT_ID" "$server_mark"
ok "the server identified the caller as $CLIENT_ID from its certificate"

# --- 4. No certificate ------------------------------------------------------
step "Refused: a client without a certificate"
say "curl trusts our root, so it can verify the server, but it has no certificate to present."
server_mark=$(line_count server.err)
cmd=(curl --silent --show-error --max-time 10 --cacert ca/root.crt "$SERVER_URL/api/status")
show_cmd "${cmd[@]}"
logs nocert.out nocert.err server.err
run_bounded nocert "$CALL_TIMEOUT" "${cmd[@]}"
show_lines nocert.err '.'
show_lines nocert.out '.'
((RC != 0 && RC != 124)) || fail "curl to fail the handshake (exit status other than 0), got $RC" "$(cat nocert.out nocert.err)"
ok "curl was refused (exit status $RC)"
wait_for server.err 'handshake .* failed: no client certificate presented' 10 "$SERVER_PID" \
    "the server to log the refusal with its reason" "$server_mark"
show_log_lines server.err 'handshake .* failed' "$server_mark"
ok "the server's reason: no client certificate presented"

# --- 5. Another CA ------------------------------------------------------------
step "Refused: a certificate from another CA"
say "An intruder makes its own root with plain OpenSSL and issues itself a certificate with the"
say "very same SPIFFE ID as our client. The name is right; the issuer is not one the server trusts."
cmd=("$SCRIPT_DIR/gen-root-ca.sh" other-ca --cn "Intruder Root CA")
show_cmd "${cmd[@]}"
logs other.out other.err
"${cmd[@]}" >other.out 2>other.err || fail "gen-root-ca.sh to succeed" "$(cat other.out other.err)"
show_lines other.out '^(Created|  subject)'
cmd=("$SCRIPT_DIR/sign-client-cert.sh" other-ca intruder --spiffe-id "$CLIENT_ID" --days 1)
show_cmd "${cmd[@]}"
"${cmd[@]}" >other.out 2>other.err || fail "sign-client-cert.sh to succeed" "$(cat other.out other.err)"
show_lines other.out '^(Signed|  (issuer|SANs))'
say "The intruder's client trusts our root (to reach the server) and its own (for its certificate):"
SHOW_SUFFIX="> intruder-trust.pem" show_cmd cat ca/root.crt other-ca/ca.crt
cat ca/root.crt other-ca/ca.crt >intruder-trust.pem
server_mark=$(line_count server.err)
cmd=(mtls-client --cert other-ca/intruder.crt --key other-ca/intruder.key --ca-cert intruder-trust.pem
    --server "$SERVER_URL" --server-id "$SERVER_ID")
show_cmd "${cmd[@]}"
logs intruder.out intruder.err server.err
run_bounded intruder "$CALL_TIMEOUT" "${cmd[@]}"
show_lines intruder.out '^(\[CLIENT\]|  (Identity|Issuer))'
show_lines intruder.err '^mtls-client:'
((RC == 1)) || fail "mtls-client to exit 1 (refused), got $RC" "$(cat intruder.out intruder.err)"
expect_in intruder.out 'FAILED: .*server rejected our certificate: unknown CA' \
    "the client was told: server rejected our certificate: unknown CA"
wait_for server.err 'handshake .* failed: client certificate unknown CA' 10 "$SERVER_PID" \
    "the server to log the refusal with its reason" "$server_mark"
show_log_lines server.err 'handshake .* failed' "$server_mark"
ok "the server's reason: client certificate unknown CA (not signed by a trusted root)"

# --- 6. Revoked -------------------------------------------------------------
step "Refused: a revoked certificate"
say "A worker enrolls and keeps calling (one request every 200 ms on one connection). Then its"
say "certificate is revoked. The server refreshes the CA's CRL every second (--crl-refresh 1s),"
say "closes the open connection and refuses the next handshake."
cmd=(mtls-ca --data-dir ca token --spiffe-id "$OLD_ID")
SHOW_SUFFIX="> old.token" show_cmd "${cmd[@]}"
"${cmd[@]}" >old.token 2>token.err || fail "mtls-ca token to succeed" "$(cat token.err)"
cmd=(mtls-client --ca-url "$CA_URL" --ca-fingerprint "$FP" --spiffe-id "$OLD_ID"
    --join-token-file old.token --server "$SERVER_URL" --count 150 --interval 200ms --quiet)
SHOW_SUFFIX="&" show_cmd "${cmd[@]}"
start_bg old "${cmd[@]}"
OLD_PID=$BG_PID
logs old.out old.err server.err
wait_for old.out '^\[CLIENT\] request 2/150: 200' "$START_TIMEOUT" "$OLD_PID" "the worker's requests to succeed"
OLD_SERIAL=$(sed -n 's/^  Serial: \([0-9a-f]*\)$/\1/p' old.out | head -n 1)
[[ -n $OLD_SERIAL ]] || fail "the worker to print its certificate serial" "$(cat old.out)"
show_lines old.out '^(  (Identity|Serial)|\[CLIENT\] request [12]/)'
ok "the worker's calls succeed with certificate $OLD_SERIAL"
server_mark=$(line_count server.err)
old_mark=$(line_count old.out)
cmd=(mtls-ca --data-dir ca revoke --serial "$OLD_SERIAL" --reason keyCompromise)
show_cmd "${cmd[@]}"
revoked_at=$(now)
"${cmd[@]}" >revoke.out 2>revoke.err || fail "mtls-ca revoke to succeed" "$(cat revoke.out revoke.err)"
show_lines revoke.out '.'
show_lines revoke.err '^revoked'
wait_for old.out 'server rejected our certificate: revoked' "$REVOKE_TIMEOUT" "$OLD_PID" \
    "the worker's next handshake to be refused as revoked" "$old_mark"
took=$(elapsed "$revoked_at")
stop_pid "$OLD_PID"
show_lines <(tail -n +"$((old_mark + 1))" old.out) 'FAILED' 2
ok "the worker was refused ${took}s after the revocation: server rejected our certificate: revoked"
wait_for server.err 'handshake .* failed: client certificate revoked' 10 "$SERVER_PID" \
    "the server to log the refusal with its reason" "$server_mark"
show_log_lines server.err 'revocation list updated|closing the connection|handshake .* failed' "$server_mark"
expect_in server.err "closing the connection .*$OLD_SERIAL revoked" \
    "the server closed the worker's open connection (no connection outlives its certificate)" "$server_mark"
ok "the server's reason: client certificate revoked"

# --- 7. Rotation --------------------------------------------------------------
step "Rotation under traffic"
say "A second instance of the server gets certificates that live 6 seconds (--ttl 6s). It renews"
say "at half of each lifetime (+-10% jitter), every 2-3 s, each time with a fresh key, and"
say "hot-swaps the certificate. A client makes 60 calls, 200 ms apart; its own certificates live"
say "8 s, so it reconnects every ~4 s and each new handshake shows which server certificate is"
say "live. Not one call may fail."
cmd=(mtls-ca --data-dir ca token --spiffe-id "$SERVER_ID" --dns localhost --ip 127.0.0.1)
SHOW_SUFFIX="> server2.token" show_cmd "${cmd[@]}"
"${cmd[@]}" >server2.token 2>token.err || fail "mtls-ca token to succeed" "$(cat token.err)"
cmd=(mtls-server --ca-url "$CA_URL" --ca-fingerprint "$FP" --spiffe-id "$SERVER_ID"
    --join-token-file server2.token --listen 127.0.0.1:0 --ttl 6s)
SHOW_SUFFIX="&" show_cmd "${cmd[@]}"
start_bg server2 "${cmd[@]}"
SERVER2_PID=$BG_PID
logs server2.out server2.err
wait_for server2.out '^listening on https://127\.0\.0\.1:[0-9]+' "$START_TIMEOUT" "$SERVER2_PID" "the second server to listen"
SERVER2_URL=https://localhost:${MATCH##*:}
show_lines server2.out '^(  (Serial|Valid)|\[SERVER\] Next rotation|listening on)'
cmd=(mtls-ca --data-dir ca token --spiffe-id "$CLIENT_ID")
SHOW_SUFFIX="> client2.token" show_cmd "${cmd[@]}"
"${cmd[@]}" >client2.token 2>token.err || fail "mtls-ca token to succeed" "$(cat token.err)"
server2_mark=$(line_count server2.err)
cmd=(mtls-client --ca-url "$CA_URL" --ca-fingerprint "$FP" --spiffe-id "$CLIENT_ID"
    --join-token-file client2.token --ttl 8s --server "$SERVER2_URL" --server-id "$SERVER_ID"
    --count 60 --interval 200ms --quiet)
show_cmd "${cmd[@]}"
logs client2.out client2.err server2.err
run_bounded client2 "$ROTATE_TIMEOUT" "${cmd[@]}"
say "  The client's new connections (one line per handshake):"
while IFS= read -r l; do
    printf '    | server_serial=%s  own_serial=%s\n' \
        "$(sed -n 's/.*server_serial=\([0-9a-f]*\).*/\1/p' <<<"$l")" \
        "$(sed -n 's/.*own_serial=\([0-9a-f]*\).*/\1/p' <<<"$l")"
done < <(grep -E '^\[CLIENT\] connected:' client2.out || true)
show_lines client2.out 'FAILED|request\(s\):'
say "  The server's rotations during the calls:"
rotations=$(tail -n +"$((server2_mark + 1))" server2.err |
    sed -n 's/.*certificate rotated: serial \([0-9a-f]*\) -> \([0-9a-f]*\), valid until \([^,]*\), next rotation \([^ ]*\) event=.*/\1 -> \2  (valid until \3, next rotation \4)/p')
if [[ -n $rotations ]]; then
    printf '%s\n' "$rotations" | sed 's/^/    | /'
fi
((RC == 0)) || fail "the rotation client to exit 0 within ${ROTATE_TIMEOUT}s (got $RC)" "$(cat client2.out client2.err)"
expect_in client2.out '^\[CLIENT\] 60 request\(s\): 60 ok, 0 failed' "60 calls, 0 failed"
n_rot=0
[[ -n $rotations ]] && n_rot=$(printf '%s\n' "$rotations" | wc -l | tr -d ' ')
((n_rot >= 2)) || fail "at least 2 server rotations during the calls (lines 'certificate rotated: serial A -> B')" \
    "$(tail -n +"$((server2_mark + 1))" server2.err)"
bad=$(printf '%s\n' "$rotations" | awk '{ if ($1 == $3) print }')
[[ -z $bad ]] || fail "every rotation to change the serial" "$bad"
ok "the server rotated $n_rot times while the client was calling; every rotation changed the serial"
n_seen=$(sed -n 's/^\[CLIENT\] connected: .*server_serial=\([0-9a-f]*\).*/\1/p' client2.out | sort -u | wc -l | tr -d ' ')
((n_seen >= 2)) || fail "the client to see at least 2 different server serials in its handshakes" "$(grep -E 'connected:' client2.out)"
ok "the client's handshakes saw $n_seen different server certificates"
if tail -n +"$((server2_mark + 1))" server2.err | grep -q 'handshake .* failed'; then
    fail "no failed handshake on the rotating server" "$(tail -n +"$((server2_mark + 1))" server2.err | grep 'failed')"
fi
ok "no failed handshake on the rotating server"
stop_pid "$SERVER2_PID"

# --- 8. Records -------------------------------------------------------------
step "What the CA recorded"
cmd=(mtls-ca --data-dir ca list)
show_cmd "${cmd[@]}"
logs list.out list.err
run_bounded list "$CALL_TIMEOUT" "${cmd[@]}"
((RC == 0)) || fail "mtls-ca list to exit 0 (got $RC)" "$(cat list.out list.err)"
total=$(($(line_count list.out) - 1))
head -n 4 list.out | sed 's/^/    | /'
((total > 3)) && say "    | ... ($total certificates in all)"
expect_in list.out "^$OLD_SERIAL +revoked " "the worker's certificate is listed as revoked"
cmd=(mtls-ca --data-dir ca audit verify)
show_cmd "${cmd[@]}"
logs audit.out audit.err
run_bounded audit "$CALL_TIMEOUT" "${cmd[@]}"
show_lines audit.out '.'
((RC == 0)) || fail "mtls-ca audit verify to exit 0 (got $RC)" "$(cat audit.out audit.err)"
ok "the audit log's hash chain is intact"

printf '\n%sDEMO OK%s: enrollment, mutual TLS with both identities, three refusals for the right\n' "$GREEN$BOLD" "$RESET"
printf 'reasons, and %d certificate rotations under traffic with zero failed calls.\n' "$n_rot"
