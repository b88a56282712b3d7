#!/usr/bin/env bash
# Side-by-side load test: nginx (ssl_verify_client on), a Go crypto/tls server and mtls-server,
# all with the same P-384 certificates, driven by mtls-bench on loopback. Bounded; stops what it
# starts. See docs/performance.md.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/bench-peers.sh [--duration 10s] [--concurrency 32] [--reps 3] [--idle-conns 10000] [--json-dir DIR] [--bin-dir DIR]

Starts three mTLS servers on 127.0.0.1 with the same root, server and client certificates
(made by the OpenSSL scripts), then runs mtls-bench against each in turn, alternating targets,
for every repetition and both modes:
  new        a full TLS 1.3 handshake per request (connect, handshake, GET, read, close)
  keepalive  persistent connections
and prints a table of medians and ratios. mtls-server runs with revocation checking on
(a CRL from mtls-ca on the same root).

Installs nginx-light and golang-go with apt-get when missing (needs root). Builds release
binaries with cargo (into $CARGO_TARGET_DIR when set). Everything it starts is stopped on exit.

Options:
  --duration D     length of each measurement (default 10s)
  --concurrency N  parallel connections (default 32)
  --reps N         repetitions, targets alternate within each (default 3)
  --json-dir DIR   keep every mtls-bench JSON report in DIR
  --idle-conns N   idle keep-alive connections for the memory measurement (default 10000, 0 = skip)
  --rotation-reps N  keep-alive runs of 20 s with and without 10 s certificates (default 3, 0 = skip)
  --bin-dir DIR    run the programs (mtls-ca, mtls-server, mtls-bench) in DIR instead of building
                   them, e.g. to measure an earlier build against this one
  -h, --help       this text
USAGE
}

duration=10s concurrency=32 reps=3 json_dir="" idle_conns=10000 rotation_reps=3 bin_dir=""
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --json-dir) json_dir=$2; shift 2 ;;
    --idle-conns) idle_conns=$2; shift 2 ;;
    --rotation-reps) rotation_reps=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-peers.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$root/scripts/lib/proc.sh"
# Thousands of sockets per process for the memory measurement.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v bc >/dev/null 2>&1 || missing+=(bc)
if ((${#missing[@]})); then
  echo "== installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if [ -n "$bin_dir" ]; then
  bin=$(cd "$bin_dir" && pwd)
  echo "== programs from $bin"
else
  echo "== building release binaries"
  (cd "$root" && cargo build --release -q -p mtls)
  bin="$(cd "$root" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release"
fi

work=$(mktemp -d)
proc_cleanup_on_exit
# KEEP_WORK=1 keeps the work directory (logs, certificates) for a look afterwards.
proc_work_dir "$work" "${KEEP_WORK:-0}"

free_port() {
  # Bind port 0 and report what the kernel chose; good enough on an otherwise idle machine.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_ready() { # wait_ready NAME PORT
  local _
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/bench-client.crt" \
         --key "$pki/bench-client.key" "https://localhost:$2/api/status"; then return 0; fi
    sleep 0.1
  done
  echo "bench-peers.sh: $1 did not become ready on port $2" >&2
  exit 1
}

echo "== certificates (P-384, OpenSSL scripts)"
pki="$work/pki"
"$root/scripts/gen-root-ca.sh" "$pki" >/dev/null
"$root/scripts/sign-server-cert.sh" "$pki" server --dns localhost --ip 127.0.0.1 \
  --spiffe-id spiffe://mesh.local/bench/server >/dev/null
"$root/scripts/sign-client-cert.sh" "$pki" bench-client \
  --spiffe-id spiffe://mesh.local/bench/bench-client >/dev/null

echo "== CRL from mtls-ca on the same root"
"$bin/mtls-ca" --data-dir "$work/ca" --listen 127.0.0.1:0 --root-cert "$pki/ca.crt" \
  --root-key "$pki/ca.key" >"$work/ca.out" 2>"$work/ca.err" &
proc_track $!
wait_for_line "$work/ca.out" "listening on" 10 || true
ca_url=$(sed -n 's/^listening on //p' "$work/ca.out")
curl -sf --cacert "$pki/ca.crt" "${ca_url/127.0.0.1/localhost}/api/v1/crl" -o "$work/ca.crl"

nginx_port=$(free_port) go_port=$(free_port) mtls_port=$(free_port)

cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 20000; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate $pki/server.crt;
    ssl_certificate_key $pki/server.key;
    ssl_client_certificate $pki/ca.crt;
    ssl_verify_client on;
    ssl_ecdh_curve secp384r1:secp521r1;
    ssl_session_tickets off;
    ssl_session_cache off;
    keepalive_requests 1000000;
    # Longer than setting up --idle-conns connections takes, so the memory measurement holds
    # them all (the default 75 s closes the first ones while the last are being set up).
    keepalive_timeout 600s;
    location / {
      default_type application/json;
      return 200 '{"status":"healthy","caller":"\$ssl_client_s_dn"}';
    }
  }
}
NGINX
"$NGINX" -c "$work/nginx.conf" -p "$work" -g 'daemon off;' 2>"$work/nginx.start.err" &
proc_track $!

echo "== building the Go server ($(go version | awk '{print $3}'))"
(cd "$root/scripts/bench/goserver" && GOCACHE="$work/gocache" GOPATH="$work/gopath" go build -o "$work/goserver" .)
"$work/goserver" -listen "127.0.0.1:$go_port" -cert "$pki/server.crt" -key "$pki/server.key" \
  -ca "$pki/ca.crt" 2>"$work/go.err" &
proc_track $!

# The memory measurement holds $idle_conns connections from one client identity: lift the
# per-identity and total connection limits above it, and the idle timeout above the time it
# takes to set them up (as for nginx).
"$bin/mtls-server" --listen "127.0.0.1:$mtls_port" --cert "$pki/server.crt" --key "$pki/server.key" \
  --ca-cert "$pki/ca.crt" --crl "$work/ca.crl" --max-connections $((idle_conns + 1000)) \
  --max-connections-per-identity $((idle_conns + 1000)) --idle-timeout 600s \
  2>"$work/mtls-server.err" &
mtls_pid=$!
proc_track "$mtls_pid"

wait_ready nginx "$nginx_port"
wait_ready go "$go_port"
wait_ready mtls-server "$mtls_port"

results="$work/results.jsonl"
: >"$results"
for rep in $(seq 1 "$reps"); do
  for mode in new keepalive; do
    for target in nginx go mtls-server; do
      case $target in
        nginx) port=$nginx_port ;;
        go) port=$go_port ;;
        mtls-server) port=$mtls_port ;;
      esac
      echo "== rep $rep/$reps: $target, $mode, $duration x $concurrency" >&2
      # The caller check: every server answers with something naming bench-client.
      "$bin/mtls-bench" "https://localhost:$port/api/status" --mode "$mode" --duration "$duration" \
        --concurrency "$concurrency" --cert "$pki/bench-client.crt" --key "$pki/bench-client.key" \
        --ca-cert "$pki/ca.crt" --expect bench-client --label "$target" --json --quiet \
        | jq -c . >>"$results" || true
    done
  done
done
[ -n "$json_dir" ] && mkdir -p "$json_dir" && cp "$results" "$json_dir/"

echo
echo "Medians of $reps runs, $duration each, concurrency $concurrency, $(nproc) cores, $(date -u +%F)"
jq -rs '
  def median: sort | if length == 0 then 0 elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
  group_by(.mode) | .[] | . as $runs |
  ($runs | map(select(.label == "mtls-server") | (if .mode == "new" then .handshakes_per_sec else .requests_per_sec end)) | median) as $ours |
  ($runs | group_by(.label) | .[] |
    { mode: .[0].mode, label: .[0].label,
      rate: (map(if .mode == "new" then .handshakes_per_sec else .requests_per_sec end) | median),
      p99: (map(.p99_ms) | median),
      errors: (map(.errors_total) | add) }) |
  [ .mode, .label, (.rate | floor), (.p99 * 100 | round / 100), .errors,
    (if .rate > 0 then ($ours / .rate * 100 | round / 100) else 0 end) ] | @tsv
' "$results" | awk 'BEGIN { printf "%-10s %-12s %12s %9s %7s %18s\n", "mode", "server", "rate/s", "p99 ms", "errors", "mtls-server ratio" }
                     { printf "%-10s %-12s %12s %9s %7s %17sx\n", $1, $2, $3, $4, $5, $6 }'
echo "(rate: handshakes/s in new mode, requests/s in keepalive mode)"

# Memory: hold $idle_conns idle mTLS keep-alive connections and measure the server's RSS growth.
rss_kib() { # total RSS of the given PIDs and their children, KiB
  local total=0 p
  for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ',')" 2>/dev/null || true); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
hold() { # hold NAME PORT PID...
  local name=$1 port=$2; shift 2
  local before after held log="$work/hold-$name.err"
  before=$(rss_kib "$@")
  "$bin/mtls-bench" "https://localhost:$port/api/status" --mode hold --concurrency "$idle_conns" \
    --duration 600s --requests "$idle_conns" --cert "$pki/bench-client.crt" --key "$pki/bench-client.key" \
    --ca-cert "$pki/ca.crt" --expect bench-client --json >"$work/hold-$name.json" 2>"$log" &
  local bench=$!
  # Wait (bounded: a slow server on a busy machine may need minutes for 10,000 handshakes)
  # until every connection has made its request and is idle. An idle HTTP/1 connection of
  # mtls-server is parked 100 ms after its response (docs/performance.md).
  for _ in $(seq 1 5400); do
    grep -q "\] ok $idle_conns of" "$log" 2>/dev/null && break
    sleep 0.1
  done
  sleep 1
  after=$(rss_kib "$@")
  # Divide by the connections actually held, should the wait above have run out.
  held=$(sed -n 's/.*\] ok \([0-9]*\) of.*/\1/p' "$log" | tail -n 1)
  held=${held:-0}
  kill -TERM "$bench" 2>/dev/null || true
  wait "$bench" 2>/dev/null || true
  if [ "$held" -eq 0 ]; then
    echo "$name: no connection was set up (see $log)" >&2
    return
  fi
  printf "%-12s %8d idle connections: RSS %6d MiB -> %6d MiB, %5.1f KiB per connection\n" \
    "$name" "$held" $((before / 1024)) $((after / 1024)) \
    "$(echo "($after - $before) / $held" | bc -l)"
}
if [ "$idle_conns" -gt 0 ]; then
  echo
  echo "Memory with $idle_conns idle keep-alive mTLS connections"
  hold mtls-server "$mtls_port" "$mtls_pid"
  hold nginx "$nginx_port" "$(cat "$work/nginx.pid")"
fi

# Rotation cost: the same enrolled server once with 10 s certificates (a rotation about every
# 5 s) and once with 1 h certificates, keep-alive load on both, alternating.
if [ "$rotation_reps" -gt 0 ]; then
  echo
  echo "Keep-alive throughput with and without rotation (10 s certificates), 20 s runs"
  ca_local=${ca_url/127.0.0.1/localhost}
  start_enrolled() { # start_enrolled NAME TTL PORT
    local token
    token=$("$bin/mtls-ca" --data-dir "$work/ca" token --spiffe-id "spiffe://mesh.local/bench/$1" \
      --dns localhost --ip 127.0.0.1 2>/dev/null)
    "$bin/mtls-server" --listen "127.0.0.1:$3" --ca-url "$ca_local" --ca-cert "$pki/ca.crt" \
      --spiffe-id "spiffe://mesh.local/bench/$1" --join-token "$token" --ttl "$2" \
      2>"$work/$1.err" >/dev/null &
    proc_track $!
  }
  rot_port=$(free_port) still_port=$(free_port)
  start_enrolled rotating 10s "$rot_port"
  start_enrolled steady 1h "$still_port"
  wait_ready rotating "$rot_port"
  wait_ready steady "$still_port"
  : >"$work/rotation.jsonl"
  for rep in $(seq 1 "$rotation_reps"); do
    for target in steady rotating; do
      port=$still_port
      [ "$target" = rotating ] && port=$rot_port
      echo "== rotation rep $rep/$rotation_reps: $target" >&2
      "$bin/mtls-bench" "https://localhost:$port/api/status" --mode keepalive --duration 20s \
        --concurrency "$concurrency" --cert "$pki/bench-client.crt" --key "$pki/bench-client.key" \
        --ca-cert "$pki/ca.crt" --expect bench-client --label "$target" --json --quiet \
        | jq -c . >>"$work/rotation.jsonl" || true
    done
  done
  rotations=$(grep -c 'rotated' "$work/rotating.err" || true)
  jq -rs '
    def median: sort | if length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end;
    group_by(.label) | .[] | [.[0].label, (map(.requests_per_sec) | median | floor), (map(.errors_total) | add)] | @tsv
  ' "$work/rotation.jsonl" | awk '{ printf "%-10s %10s req/s  errors %s\n", $1, $2, $3 }'
  echo "rotations of the rotating server during the runs: $rotations"
fi
