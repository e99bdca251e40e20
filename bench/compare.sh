#!/usr/bin/env bash
# Runs the benchmark workloads on Athanor (build/release/athanor-bench),
# Erlang/OTP (bench/erlang/athanor_bench.erl, bench/erlang/term_codec.erl) and
# CAF 0.17 (bench/caf/caf_bench.cpp), stores every result line in
# build/bench-results.jsonl (and a dated copy next to it) and prints a Markdown
# comparison table on stdout (progress on stderr).
#
#   bench/compare.sh                 full sizes, PAIRS=5 (spawn_idle also at 10M processes)
#   bench/compare.sh --quick         small sizes, PAIRS=1: a smoke run of a few minutes
#   bench/compare.sh --report FILE   print the table again from a results file (no runs)
#
# This VM's speed drifts 2-3x from minute to minute, so one run per system says
# little. Each case therefore runs as PAIRS back-to-back pairs, alternating the
# order (pair 1 Athanor then Erlang, pair 2 Erlang then Athanor, ...); each pair
# gives one ratio, and the table reports the median values, the median of the
# pair ratios and their min-max. CAF runs once per case (in pair 1, after Erlang)
# unless CAF_EVERY_PAIR=1 (then A,E,C and C,E,A).
#
# Environment:
#   PAIRS=N            pairs per case (default 5; 1 with --quick)
#   BENCH_ONLY="c1 c2" only these cases: spawn_idle, spawn_idle_10M, ping_pong_S1,
#                      ping_pong_S2, ring, fan_out, create_destroy, fairness_cp1,
#                      fairness_cp0, gen_call_S1, gen_call_S2, term_codec
#   BENCH_SCHEDULERS   S for spawn_idle, ring, fan_out and create_destroy (default:
#                      nproc); ping_pong and gen_call run with S=1 and S=2, fairness with S=2
#   CAF_EVERY_PAIR=1   run CAF in every pair too (adds ~1 min per pair at full sizes)
#   BENCH_IDLE_WAIT=s  before each run, wait up to s seconds for the CPUs to be
#                      nearly idle (default 120; 0 = don't wait)
#
# Run time (2-vCPU EPYC VM, quiet, estimated from the per-operation figures in
# README.md, plus the measured start-up, erl ~1.3 s and athanor-bench ~0.1 s, and the
# 1-s idle check before each run): one Athanor+Erlang
# pair of every case takes about 2 min at full sizes (Erlang's spawn_idle,
# fan_out and ring and the four 5-s fairness runs are most of it; term_codec
# ~10 s), so PAIRS=5 takes ~10-12 min, plus ~2-3 min for CAF's single runs
# (including its 10M spawn_idle) and ~1 min for Athanor's 10M spawn_idle pairs
# (Erlang's needs ~33 GiB available, else it is skipped; where it fits, add ~3 min per pair):
# ~15 min in all, up to ~30 min while the VM is at its slow end. --quick with
# PAIRS=1 takes ~2 min. The report ends with the measured total.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

QUICK=0 REPORT_ONLY=
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --report) [ $# -ge 2 ] || { echo "usage: $0 --report FILE" >&2; exit 2; }
              REPORT_ONLY=$2; shift ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--quick] | --report FILE" >&2; exit 2 ;;
  esac
  shift
done

PAIRS=${PAIRS:-$([ $QUICK = 1 ] && echo 1 || echo 5)}
if ! [[ "$PAIRS" =~ ^[1-9][0-9]*$ ]]; then echo "PAIRS must be a positive integer" >&2; exit 2; fi
CAF_EVERY_PAIR=${CAF_EVERY_PAIR:-0}
IDLE_WAIT=${BENCH_IDLE_WAIT:-120}

BUILD=$ROOT/build
RESULTS=$BUILD/bench-results.jsonl
ATHANOR_BIN=$BUILD/release/athanor-bench
ERL_DIR=$BUILD/bench-erlang
CAF_BIN=$BUILD/bench-caf/caf_bench
S_DEFAULT=${BENCH_SCHEDULERS:-$(nproc)}

log() { echo "== $*" >&2; }

# --- report -----------------------------------------------------------------

# Prints the Markdown report for a results file: report FILE
report() {
  local file=$1
  echo
  echo "## Athanor vs Erlang/OTP vs CAF"
  echo
  python3 - "$file" <<'PY'
import json, sys, datetime
times, pairs, modes = [], 0, set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "utc" in r:
        times.append(r["utc"])
    pairs = max(pairs, r.get("pair", 1))
    if "mode" in r:
        modes.add(r["mode"])
if times:
    fmt = lambda t: datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"- date: {fmt(min(times))} – {fmt(max(times))}")
print(f"- pairs: {pairs} per case, back to back, alternating the order (Athanor→Erlang, Erlang→Athanor, …)")
if modes:
    print(f"- mode: {', '.join(sorted(modes))}")
PY
  echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
  echo "- Erlang/OTP $(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null || echo '?'), CAF $(dpkg-query -W -f='${Version}' libcaf-dev 2>/dev/null || echo '?'), $(clang++-19 --version 2>/dev/null | head -1 || echo 'clang++-19 ?')"
  echo "- results: ${file#$ROOT/}"
  echo
  python3 - "$file" <<'PY'
import json, math, statistics, sys

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

# case -> system -> [record, ...] in run order
cases, by_case, npairs, wall, first, last = [], {}, 0, 0.0, math.inf, 0.0
for line in open(sys.argv[1]):
    r = json.loads(line)
    c = r["case"]
    # files without "pair": the k-th run of a system in a case belongs to pair k
    r.setdefault("pair", len(by_case.get(c, {}).get(r["system"], [])) + 1)
    npairs = max(npairs, r["pair"])
    wall += r.get("wall_s", 0.0)
    if "utc" in r:
        first, last = min(first, r["utc"]), max(last, r["utc"] + r.get("wall_s", 0.0))
    if c not in by_case:
        cases.append(c)
        by_case[c] = {}
    by_case[c].setdefault(r["system"], []).append(r)

def fmt(v):
    if v is None:
        return "—"
    if math.isinf(v):
        return "∞"
    if abs(v) >= 1e6:
        return f"{v / 1e6:.2f} M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:.1f} k"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"

def fx(x):
    return "∞" if math.isinf(x) else f"{x:.2f}×"

def values(rs, metric):
    return [r[metric] for r in rs if isinstance(r.get(metric), (int, float))]

def cell(rs, metric):
    """Median over the runs, or why there is none."""
    if not rs:
        return "—"
    vs = values(rs, metric)
    if vs:
        s = fmt(statistics.median(vs))
        if len(rs) > 1 and len(vs) < len(rs):
            s += f" ({len(vs)} of {len(rs)} runs)"
        return s
    r = rs[0]
    if "failed" in r:
        return r["failed"]
    return "no result" + (" (see error)" if "error" in r else "")

def pair_ratio(a, o, metric, lower):
    """Ratio of one pair (> 1: Athanor better), inf if only the other failed to give a result, else None."""
    if a is None or o is None:
        return None
    av, ov = a.get(metric), o.get(metric)
    if ov is None and "error" in o and av is not None:
        return math.inf
    if not isinstance(av, (int, float)) or not isinstance(ov, (int, float)) or av == 0 or ov == 0:
        return None
    return ov / av if lower else av / ov

def pair_ratios(rs, other, metric, lower):
    """[(pair, order, ratio or None)] for the pairs in which both systems ran."""
    a_by = {r["pair"]: r for r in rs.get("athanor", [])}
    out = []
    for o in rs.get(other, []):
        a = a_by.get(o["pair"])
        if a is not None:
            out.append((o["pair"], a.get("order", ""), pair_ratio(a, o, metric, lower)))
    return out

def ratio_cell(prs):
    xs = sorted(x for _, _, x in prs if x is not None)
    if not xs:
        return "—"
    if all(math.isinf(x) for x in xs):
        return "∞ (other gave no result)"
    s = fx(statistics.median(xs))
    if len(xs) > 1:
        s += f" ({fx(xs[0])}–{fx(xs[-1])})"
    if len(xs) < len(prs):
        s += f" [{len(xs)} of {len(prs)} pairs]"
    return s

def label(c, rs):
    r = next((r for runs in rs.values() for r in runs if "n" in r), None)
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

span = last - first if last else 0.0
caf_runs = max((len(by_case[c].get("caf", [])) for c in cases), default=0)
caf_head = "CAF" if caf_runs <= 1 else "CAF (median)"
caf_ratio_head = "Athanor vs CAF" + (" (1 run)" if caf_runs <= 1 else " (median of pair ratios, min–max)")
print(f"| workload | metric | Athanor (median) | Erlang (median) | {caf_head} "
      f"| Athanor vs Erlang: median of {npairs} pair ratio{'s' if npairs != 1 else ''} (min–max) | {caf_ratio_head} |")
print("|---|---|---:|---:|---:|---:|---:|")
notes, detail = [], []
for c in cases:
    rs = by_case[c]
    bench = next(iter(rs.values()))[0]["bench"]
    a, e, f = rs.get("athanor", []), rs.get("erlang", []), rs.get("caf", [])
    for metric, lower in METRICS.get(bench, []):
        unit = "lower is better" if lower else "higher is better"
        pe = pair_ratios(rs, "erlang", metric, lower)
        pc = pair_ratios(rs, "caf", metric, lower)
        print(f"| {label(c, rs)} | {metric} ({unit}) | {cell(a, metric)} | {cell(e, metric)} | {cell(f, metric)} "
              f"| {ratio_cell(pe)} | {ratio_cell(pc) if pc else '—'} |")
        if pe:
            each = ", ".join(f"{fx(x) if x is not None else '—'} ({'A→E' if o.startswith('athanor') else 'E→A' if o else '?'})"
                             for _, o, x in pe)
            detail.append(f"| {label(c, rs)} | {metric} | {fmt(statistics.median(values(a, metric))) if values(a, metric) else '—'} "
                          f"| {fmt(statistics.median(values(e, metric))) if values(e, metric) else '—'} | {each} |")
    # Errors reported by the programs, and failures of some (not all) runs of a system:
    # a failure of every run already shows in the value cell.
    seen = {}
    for system, runs in rs.items():
        some_ok = any("failed" not in r for r in runs)
        for r in runs:
            why = r.get("error") or (r["failed"] if some_ok and "failed" in r else None)
            if why:
                seen.setdefault((system, why), []).append(r["pair"])
    for (system, why), ps in seen.items():
        where = f" (pair{'s' if len(ps) > 1 else ''} {', '.join(map(str, ps))})" if npairs > 1 else ""
        notes.append(f"- {label(c, rs)}, {system}{where}: {why}")
print()
print("Ratios: >1 means Athanor is better (time, memory, latency: other/Athanor; rates: Athanor/other). "
      "Each ratio is taken within one pair (two back-to-back runs), so the VM's drift cancels out; "
      "the table gives the median of the pair ratios, which need not equal the ratio of the medians."
      + (" CAF ran once per case (in pair 1, right after Erlang)." if caf_runs == 1 else ""))
if detail:
    print()
    print("Pair ratios, Athanor vs Erlang, in run order (A→E: Athanor ran first):")
    print()
    print("| workload | metric | Athanor (median) | Erlang (median) | ratio of each pair |")
    print("|---|---|---:|---:|---|")
    print("\n".join(detail))
if notes:
    print()
    print("Notes:")
    print("\n".join(notes))
if wall:
    mmss = lambda t: f"{int(t // 60)} min {int(t % 60)} s"
    print()
    print(f"Run time: {mmss(span)} from the first run's start to the last run's end, "
          f"{mmss(wall)} of it in the programs themselves.")
PY
}

if [ -n "$REPORT_ONLY" ]; then
  [ -r "$REPORT_ONLY" ] || { echo "$REPORT_ONLY: not readable" >&2; exit 2; }
  report "$REPORT_ONLY"
  exit 0
fi

mkdir -p "$BUILD" "$ERL_DIR" "$BUILD/bench-caf"

# --- build ------------------------------------------------------------------

HAVE_ATHANOR=0 HAVE_ERLANG=0 HAVE_CAF=0 HAVE_ERL_TC=0

log "building athanor-bench (cmake --preset release)"
if { cmake --preset release && cmake --build --preset release --target athanor-bench; } >"$BUILD/bench-build-athanor.log" 2>&1 \
   && [ -x "$ATHANOR_BIN" ]; then
  HAVE_ATHANOR=1
else
  echo "athanor-bench: build failed or not available (see $BUILD/bench-build-athanor.log); continuing with Erlang and CAF" >&2
fi

log "compiling bench/erlang/athanor_bench.erl and term_codec.erl"
if command -v erlc >/dev/null && erlc -o "$ERL_DIR" bench/erlang/athanor_bench.erl; then
  HAVE_ERLANG=1
  erlc -o "$ERL_DIR" bench/erlang/term_codec.erl && HAVE_ERL_TC=1
else
  echo "erlang: erlc missing or compile failed; skipping Erlang" >&2
fi

log "compiling bench/caf/caf_bench.cpp"
if [ -x "$CAF_BIN" ] && [ "$CAF_BIN" -nt bench/caf/caf_bench.cpp ]; then
  HAVE_CAF=1
elif g++ -O2 -std=c++17 bench/caf/caf_bench.cpp -lcaf_core -o "$CAF_BIN" 2>"$BUILD/bench-build-caf.log"; then
  HAVE_CAF=1
else
  echo "caf: build failed (is libcaf-dev installed? see $BUILD/bench-build-caf.log); skipping CAF" >&2
fi

# --- running ----------------------------------------------------------------

: >"$RESULTS"
MODE=$([ $QUICK = 1 ] && echo quick || echo full)
PAIR=1 ORDER=""   # the pair being run and its order ("athanor,erlang" or "erlang,athanor")

# Appends the program's JSON line, annotated with "case", "pair", "order", "mode",
# "utc" (start) and "wall_s", to $RESULTS, or an error record if it failed.
record() { # case system workload rc stdout-file [skip-reason [wall_ns [start_s]]]
  PAIR=$PAIR ORDER=$ORDER MODE=$MODE python3 - "$@" >>"$RESULTS" <<'PY'
import json, os, sys, time
case, system, bench, rc, out = sys.argv[1:6]
skip = sys.argv[6] if len(sys.argv) > 6 else ""
wall = int(sys.argv[7]) / 1e9 if len(sys.argv) > 7 else 0.0
start = float(sys.argv[8]) if len(sys.argv) > 8 else time.time()
rec = None
if not skip:
    lines = [l for l in open(out).read().splitlines() if l.strip()]
    if rc == "0" and len(lines) == 1:
        try:
            rec = json.loads(lines[0])
        except ValueError:
            rec = None
tag = f"pair {os.environ['PAIR']} {system}"
if rec is None:
    why = skip or ("timed out" if rc == "124" else f"exit status {rc}")
    if not skip and rc == "0":
        why = "unexpected output on stdout"
    rec = {"bench": bench, "system": system, "failed": why}
    print(f"   {tag}: {why}", file=sys.stderr)
else:
    print(f"   {tag} ({wall:.1f} s): " + json.dumps(rec), file=sys.stderr)
rec.update({"case": case, "pair": int(os.environ["PAIR"]), "order": os.environ["ORDER"],
            "mode": os.environ["MODE"], "utc": round(start, 3)})
if wall:
    rec["wall_s"] = round(wall, 3)
print(json.dumps(rec))
PY
}

# Other load on the machine (a parallel build, say) skews every number, so
# before each run wait until the CPUs are nearly idle (at most $IDLE_WAIT s).
wait_quiet() {
  local busy t0=$SECONDS said=0
  [ "$IDLE_WAIT" -gt 0 ] 2>/dev/null || return 0
  while :; do
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
    [ $said = 1 ] || { echo "   waiting for the machine to become idle (CPU ${busy}% busy)" >&2; said=1; }
    [ $((SECONDS - t0)) -ge "$IDLE_WAIT" ] && break
    sleep 1
  done
  echo "   warning: machine still ${busy}% busy; running anyway" >&2
}

have() { # system
  case $1 in athanor) [ $HAVE_ATHANOR = 1 ] ;; erlang) [ $HAVE_ERLANG = 1 ] ;; caf) [ $HAVE_CAF = 1 ] ;; esac
}

# Runs one workload on one system:  run case system timeout_s S args...
run() {
  local case=$1 system=$2 tmo=$3 s=$4; shift 4
  local out=$BUILD/bench-last.out rc start t0 t1
  if ! have "$system"; then record "$case" "$system" "$1" 1 /dev/null "not built"; return; fi
  if [ "$1" = term_codec ] && [ "$system" = erlang ] && [ $HAVE_ERL_TC = 0 ]; then
    record "$case" "$system" "$1" 1 /dev/null "term_codec.erl did not compile"; return
  fi
  wait_quiet
  start=$(date +%s.%N); t0=$(date +%s%N)
  case "$system" in
    athanor) if [ "$1" = term_codec ]; then
               timeout -k 10 "$tmo" "$ATHANOR_BIN" "$@" >"$out"; rc=$?
             else
               timeout -k 10 "$tmo" "$ATHANOR_BIN" "$@" --schedulers "$s" >"$out"; rc=$?
             fi ;;
    erlang)  local list
             if [ "$1" = term_codec ]; then
               shift; list=$(printf '"%s",' "$@"); list="[${list%,}]"
               timeout -k 10 "$tmo" erl -noshell -pa "$ERL_DIR" -eval "term_codec:main($list)." >"$out"; rc=$?
               set -- term_codec "$@"
             else
               list=$(printf '"%s",' "$@" --schedulers "$s"); list="[${list%,}]"
               timeout -k 10 "$tmo" erl -noshell +S "$s:$s" +P 20000000 -pa "$ERL_DIR" \
                 -eval "athanor_bench:main($list)." >"$out"; rc=$?
             fi ;;
    caf)     # CAF 0.17's default work-stealing scheduler walks a victim's whole queue per steal
             # (quadratic in fan_out: ~8k msgs/s at 1M); its work-sharing policy is CAF's own answer.
             local extra=()
             [ "$1" = fan_out ] && extra=(--caf-policy sharing)
             timeout -k 10 "$tmo" "$CAF_BIN" "$@" "${extra[@]}" --schedulers "$s" >"$out"; rc=$? ;;
  esac
  t1=$(date +%s%N)
  record "$case" "$system" "$1" "$rc" "$out" "" "$((t1 - t0))" "$start"
}

selected() { # case: BENCH_ONLY="ring fan_out" runs only those cases (matched against the case name)
  [ -z "${BENCH_ONLY:-}" ] || [[ " $BENCH_ONLY " == *" $1 "* ]]
}

# The order of the systems in pair p, for the systems given (athanor and erlang
# always; caf in pair 1 only, or in every pair with CAF_EVERY_PAIR=1).
pair_order() { # p systems...
  local p=$1; shift
  local want=" $* " list=()
  if [[ $want == *" caf "* ]] && { [ "$CAF_EVERY_PAIR" = 1 ] || [ "$p" = 1 ]; }; then :; else want=${want/ caf / }; fi
  if (( p % 2 )); then
    for s in athanor erlang caf; do [[ $want == *" $s "* ]] && list+=("$s"); done
  else
    for s in caf erlang athanor; do [[ $want == *" $s "* ]] && list+=("$s"); done
  fi
  echo "${list[*]}"
}

# Runs a case as $PAIRS alternating pairs:  run_pairs case "systems" timeout_s S args...
run_pairs() {
  local case=$1 systems=$2 p system order; shift 2
  selected "$case" || return 0
  log "$case: $* ($PAIRS pair$([ "$PAIRS" = 1 ] || echo s))"
  for p in $(seq 1 "$PAIRS"); do
    order=$(pair_order "$p" $systems)
    PAIR=$p ORDER=${order// /,}
    for system in $order; do run "$case" "$system" "$@"; done
  done
  PAIR=1 ORDER=""
}

run_all() { run_pairs "$1" "athanor erlang caf" "${@:2}"; }
# Workloads that exist only in Athanor and Erlang (OTP behaviours have no CAF twin).
run_otp() { run_pairs "$1" "athanor erlang" "${@:2}"; }

# Big spawn_idle runs only on the systems for which the memory measured at 1M
# says it fits: bytes_per_process * N * 1.25 + 1 GiB must be below MemAvailable.
run_big_spawn() { # case n
  local case=$1 n=$2 system need fits=()
  selected "$case" || return 0
  log "$case: spawn_idle --n $n ($PAIRS pair$([ "$PAIRS" = 1 ] || echo s))"
  for system in athanor erlang caf; do
    if ! have "$system"; then record "$case" "$system" spawn_idle 1 /dev/null "not built"; continue; fi
    need=$(python3 - "$RESULTS" "$system" "$n" <<'PY'
import json, statistics, sys
path, system, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bpp = [r["bytes_per_process"] for r in map(json.loads, open(path))
       if r.get("case") == "spawn_idle" and r.get("system") == system and r.get("bytes_per_process")]
avail = 0
for line in open("/proc/meminfo"):
    if line.startswith("MemAvailable:"):
        avail = int(line.split()[1]) * 1024
if not bpp:
    print("skipped: no 1M result to estimate its memory from")
else:
    need = int(max(bpp) * n * 1.25 + (1 << 30))
    print("ok" if need < avail else f"skipped: needs ~{need / 2**30:.0f} GiB, {avail / 2**30:.0f} GiB available")
PY
)
    if [ "$need" = ok ]; then fits+=("$system"); else record "$case" "$system" spawn_idle 1 /dev/null "$need"; fi
  done
  [ ${#fits[@]} -gt 0 ] || return 0
  local p order
  for p in $(seq 1 "$PAIRS"); do
    order=$(pair_order "$p" "${fits[@]}")
    PAIR=$p ORDER=${order// /,}
    for system in $order; do run "$case" "$system" 3600 "$S_DEFAULT" spawn_idle --n "$n"; done
  done
  PAIR=1 ORDER=""
}

if [ $QUICK = 1 ]; then
  N_SPAWN=100000 N_PP=200000 N_RING=10000 LAPS=100 N_FAN=100000 N_CD=100000 N_FAIR=100 N_CALL=100000 TC_REPS=20
else
  N_SPAWN=1000000 N_PP=2000000 N_RING=10000 LAPS=1000 N_FAN=1000000 N_CD=1000000 N_FAIR=500 N_CALL=1000000 TC_REPS=100
fi

T_START=$SECONDS
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
# term_codec: ETF encode/decode throughput on one thread (bench/term_bench.cpp against
# bench/erlang/term_codec.erl; no CAF twin).
if selected term_codec; then
  run_otp term_codec     600 1            term_codec --n 10000 --reps $TC_REPS
  record term_codec caf term_codec 1 /dev/null "no CAF equivalent"
fi
log "runs done in $(( (SECONDS - T_START) / 60 )) min $(( (SECONDS - T_START) % 60 )) s"
# The next run overwrites $RESULTS: keep a dated copy for re-analysis (--report FILE).
cp "$RESULTS" "$BUILD/bench-results-$(date -u +%Y%m%d-%H%M%S).jsonl"

report "$RESULTS"
