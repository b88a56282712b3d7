# shellcheck shell=bash
# shellcheck disable=SC2034 # PROC_PID, PROC_STATUS and MATCH are outputs for the sourcing script
#
# Background processes for the mtls-mesh scripts that run the programs (demo.sh,
# bench-peers.sh, crash-test.sh): start and track them, wait for a line they print,
# and stop every one of them on exit. Sourced, never executed; needs bash 4.4+.
#
# Conventions:
#   * Every process started here is tracked in PROC_PIDS and stopped by
#     proc_stop_all (call it from the script's EXIT trap).
#   * A reaped process is forgotten at once, so a later signal can never reach
#     a process ID the system has given to someone else.
#   * Waits are bounded (seconds) and poll every 0.1 s; they never sleep longer
#     than needed and report why they gave up.

PROC_PIDS=()
# Seconds a process gets after SIGTERM before SIGKILL.
PROC_STOP_TIMEOUT=${PROC_STOP_TIMEOUT:-5}

# proc_track PID -> stop PID in proc_stop_all
proc_track() {
    PROC_PIDS+=("$1")
}

# proc_forget PID -> drop PID from the tracked processes (once reaped)
proc_forget() {
    local pid=$1 p
    local -a keep=()
    for p in "${PROC_PIDS[@]}"; do
        [[ $p == "$pid" ]] || keep+=("$p")
    done
    PROC_PIDS=("${keep[@]}")
}

# proc_start OUT ERR ARGV... -> runs ARGV in the background, stdout to OUT and
# stderr to ERR, tracked; sets PROC_PID
proc_start() {
    local out=$1 err=$2
    shift 2
    "$@" >"$out" 2>"$err" &
    PROC_PID=$!
    proc_track "$PROC_PID"
}

# proc_alive PID -> true while PID runs
proc_alive() {
    kill -0 "$1" 2>/dev/null
}

# proc_stop PID [SIGNAL] -> SIGNAL (default TERM), up to PROC_STOP_TIMEOUT
# seconds to exit, then SIGKILL; reaps and forgets it. Sets PROC_STATUS to its
# exit status.
proc_stop() {
    local pid=$1 signal=${2:-TERM}
    # stderr is closed for the whole stop: bash reports a job killed by a signal
    # ("Killed") on its own stderr when it notices, which is noise here.
    _proc_stop "$pid" "$signal" 2>/dev/null
}

_proc_stop() {
    local pid=$1 signal=$2 i
    kill -"$signal" "$pid" || true
    for ((i = 0; i < PROC_STOP_TIMEOUT * 10; i++)); do
        proc_alive "$pid" || break
        sleep 0.1
    done
    if proc_alive "$pid"; then
        kill -KILL "$pid" || true
    fi
    PROC_STATUS=0
    wait "$pid" || PROC_STATUS=$?
    proc_forget "$pid"
}

# proc_wait PID LIMIT -> waits up to LIMIT seconds for PID to exit; then
# stops it. Sets PROC_STATUS (124 when it had to be stopped).
proc_wait() {
    local pid=$1 limit=$2 i
    for ((i = 0; i < limit * 10; i++)); do
        proc_alive "$pid" || break
        sleep 0.1
    done
    if proc_alive "$pid"; then
        proc_stop "$pid"
        PROC_STATUS=124
        return 0
    fi
    PROC_STATUS=0
    wait "$pid" 2>/dev/null || PROC_STATUS=$?
    proc_forget "$pid"
}

# proc_stop_all -> SIGTERM to every tracked process at once, then proc_stop
# each (SIGKILL for those that do not exit in time)
proc_stop_all() {
    local pid
    for pid in "${PROC_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PROC_PIDS[@]}"; do
        proc_stop "$pid"
    done
    PROC_PIDS=()
}

# line_count FILE -> number of lines so far (a mark for "after this point")
line_count() {
    if [[ -f $1 ]]; then
        wc -l <"$1" | tr -d ' '
    else
        printf 0
    fi
}

# wait_for_line FILE REGEX LIMIT [PID] [FROM_LINE] -> polls until FILE has a
# line matching REGEX (after line FROM_LINE) and sets MATCH to the first one.
# Returns 0 when found, 1 after LIMIT seconds, 2 when PID exited first.
wait_for_line() {
    local file=$1 re=$2 limit=$3 pid=${4-} from=${5:-0} i
    MATCH=
    for ((i = 0; i <= limit * 10; i++)); do
        MATCH=$(tail -n +"$((from + 1))" "$file" 2>/dev/null | grep -E -m1 -- "$re" || true)
        [[ -n $MATCH ]] && return 0
        if [[ -n $pid ]] && ! proc_alive "$pid"; then
            # One last look: it may have printed the line and exited.
            MATCH=$(tail -n +"$((from + 1))" "$file" 2>/dev/null | grep -E -m1 -- "$re" || true)
            [[ -n $MATCH ]] && return 0
            return 2
        fi
        sleep 0.1
    done
    return 1
}

# proc_cleanup_on_exit -> on exit, and on INT/TERM/HUP (exit status 130/143/129), stop every
# tracked process, then remove the work directory given to proc_work_dir (or say where it is
# kept). Install it before the first process starts, so nothing outlives the script.
PROC_WORK_DIR='' PROC_KEEP_WORK=0
proc_cleanup_on_exit() {
    trap _proc_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# proc_work_dir DIR KEEP -> DIR is removed on exit, unless KEEP is 1 (then its path is printed)
proc_work_dir() {
    PROC_WORK_DIR=$1 PROC_KEEP_WORK=$2
}

_proc_cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    proc_stop_all
    if [[ -n $PROC_WORK_DIR && -d $PROC_WORK_DIR ]]; then
        if [[ $PROC_KEEP_WORK == 1 ]]; then
            printf 'Kept the work directory: %s\n' "$PROC_WORK_DIR"
        else
            rm -rf -- "$PROC_WORK_DIR"
        fi
    fi
    exit "$rc"
}
