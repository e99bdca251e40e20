#!/usr/bin/env bash
# Builds the baseline for "local sends pay at most one branch for distribution": athanor-bench
# from a copy of this work tree with the distribution branches of the local send path taken out
# (send()'s `if (!to.is_local())` in include/athanor/runtime/process.h and deliver()'s
# `if (!to.is_local()) return deliver_remote(...)` in src/runtime/process.cpp). Everything else is
# the same source, compiler and flags as the release preset, so ping_pong and ring measured
# against it in alternating pairs (bench/dist/compare.sh with LOCAL_BASELINE) show what the
# branches cost. The copy is never the repository: nothing here writes under the work tree.
#
#   bench/dist/build_baseline.sh [DIR]     (default /tmp/athanor-nodist) -> DIR/build/athanor-bench
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${1:-/tmp/athanor-nodist}
rm -rf "$DIR/src"
mkdir -p "$DIR/src"
(cd "$ROOT" && tar -c --exclude=./build --exclude=./.git .) | tar -x -C "$DIR/src"
python3 - "$DIR/src" <<'PY'
import re, sys
root = sys.argv[1]
h = root + "/include/athanor/runtime/process.h"
s = open(h).read()
# send(pid, T&&): drop the whole remote branch (from `if (!to.is_local())` to its `return; }`).
pat = re.compile(r"(void send\(pid to, T&& msg\) \{\n  using value_type = std::remove_cvref_t<T>;\n)"
                 r"  if \(!to\.is_local\(\)\) \[\[unlikely\]\] \{.*?\n    return;\n  \}\n", re.S)
s, n = pat.subn(r"\1", s)
assert n == 1, "process.h: send()'s remote branch not found"
open(h, "w").write(s)
c = root + "/src/runtime/process.cpp"
s = open(c).read()
old = "  if (!to.is_local()) [[unlikely]] return deliver_remote(to, e);\n"
assert s.count(old) == 1, "process.cpp: deliver()'s remote branch not found"
s = s.replace(old, "")
open(c, "w").write(s)
print("baseline: both distribution branches removed from the local send path", file=sys.stderr)
PY
cmake -S "$DIR/src" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -g1 -DNDEBUG" >/dev/null
cmake --build "$DIR/build" --target athanor-bench -j"$(nproc)" >/dev/null
echo "$DIR/build/athanor-bench"
