# shellcheck shell=bash
# shellcheck disable=SC2034 # PG_PORT, PG_PID and PG_BIN are outputs for the sourcing script
#
# A throwaway PostgreSQL for the mtls-mesh scripts (bench-ca.sh), from the Debian `postgresql`
# package: initdb into a directory of the script's work directory, a free port on 127.0.0.1,
# the unix socket in that directory, durable settings (fsync, synchronous_commit, full page
# writes: what a production CA database runs with). The server is a tracked background process
# (lib/proc.sh), so the script's exit trap stops it; pg_stop stops it earlier. The same way as
# the tests' clusters (crates/testkit/src/postgres.rs): PostgreSQL refuses to run as root, so a
# root caller runs initdb and the server as `nobody`. Sourced after lib/proc.sh; bash 4.4+.

PG_PORT='' PG_PID='' PG_BIN='' PG_DIR='' PG_AS=()

# pg_bin -> sets PG_BIN to the newest /usr/lib/postgresql/<version>/bin with initdb
pg_bin() {
    local d newest='' v best=0
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb ]] || continue
        v=${d%/bin}
        v=${v##*/}
        [[ $v =~ ^[0-9]+$ ]] || continue
        if ((v > best)); then
            best=$v newest=$d
        fi
    done
    [[ -n $newest ]] || die "PostgreSQL is not installed: apt-get install postgresql (needs initdb in /usr/lib/postgresql/<version>/bin)"
    PG_BIN=$newest
}

# _pg_as_server -> sets PG_AS to the command prefix that runs a program as the server's user
# (nobody when we are root; setpriv execs, so a background PID is the program's own)
_pg_as_server() {
    PG_AS=()
    if [[ $(id -u) == 0 ]]; then
        PG_AS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
    fi
}

# pg_start DIR [SETTING...] -> initdb into DIR/data and start the server with `-c SETTING` for
# each extra setting; sets PG_PORT, PG_PID, PG_DIR. Dies with the server's log on failure.
pg_start() {
    local dir=$1 try i
    shift
    pg_bin
    _pg_as_server
    mkdir -p "$dir"
    if [[ $(id -u) == 0 ]]; then
        chown nobody:nogroup "$dir"
    fi
    "${PG_AS[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        >"$dir/initdb.log" 2>&1 || die "initdb failed: $(cat "$dir/initdb.log")"
    local -a settings=()
    for i in listen_addresses=127.0.0.1 fsync=on synchronous_commit=on full_page_writes=on \
        max_connections=200 track_wal_io_timing=on "$@"; do
        settings+=(-c "$i")
    done
    # A random port that nothing answers on; the server refusing it (taken meanwhile) is
    # retried with another.
    for try in 1 2 3 4 5; do
        PG_PORT=$((20000 + RANDOM % 40000))
        (: </dev/tcp/127.0.0.1/"$PG_PORT") 2>/dev/null && continue
        proc_start "$dir/server.out" "$dir/server.log" "${PG_AS[@]}" "$PG_BIN/postgres" \
            -D "$dir/data" -p "$PG_PORT" -k "$dir" "${settings[@]}"
        PG_PID=$PROC_PID PG_DIR=$dir
        for ((i = 0; i < 600; i++)); do
            if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres -U postgres; then
                return 0
            fi
            proc_alive "$PG_PID" || break
            sleep 0.1
        done
        proc_stop "$PG_PID" INT
        grep -q 'could not bind' "$dir/server.log" || break
        printf '== port %s was taken, trying another (attempt %d)\n' "$PG_PORT" "$try"
    done
    die "PostgreSQL did not start: $(tail -n 20 "$dir/server.log")"
}

# pg_psql DB SQL -> runs SQL on database DB over the unix socket, unaligned tuples only
pg_psql() {
    "$PG_BIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres \
        -d "$1" -c "$2"
}

# pg_cpu_ticks -> user + system clock ticks used so far by the server and its backends alive
# now (the CA's pooled connections live for the whole run)
pg_cpu_ticks() {
    local total=0 stat f pid
    for f in /proc/[0-9]*/stat; do
        read -r stat 2>/dev/null <"$f" || continue
        pid=${stat%% *}
        stat=${stat##*) }
        # shellcheck disable=SC2086 # word splitting of the fields is the point
        set -- $stat
        # $2 is the parent's PID; $12 and $13 are utime and stime
        if [[ $pid == "$PG_PID" || $2 == "$PG_PID" ]]; then
            total=$((total + ${12} + ${13}))
        fi
    done
    printf '%d' "$total"
}

# pg_stop -> fast shutdown (sessions ended, clean checkpoint) and wait for it
pg_stop() {
    [[ -n $PG_PID ]] || return 0
    proc_stop "$PG_PID" INT
    PG_PID=''
}
