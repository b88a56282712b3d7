#!/usr/bin/env bash
# Side-by-side load test of mTLS-terminating L4 proxies: mtls-proxy inbound, HAProxy, stunnel
# and nginx stream, all with the same P-384 certificates and the same CRL, all in front of the
# same plaintext backend, driven by mtls-bench on loopback. Bounded; stops what it starts.
# See docs/performance.md ("mtls-proxy against HAProxy, stunnel and nginx").
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/bench-proxies.sh [--duration 8s] [--concurrency 32] [--reps 3] [--idle-conns 2000]
                                [--bulk-mib 64] [--pin] [--json-dir DIR]

Starts a plaintext backend (nginx http: `return 200` on /, a static file on /bulk) and four
mTLS proxies in front of it on 127.0.0.1, all with the same root, server certificate, client
certificate and CRL (verification of the client certificate required, TLS 1.3 only):
  mtls-proxy  mtls-proxy inbound (L4, release build)
  haproxy     mode tcp, bind ... ssl crt ... verify required ca-file ... crl-file ...
  stunnel     verifyChain = yes, requireCert = yes, CAfile, CRLfile
  nginx       stream module, ssl_verify_client on, ssl_crl
Then, repetitions alternating the proxies, with mtls-bench:
  new        a full mTLS handshake per request through the proxy (connections/s)
  keepalive  persistent connections (requests/s)
  bulk       keep-alive GET of a --bulk-mib file on 4 connections (MiB/s)
  latency    paced at 50% of each proxy's median keep-alive peak, through the proxy and
             directly to the backend (plaintext) at the same rate: added p50/p99
  memory     RSS of the proxy's processes before and with --idle-conns idle proxied connections
and prints a table of medians with the range (min..max) of the repetitions. Needs haproxy, stunnel (stunnel4), nginx with the stream module
(libnginx-mod-stream), jq, curl, bc and python3: it names what is missing and stops.

Options:
  --duration D     length of each measurement (default 8s)
  --concurrency N  parallel connections (default 32)
  --reps N         repetitions; medians are reported (default 3)
  --idle-conns N   idle proxied connections for the memory measurement (default 2000, 0 = skip)
  --bulk-mib N     size of the bulk response in MiB (default 64)
  --pin            one core for the proxy under test, the other for everything else (taskset):
                   every proxy on CPU 1 with one thread or process (mtls-proxy --threads 1,
                   HAProxy nbthread 1, nginx worker_processes 1, stunnel as it is), the backend
                   and mtls-bench (--threads 1) on CPU 0; needs 2 CPUs and taskset (util-linux)
  --json-dir DIR   keep every mtls-bench JSON report in DIR
  -h, --help       this text
USAGE
}

duration=8s concurrency=32 reps=3 idle_conns=2000 bulk_mib=64 json_dir="" pin=0
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --idle-conns) idle_conns=$2; shift 2 ;;
    --bulk-mib) bulk_mib=$2; shift 2 ;;
    --json-dir) json_dir=$2; shift 2 ;;
    --pin) pin=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-proxies.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$concurrency" "$reps" "$bulk_mib"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench-proxies.sh: expected a whole number >= 1, got '$n'" >&2; exit 2; }
done
[[ $idle_conns =~ ^[0-9]+$ ]] || { echo "bench-proxies.sh: --idle-conns must be a whole number, got '$idle_conns'" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/proc.sh
. "$root/scripts/lib/proc.sh"
# Thousands of sockets per process (two per proxied connection) for the memory measurement.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- The peers: found, or named with the package that provides them --------------------------
missing=()
find_bin() { command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true; }
HAPROXY=$(find_bin haproxy) STUNNEL=$(find_bin stunnel) NGINX=$(find_bin nginx)
[ -n "$HAPROXY" ] || missing+=("haproxy (package haproxy)")
[ -n "$STUNNEL" ] || missing+=("stunnel (package stunnel4)")
[ -n "$NGINX" ] || missing+=("nginx (package nginx-light or nginx)")
stream_module=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$stream_module" ] || missing+=("the nginx stream module $stream_module (package libnginx-mod-stream)")
tools=(jq curl bc python3)
((pin)) && tools+=(taskset)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool (package $tool)")
done
if ((${#missing[@]})); then
  echo "bench-proxies.sh: missing:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "install them, e.g.: apt-get install haproxy stunnel4 nginx-light libnginx-mod-stream jq curl bc python3" >&2
  exit 1
fi
if ((pin)) && [ "$(nproc)" -lt 2 ]; then
  echo "bench-proxies.sh: --pin needs 2 CPUs (one for the proxy, one for the rest); this machine has $(nproc)" >&2
  exit 1
fi

# --pin: what runs where. on_proxy_cpu / on_load_cpu prefix a command; the thread settings keep
# each proxy to the one core it is given, so all four are compared on equal terms.
if ((pin)); then
  on_proxy_cpu=(taskset -c 1) on_load_cpu=(taskset -c 0)
  mtls_threads=(--threads 1) bench_threads=(--threads 1)
  haproxy_threads="nbthread 1" nginx_workers=1 backend_workers=1
else
  on_proxy_cpu=() on_load_cpu=()
  mtls_threads=() bench_threads=()
  haproxy_threads="" nginx_workers=auto backend_workers=auto
fi

echo "== building release binaries"
(cd "$root" && cargo build --release -q -p mtls)
bin="${CARGO_TARGET_DIR:-$root/target}/release"

work=$(mktemp -d)
proc_cleanup_on_exit
# KEEP_WORK=1 keeps the work directory (logs, certificates) for a look afterwards.
proc_work_dir "$work" "${KEEP_WORK:-0}"

free_port() {
  # Bind port 0 and report what the kernel chose; good enough on an otherwise idle machine.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# What the backend answers on /, so every proxied response is checked to come from it.
marker=backend-ok

wait_ready() { # wait_ready NAME PORT PID
  local _
  for _ in $(seq 1 100); do
    if curl -s --max-time 2 --cacert "$pki/ca.crt" --cert "$pki/bench-client.crt" \
         --key "$pki/bench-client.key" "https://localhost:$2/" | grep -q "$marker"; then return 0; fi
    proc_alive "$3" || break
    sleep 0.1
  done
  echo "bench-proxies.sh: $1 did not become ready on port $2; its log:" >&2
  cat "$work/$1.err" >&2 2>/dev/null || true
  exit 1
}

echo "== certificates (P-384, OpenSSL scripts)"
pki="$work/pki"
"$root/scripts/gen-root-ca.sh" "$pki" >/dev/null
"$root/scripts/sign-server-cert.sh" "$pki" server --dns localhost --ip 127.0.0.1 \
  --spiffe-id spiffe://mesh.local/bench/server >/dev/null
"$root/scripts/sign-client-cert.sh" "$pki" bench-client \
  --spiffe-id spiffe://mesh.local/bench/bench-client >/dev/null
cat "$pki/server.crt" "$pki/server.key" >"$work/server.pem" # HAProxy takes both in one file

echo "== CRL from mtls-ca on the same root, revoking a second client certificate"
# mtls-ca serves from the OpenSSL-made root, signs a second client's CSR with a join token,
# revokes it, and serves the CRL (DER; PEM for the OpenSSL-based proxies).
"$bin/mtls-ca" --data-dir "$work/ca" --listen 127.0.0.1:0 --root-cert "$pki/ca.crt" \
  --root-key "$pki/ca.key" >"$work/ca.out" 2>"$work/ca.err" &
ca_pid=$!
proc_track "$ca_pid"
wait_for_line "$work/ca.out" "listening on" 10 "$ca_pid" || { cat "$work/ca.err" >&2; exit 1; }
ca_url=$(sed -n 's/^listening on //p' "$work/ca.out" | head -n 1)
ca_url=${ca_url/127.0.0.1/localhost}
revoked_id=spiffe://mesh.local/bench/revoked-client
token=$("$bin/mtls-ca" --data-dir "$work/ca" token --spiffe-id "$revoked_id" 2>"$work/token.err") ||
  { cat "$work/token.err" >&2; exit 1; }
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -subj "/CN=revoked-client" \
  -keyout "$pki/revoked-client.key" -out "$work/revoked-client.csr" 2>/dev/null
jq -n --rawfile csr "$work/revoked-client.csr" --arg id "$revoked_id" '{csr: $csr, requested_id: $id}' |
  curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" --json @- "$ca_url/api/v1/sign" \
    >"$work/revoked-client.json"
jq -r .certificate "$work/revoked-client.json" >"$pki/revoked-client.crt"
"$bin/mtls-ca" --data-dir "$work/ca" revoke --serial "$(jq -r .serial "$work/revoked-client.json")" \
  >/dev/null 2>"$work/revoke.err" || { cat "$work/revoke.err" >&2; exit 1; }
curl -sf --cacert "$pki/ca.crt" "$ca_url/api/v1/crl" | openssl crl -inform DER -out "$work/ca.crl"
proc_stop "$ca_pid"

backend_port=$(free_port) mtls_port=$(free_port) haproxy_port=$(free_port)
stunnel_port=$(free_port) nginx_port=$(free_port)
max_conns=$((idle_conns + 1000))

# --- The backend: the same plaintext nginx behind every proxy ---------------------------------
mkdir -p "$work/www"
head -c $((bulk_mib * 1024 * 1024)) /dev/zero >"$work/www/bulk"
# nginx workers run as another user when started by root: they must be able to read the file.
chmod a+rx "$work" "$work/www"
chmod a+r "$work/www/bulk"
cat >"$work/backend.conf" <<NGINX
worker_processes $backend_workers;
worker_rlimit_nofile 65536;
pid $work/backend.pid;
error_log $work/backend.err warn;
events { worker_connections 20000; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$backend_port;
    location = / { default_type text/plain; return 200 '$marker\n'; }
    location = /bulk { root $work/www; }
  }
}
NGINX
${on_load_cpu[@]+"${on_load_cpu[@]}"} "$NGINX" -c "$work/backend.conf" -p "$work" -g 'daemon off;' 2>"$work/backend.start.err" &
backend_pid=$!
proc_track "$backend_pid"

# --- The proxies ------------------------------------------------------------------------------
# mtls-proxy: static certificate files and the CRL; the idle connections of the memory
# measurement all come from one client identity, so the limits are lifted above them.
${on_proxy_cpu[@]+"${on_proxy_cpu[@]}"} "$bin/mtls-proxy" ${mtls_threads[@]+"${mtls_threads[@]}"} inbound --listen "127.0.0.1:$mtls_port" --to "127.0.0.1:$backend_port" \
  --cert "$pki/server.crt" --key "$pki/server.key" --ca-cert "$pki/ca.crt" --crl "$work/ca.crl" \
  --max-connections "$max_conns" --max-connections-per-identity "$max_conns" \
  >"$work/mtls-proxy.out" 2>"$work/mtls-proxy.err" &
mtls_pid=$!
proc_track "$mtls_pid"

cat >"$work/haproxy.cfg" <<HAPROXY
global
  maxconn $max_conns
  $haproxy_threads
  ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
defaults
  mode tcp
  timeout connect 10s
  timeout client 5m
  timeout server 5m
frontend mtls
  bind 127.0.0.1:$haproxy_port ssl crt $work/server.pem verify required ca-file $pki/ca.crt crl-file $work/ca.crl curves secp384r1:secp521r1
  default_backend app
backend app
  server app 127.0.0.1:$backend_port
HAPROXY
${on_proxy_cpu[@]+"${on_proxy_cpu[@]}"} "$HAPROXY" -f "$work/haproxy.cfg" -db >"$work/haproxy.out" 2>"$work/haproxy.err" &
haproxy_pid=$!
proc_track "$haproxy_pid"

cat >"$work/stunnel.conf" <<STUNNEL
foreground = yes
pid =
debug = 3
output = $work/stunnel.log
[mtls]
accept = 127.0.0.1:$stunnel_port
connect = 127.0.0.1:$backend_port
cert = $pki/server.crt
key = $pki/server.key
CAfile = $pki/ca.crt
CRLfile = $work/ca.crl
requireCert = yes
verifyChain = yes
sslVersionMin = TLSv1.3
curves = secp384r1:secp521r1
options = NO_TICKET
TIMEOUTidle = 300
STUNNEL
${on_proxy_cpu[@]+"${on_proxy_cpu[@]}"} "$STUNNEL" "$work/stunnel.conf" >"$work/stunnel.out" 2>"$work/stunnel.err" &
stunnel_pid=$!
proc_track "$stunnel_pid"

cat >"$work/nginx.conf" <<NGINX
load_module $stream_module;
worker_processes $nginx_workers;
worker_rlimit_nofile 65536;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 20000; }
stream {
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate $pki/server.crt;
    ssl_certificate_key $pki/server.key;
    ssl_client_certificate $pki/ca.crt;
    ssl_verify_client on;
    ssl_crl $work/ca.crl;
    ssl_ecdh_curve secp384r1:secp521r1;
    ssl_session_tickets off;
    ssl_session_cache off;
    proxy_pass 127.0.0.1:$backend_port;
    proxy_timeout 5m;
  }
}
NGINX
${on_proxy_cpu[@]+"${on_proxy_cpu[@]}"} "$NGINX" -c "$work/nginx.conf" -p "$work" -g 'daemon off;' >"$work/nginx.out" 2>"$work/nginx.start.err" &
nginx_pid=$!
proc_track "$nginx_pid"

wait_ready mtls-proxy "$mtls_port" "$mtls_pid"
wait_ready haproxy "$haproxy_port" "$haproxy_pid"
wait_ready stunnel "$stunnel_port" "$stunnel_pid"
wait_ready nginx "$nginx_port" "$nginx_pid"

port_of() {
  case $1 in
    mtls-proxy) echo "$mtls_port" ;;
    haproxy) echo "$haproxy_port" ;;
    stunnel) echo "$stunnel_port" ;;
    nginx) echo "$nginx_port" ;;
  esac
}
proxies=(mtls-proxy haproxy stunnel nginx)

# The refusals are part of the configuration under test: without a client certificate, or with
# the revoked one, no byte of the backend comes back.
for p in "${proxies[@]}"; do
  url="https://localhost:$(port_of "$p")/"
  if curl -s --max-time 5 --cacert "$pki/ca.crt" "$url" | grep -q "$marker" ||
     curl -s --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/revoked-client.crt" \
       --key "$pki/revoked-client.key" "$url" | grep -q "$marker"; then
    echo "bench-proxies.sh: $p answered a caller without a valid client certificate; its configuration is wrong" >&2
    exit 1
  fi
done


loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)

results="$work/results.jsonl"
: >"$results"
cpu_ticks() { # cpu_ticks PID... -> user + system clock ticks of the PIDs and their children
  local total=0 p
  for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ',')" 2>/dev/null || true); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
pids_of() { # pids_of PROXY -> its main process (nginx: the master; workers are its children)
  case $1 in
    mtls-proxy) echo "$mtls_pid" ;;
    haproxy) echo "$haproxy_pid" ;;
    stunnel) echo "$stunnel_pid" ;;
    nginx) cat "$work/nginx.pid" ;;
    direct) echo "$backend_pid" ;;
  esac
}
hz=$(getconf CLK_TCK)
bench() { # bench LABEL KIND URL ARGS... -> one JSON line in $results, tagged with KIND and the
  # proxy's CPU time per request (what limits it when the two cores are the bottleneck)
  local label=$1 kind=$2 url=$3 pid before after
  shift 3
  pid=$(pids_of "$label")
  [ "$kind" = direct ] && pid=$(pids_of direct)
  before=$(cpu_ticks "$pid")
  ${on_load_cpu[@]+"${on_load_cpu[@]}"} "$bin/mtls-bench" "$url" ${bench_threads[@]+"${bench_threads[@]}"} --duration "$duration" --cert "$pki/bench-client.crt" \
    --key "$pki/bench-client.key" --ca-cert "$pki/ca.crt" --label "$label" --json --quiet "$@" \
    >"$work/last.json" || true
  after=$(cpu_ticks "$pid")
  jq -c --arg kind "$kind" --argjson ticks $((after - before)) --argjson hz "$hz" \
    '. + {kind: $kind, cpu_s: ($ticks / $hz), cpu_us_per_request: (if .requests > 0 then $ticks / $hz * 1e6 / .requests else 0 end)}' \
    "$work/last.json" >>"$results" || true
}

for rep in $(seq 1 "$reps"); do
  for kind in new keepalive bulk; do
    for p in "${proxies[@]}"; do
      echo "== rep $rep/$reps: $p, $kind" >&2
      url="https://localhost:$(port_of "$p")"
      case $kind in
        new) bench "$p" new "$url/" --mode new --concurrency "$concurrency" --expect "$marker" ;;
        keepalive) bench "$p" keepalive "$url/" --mode keepalive --concurrency "$concurrency" --expect "$marker" ;;
        bulk) bench "$p" bulk "$url/bulk" --mode keepalive --concurrency 4 --expect '' ;;
      esac
    done
  done
done

median_of() { # median_of LABEL KIND FIELD
  jq -rs --arg l "$1" --arg k "$2" --arg f "$3" '
    map(select(.label == $l and .kind == $k) | .[$f]) | sort
    | if length == 0 then 0 elif length % 2 == 1 then .[length/2|floor] else (.[length/2-1] + .[length/2]) / 2 end
  ' "$results"
}

# Added latency: each proxy paced at half its own keep-alive peak, and the backend directly
# (plaintext, same rate, same connections) right after it, so both see the same machine.
declare -A rate_of
for p in "${proxies[@]}"; do
  rate_of[$p]=$(median_of "$p" keepalive requests_per_sec | awk '{ r = int($1 / 2); print (r < 1 ? 1 : r) }')
done
for rep in $(seq 1 "$reps"); do
  for p in "${proxies[@]}"; do
    echo "== rep $rep/$reps: latency at ${rate_of[$p]}/s, $p and direct" >&2
    bench "$p" paced "https://localhost:$(port_of "$p")/" --mode keepalive --concurrency "$concurrency" \
      --rate "${rate_of[$p]}" --expect "$marker"
    bench "$p" direct "http://127.0.0.1:$backend_port/" --mode keepalive --concurrency "$concurrency" \
      --rate "${rate_of[$p]}" --expect "$marker"
  done
done
load_end=$(loadavg)
if [ -n "$json_dir" ]; then mkdir -p "$json_dir" && cp "$results" "$json_dir/"; fi

# --- Memory per idle proxied connection -------------------------------------------------------
rss_kib() { # total RSS of the given PIDs and their children, KiB
  local total=0 p
  for p in "$@" $(pgrep -P "$(echo "$@" | tr ' ' ',')" 2>/dev/null || true); do
    total=$((total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
declare -A mem_of
hold() { # hold NAME PID -> KiB per idle proxied connection in mem_of[NAME]
  local name=$1 pid=$2 before after log bench_pid
  log="$work/hold-$name.err"
  before=$(rss_kib "$pid")
  ${on_load_cpu[@]+"${on_load_cpu[@]}"} "$bin/mtls-bench" "https://localhost:$(port_of "$name")/" --mode hold --concurrency "$idle_conns" \
    --duration 120s --requests "$idle_conns" --cert "$pki/bench-client.crt" --key "$pki/bench-client.key" \
    --ca-cert "$pki/ca.crt" --expect "$marker" --json >"$work/hold-$name.json" 2>"$log" &
  bench_pid=$!
  proc_track "$bench_pid"
  # Every connection has made its request through the proxy and is idle (bounded wait).
  if ! wait_for_line "$log" "\] ok $idle_conns of" 100 "$bench_pid"; then
    echo "bench-proxies.sh: $name did not carry $idle_conns idle connections: $(tail -n 1 "$log")" >&2
    mem_of[$name]="n/a"
    proc_stop "$bench_pid"
    return 0
  fi
  sleep 1 # let the last responses leave the buffers
  after=$(rss_kib "$pid")
  proc_stop "$bench_pid"
  mem_of[$name]=$(echo "scale=1; ($after - $before) / $idle_conns" | bc -l)
  printf "%-11s RSS %6d KiB -> %6d KiB with %d idle connections: %s KiB per connection\n" \
    "$name" "$before" "$after" "$idle_conns" "${mem_of[$name]}"
}
if [ "$idle_conns" -gt 0 ]; then
  echo
  echo "Memory with $idle_conns idle proxied mTLS connections (RSS of the proxy's processes)"
  hold mtls-proxy "$mtls_pid"
  hold haproxy "$haproxy_pid"
  hold stunnel "$stunnel_pid"
  hold nginx "$(cat "$work/nginx.pid")"
fi

# --- The table ----------------------------------------------------------------------------------
values() { # values LABEL KIND EXPR -> JSON array of EXPR over the repetitions of LABEL's KIND runs
  jq -c -s --arg l "$1" --arg k "$2" "[.[] | select(.label == \$l and .kind == \$k) | $3]" "$results"
}
added() { # added LABEL FIELD -> JSON array, per repetition: paced minus direct (run in pairs)
  jq -c -s --arg l "$1" --arg f "$2" '
    [.[] | select(.label == $l and .kind == "paced") | .[$f]] as $p
    | [.[] | select(.label == $l and .kind == "direct") | .[$f]] as $d
    | [range(0; [($p | length), ($d | length)] | min) | $p[.] - $d[.]]' "$results"
}
summary() { # summary DECIMALS < JSON array -> "median (min..max)"; the median alone for one run
  jq -r --argjson d "$1" '
    def r: . * pow(10; $d) | round / pow(10; $d) | tostring;
    sort
    | if length == 0 then "-"
      else (if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end) as $m
        | if length == 1 then ($m | r) else "\($m | r) (\(.[0] | r)..\(.[-1] | r))" end
      end'
}
cell() { values "$1" "$2" "$3" | summary "$4"; }

echo
echo "Medians (min..max) of $reps runs, $duration each, concurrency $concurrency, $(nproc) cores, $(date -u +%F)"
if ((pin)); then
  echo "pinned: each proxy on CPU 1 (one thread or process), backend and mtls-bench on CPU 0"
else
  echo "not pinned: generator, backend and proxy share every core"
fi
echo "load average at start: $load_start; after the load runs: $load_end"
row="%-11s %-22s %-24s %-22s %-9s %-22s %-24s %8s %7s\n"
# shellcheck disable=SC2059 # the format is the table's layout, kept in one place
printf "$row" proxy "new conn/s" "keepalive req/s" "bulk MiB/s" "paced at" "added p50 ms" "added p99 ms" \
  "KiB/idle" errors
for p in "${proxies[@]}"; do
  errors=$(jq -s --arg l "$p" 'map(select(.label == $l) | .errors_total) | add' "$results")
  # shellcheck disable=SC2059
  printf "$row" "$p" "$(cell "$p" new .handshakes_per_sec 0)" "$(cell "$p" keepalive .requests_per_sec 0)" \
    "$(cell "$p" bulk .body_mib_per_sec 1)" "${rate_of[$p]}/s" "$(added "$p" p50_ms | summary 3)" \
    "$(added "$p" p99_ms | summary 3)" "${mem_of[$p]:-skipped}" "$errors"
done
echo "(added: p50/p99 through the proxy minus the direct plaintext call to the backend at the same"
echo " rate, in the same repetition)"
echo
echo "CPU time of the proxy (all its processes) per request, medians (min..max)"
row="%-11s %-22s %-22s %-22s %-22s\n"
# shellcheck disable=SC2059
printf "$row" proxy "new µs/conn" "keepalive µs/req" "bulk ms/MiB" "CPU s bulk run"
for p in "${proxies[@]}"; do
  # shellcheck disable=SC2059
  printf "$row" "$p" "$(cell "$p" new .cpu_us_per_request 0)" "$(cell "$p" keepalive .cpu_us_per_request 1)" \
    "$(cell "$p" bulk '.cpu_s * 1000 / ((.body_bytes / 1048576) + 1e-9)' 2)" "$(cell "$p" bulk .cpu_s 2)"
done
# shellcheck disable=SC2059
printf "$row" backend - "$(jq -c -s '[.[] | select(.kind == "direct") | .cpu_us_per_request]' "$results" | summary 1)"
echo "(backend: the plaintext nginx serving the direct paced runs, for scale)"
echo "versions: $("$bin/mtls-proxy" --version 2>/dev/null | head -n 1); $("$HAPROXY" -v | head -n 1 | cut -d' ' -f1-3);" \
  "$("$STUNNEL" -version 2>&1 | grep -m1 -o 'stunnel [0-9.]*'); $("$NGINX" -v 2>&1 | sed 's/.*: //'); $(openssl version | cut -d' ' -f1-2)"
