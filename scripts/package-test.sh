#!/usr/bin/env bash
# Tests Athanor as a package, the way a user's project takes it:
#   * `cmake --install` into a temporary prefix: headers, libraries, CMake package, pkg-config files;
#   * tests/package/consumer/ built against that prefix with find_package(athanor), and the same
#     main.cpp compiled with `pkg-config --cflags --libs athanor`; both run and print what is expected;
#   * the installed package refuses g++ (the coroutine miscompiles) unless the consumer sets
#     ATHANOR_ALLOW_UNSAFE_COMPILER, which then reaches the consumer's compile flags;
#   * tests/package/subproject/ takes the source tree in with FetchContent: no tests, examples,
#     bench or tools come with it, its own `demo` and `counter` targets do not clash, it builds and runs.
# Prints "package: N passed, M failed" and exits non-zero if any check failed.
#
#   scripts/package-test.sh     installs from build/release when it is configured (building the
#                               libraries there if they are not up to date), else builds the
#                               libraries alone in a temporary directory
#   ATHANOR_BUILD_DIR=dir scripts/package-test.sh   installs from that build directory instead
#   KEEP=1 scripts/package-test.sh                  keeps the temporary directory (printed) to look into
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
root=$PWD
jobs=${JOBS:-2}
export CXX=clang++-19   # the consumers' compiler, as a user's following the README (g++ is refused)

work=$(mktemp -d /tmp/athanor-package.XXXXXX)
if [[ -n "${KEEP:-}" ]]; then
  echo "== package: working in $work (kept)"
else
  trap 'rm -rf "$work"' EXIT
fi

passed=0
failed=0
pass() { echo "== package: $1: ok"; passed=$((passed + 1)); }
fail() { echo "== package: $1: FAILED${2:+ ($2)}"; failed=$((failed + 1)); }
# log NAME COMMAND...: runs COMMAND with its output in $work/NAME.log, shown (the end) if it fails.
log() {
  local name=$1
  shift
  if "$@" >"$work/$name.log" 2>&1; then
    return 0
  fi
  echo "---- $name failed: the end of $work/$name.log"
  tail -25 "$work/$name.log"
  return 1
}

version=$(sed -n 's/^project(athanor VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[[ -n "$version" ]] || { echo "== package: no version in CMakeLists.txt's project()"; exit 1; }
version_re=${version//./\\.}
libs=()
for dir in src/*/; do libs+=("athanor_$(basename "$dir")"); done
start=$(date +%s)

# 1. Install.
build=${ATHANOR_BUILD_DIR:-build/release}
if [[ -f "$build/CMakeCache.txt" ]]; then
  echo "== package: installing from $build ($(date +%T))"
  log build cmake --build "$build" -j"$jobs" --target "${libs[@]}" || fail "build the libraries in $build"
else
  build=$work/build
  echo "== package: building the libraries in $build ($(date +%T))"
  if ! log configure cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -g1 -DNDEBUG" \
         -DATHANOR_BUILD_TESTS=OFF -DATHANOR_BUILD_BENCH=OFF -DATHANOR_BUILD_EXAMPLES=OFF -DATHANOR_BUILD_TOOLS=OFF ||
     ! log build cmake --build "$build" -j"$jobs"; then
    fail "build the libraries in $build"
  fi
fi
prefix=$work/prefix
if log install cmake --install "$build" --prefix "$prefix"; then
  missing=""
  for f in include/athanor/athanor.h include/athanor/version.h include/athanor/toolchain.h \
           lib/cmake/athanor/athanorConfig.cmake lib/cmake/athanor/athanorConfigVersion.cmake \
           lib/cmake/athanor/athanorTargets.cmake lib/cmake/athanor/AthanorCompiler.cmake \
           lib/pkgconfig/athanor.pc share/doc/athanor/LICENSE share/doc/athanor/NOTICE; do
    [[ -f "$prefix/$f" ]] || missing+=" $f"
  done
  for lib in "${libs[@]}"; do
    [[ -f "$prefix/lib/lib$lib.a" ]] || missing+=" lib/lib$lib.a"
  done
  if grep -q "ATHANOR_VERSION_STRING \"$version\"" "$prefix/include/athanor/version.h" 2>/dev/null && [[ -z "$missing" ]]; then
    pass "install to a prefix"
  else
    fail "install to a prefix" "missing or wrong:${missing:- version.h}"
  fi
else
  fail "install to a prefix"
fi

# What the consumer prints (tests/package/consumer/main.cpp).
expected="^athanor $version_re: 2 \+ 40 = 42 from <0\.[0-9]+\.[0-9]+>, big \{ok,123456789012345678901234567890\}, ws s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=$"
# check_output NAME PROGRAM: runs PROGRAM (10 s at most) and matches its output with $expected.
check_output() {
  local out
  out=$(timeout 10 "$2" 2>&1)
  local rc=$?
  if [[ $rc -eq 0 && "$out" =~ $expected ]]; then
    echo "   $out"
    pass "$1"
  else
    echo "   exit $rc, printed: $out"
    fail "$1" "expected a line matching $expected"
  fi
}

# 2. find_package.
echo "== package: consumer with find_package ($(date +%T))"
if log consumer-configure cmake -S tests/package/consumer -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" &&
   grep -q "Found athanor $version in $prefix/" "$work/consumer-configure.log" &&
   log consumer-build cmake --build "$work/consumer" -j"$jobs"; then
  check_output "consumer with find_package" "$work/consumer/consumer"
else
  fail "consumer with find_package"
fi

# 3. pkg-config, without CMake: the link line must be complete (static libraries, each before
# what it needs) and the headers' include path right.
echo "== package: consumer with pkg-config ($(date +%T))"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pc_libs=$(pkg-config --libs athanor 2>"$work/pkg-config.log")
# (Where a library is listed again later, as pkgconf may, its first place is the one that counts.)
pc_order=$(grep -o -- '-lathanor_[a-z]*' <<<"$pc_libs" | awk '!seen[$0]++' | tr '\n' ' ')
# athanor.pc requires the parts later ones first (web, otp, runtime, term): the static link order.
pc_expected=$(sed -n 's/^Requires: //p' "$prefix/lib/pkgconfig/athanor.pc" | tr -d ' ' | tr ',' '\n' | sed 's/^athanor-/-lathanor_/' | tr '\n' ' ')
if [[ "$(pkg-config --modversion athanor 2>/dev/null)" != "$version" ]]; then
  fail "consumer with pkg-config" "pkg-config --modversion athanor is not $version"
elif [[ "$pc_order" != "$pc_expected" || "$pc_order" != *"-lathanor_runtime -lathanor_term "* ]]; then
  fail "consumer with pkg-config" "libraries out of order in: $pc_libs"
elif log consumer-pkg-config bash -c "$CXX -std=c++20 tests/package/consumer/main.cpp \$(pkg-config --cflags --libs athanor) -o '$work/consumer-pc'"; then
  check_output "consumer with pkg-config" "$work/consumer-pc"
else
  fail "consumer with pkg-config"
fi
unset PKG_CONFIG_PATH

# 4. The installed package's compiler check: g++ is refused with the reason, unless the consumer
# allows it, and then the headers' #error is told to stand aside. Configure only.
echo "== package: the compiler check ($(date +%T))"
if ! command -v g++ >/dev/null; then
  echo "== package: no g++ on this machine: the compiler check is not run"
elif CXX=g++ cmake -S tests/package/consumer -B "$work/gcc" -DCMAKE_PREFIX_PATH="$prefix" >"$work/gcc.log" 2>&1; then
  fail "g++ refused by the installed package" "configuring with g++ succeeded"
elif grep -q "miscompile" "$work/gcc.log"; then
  pass "g++ refused by the installed package"
else
  tail -20 "$work/gcc.log"
  fail "g++ refused by the installed package" "no 'miscompile' in the message"
fi
if ! command -v g++ >/dev/null; then
  :
elif log gcc-allowed env CXX=g++ cmake -S tests/package/consumer -B "$work/gcc-allowed" -DCMAKE_PREFIX_PATH="$prefix" \
     -DATHANOR_ALLOW_UNSAFE_COMPILER=ON; then
  if grep -rqs -- "-DATHANOR_ALLOW_UNSAFE_COMPILER=1" "$work/gcc-allowed/CMakeFiles/consumer.dir/flags.make"; then
    pass "g++ allowed with ATHANOR_ALLOW_UNSAFE_COMPILER=ON"
  else
    fail "g++ allowed with ATHANOR_ALLOW_UNSAFE_COMPILER=ON" "the consumer is not compiled with -DATHANOR_ALLOW_UNSAFE_COMPILER=1"
  fi
else
  fail "g++ allowed with ATHANOR_ALLOW_UNSAFE_COMPILER=ON"
fi

# 5. Taken in from source with FetchContent (add_subdirectory underneath).
echo "== package: subproject with FetchContent ($(date +%T))"
if log subproject-configure cmake -S tests/package/subproject -B "$work/subproject" -DATHANOR_SOURCE_DIR="$root" &&
   log subproject-build cmake --build "$work/subproject" -j"$jobs" --target demo; then
  out=$(timeout 10 "$work/subproject/demo" 2>&1)
  if [[ "$out" =~ ^subproject:\ athanor\ $version_re,\ \{ok,\[1,2,3\]\}$ ]]; then
    echo "   $out"
    pass "subproject with FetchContent"
  else
    echo "   printed: $out"
    fail "subproject with FetchContent" "unexpected output"
  fi
else
  fail "subproject with FetchContent"
fi

echo "== package took $(($(date +%s) - start)) s"
echo "package: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
