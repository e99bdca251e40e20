#!/usr/bin/env bash
# Distribution benchmarks (issue 13): two nodes over loopback, Athanor<->Athanor against
# Erlang<->Erlang in the same run, in alternating pairs, plus Athanor<->Erlang both ways and raw
# loopback TCP as the yardstick for 1 MB messages. Prints a Markdown report on stdout (progress
# on stderr) and keeps every result line in build/dist-bench-results.jsonl (and a dated copy).
#
#   bench/dist/compare.sh                  PAIRS=5 pairs of every case, 3 s per measurement
#   bench/dist/compare.sh --report FILE    the report again from a results file (no runs)
#
# Cases (BENCH_ONLY="..." picks some):
#   dist_ping_pong   one process sends {self(), N} to a remote echo and waits for N: round trips/s
#   dist_tp_100      100-byte binaries streamed to a remote sink (window flow control): msgs/s
#   dist_tp_1M       1 MiB binaries, the same: MB/s; raw loopback TCP runs in the same pairs
#   local_ping_pong_S1, local_ping_pong_S2, local_ring   only with LOCAL_BASELINE (below)
# Configurations in each pair: A-A (athanor-bench driver and its own `athanor-bench dist_peer`
# child), E-E (two erl nodes, bench/erlang/dist_bench.erl), A-E (Athanor driver, Erlang peer),
# E-A (Erlang driver, Athanor peer), and tcp (athanor-bench tcp_throughput, 1 MiB case only).
# Pair p runs them in the order A-A E-E A-E E-A tcp when p is odd and in reverse when even, so
# the two sides of the headline ratio (A-A / E-E) take turns running first. This VM's speed
# drifts 2-3x from minute to minute: only ratios within a pair, and their median, mean anything.
#
# Isolation: every node is name@localhost and listens on 127.0.0.1 only; one private EPMD
# (`epmd -port P -address 127.0.0.1`, P a free port, never 4369) serves the whole run and is
# stopped at the end; HOME is a temporary directory and the cookie is explicit (ATHANOR_COOKIE,
# -setcookie), so no ~/.erlang.cookie is read or written.
#
# Environment:
#   PAIRS=N             pairs per case (default 5)
#   DIST_SECONDS=S      measured seconds per run (default 3; each run also warms up S/10, <= 1 s)
#   DIST_SCHEDULERS=S   schedulers of every node, Athanor (--schedulers) and Erlang (+S S:S)
#                       (default: nproc)
#   ATHANOR_BENCH=path  the athanor-bench to use (default build/release/athanor-bench, built
#                       with the release preset if missing)
#   LOCAL_BASELINE=path an athanor-bench without the distribution branches in the local send
#                       path (bench/dist/build_baseline.sh builds one): adds local ping_pong
#                       (S=1, S=2) and ring, this build against that one, in alternating pairs
#   BENCH_ONLY="c1 c2"  only these cases
#   BENCH_IDLE_WAIT=s   before each run wait up to s seconds for the CPUs to be < 15% busy
#                       (default 0: the 1-minute load average is recorded with every run instead)
#
# Run time: about 1 minute per pair of the three dist cases (4-5 runs each, 3 s measured + warm-up
# + ~1.5 s to start each erl node), so ~5-6 minutes for PAIRS=5, plus ~15 s per pair for the
# local cases.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1

REPORT_ONLY=
while [ $# -gt 0 ]; do
  case "$1" in
    --report) [ $# -ge 2 ] || { echo "usage: $0 --report FILE" >&2; exit 2; }
              REPORT_ONLY=$2; shift ;;
    -h|--help) sed -n '2,44p' "$0"; exit 0 ;;
    *) echo "usage: $0 | --report FILE" >&2; exit 2 ;;
  esac
  shift
done

PAIRS=${PAIRS:-5}
DSEC=${DIST_SECONDS:-3}
S=${DIST_SCHEDULERS:-$(nproc)}
IDLE_WAIT=${BENCH_IDLE_WAIT:-0}
BASELINE=${LOCAL_BASELINE:-}
for v in PAIRS DSEC S; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
BUILD=$ROOT/build
RESULTS=$BUILD/dist-bench-results.jsonl
BIN=${ATHANOR_BENCH:-$BUILD/release/athanor-bench}
ERL_DIR=$BUILD/bench-erlang-dist

log() { echo "== $*" >&2; }

# --- report -----------------------------------------------------------------

report() { # file
  python3 - "$1" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs, Linux $(uname -r)" \
    "$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null || echo '?')" <<'PY'
import json, math, statistics, sys, datetime
path, machine, otp = sys.argv[1:4]
runs = [json.loads(l) for l in open(path) if l.strip()]
if not runs:
    print("no results"); sys.exit(0)

def med(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None

def fmt(v):
    if v is None: return "—"
    if abs(v) >= 1e6: return f"{v / 1e6:.2f} M"
    if abs(v) >= 1e4: return f"{v / 1e3:.1f} k"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"

def fx(x): return f"{x:.2f}×"

times = [r["utc"] for r in runs if "utc" in r]
loads = [r["loadavg"] for r in runs if "loadavg" in r]
pairs = max(r["pair"] for r in runs)
fmt_t = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print("## Distribution: Athanor vs Erlang/OTP over loopback")
print()
if times: print(f"- date: {fmt_t(min(times))} – {fmt_t(max(times))}")
print(f"- pairs: {pairs} per case; in each pair A-A, E-E, A-E, E-A (and tcp) back to back, the order reversed every other pair")
s_vals = sorted({r.get("schedulers") for r in runs if r.get("schedulers") and r["case"].startswith("dist_")})
secs = sorted({round(r["seconds"]) for r in runs if isinstance(r.get("seconds"), (int, float)) and r["case"].startswith("dist_")})
print(f"- schedulers per node: {', '.join(map(str, s_vals))}; measured seconds per run: ~{', '.join(map(str, secs))}")
print(f"- machine: {machine}; Erlang/OTP {otp}")
if loads:
    print(f"- load average (1 min) at the start of the runs: median {statistics.median(loads):.2f}, "
          f"min {min(loads):.2f}, max {max(loads):.2f} (the machine is shared: other load is in every number)")
print(f"- results: {path}")
print()

CASES = [  # case, metric, higher is better, label
    ("dist_ping_pong", "roundtrips_per_sec", True, "ping-pong, round trips/s"),
    ("dist_ping_pong", "p50_us", False, "ping-pong, p50 latency µs"),
    ("dist_ping_pong", "p99_us", False, "ping-pong, p99 latency µs"),
    ("dist_tp_100", "msgs_per_sec", True, "100-byte messages/s"),
    ("dist_tp_100", "mb_per_s", True, "100-byte messages, MB/s"),
    ("dist_tp_1M", "msgs_per_sec", True, "1 MiB messages/s"),
    ("dist_tp_1M", "mb_per_s", True, "1 MiB messages, MB/s"),
    ("local_ping_pong_S1", "ns_per_roundtrip", False, "local ping_pong S=1, ns/round trip"),
    ("local_ping_pong_S2", "ns_per_roundtrip", False, "local ping_pong S=2, ns/round trip"),
    ("local_ring", "hops_per_sec", True, "local ring, hops/s"),
]
TARGETS = {("dist_ping_pong", "roundtrips_per_sec"): 2.0, ("dist_tp_100", "msgs_per_sec"): 2.0,
           ("dist_tp_1M", "mb_per_s"): 1.0}

by = {}  # (case, config) -> {pair: record}
for r in runs:
    by.setdefault((r["case"], r["config"]), {})[r["pair"]] = r

def vals(case, config, metric):
    return [r.get(metric) for r in by.get((case, config), {}).values()]

def ratios(case, a, b, metric, higher):
    """Per pair: a over b (> 1: a better)."""
    out = []
    A, B = by.get((case, a), {}), by.get((case, b), {})
    for p in sorted(A):
        if p in B:
            x, y = A[p].get(metric), B[p].get(metric)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0 and y > 0:
                out.append((p, x / y if higher else y / x))
    return out

def rcell(rs):
    xs = sorted(x for _, x in rs)
    if not xs: return "—"
    s = fx(statistics.median(xs))
    if len(xs) > 1: s += f" ({fx(xs[0])}–{fx(xs[-1])})"
    return s

present = {c for c, _ in by}
dist_rows = [c for c in CASES if c[0].startswith("dist_") and c[0] in present]
if dist_rows:
    print("### Medians")
    print()
    print("| case | A-A | E-E | A-E (Athanor driver, Erlang peer) | E-A (Erlang driver, Athanor peer) | raw TCP |")
    print("|---|---:|---:|---:|---:|---:|")
    for case, metric, higher, label in dist_rows:
        cells = [fmt(med(vals(case, c, metric))) for c in ("A-A", "E-E", "A-E", "E-A")]
        tcp = fmt(med(vals(case, "tcp", metric))) if (case, "tcp") in by else "—"
        print(f"| {label} ({'higher' if higher else 'lower'} is better) | " + " | ".join(cells) + f" | {tcp} |")
    print()
    print("### Ratios: median of the per-pair ratios (min–max); > 1 means the first is better")
    print()
    print("| case | A-A vs E-E | target | met? | A-E vs E-E | E-A vs E-E | A-A vs raw TCP | E-E vs raw TCP |")
    print("|---|---:|---:|:---:|---:|---:|---:|---:|")
    for case, metric, higher, label in dist_rows:
        aa = ratios(case, "A-A", "E-E", metric, higher)
        t = TARGETS.get((case, metric))
        met = "—"
        if t is not None and aa:
            met = "yes" if statistics.median(x for _, x in aa) >= t else "**no**"
        tcp_aa = tcp_ee = "—"
        if (case, "tcp") in by:
            tcp_aa = rcell(ratios(case, "A-A", "tcp", metric, higher))
            tcp_ee = rcell(ratios(case, "E-E", "tcp", metric, higher))
            if metric == "mb_per_s" and case == "dist_tp_1M":
                rr = ratios(case, "A-A", "tcp", metric, higher)
                if rr:
                    ok = statistics.median(x for _, x in rr) >= 0.7
                    tcp_aa += " (target ≥ 0.70×: " + ("yes" if ok else "**no**") + ")"
        print(f"| {label} | {rcell(aa)} | {('≥ ' + fx(t)) if t else ''} | {met} | "
              f"{rcell(ratios(case, 'A-E', 'E-E', metric, higher))} | {rcell(ratios(case, 'E-A', 'E-E', metric, higher))} "
              f"| {tcp_aa} | {tcp_ee} |")
    print()
    print("Each pair's A-A vs E-E ratio, in run order (A→E: A-A ran before E-E in that pair):")
    print()
    print("| case | A-A (median) | E-E (median) | per pair |")
    print("|---|---:|---:|---|")
    for case, metric, higher, label in dist_rows:
        aa = ratios(case, "A-A", "E-E", metric, higher)
        each = ", ".join(f"{fx(x)} ({'A→E' if p % 2 else 'E→A'})" for p, x in aa)
        print(f"| {label} | {fmt(med(vals(case, 'A-A', metric)))} | {fmt(med(vals(case, 'E-E', metric)))} | {each} |")
    print()

local_rows = [c for c in CASES if c[0].startswith("local_") and c[0] in present]
if local_rows:
    print("### Local sends: this build against the baseline without the distribution branches")
    print()
    print("| case | this build (median) | baseline (median) | this vs baseline: median of pair ratios (min–max) | per pair |")
    print("|---|---:|---:|---:|---|")
    for case, metric, higher, label in local_rows:
        rr = ratios(case, "current", "baseline", metric, higher)
        each = ", ".join(fx(x) for _, x in rr)
        print(f"| {label} ({'higher' if higher else 'lower'} is better) | {fmt(med(vals(case, 'current', metric)))} "
              f"| {fmt(med(vals(case, 'baseline', metric)))} | {rcell(rr)} | {each} |")
    print()

fails = [r for r in runs if "failed" in r]
if fails:
    print("Failed runs:")
    print()
    for r in fails:
        print(f"- {r['case']} {r['config']} pair {r['pair']}: {r['failed']}")
    print()
walls = [r.get("wall_s", 0) for r in runs]
if times:
    span = max(r["utc"] + r.get("wall_s", 0) for r in runs if "utc" in r) - min(times)
    print(f"Run time: {int(span // 60)} min {int(span % 60)} s ({len(runs)} runs, {sum(walls):.0f} s in the programs).")
PY
}

if [ -n "$REPORT_ONLY" ]; then
  [ -r "$REPORT_ONLY" ] || { echo "$REPORT_ONLY: not readable" >&2; exit 2; }
  report "$REPORT_ONLY"
  exit 0
fi

# --- build ------------------------------------------------------------------

mkdir -p "$BUILD" "$ERL_DIR"
if [ ! -x "$BIN" ]; then
  if [ -n "${ATHANOR_BENCH:-}" ]; then echo "$BIN: not an executable" >&2; exit 1; fi
  log "building athanor-bench (cmake --preset release)"
  { cmake --preset release && cmake --build --preset release --target athanor-bench; } >"$BUILD/dist-bench-build.log" 2>&1 \
    || { echo "athanor-bench did not build (see $BUILD/dist-bench-build.log)" >&2; exit 1; }
fi
command -v erl >/dev/null && command -v erlc >/dev/null && command -v epmd >/dev/null \
  || { echo "erl, erlc and epmd are needed (Erlang/OTP)" >&2; exit 1; }
erlc -o "$ERL_DIR" bench/erlang/dist_bench.erl || exit 1

# --- the private environment ------------------------------------------------------

TMPD=$(mktemp -d /tmp/athanor-dist-bench.XXXXXX)
mkdir -p "$TMPD/home"
export HOME=$TMPD/home
unset ATHANOR_NODE ATHANOR_BENCH_PEER ATHANOR_SCHEDULERS
export ATHANOR_COOKIE="athanor-bench-$$"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export ERL_EPMD_PORT=$PORT ERL_EPMD_ADDRESS=127.0.0.1
PEER_PID= EPMD_PID=
cleanup() {
  [ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null
  [ -n "$EPMD_PID" ] && kill "$EPMD_PID" 2>/dev/null && wait "$EPMD_PID" 2>/dev/null
  rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
epmd -port "$PORT" -address 127.0.0.1 2>>"$TMPD/epmd.log" &
EPMD_PID=$!
for _ in $(seq 50); do epmd -port "$PORT" -names >/dev/null 2>&1 && break; sleep 0.1; done
epmd -port "$PORT" -names >/dev/null 2>&1 || { echo "the private EPMD on port $PORT did not start" >&2; exit 1; }
ERL=(erl -noshell +S "$S:$S" -setcookie "$ATHANOR_COOKIE" -kernel inet_dist_use_interface '{127,0,0,1}' -pa "$ERL_DIR")
LOGF=$BUILD/dist-bench-log.txt
: >"$LOGF"
log "EPMD on 127.0.0.1:$PORT, HOME=$HOME, schedulers $S, $DSEC s per run, $PAIRS pairs; peers' output in ${LOGF#$ROOT/}"

# --- running ----------------------------------------------------------------

: >"$RESULTS"
PAIR=1 ORDER="" N=0

# Appends the run's JSON line with case, config, pair, order, utc, wall_s and loadavg, or a
# failure record.   record case config rc out-file start_s wall_ns load
record() {
  PAIR=$PAIR ORDER=$ORDER python3 - "$@" >>"$RESULTS" <<'PY'
import json, os, sys
case, config, rc, out, start, wall, load = sys.argv[1:8]
lines = [l for l in open(out).read().splitlines() if l.strip()]
rec = None
if rc == "0" and len(lines) == 1:
    try: rec = json.loads(lines[0])
    except ValueError: pass
tag = f"pair {os.environ['PAIR']} {case} {config}"
if rec is None:
    why = "timed out" if rc == "124" else (f"exit status {rc}" if rc != "0" else "unexpected output: " + " / ".join(lines)[:200])
    rec = {"failed": why}
    print(f"   {tag}: {why}", file=sys.stderr)
else:
    print(f"   {tag} ({int(wall) / 1e9:.1f} s): " + json.dumps(rec), file=sys.stderr)
rec.update({"case": case, "config": config, "pair": int(os.environ["PAIR"]), "order": os.environ["ORDER"],
            "utc": round(float(start), 3), "wall_s": round(int(wall) / 1e9, 3), "loadavg": float(load)})
print(json.dumps(rec))
PY
}

wait_quiet() {
  local busy t0=$SECONDS
  [ "$IDLE_WAIT" -gt 0 ] 2>/dev/null || return 0
  while :; do
    busy=$(python3 -c '
import time
def snap():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(v), v[3] + v[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print(int(100 * (1 - (i1 - i0) / max(1, t1 - t0))))')
    [ "$busy" -lt 15 ] && return 0
    [ $((SECONDS - t0)) -ge "$IDLE_WAIT" ] && { echo "   machine still ${busy}% busy; running anyway" >&2; return 0; }
  done
}

# Waits until EPMD knows `name` (at most 30 s).
wait_registered() { # name
  local i
  for i in $(seq 300); do
    epmd -port "$PORT" -names 2>/dev/null | grep -q "^name $1 at" && return 0
    sleep 0.1
  done
  return 1
}

start_peer() { # system name
  case $1 in
    erlang)  "${ERL[@]}" -sname "$2@localhost" -eval 'dist_bench:peer(600).' >>"$LOGF" 2>&1 & ;;
    athanor) ATHANOR_NODE="$2@localhost" "$BIN" dist_peer --seconds 600 --schedulers "$S" >>"$LOGF" 2>&1 & ;;
  esac
  PEER_PID=$!
  wait_registered "$2" || echo "   peer $2 did not register with EPMD" >&2
}
stop_peer() {
  [ -n "$PEER_PID" ] || return 0
  kill "$PEER_PID" 2>/dev/null
  wait "$PEER_PID" 2>/dev/null
  PEER_PID=
}

# Runs one configuration of a dist case:  run_dist case config workload-args...
run_dist() {
  local case=$1 config=$2; shift 2
  local out=$TMPD/out rc start t0 t1 load tmo=$((DSEC * 3 + 90))
  N=$((N + 1))
  local peer="peer_$$_$N" drv="drv_$$_$N"
  wait_quiet
  load=$(cut -d' ' -f1 /proc/loadavg)
  case $config in
    E-E|A-E) start_peer erlang "$peer" ;;
    E-A)     start_peer athanor "$peer" ;;
  esac
  local list
  list=$(printf '"%s",' "$@" --seconds "$DSEC" --peer "$peer@localhost"); list="[${list%,}]"
  start=$(date +%s.%N); t0=$(date +%s%N)
  case $config in
    A-A) timeout -k 5 "$tmo" "$BIN" "$@" --seconds "$DSEC" --schedulers "$S" >"$out" 2>>"$LOGF"; rc=$? ;;
    A-E) ATHANOR_BENCH_PEER="$peer@localhost" timeout -k 5 "$tmo" "$BIN" "$@" --seconds "$DSEC" --schedulers "$S" \
                >"$out" 2>>"$LOGF"; rc=$? ;;
    E-E|E-A) timeout -k 5 "$tmo" "${ERL[@]}" -sname "$drv@localhost" -eval "dist_bench:main($list)." >"$out" 2>>"$LOGF"; rc=$? ;;
    tcp) timeout -k 5 "$tmo" "$BIN" tcp_throughput --size "$TCP_SIZE" --seconds "$DSEC" >"$out" 2>>"$LOGF"; rc=$? ;;
  esac
  t1=$(date +%s%N)
  stop_peer
  record "$case" "$config" "$rc" "$out" "$start" "$((t1 - t0))" "$load"
}

# Runs a local workload on this build or the baseline:  run_local case config args...
run_local() {
  local case=$1 config=$2; shift 2
  local out=$TMPD/out rc start t0 t1 load bin=$BIN
  [ "$config" = baseline ] && bin=$BASELINE
  wait_quiet
  load=$(cut -d' ' -f1 /proc/loadavg)
  start=$(date +%s.%N); t0=$(date +%s%N)
  timeout -k 5 600 "$bin" "$@" >"$out" 2>>"$LOGF"; rc=$?
  t1=$(date +%s%N)
  record "$case" "$config" "$rc" "$out" "$start" "$((t1 - t0))" "$load"
}

selected() { [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]; }

# run_pairs case "configs" runner args...
run_pairs() {
  local case=$1 configs=$2 runner=$3 p c order; shift 3
  selected "$case" || return 0
  log "$case: $* ($PAIRS pairs)"
  for p in $(seq 1 "$PAIRS"); do
    if (( p % 2 )); then order=$configs; else order=$(echo "$configs" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    PAIR=$p ORDER=$(echo $order | tr ' ' ',')
    for c in $order; do "$runner" "$case" "$c" "$@"; done
  done
  PAIR=1 ORDER=""
}

T_START=$SECONDS
TCP_SIZE=1048576
run_pairs dist_ping_pong "A-A E-E A-E E-A" run_dist dist_ping_pong
run_pairs dist_tp_100 "A-A E-E A-E E-A" run_dist dist_throughput --size 100
run_pairs dist_tp_1M "A-A E-E A-E E-A tcp" run_dist dist_throughput --size 1048576
if [ -n "$BASELINE" ]; then
  [ -x "$BASELINE" ] || { echo "LOCAL_BASELINE=$BASELINE: not an executable" >&2; exit 1; }
  run_pairs local_ping_pong_S1 "current baseline" run_local ping_pong --n 2000000 --schedulers 1
  run_pairs local_ping_pong_S2 "current baseline" run_local ping_pong --n 2000000 --schedulers 2
  run_pairs local_ring "current baseline" run_local ring --n 10000 --laps 1000 --schedulers "$S"
fi
log "runs done in $(( (SECONDS - T_START) / 60 )) min $(( (SECONDS - T_START) % 60 )) s"
cp "$RESULTS" "$BUILD/dist-bench-results-$(date -u +%Y%m%d-%H%M%S).jsonl"
report "$RESULTS"
