# shellcheck shell=bash
#
# Measurements for the benchmark scripts (bench-ca.sh, bench-agent.sh): a process's CPU time and
# memory from /proc, and the numbers of an mtls-bench JSON report. Sourced, never executed.

# cpu_ticks PID -> user + system clock ticks the process has used so far (/proc/PID/stat fields
# 14 and 15; divide by `getconf CLK_TCK` for seconds)
cpu_ticks() {
    local stat
    read -r stat <"/proc/$1/stat"
    # The command name, in parentheses, may contain spaces: count fields after it.
    stat=${stat##*) }
    # shellcheck disable=SC2086 # word splitting of the fields is the point
    set -- $stat
    printf '%d' $((${12} + ${13}))
}

# status_kib PID FIELD -> FIELD of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: the
# peak resident size so far); fails when the process or the field is missing
status_kib() {
    awk -v field="$2:" '$1 == field { print $2; found = 1 } END { exit !found }' "/proc/$1/status"
}

# json_number FILE FIELD -> the number top-level FIELD has in the JSON report FILE
# (mtls-bench --json prints one field per line)
json_number() {
    sed -n "s/^  \"$2\": *\([0-9.eE+-]*\),\{0,1\}$/\1/p" "$1"
}
