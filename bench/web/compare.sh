#!/usr/bin/env bash
# Web benchmarks, loopback only, each bounded in time (about 1 minute in all):
#   1. HTTP: wrk -t2 -c256 against athanor-hello's GET /hello/:name and against nginx-light serving
#      a small static file with the same body (nginx config in a temp dir, run as this user on a
#      high port, 2 worker processes = the 2 Athanor schedulers).
#   2. WebSocket echo: athanor-loadgen with 1,000 connections in a closed loop against
#      athanor-hello's /echo and against a Node.js `ws` echo server (bench/web/ws_echo_server.js).
#   3. Scale: CONNS (default 19,900) WebSocket connections held open against a fresh athanor-hello:
#      server RSS per connection, kernel memory per connection (/proc/meminfo Slab + TCP buffer
#      pages from /proc/net/sockstat), and the time for one broadcast to reach every connection.
#   BOUNDS=1 also runs two minimal C echo servers (bench/web/raw_*_echo.c) under the same load: what
#   any server on epoll, and on io_uring, can do on this machine.
# Usage: bench/web/compare.sh [--quick]     (env: BUILD=build dir, SKIP_BUILD=1, SECS=run length, PAIRS=echo pairs, CONNS=scale, BOUNDS=1)
# Needs: wrk, nginx-light, node + npm (scripts/install-deps.sh --bench), and `ulimit -n` >= 20000.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${BUILD:-$ROOT/build/bench-web}
SECS=${SECS:-3}
CONNS=${CONNS:-19900}
if [[ "${1:-}" == --quick ]]; then SECS=1; CONNS=2000; PAIRS=1; fi
TMP=$(mktemp -d)
chmod 755 "$TMP"  # nginx workers run as another user when started by root
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
  [[ -f "$TMP/nginx.pid" ]] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

echo "== machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r), ulimit -n $(ulimit -n)"
if [[ -z "${SKIP_BUILD:-}" ]]; then  # SKIP_BUILD=1: use the binaries already in $BUILD
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DATHANOR_BUILD_TESTS=OFF -DATHANOR_BUILD_BENCH=OFF \
        -DATHANOR_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$BUILD" -j2 --target athanor-hello athanor-loadgen >/dev/null
fi
HELLO=$BUILD/tools/athanor-hello/athanor-hello
LOADGEN=$BUILD/tools/athanor-loadgen/athanor-loadgen

wait_port() {  # waits until something listens on 127.0.0.1:$1 (bounded: 10 s)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}
wrk_line() {  # prints "requests/s p50 p99 errors" for a wrk run against $1
  local out
  out=$(wrk -t2 -c256 -d"${SECS}s" --latency "$1" 2>&1)
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errs=$( (grep -E 'Socket errors|Non-2xx' <<<"$out" || echo none) | tr '\n' ' ')
  echo "$rps $p50 $p99 $errs"
}

# ---- 1. HTTP hello world ----
echo "== 1. HTTP: wrk -t2 -c256 -d${SECS}s"
"$HELLO" --port 18181 --acceptors 2 --reuse-port 2>/dev/null &
PIDS+=($!)
wait_port 18181
read -r a_rps a_p50 a_p99 a_err <<<"$(wrk_line http://127.0.0.1:18181/hello/bench)"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
echo "athanor-hello GET /hello/bench: ${a_rps} req/s, p50 ${a_p50}, p99 ${a_p99}, errors: ${a_err}"

if command -v nginx >/dev/null; then
  mkdir -p "$TMP/www/hello"
  printf 'Hello, bench' >"$TMP/www/hello/bench"
  cat >"$TMP/nginx.conf" <<EOF
worker_processes 2;
$( [[ $(id -u) -eq 0 ]] && echo "user root;" )
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/body; proxy_temp_path $TMP/proxy; fastcgi_temp_path $TMP/fcgi;
  uwsgi_temp_path $TMP/uwsgi; scgi_temp_path $TMP/scgi;
  default_type text/plain;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:18182; root $TMP/www; }
}
EOF
  nginx -c "$TMP/nginx.conf" -p "$TMP" 2>/dev/null
  wait_port 18182
  read -r n_rps n_p50 n_p99 n_err <<<"$(wrk_line http://127.0.0.1:18182/hello/bench)"
  kill "$(cat "$TMP/nginx.pid")"; rm -f "$TMP/nginx.pid"
  echo "nginx-light static /hello/bench: ${n_rps} req/s, p50 ${n_p50}, p99 ${n_p99}, errors: ${n_err}"
else
  echo "nginx not installed: skipped (scripts/install-deps.sh --bench)"
fi

# ---- 2. WebSocket echo, 1,000 connections ----
# PAIRS back-to-back pairs (Athanor, then Node's ws), so that a drift in this VM's speed hits both
# sides of a pair alike; the ratios section reports each pair and their median.
PAIRS=${PAIRS:-3}
echo "== 2. WebSocket echo: 1000 connections, closed loop, 32-byte messages, ${SECS}s, $PAIRS pairs"
have_node=""
if command -v node >/dev/null && (cd tests/web/js && { [[ -d node_modules/ws ]] || npm ci --no-audit --no-fund --loglevel=error; }); then
  have_node=1
else
  echo "node/ws not available: Athanor alone"
fi
# With BOUNDS=1 each pair also runs the minimal C io_uring server (2b below), for what any server
# can reach against ws in the same minute on this machine.
raw_uring=""
if [[ -n "${BOUNDS:-}" ]] && cc -O2 -o "$TMP/raw_uring_pairs" bench/web/raw_uring_echo.c -luring -lpthread 2>/dev/null; then
  raw_uring="$TMP/raw_uring_pairs"
fi
for ((pair = 1; pair <= PAIRS; pair++)); do
  if [[ -n "$raw_uring" ]]; then
    "$raw_uring" 18189 2 &
    PIDS+=($!)
    wait_port 18189
    "$LOADGEN" --port 18189 --connections 1000 --duration "$SECS" --sources 4 >"$TMP/ws_raw.$pair.json"
    sed 's/^/raw uring: /' "$TMP/ws_raw.$pair.json"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  fi
  "$HELLO" --port 18183 --reuse-port 2>/dev/null &
  PIDS+=($!)
  wait_port 18183
  "$LOADGEN" --port 18183 --connections 1000 --duration "$SECS" --sources 4 >"$TMP/ws_athanor.$pair.json"
  sed 's/^/athanor: /' "$TMP/ws_athanor.$pair.json"
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  if [[ -n "$have_node" ]]; then
    NODE_PATH=$ROOT/tests/web/js/node_modules node bench/web/ws_echo_server.js 18184 2>/dev/null &
    PIDS+=($!)
    wait_port 18184
    "$LOADGEN" --port 18184 --connections 1000 --duration "$SECS" --sources 4 >"$TMP/ws_node.$pair.json"
    sed 's/^/node ws: /' "$TMP/ws_node.$pair.json"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  fi
done

# ---- 2b. What any server can do here (BOUNDS=1): minimal C echo servers on epoll and io_uring ----
raw_bound() {  # raw_bound NAME PORT LIBS...: builds bench/web/raw_NAME_echo.c, runs it under the echo load
  local name=$1 port=$2
  shift 2
  if ! cc -O2 -o "$TMP/raw_$name" "bench/web/raw_${name}_echo.c" "$@" -lpthread 2>/dev/null; then
    echo "raw $name: not built (missing library: scripts/install-deps.sh --bench)"
    return 0
  fi
  "$TMP/raw_$name" "$port" 2 &
  PIDS+=($!)
  wait_port "$port"
  "$LOADGEN" --port "$port" --connections 1000 --duration "$SECS" --sources 4 | sed "s/^/raw $name: /"
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}
if [[ -n "${BOUNDS:-}" ]]; then
  echo "== 2b. Bounds: minimal C WebSocket echo servers, 2 threads, same load"
  raw_bound epoll 18186
  [[ -n "$raw_uring" ]] || raw_bound uring 18187 -luring  # (else it ran in each pair above)
fi

# ---- 3. Connection scale and broadcast ----
echo "== 3. Scale: $CONNS WebSocket connections held, then one broadcast"
meminfo_kib() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }
tcp_pages() { awk '$1 == "TCP:" {for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }
slab0=$(meminfo_kib Slab); tcp0=$(tcp_pages)
"$HELLO" --port 18185 --max-connections 20000 --reuse-port 2>/dev/null &
HP=$!
PIDS+=($HP)
wait_port 18185
"$LOADGEN" --port 18185 --path '/echo?join=1' --connections "$CONNS" --workers 2 --sources 16 --server-pid "$HP" \
           --duration 0 --broadcast --hold 2 >"$TMP/scale.json" &
LG=$!
# Sample the kernel while the connections are held (the loadgen prints "broadcast" then holds 2 s).
for _ in $(seq 600); do grep -q broadcast "$TMP/scale.json" 2>/dev/null && break; sleep 0.1; done
slab1=$(meminfo_kib Slab); tcp1=$(tcp_pages)
wait "$LG" || true
sed 's/^/athanor: /' "$TMP/scale.json"
held=$(grep -o '"connections":[0-9]*' "$TMP/scale.json" | head -1 | cut -d: -f2)
if [[ -n "$held" && "$held" -gt 0 ]]; then
  echo "kernel: Slab +$(( (slab1 - slab0) * 1024 / held )) bytes/connection pair, TCP buffers +$(( (tcp1 - tcp0) * 4096 / held )) bytes/connection pair (both ends are on this machine)"
fi
kill "$HP"; wait "$HP" 2>/dev/null || true

# ---- Ratios (the README's table) ----
rate() { grep -o '"msgs_per_sec":[0-9]*' "$1" 2>/dev/null | cut -d: -f2; }
echo "== ratios"
[[ -n "${a_rps:-}" && -n "${n_rps:-}" ]] && awk -v a="$a_rps" -v n="$n_rps" 'BEGIN { printf "HTTP hello: Athanor / nginx = %.2fx\n", a / n }'
ratios=()
for ((pair = 1; pair <= PAIRS; pair++)); do
  a_ws=$(rate "$TMP/ws_athanor.$pair.json"); n_ws=$(rate "$TMP/ws_node.$pair.json")
  [[ -n "$a_ws" && -n "$n_ws" ]] || continue
  r=$(awk -v a="$a_ws" -v n="$n_ws" 'BEGIN { printf "%.2f", a / n }')
  ratios+=("$r")
  echo "WebSocket echo, pair $pair: Athanor $a_ws / node ws $n_ws msgs/s = ${r}x"
  r_ws=$(rate "$TMP/ws_raw.$pair.json")
  [[ -n "$r_ws" ]] && awk -v r="$r_ws" -v n="$n_ws" -v a="$a_ws" 'BEGIN { printf "  same minute, minimal C io_uring server: %d msgs/s = %.2fx ws (Athanor at %.0f%% of it)\n", r, r / n, 100 * a / r }'
done
if ((${#ratios[@]})); then
  echo "WebSocket echo: Athanor / node ws = $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')x, median of ${#ratios[@]} pairs (target >= 3)"
fi
true
