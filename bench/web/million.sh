#!/usr/bin/env bash
# Issue 14's scale run: CLIENTS (default 1,000,000) WebSocket clients joined to one Phoenix channel
# topic, held by a cluster of Athanor nodes on this machine's loopback; then one broadcast made on
# one node goes to every one of them. Prints ONE JSON line on stdout (progress goes to stderr):
#
#   {"bench":"million","ok":..,"clients_target":..,"connections_held":..,"server_nodes":..,
#    "user_bytes_per_conn":..,"kernel_bytes_per_conn":..,"broadcast_last_ms":..,"broadcast_p50_ms":..,
#    "connect_seconds":..,...}
#
#   bench/web/million.sh                    # the full million: at most TIME_LIMIT (10 minutes)
#   CLIENTS=100000 bench/web/million.sh     # a quick check: 6 nodes, about 25 s
#
# Exit status 0 when "ok": every client joined, was still connected after the broadcast, and had
# it; 1 otherwise (the line is printed all the same, with "error" if the run was cut short). Not a
# CI test: bench/README.md ("The million-client run") has the measured figures and what limits them.
#
# Layout. A process may hold 20,000 descriptors here (the hard RLIMIT_NOFILE), so the clients are
# spread over NODES = ceil(CLIENTS / PER_NODE) server nodes (PER_NODE 19,500: 52 nodes for a
# million) and as many client processes, client process k holding node k's share:
#   * node k: `athanor-bench channel_node --node_number k --nodes NODES --schedulers 1`, a
#     distribution node (athanor_million<k>@<host>, on 127.0.0.1) with the cluster relay
#     (web::pubsub::start_cluster) and a room:* channel that accepts every join (no Presence),
#     serving WebSockets on 127.0.0.1:<any port>; nodes k > 0 connect to node 0, the hub.
#   * client process k: `athanor-bench channel_clients`, the epoll client of channel_bench.cpp
#     (HTTP upgrade with a checked Sec-WebSocket-Accept, masked frames, answers the server's
#     pings), joining room:million from 127.<1+k/256>.<k%256>.1-8, at most 200 connections being
#     set up at a time per process.
#   The nodes use their own EPMD port (ERL_EPMD_PORT: a free one) and a temporary HOME holding a
#   fresh random cookie, so neither ~/.erlang.cookie nor a running EPMD is touched.
#
# Measured (all in the JSON line):
#   * connect_seconds: from starting the client processes until every client had its join reply
#     (or was lost). clients_joined: joined then; connections_held: the WebSocket connections the
#     nodes hold (their own count) after the broadcast; peak_connections: the most there were
#     (from /proc/net/sockstat). A connection that ends (the server may close one whose client
#     answered its ping too late: "1001 idle timeout") or is not joined by the join deadline
#     (100 s before the time limit) is lost: clients_lost and lost_reasons.
#   * user_bytes_per_conn: growth of the nodes' private memory (RssAnon: heap, stacks, all but
#     the shared program and libraries) from before the first client to all joined, over the
#     connections: a socket process, a channel process, the connection's buffers and its
#     subscription. user_heap_ / user_processes_bytes_per_conn: the same growth as the nodes count
#     it (malloc's bytes in use; the runtime's process blocks and frames). user_total_bytes_per_conn
#     includes the nodes' idle memory (node_idle_bytes each: runtime, distribution, relay).
#   * kernel_bytes_per_conn: growth of the kernel's Slab (socket structures, inodes, dentries,
#     epoll items) plus the TCP buffer pages of /proc/net/sockstat, over the connections: both ends
#     of each loopback connection. system_bytes_per_conn: growth of MemTotal - MemFree - Buffers -
#     Cached (everything, client processes included).
#   * The broadcast: node 0 (the hub, which holds its share of clients too) calls
#     web::broadcast("room:million", "tick", {"i": 0, "t": CLOCK_MONOTONIC ns}): its own clients,
#     then once to every other node's relay, which fans it out to its clients. broadcast_last_ms:
#     until the last client had the frame in its socket (the kernel's receive timestamp,
#     SO_TIMESTAMPNS); broadcast_last_read_ms: until the last client process had read it; p50/p99
#     over all clients from 1 ms histograms (upper edge of the bucket). The clients still waiting
#     after BROADCAST_WAIT s report what they have (broadcast_complete false, then
#     broadcast_last_so_far_ms). broadcast_peers: the peer relays the hub knew when it broadcast.
#   * CPU, in cores (CPU seconds per second), split into the nodes, the client processes, softirq
#     (loopback TCP's receive side, charged to no process) and others (anything else on the
#     machine): idle_nodes_cpu_cores (the nodes before any client), hold_cpu_cores (HOLD > 0:
#     joined clients idle, the server pinging each every 30 s) and broadcast_cpu_cores.
#
# Limits and safety: the run is bounded by TIME_LIMIT seconds (default 600) after the wait for an
# idle machine, and ends (the JSON line with "error") when MemAvailable falls below
# MIN_AVAILABLE_MB (2048); every process it starts is killed on exit, failure or Ctrl-C, and each
# one also dies with this script (PR_SET_PDEATHSIG). It refuses to start when its estimate of the
# memory needed does not fit. Run as root, it raises fs.file-max and net.ipv4.tcp_mem when they are
# too low for CLIENTS (not needed on this VM for a million), says so on stderr, and restores them.
#
# Env: CLIENTS (1000000), PER_NODE (19500), TIME_LIMIT (600), MIN_AVAILABLE_MB (2048), IDLE_WAIT
# (120: seconds to wait for idle CPUs first; 0: do not wait), HOLD (0: seconds to keep the joined
# clients idle before the broadcast, e.g. 65 to see them through the server's 30 s pings and its
# 60 s idle timeout), BROADCAST_WAIT (60), ATHANOR_BENCH (build/release/athanor-bench, built unless
# SKIP_BUILD=1), PYTHON (/usr/bin/python3 if present), KEEP=1 keeps the logs (always kept when the
# exit status is not 0).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

CLIENTS=${CLIENTS:-1000000}
PER_NODE=${PER_NODE:-19500}
TIME_LIMIT=${TIME_LIMIT:-600}
# python3 reads the results; Debian's own one starts in 0.1 s, where a pyenv shim may take 0.7 s of CPU.
PYTHON=${PYTHON:-$([[ -x /usr/bin/python3 ]] && echo /usr/bin/python3 || echo python3)}
MIN_AVAILABLE_MB=${MIN_AVAILABLE_MB:-2048}
IDLE_WAIT=${IDLE_WAIT:-120}
HOLD=${HOLD:-0}
BROADCAST_WAIT=${BROADCAST_WAIT:-60}
BENCH=${ATHANOR_BENCH:-build/release/athanor-bench}

t0=$(date +%s.%N)
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
say() { echo "[million $(printf '%6s' "$(since "$t0")") s] $*" >&2; }

for v in CLIENTS PER_NODE TIME_LIMIT MIN_AVAILABLE_MB IDLE_WAIT HOLD BROADCAST_WAIT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "million.sh: $v must be a whole number" >&2; exit 2; }
done
((CLIENTS > 0 && PER_NODE > 0)) || { echo "million.sh: CLIENTS and PER_NODE must be positive" >&2; exit 2; }
if [[ -z "${SKIP_BUILD:-}" && -z "${ATHANOR_BENCH:-}" ]]; then
  say "building athanor-bench"
  cmake --build build/release --target athanor-bench -j2 >/dev/null || { echo "million.sh: build failed" >&2; exit 1; }
fi
[[ -x "$BENCH" ]] || { echo "million.sh: no $BENCH (build it, or set ATHANOR_BENCH)" >&2; exit 1; }

# Waits (up to IDLE_WAIT s) for the CPUs to be nearly idle, as bench/compare.sh does: another
# build on the machine skews every figure. The last reading goes into the result (cpu_busy_before_pct).
cpu_busy() {
  "$PYTHON" - <<'PY'
import time
def snap():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(v), v[3] + v[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print(int(100 * (1 - (i1 - i0) / max(1, t1 - t0))))
PY
}
busy=$(cpu_busy)
if ((busy >= 15 && IDLE_WAIT > 0)); then
  say "waiting up to $IDLE_WAIT s for the machine to become idle (CPU $busy% busy)"
  waited=$SECONDS
  while ((busy >= 15 && SECONDS - waited < IDLE_WAIT)); do busy=$(cpu_busy); done
  ((busy >= 15)) && say "warning: the machine is still $busy% busy; running anyway"
fi
deadline=$(($(date +%s) + TIME_LIMIT))  # the time limit starts now

nodes=$(((CLIENTS + PER_NODE - 1) / PER_NODE))
declare -a share
for ((k = 0; k < nodes; k++)); do share[k]=$((CLIENTS / nodes + (k < CLIENTS % nodes ? 1 : 0))); done

work=$(mktemp -d /tmp/athanor-million.XXXXXX)
declare -a node_pid client_pid port
watchdog_pid=
declare -A sysctl_old
echo "{\"busy_before\":$busy}" >"$work/times.json"

# The result line, also on failure (then with "error"); the figures are worked out by python3
# from the processes' JSON lines and the /proc snapshots in $work.
report() {
  "$PYTHON" - "$work" "$CLIENTS" "$nodes" "${1:-}" <<'PY'
import json, sys, os, glob
work, target, nodes, error = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = {"bench": "million", "clients_target": target, "server_nodes": nodes}
def lines(path):
    try:
        return [json.loads(l) for l in open(path) if l.startswith("{")]
    except (OSError, ValueError):
        return []
def snap(name):
    try:
        return json.load(open(os.path.join(work, name + ".json")))
    except (OSError, ValueError):
        return None
node_lines = [lines(os.path.join(work, f"node{k}.out")) for k in range(nodes)]
client_lines = [lines(os.path.join(work, f"clients{k}.out")) for k in range(nodes)]
joined = [next((l for l in ls if l.get("event") == "joined"), None) for ls in client_lines]
out["clients_joined"] = sum(j.get("joined", j["clients"]) for j in joined if j)
t = snap("times") or {}
if "connect_seconds" in t: out["connect_seconds"] = round(t["connect_seconds"], 1)
if "startup_seconds" in t: out["nodes_start_seconds"] = round(t["startup_seconds"], 1)
stats = [[l for l in ls if l.get("event") == "stats"] for ls in node_lines]
if all(len(s) >= 2 for s in stats):
    out["connections_held_before_broadcast"] = sum(s[1]["connections"] for s in stats)
if all(len(s) >= 3 for s in stats):
    out["connections_held"] = sum(s[2]["connections"] for s in stats)
    out["slow_clients_cut"] = sum(s[2]["slow_clients_cut"] for s in stats)
    out["refused"] = sum(s[2]["refused"] for s in stats)
elif "connections_held_before_broadcast" in out:
    out["connections_held"] = out["connections_held_before_broadcast"]
base, full = snap("mem_base"), snap("mem_joined")
conns = out.get("connections_held_before_broadcast") or out["clients_joined"]
if base and full and conns:
    ub, uf = sum(base["node_anon"]), sum(full["node_anon"])
    out["user_bytes_per_conn"] = round((uf - ub) / conns)
    if all(len(s) >= 2 and "heap_bytes" in s[1] for s in stats):  # the nodes' own view of that memory
        for key in ("heap_bytes", "processes_bytes"):
            grown = sum(s[1][key] - s[0][key] for s in stats)
            out[f"user_{key.replace('_bytes', '')}_bytes_per_conn"] = round(grown / conns)
    out["user_total_bytes_per_conn"] = round(uf / conns)
    out["node_idle_bytes"] = round(ub / nodes)
    kb = lambda s: s["meminfo"]["Slab"] * 1024 + s["tcp_mem_pages"] * 4096
    out["kernel_bytes_per_conn"] = round((kb(full) - kb(base)) / conns)
    for key in ("SUnreclaim", "SReclaimable", "PageTables", "KernelStack"):
        out[f"kernel_{key.lower()}_bytes_per_conn"] = round((full["meminfo"][key] - base["meminfo"][key]) * 1024 / conns)
    out["kernel_tcp_buffer_bytes_per_conn"] = round((full["tcp_mem_pages"] - base["tcp_mem_pages"]) * 4096 / conns)
    used = lambda s: (s["meminfo"]["MemTotal"] - s["meminfo"]["MemFree"] - s["meminfo"]["Buffers"] - s["meminfo"]["Cached"]) * 1024
    out["system_bytes_per_conn"] = round((used(full) - used(base)) / conns)
    out["client_process_bytes_per_conn"] = round(sum(full["client_anon"]) / conns)
    out["user_bytes_total"] = uf
    out["kernel_bytes_total"] = kb(full) - kb(base)
    out["mem_available_after_join_mb"] = full["meminfo"]["MemAvailable"] // 1024
sent = [l for l in node_lines[0] if l.get("event") == "broadcast"] if node_lines else []
got = [next((l for l in ls if l.get("event") == "broadcast"), None) for ls in client_lines]
if sent:
    out["broadcast_call_ms"] = round(sent[0]["call_us"] / 1e3, 1)
    out["broadcast_peers"] = sent[0]["peers"]
last = [next((l for l in reversed(ls) if "lost" in l), None) for ls in client_lines]
if any(last):  # connections that ended or were never made, and why (the clients' view)
    out["clients_lost"] = sum(l["lost"] for l in last if l)
    out["clients_lost_after_join"] = sum(l["lost_after_join"] for l in last if l)
    reasons = {}
    for l in last:
        for why, n in (l or {}).get("lost_reasons", {}).items(): reasons[why] = reasons.get(why, 0) + n
    if reasons: out["lost_reasons"] = reasons
try:  # from the peak of TCP sockets in use: both ends of each connection, over those before
    out["peak_connections"] = (int(open(os.path.join(work, "peak_sockets")).read()) - base["tcp_inuse"]) // 2
except (OSError, ValueError, TypeError):
    pass
if sent and all(got):
    t_sent = sent[0]["sent_ns"]
    out["broadcast_complete"] = all(g.get("complete", True) for g in got)
    out["broadcast_delivered"] = sum(g["delivered"] for g in got)
    # Only a complete broadcast has a last client; an incomplete one says how far it got.
    last, last_read = ("broadcast_last_ms", "broadcast_last_read_ms") if out["broadcast_complete"] else \
        ("broadcast_last_so_far_ms", "broadcast_last_read_so_far_ms")
    reached = [g for g in got if g["delivered"]]
    if reached:
        out[last] = round((max(g["last_in_socket_ns"] for g in reached) - t_sent) / 1e6, 1)
        out[last_read] = round((max(g["last_read_ns"] for g in reached) - t_sent) / 1e6, 1)
    def pct(key, q):
        hist = {}
        for g in got:
            for ms, n in enumerate(g[key]):
                hist[ms] = hist.get(ms, 0) + n
        total, seen = sum(hist.values()), 0
        for ms in sorted(hist):
            seen += hist[ms]
            if seen > q * total: return ms + 1
        return None
    out["broadcast_p50_ms"] = pct("in_socket_ms", 0.5)
    out["broadcast_p99_ms"] = pct("in_socket_ms", 0.99)
    out["broadcast_read_p50_ms"] = pct("read_ms", 0.5)
    out["broadcast_per_node_last_ms"] = sorted(round((g["last_in_socket_ns"] - t_sent) / 1e6) for g in reached)[::max(1, nodes // 8)]
def cores(a, b):  # CPU used between two snapshots, in cores (CPU seconds per second)
    wall = b["time"] - a["time"]
    nodes_, clients_ = b["node_cpu"] - a["node_cpu"], b["client_cpu"] - a["client_cpu"]
    soft = b["softirq"] - a["softirq"]  # loopback TCP's receive side, charged to no process
    return {"nodes": round(nodes_ / wall, 3), "clients": round(clients_ / wall, 3), "softirq": round(soft / wall, 3),
            "others": round((b["cpu_busy"] - a["cpu_busy"] - nodes_ - clients_ - soft) / wall, 3), "seconds": round(wall, 1)}
a, b = snap("idle_start"), snap("idle_end")
if a and b: out["idle_nodes_cpu_cores"] = cores(a, b)
a, b = snap("hold_start"), snap("hold_end")
if a and b: out["hold_cpu_cores"] = cores(a, b)
a, b = snap("cpu_before"), snap("cpu_after")
if a and b:  # from the broadcast until the script saw every client process have it
    out["broadcast_cpu_cores"] = cores(a, b)
if "busy_before" in t: out["cpu_busy_before_pct"] = t["busy_before"]
if "run_seconds" in t: out["run_seconds"] = round(t["run_seconds"], 1)
if error: out["error"] = error
# ok: every client joined and was still connected after the broadcast, which reached them all.
out["ok"] = not error and out.get("connections_held") == target and out.get("clients_lost", 0) == 0 \
    and out.get("broadcast_complete", False) and out.get("broadcast_delivered") == target
first = ["bench", "ok", "clients_target", "connections_held", "server_nodes", "user_bytes_per_conn",
         "kernel_bytes_per_conn", "broadcast_last_ms", "broadcast_p50_ms", "connect_seconds", "error"]
out = {**{k: out[k] for k in first if k in out}, **{k: v for k, v in out.items() if k not in first}}
print(json.dumps(out, separators=(",", ":")))
PY
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n "$watchdog_pid" ]] && kill "$watchdog_pid" 2>/dev/null
  local p
  for p in "${client_pid[@]}" "${node_pid[@]}"; do kill -KILL "$p" 2>/dev/null; done
  for p in "${client_pid[@]}" "${node_pid[@]}"; do wait "$p" 2>/dev/null; done
  [[ -n "$watchdog_pid" ]] && wait "$watchdog_pid" 2>/dev/null
  for key in "${!sysctl_old[@]}"; do
    sysctl -qw "$key=${sysctl_old[$key]}" && say "restored $key = ${sysctl_old[$key]}"
  done
  if [[ -n "${KEEP:-}" || $rc != 0 ]]; then say "logs kept in $work"; else rm -rf "$work"; fi
  exit "$rc"
}
# Ends the run: the JSON line with what was measured so far and the reason, status 1.
fail() {
  say "FAILED: $1"
  report "$1"
  exit 1
}
trap cleanup EXIT
trap 'fail "$(cat "$work/abort" 2>/dev/null || echo interrupted)"' INT TERM

# ---- checks and kernel settings -----------------------------------------------------------------
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited && "$hard" -lt $((PER_NODE + 300)) ]]; then
  fail "PER_NODE=$PER_NODE needs $((PER_NODE + 300)) descriptors per process; the hard limit is $hard"
fi
meminfo() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }
# Measured on this VM: ~10.8 KB of kernel memory per loopback connection (both ends), ~4.5 KB in
# its node, ~0.4 KB in its client process; ~15 MB per node at rest.
need_mb=$((CLIENTS * 16 / 1024 + nodes * 40))
avail_mb=$(($(meminfo MemAvailable) / 1024))
if ((avail_mb < need_mb + MIN_AVAILABLE_MB)); then
  fail "CLIENTS=$CLIENTS needs about $need_mb MB; $avail_mb MB available, $MIN_AVAILABLE_MB MB must stay free"
fi
# Sets a sysctl to `want` if its (last) figure is below want's, remembering the old value.
raise_sysctl() {
  local key=$1 want=$2 path=/proc/sys/${1//.//} cur
  cur=$(tr -s '\t ' ' ' <"$path")
  if ((${cur##* } < ${want##* })); then
    if [[ $(id -u) != 0 ]] || ! sysctl -qw "$key=$want" 2>/dev/null; then
      fail "$key is $cur, $want is needed for CLIENTS=$CLIENTS (run as root, or set it)"
    fi
    sysctl_old[$key]=$cur
    say "raised $key from '$cur' to '$want' (restored at the end)"
  fi
}
# Every connection is two sockets, each a file, of the whole system's fs.file-max.
raise_sysctl fs.file-max $((2 * CLIENTS + 200000))
# net.ipv4.tcp_mem (pages): past its third figure, TCP refuses to allocate buffers (drops,
# retransmits: a broadcast to a million sockets would stall). Idle sockets hold none (measured),
# but the broadcast's frames may sit in many receive queues at once: 1 KiB each is allowed for.
pages=$((CLIENTS / 4 + 65536))
raise_sysctl net.ipv4.tcp_mem "$((pages / 2)) $((pages * 3 / 4)) $pages"
ports=$(awk '{print $2 - $1 + 1}' /proc/sys/net/ipv4/ip_local_port_range)
if ((ports * 8 < PER_NODE)); then fail "ip_local_port_range gives $ports ports per address: too few for 8 source addresses"; fi

# ---- a private EPMD port and cookie -------------------------------------------------------------
mkdir -p "$work/home"
export HOME=$work/home
export ERL_EPMD_PORT
ERL_EPMD_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2019  # ASCII letters are meant
(umask 077 && LC_ALL=C tr -dc A-Z </dev/urandom | head -c 20 >"$HOME/.erlang.cookie") && chmod 400 "$HOME/.erlang.cookie"

# ---- watchdog: the time limit and the memory floor ------------------------------------------------
(
  while sleep 1; do
    if (($(date +%s) >= deadline)); then
      echo "time limit: TIME_LIMIT=$TIME_LIMIT s reached" >"$work/abort"
    elif (($(meminfo MemAvailable) / 1024 < MIN_AVAILABLE_MB)); then
      echo "memory: MemAvailable fell below $MIN_AVAILABLE_MB MB ($(($(meminfo MemAvailable) / 1024)) MB)" >"$work/abort"
    else
      continue
    fi
    kill -TERM $$
    exit 0
  done
) &
watchdog_pid=$!

# Waits until `count` of the files "$work/$prefix<k>.out" (k < nodes) hold a line with
# "event":"$event" (at least `n` of them each), checking every process is alive and the abort file.
# With a 7th argument "soft", a timeout returns 1 instead of failing the run. Also keeps the peak
# of TCP sockets in use in $work/peak_sockets (both ends of each connection, and the listeners).
peak_sockets=0
wait_lines() {
  local prefix=$1 event=$2 count=$3 n=$4 what=$5 limit=$6 soft=${7:-} started=$SECONDS k have last=$SECONDS
  local tag inuse rest
  while :; do
    while read -r tag _ inuse rest; do  # builtins only: no process per look
      if [[ $tag == TCP: ]] && ((inuse > peak_sockets)); then
        peak_sockets=$inuse
        echo "$peak_sockets" >"$work/peak_sockets"
      fi
    done </proc/net/sockstat
    # One grep for all the files: this loop runs during the broadcast too, and must cost nothing.
    have=$(grep -c "\"event\":\"$event\"" "$work/$prefix"*.out 2>/dev/null | awk -F: -v n="$n" '$NF >= n {c++} END {print c + 0}')
    ((have >= count)) && return 0
    for k in "${!node_pid[@]}"; do
      kill -0 "${node_pid[k]}" 2>/dev/null || fail "node $k ended: $(tail -c 400 "$work/node$k.err" 2>/dev/null)"
    done
    for k in "${!client_pid[@]}"; do
      kill -0 "${client_pid[k]}" 2>/dev/null || fail "client process $k ended: $(tail -c 400 "$work/clients$k.err" 2>/dev/null)"
    done
    if ((SECONDS - started > limit)); then
      [[ -n $soft ]] && return 1
      fail "timed out after $limit s waiting for $what ($have of $count)"
    fi
    if ((SECONDS - last >= 10)); then
      last=$SECONDS
      say "  ... $have of $count $what; TCP: $(awk '/^TCP:/{print $3, "sockets in use,", $NF * 4 / 1024, "MB of buffers"}' /proc/net/sockstat); $(($(meminfo MemAvailable) / 1024)) MB available"
    fi
    sleep 0.1
  done
}

# A /proc snapshot: the nodes' and client processes' private memory, /proc/meminfo and TCP pages.
snapshot() {
  "$PYTHON" - "$work/$1.json" "${node_pid[*]}" "${client_pid[*]:-}" <<'PY'
import json, os, sys, time
def anon(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("RssAnon:"): return int(l.split()[1]) * 1024
    return 0
mem = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/meminfo")}
def cpu(pid):  # user + system seconds
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
stat = [int(x) for x in open("/proc/stat").readline().split()[1:]]
tcp = next(l.split() for l in open("/proc/net/sockstat") if l.startswith("TCP:"))
json.dump({"node_anon": [anon(p) for p in sys.argv[2].split()],
           "client_anon": [anon(p) for p in sys.argv[3].split()],
           "meminfo": mem, "tcp_mem_pages": int(tcp[tcp.index("mem") + 1]), "time": time.monotonic(),
           "node_cpu": sum(cpu(p) for p in sys.argv[2].split()),
           "client_cpu": sum(cpu(p) for p in sys.argv[3].split()),
           "cpu_busy": (sum(stat) - stat[3] - stat[4]) / os.sysconf("SC_CLK_TCK"),
           "softirq": stat[6] / os.sysconf("SC_CLK_TCK"),
           "tcp_inuse": int(tcp[tcp.index("inuse") + 1])}, open(sys.argv[1], "w"))
PY
}
# Asks every node for its stats line and waits for the n-th.
node_stats() {
  local k
  for k in "${!node_pid[@]}"; do kill -USR2 "${node_pid[k]}"; done
  wait_lines node stats "$nodes" "$1" "node stats" 30
}


say "$CLIENTS clients over $nodes nodes ($PER_NODE at most each), $(nproc) CPUs, $(uname -r); EPMD port $ERL_EPMD_PORT; logs in $work"

# ---- the cluster ----------------------------------------------------------------------------------
start_node() {
  "$BENCH" channel_node --node_number "$1" --nodes "$nodes" --clients "${share[$1]}" --schedulers 1 \
    >"$work/node$1.out" 2>"$work/node$1.err" &
  node_pid[$1]=$!
}
t_nodes=$(now)
start_node 0
wait_lines node ready 1 1 "node 0 to be ready" 30
for ((k = 1; k < nodes; k++)); do start_node "$k"; done
wait_lines node ready "$nodes" 1 "nodes to be ready" 180
wait_lines node cluster 1 1 "the hub to know every relay" 60
for ((k = 0; k < nodes; k++)); do
  port[k]=$("$PYTHON" -c 'import json,sys; print(next(json.loads(l)["port"] for l in open(sys.argv[1]) if "\"ready\"" in l))' "$work/node$k.out")
done
startup=$(since "$t_nodes")
say "$nodes nodes up and clustered in ${startup} s"
snapshot idle_start
sleep 3  # let the nodes settle before the baseline; what they use meanwhile is their idle cost
snapshot idle_end
node_stats 1
snapshot mem_base

# ---- the clients --------------------------------------------------------------------------------
t_clients=$(now)
# Clients not joined by then count as lost, leaving 100 s of the time limit for the rest.
join_seconds=$((deadline - $(date +%s) - 100))
((join_seconds < 30)) && join_seconds=30
for ((k = 0; k < nodes; k++)); do
  "$BENCH" channel_clients --port "${port[k]}" --clients "${share[k]}" --source "$k" --seconds "$TIME_LIMIT" \
    --join_seconds "$join_seconds" \
    >"$work/clients$k.out" 2>"$work/clients$k.err" &
  client_pid[k]=$!
done
say "started $nodes client processes"
wait_lines clients joined "$nodes" 1 "client processes joined" $((deadline - $(date +%s)))
connect=$(since "$t_clients")
say "the clients are joined ($(grep -h '"event":"joined"' "$work"/clients*.out | "$PYTHON" -c 'import json, sys
rows = [json.loads(l) for l in sys.stdin]
print(sum(r["joined"] for r in rows), "joined,", sum(r["lost"] for r in rows), "lost")')) in $connect s"
sleep 2
node_stats 2
snapshot mem_joined
if ((HOLD > 0)); then  # connections idle for HOLD s: the server pings them every 30 s, they answer
  say "holding the connections for $HOLD s before the broadcast"
  snapshot hold_start
  hold_until=$((SECONDS + HOLD))
  while ((SECONDS < hold_until)); do
    wait_lines clients joined "$nodes" 1 "client processes joined" 10  # checks every process is alive
    sleep 1
  done
  snapshot hold_end
fi
echo "{\"startup_seconds\":$startup,\"connect_seconds\":$connect,\"busy_before\":$busy}" >"$work/times.json"

# ---- the broadcast --------------------------------------------------------------------------------
snapshot cpu_before
kill -USR1 "${node_pid[0]}"
wait_s=$((deadline - $(date +%s) - 20))
((wait_s > BROADCAST_WAIT)) && wait_s=$BROADCAST_WAIT
if wait_lines clients broadcast "$nodes" 1 "client processes with the broadcast" "$wait_s" soft; then
  snapshot cpu_after
  say "the broadcast reached every client process"
else
  snapshot cpu_after
  # The client processes still waiting report what they have so far ("complete":false).
  for ((k = 0; k < nodes; k++)); do
    grep -q '"event":"broadcast"' "$work/clients$k.out" || kill -USR1 "${client_pid[k]}"
  done
  wait_lines clients broadcast "$nodes" 1 "partial reports of the broadcast" 15
  say "the broadcast had not reached every client after $wait_s s"
fi
sleep 1
node_stats 3
run=$(since "$t0")
echo "{\"startup_seconds\":$startup,\"connect_seconds\":$connect,\"busy_before\":$busy,\"run_seconds\":$run}" >"$work/times.json"
result=$(report "")
echo "$result"
[[ $result == *'"ok":true'* ]] || exit 1  # the figures are printed either way
