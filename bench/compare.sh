#!/usr/bin/env bash
# Runs the benchmark workloads on Athanor (build/release/athanor-bench),
# Erlang/OTP (bench/erlang/athanor_bench.erl) and CAF 0.17
# (bench/caf/caf_bench.cpp) in one go, stores every result line in
# build/bench-results.jsonl and prints a Markdown comparison table.
#
#   bench/compare.sh           full sizes (spawn_idle also at 10M processes)
#   bench/compare.sh --quick   small sizes, a smoke run of a few minutes
#
# Environment: BENCH_ONLY="case1 case2" runs only those cases (spawn_idle, spawn_idle_10M,
# ping_pong_S1, ping_pong_S2, ring, fan_out, create_destroy, fairness_cp1, fairness_cp0,
# gen_call_S1, gen_call_S2).
# BENCH_SCHEDULERS (default: nproc) sets S for spawn_idle, ring,
# fan_out and create_destroy; ping_pong always runs with S=1 and S=2, fairness
# with S=2.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done

BUILD=$ROOT/build
RESULTS=$BUILD/bench-results.jsonl
ATHANOR_BIN=$BUILD/release/athanor-bench
ERL_DIR=$BUILD/bench-erlang
CAF_BIN=$BUILD/bench-caf/caf_bench
S_DEFAULT=${BENCH_SCHEDULERS:-$(nproc)}
mkdir -p "$BUILD" "$ERL_DIR" "$BUILD/bench-caf"

log() { echo "== $*" >&2; }

# --- build ------------------------------------------------------------------

HAVE_ATHANOR=0 HAVE_ERLANG=0 HAVE_CAF=0

log "building athanor-bench (cmake --preset release)"
if { cmake --preset release && cmake --build --preset release --target athanor-bench; } >"$BUILD/bench-build-athanor.log" 2>&1 \
   && [ -x "$ATHANOR_BIN" ]; then
  HAVE_ATHANOR=1
else
  echo "athanor-bench: build failed or not available (see $BUILD/bench-build-athanor.log); continuing with Erlang and CAF" >&2
fi

log "compiling bench/erlang/athanor_bench.erl"
if command -v erlc >/dev/null && erlc -o "$ERL_DIR" bench/erlang/athanor_bench.erl; then
  HAVE_ERLANG=1
else
  echo "erlang: erlc missing or compile failed; skipping Erlang" >&2
fi

log "compiling bench/caf/caf_bench.cpp"
if [ -x "$CAF_BIN" ] && [ "$CAF_BIN" -nt bench/caf/caf_bench.cpp ]; then
  HAVE_CAF=1
elif g++ -O2 -std=c++17 bench/caf/caf_bench.cpp -lcaf_core -o "$CAF_BIN"; then
  HAVE_CAF=1
else
  echo "caf: build failed (is libcaf-dev installed?); skipping CAF" >&2
fi

# --- running ----------------------------------------------------------------

: >"$RESULTS"

# Appends the program's JSON line (annotated with "case") to $RESULTS, or an
# error record if it failed.
record() { # case system workload rc stdout-file [skip-reason]
  python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
case, system, bench, rc, out = sys.argv[1:6]
skip = sys.argv[6] if len(sys.argv) > 6 else ""
rec = None
if not skip:
    lines = [l for l in open(out).read().splitlines() if l.strip()]
    if rc == "0" and len(lines) == 1:
        try:
            rec = json.loads(lines[0])
        except ValueError:
            rec = None
if rec is None:
    why = skip or ("timed out" if rc == "124" else f"exit status {rc}")
    if not skip and rc == "0":
        why = "unexpected output on stdout"
    rec = {"bench": bench, "system": system, "failed": why}
    print(f"   {system}: {why}", file=sys.stderr)
else:
    print("   " + json.dumps(rec), file=sys.stderr)
rec["case"] = case
print(json.dumps(rec))
PY
}

# Other load on the machine (a parallel build, say) skews every number, so
# before each run wait until the CPUs are nearly idle (at most 120 s).
wait_quiet() {
  local i busy
  for i in $(seq 1 60); do
    busy=$(python3 - <<'PY'
import time
def snap():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(v), v[3] + v[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print(int(100 * (1 - (i1 - i0) / max(1, t1 - t0))))
PY
)
    [ "$busy" -lt 15 ] && return 0
    [ "$i" = 1 ] && echo "   waiting for the machine to become idle (CPU ${busy}% busy)" >&2
    sleep 1
  done
  echo "   warning: machine still ${busy}% busy; running anyway" >&2
}

# Runs one workload on one system:  run case system timeout_s S args...
run() {
  local case=$1 system=$2 tmo=$3 s=$4; shift 4
  local out=$BUILD/bench-last.out rc
  case "$system" in
    athanor) [ $HAVE_ATHANOR = 1 ] && wait_quiet ;;
    erlang) [ $HAVE_ERLANG = 1 ] && wait_quiet ;;
    caf) [ $HAVE_CAF = 1 ] && wait_quiet ;;
  esac
  case "$system" in
    athanor) [ $HAVE_ATHANOR = 1 ] || { record "$case" athanor "$1" 1 /dev/null "not built"; return; }
             timeout -k 10 "$tmo" "$ATHANOR_BIN" "$@" --schedulers "$s" >"$out"; rc=$? ;;
    erlang)  [ $HAVE_ERLANG = 1 ] || { record "$case" erlang "$1" 1 /dev/null "not built"; return; }
             local list
             list=$(printf '"%s",' "$@" --schedulers "$s"); list="[${list%,}]"
             timeout -k 10 "$tmo" erl -noshell +S "$s:$s" +P 20000000 -pa "$ERL_DIR" \
               -eval "athanor_bench:main($list)." >"$out"; rc=$? ;;
    caf)     [ $HAVE_CAF = 1 ] || { record "$case" caf "$1" 1 /dev/null "not built"; return; }
             # CAF 0.17's default work-stealing scheduler walks a victim's whole queue per steal
             # (quadratic in fan_out: ~8k msgs/s at 1M); its work-sharing policy is CAF's own answer.
             local extra=()
             [ "$1" = fan_out ] && extra=(--caf-policy sharing)
             timeout -k 10 "$tmo" "$CAF_BIN" "$@" "${extra[@]}" --schedulers "$s" >"$out"; rc=$? ;;
  esac
  record "$case" "$system" "$1" "$rc" "$out"
}

run_all() { # case timeout_s S args...
  local case=$1; shift
  # BENCH_ONLY="ring fan_out" runs only those cases (matched against the case name).
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $case "* ]]; then return; fi
  log "$case: $*"
  for system in athanor erlang caf; do run "$case" "$system" "$@"; done
}

# Same, for workloads that exist only in Athanor and Erlang (OTP behaviours have no CAF twin).
run_otp() { # case timeout_s S args...
  local case=$1; shift
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $case "* ]]; then return; fi
  log "$case: $*"
  for system in athanor erlang; do run "$case" "$system" "$@"; done
}

# Big spawn_idle runs only if the memory measured at 1M (per system) says it
# fits: bytes_per_process * N * 1.25 + 1 GiB must be below MemAvailable.
run_big_spawn() { # case n
  local case=$1 n=$2 system need
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $case "* ]]; then return; fi
  log "$case: spawn_idle --n $n"
  for system in athanor erlang caf; do
    case $system in
      athanor) [ $HAVE_ATHANOR = 1 ] || { run "$case" athanor 1 1 spawn_idle; continue; } ;;
      erlang)  [ $HAVE_ERLANG = 1 ]  || { run "$case" erlang 1 1 spawn_idle; continue; } ;;
      caf)     [ $HAVE_CAF = 1 ]     || { run "$case" caf 1 1 spawn_idle; continue; } ;;
    esac
    need=$(python3 - "$RESULTS" "$system" "$n" <<'PY'
import json, sys
path, system, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bpp = None
for line in open(path):
    r = json.loads(line)
    if r.get("case") == "spawn_idle" and r.get("system") == system and "bytes_per_process" in r:
        bpp = r["bytes_per_process"]
avail = 0
for line in open("/proc/meminfo"):
    if line.startswith("MemAvailable:"):
        avail = int(line.split()[1]) * 1024
if bpp is None:
    print("skipped: no 1M result to estimate its memory from")
else:
    need = int(bpp * n * 1.25 + (1 << 30))
    print("ok" if need < avail else f"skipped: needs ~{need / 2**30:.0f} GiB, {avail / 2**30:.0f} GiB available")
PY
)
    if [ "$need" = ok ]; then
      run "$case" "$system" 3600 "$S_DEFAULT" spawn_idle --n "$n"
    else
      record "$case" "$system" spawn_idle 1 /dev/null "$need"
    fi
  done
}

if [ $QUICK = 1 ]; then
  N_SPAWN=100000 N_PP=200000 N_RING=10000 LAPS=100 N_FAN=100000 N_CD=100000 N_FAIR=100 N_CALL=100000
else
  N_SPAWN=1000000 N_PP=2000000 N_RING=10000 LAPS=1000 N_FAN=1000000 N_CD=1000000 N_FAIR=500 N_CALL=1000000
fi

run_all spawn_idle      1800 "$S_DEFAULT" spawn_idle --n $N_SPAWN
[ $QUICK = 1 ] || run_big_spawn spawn_idle_10M 10000000
run_all ping_pong_S1     600 1            ping_pong --n $N_PP
run_all ping_pong_S2     600 2            ping_pong --n $N_PP
run_all ring             600 "$S_DEFAULT" ring --n $N_RING --laps $LAPS
run_all fan_out         1200 "$S_DEFAULT" fan_out --n $N_FAN
run_all create_destroy   600 "$S_DEFAULT" create_destroy --n $N_CD
run_all fairness_cp1     120 2            fairness --n $N_FAIR --hogs 4 --checkpoint 1
run_all fairness_cp0     120 2            fairness --n $N_FAIR --hogs 4 --checkpoint 0
run_otp gen_call_S1      600 1            gen_call --n $N_CALL
run_otp gen_call_S2      600 2            gen_call --n $N_CALL

# --- term_codec: ETF encode/decode throughput, Athanor vs Erlang (no CAF twin) ---------------
# bench/term_bench.cpp and bench/erlang/term_codec.erl, one thread each; BENCH_ONLY=term_codec.
if [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" term_codec "* ]]; then
  TC_REPS=$([ $QUICK = 1 ] && echo 20 || echo 100)
  log "term_codec: --n 10000 --reps $TC_REPS"
  if [ $HAVE_ATHANOR = 1 ]; then
    wait_quiet
    timeout -k 10 600 "$ATHANOR_BIN" term_codec --n 10000 --reps "$TC_REPS" >"$BUILD/bench-last.out"
    record term_codec athanor term_codec $? "$BUILD/bench-last.out"
  else
    record term_codec athanor term_codec 1 /dev/null "not built"
  fi
  if [ $HAVE_ERLANG = 1 ] && erlc -o "$ERL_DIR" bench/erlang/term_codec.erl; then
    wait_quiet
    timeout -k 10 600 erl -noshell -pa "$ERL_DIR" \
      -eval "term_codec:main([\"--n\",\"10000\",\"--reps\",\"$TC_REPS\"])." >"$BUILD/bench-last.out"
    record term_codec erlang term_codec $? "$BUILD/bench-last.out"
  else
    record term_codec erlang term_codec 1 /dev/null "not built"
  fi
  record term_codec caf term_codec 1 /dev/null "no CAF equivalent"
fi

# --- report -----------------------------------------------------------------

echo
echo "## Athanor vs Erlang/OTP vs CAF"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
echo "- Erlang/OTP $(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null || echo '?'), CAF $(dpkg-query -W -f='${Version}' libcaf-dev 2>/dev/null || echo '?'), $(g++ --version | head -1)"
echo "- mode: $([ $QUICK = 1 ] && echo 'quick (small N)' || echo full); results: ${RESULTS#$ROOT/}"
echo
python3 - "$RESULTS" <<'PY'
import json, sys

# metric -> True if lower is better
METRICS = {
    "spawn_idle": [("ns_per_spawn", True), ("bytes_per_process", True)],
    "ping_pong": [("ns_per_roundtrip", True)],
    "gen_call": [("ns_per_call", True)],
    "ring": [("hops_per_sec", False)],
    "fan_out": [("msgs_per_sec", False)],
    "create_destroy": [("ns_per_cycle", True)],
    "fairness": [("p50_us", True), ("p99_us", True), ("max_us", True)],
    "term_codec": [("encode_mb_per_s", False), ("decode_mb_per_s", False)],
}

cases, by_case = [], {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    c = r["case"]
    if c not in by_case:
        cases.append(c)
        by_case[c] = {}
    by_case[c][r["system"]] = r

def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f} k"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"

def cell(r, metric):
    if r is None:
        return "—"
    if "failed" in r:
        return r["failed"]
    v = r.get(metric)
    if v is None:
        return "no result" + (" (see error)" if "error" in r else "")
    return fmt(v)

def ratio(a, o, metric, lower):
    if not a or not o:
        return "—"
    av, ov = a.get(metric), o.get(metric)
    if av is None and ov is None:
        return "—"
    if ov is None and "error" in o and av is not None:
        return "∞ (other gave no result)"
    if av is None or ov is None or av == 0 or ov == 0:
        return "—"
    x = ov / av if lower else av / ov
    return f"{x:.2f}×"

def label(c, rs):
    r = next((r for r in rs.values() if "n" in r), None)
    if r is None:
        return c
    parts = [r["bench"], f"n={r['n']:,}"]
    if "laps" in r:
        parts.append(f"laps={r['laps']:,}")
    parts.append(f"S={r['schedulers']}")
    if r["bench"] == "fairness":
        parts.append(f"hogs={r['hogs']}")
        parts.append(f"checkpoint={int(bool(r['checkpoint']))}")
    return " ".join(parts)

print("| workload | metric | Athanor | Erlang | CAF | Athanor vs Erlang | Athanor vs CAF |")
print("|---|---|---:|---:|---:|---:|---:|")
notes = []
for c in cases:
    rs = by_case[c]
    bench = next(iter(rs.values()))["bench"]
    a, e, f = rs.get("athanor"), rs.get("erlang"), rs.get("caf")
    for metric, lower in METRICS.get(bench, []):
        unit = "lower is better" if lower else "higher is better"
        print(f"| {label(c, rs)} | {metric} ({unit}) | {cell(a, metric)} | {cell(e, metric)} | {cell(f, metric)} "
              f"| {ratio(a, e, metric, lower)} | {ratio(a, f, metric, lower)} |")
    for r in rs.values():
        if "error" in r:
            notes.append(f"- {label(c, rs)}, {r['system']}: {r['error']}")
print()
print("Ratios: >1 means Athanor is better (time, memory, latency: other/Athanor; rates: Athanor/other).")
if notes:
    print()
    print("Notes:")
    print("\n".join(notes))
PY
