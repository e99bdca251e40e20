#!/usr/bin/env bash
# The Phoenix Channels benchmarks (issue 14), several runs of each, the cases taking turns, then the
# median and the range of each figure: on this VM the speed drifts 2-3x from minute to minute, so
# one run says little.
#
#   bench/web/channels.sh                 # RUNS=5: 2-3 minutes on a quiet machine
#   RUNS=7 CLIENTS=5000 bench/web/channels.sh
#   bench/web/channels.sh --report FILE   # the table again from a results file
#
# Cases (CASES picks some, in this order):
#   roundtrip         channel_roundtrip --clients 1           (push -> phx_reply latency)
#   roundtrip_many    channel_roundtrip --clients $RT_CLIENTS (default 100: round trips/s)
#   broadcast         channel_broadcast --clients $CLIENTS --window 1 (one fan-out at a time)
#   broadcast_stream  channel_broadcast --clients $CLIENTS --window $WINDOW (default 8 in flight)
# Run k starts with case k (mod the number of cases), so that no case always runs first, right
# after the build or a wait for an idle machine. Every run is bounded by `timeout`; results (one JSON line per run,
# plus "case", "run" and "busy_before") go to build/channel-bench-results.jsonl, and a dated copy
# (the next run overwrites the first); progress goes to stderr.
# Before each run it waits (up to IDLE_WAIT s, default 120; 0: not at all) for the CPUs to be
# nearly idle, as bench/compare.sh does: a parallel build skews every figure.
# Env: ATHANOR_BENCH (default build/release/athanor-bench, built unless SKIP_BUILD=1), SECS (3).
set -euo pipefail
cd "$(dirname "$0")/../.."

report() {
  python3 - "$1" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = []
for r in rows:
    if r["case"] not in cases: cases.append(r["case"])
keys = {
    "channel_roundtrip": ["roundtrips_per_sec", "p50_us", "p99_us", "max_us", "server_cpu_cores", "client_cpu_cores"],
    "channel_broadcast": ["deliveries_per_sec", "p50_us", "p99_us", "max_us", "last_delivery_ms_p50",
                          "last_delivery_ms_max", "read_p50_us", "read_p99_us", "read_max_us", "broadcast_call_us_p50",
                          "broadcast_call_us_max", "broadcasts", "server_cpu_cores", "client_cpu_cores", "join_s",
                          "joins_per_sec", "server_rss_bytes", "rss_bytes_per_client"],
}
def fmt(v):
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
for case in cases:
    runs = [r for r in rows if r["case"] == case]
    ok = [r for r in runs if "failed" not in r]
    if not ok:
        print(f"\n### {case}: every run failed ({runs[0].get('failed', '?')})")
        continue
    first = ok[0]
    print(f"\n### {case}: {first['bench']} --clients {first['clients']}"
          + (f" --window {first['window']}" if "window" in first else "")
          + f", {len(ok)} of {len(runs)} runs")
    print("| figure | median | min - max |\n|---|---|---|")
    for k in keys[first["bench"]]:
        vals = [r[k] for r in ok if k in r]
        if vals:
            print(f"| {k} | {fmt(statistics.median(vals))} | {fmt(min(vals))} - {fmt(max(vals))} |")
    noisy = [r["run"] for r in ok if r.get("busy_before", 0) >= 15]
    if noisy: print(f"(runs {noisy} started on a busy machine: see busy_before in the results file)")
    relief = sum(r.get("relief_threads", 0) for r in ok)
    if relief: print(f"(relief threads were started in some runs: {relief} in all)")
    for r in runs:
        if "failed" in r: print(f"run {r['run']} failed: {r['failed']}")
PY
}

if [[ "${1:-}" == --report ]]; then
  report "$2"
  exit 0
fi

BENCH=${ATHANOR_BENCH:-build/release/athanor-bench}
RUNS=${RUNS:-5}
SECS=${SECS:-3}
CLIENTS=${CLIENTS:-10000}
RT_CLIENTS=${RT_CLIENTS:-100}
WINDOW=${WINDOW:-8}
CASES=${CASES:-roundtrip roundtrip_many broadcast broadcast_stream}
IDLE_WAIT=${IDLE_WAIT:-120}
RESULTS=build/channel-bench-results.jsonl

# Prints how busy the CPUs were over the last second, in percent.
cpu_busy() {
  python3 - <<'PY'
import time
def snap():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(v), v[3] + v[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print(int(100 * (1 - (i1 - i0) / max(1, t1 - t0))))
PY
}
# Waits until the CPUs are nearly idle (at most IDLE_WAIT s); leaves the last reading in $busy.
wait_quiet() {
  local t0=$SECONDS said=0
  busy=$(cpu_busy)
  [ "$IDLE_WAIT" -gt 0 ] 2>/dev/null || return 0
  while [ "$busy" -ge 15 ]; do
    [ $said = 1 ] || { echo "  waiting for the machine to become idle (CPU ${busy}% busy)" >&2; said=1; }
    if [ $((SECONDS - t0)) -ge "$IDLE_WAIT" ]; then
      echo "  warning: machine still ${busy}% busy; running anyway" >&2
      return 0
    fi
    busy=$(cpu_busy)
  done
}

if [[ -z "${SKIP_BUILD:-}" && -z "${ATHANOR_BENCH:-}" ]]; then
  echo "building athanor-bench..." >&2
  cmake --build build/release --target athanor-bench -j2 >/dev/null
fi
[[ -x "$BENCH" ]] || { echo "no $BENCH (build it, or set ATHANOR_BENCH)" >&2; exit 1; }

args_of() {
  case "$1" in
    roundtrip) echo "channel_roundtrip --clients 1 --seconds $SECS" ;;
    roundtrip_many) echo "channel_roundtrip --clients $RT_CLIENTS --seconds $SECS" ;;
    broadcast) echo "channel_broadcast --clients $CLIENTS --window 1 --seconds $SECS" ;;
    broadcast_stream) echo "channel_broadcast --clients $CLIENTS --window $WINDOW --seconds $SECS" ;;
    *) echo "unknown case '$1' (roundtrip, roundtrip_many, broadcast, broadcast_stream)" >&2; exit 2 ;;
  esac
}

read -r -a cases <<<"$CASES"
for c in "${cases[@]}"; do args_of "$c" >/dev/null; done
mkdir -p build
: >"$RESULTS"
echo "== $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r), $(date -u +%FT%TZ)"
echo "== $BENCH, RUNS=$RUNS, SECS=$SECS"
start=$SECONDS
for ((run = 1; run <= RUNS; run++)); do
  for ((k = 0; k < ${#cases[@]}; k++)); do
    c=${cases[$(((run - 1 + k) % ${#cases[@]}))]}
    read -r -a args <<<"$(args_of "$c")"
    wait_quiet
    echo "run $run: athanor-bench ${args[*]}" >&2
    # Joins of 10,000 clients take a few seconds, 30 at the very worst (the bench's own limit).
    if out=$(timeout $((SECS * 2 + 90)) "$BENCH" "${args[@]}" 2>"$RESULTS.err") && [[ "$out" == \{* ]]; then
      python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["case"]=sys.argv[2]; r["run"]=int(sys.argv[3]); r["busy_before"]=int(sys.argv[4]); print(json.dumps(r))' \
        "$out" "$c" "$run" "$busy" >>"$RESULTS"
    else
      why=$(tail -1 "$RESULTS.err" 2>/dev/null || true)
      echo "  failed: ${why:-exit status or timeout}" >&2
      python3 -c 'import json,sys; print(json.dumps({"case": sys.argv[1], "run": int(sys.argv[2]), "failed": sys.argv[3]}))' \
        "$c" "$run" "${why:-exit status or timeout}" >>"$RESULTS"
    fi
  done
done
rm -f "$RESULTS.err"
dated=build/channel-bench-results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
cp "$RESULTS" "$dated"
report "$RESULTS"
echo
echo "($((SECONDS - start)) s; every run: $RESULTS, also $dated)"
