#!/usr/bin/env bash
# Builds and runs every test: all tests in the release build, then the core (term, runtime, otp)
# under AddressSanitizer+UBSan and under ThreadSanitizer, then every fuzz target for a short
# run (FUZZ_SECONDS, default 30). Exits non-zero if any test fails or a fuzzer finds a crash.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh release    only the plain build's tests (also: asan, tsan, fuzz)
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test || exit 1

# The web tests drive the real `ws` npm client (tests/web/js): install it once, before ctest runs
# test binaries in parallel.
if [[ ! -f tests/web/js/node_modules/ws/package.json ]]; then
  (cd tests/web/js && npm ci --no-audit --no-fund --loglevel=error) || echo "== npm ci failed: the node client tests will fail"
fi

presets=("${@:-release asan tsan fuzz}")
read -r -a presets <<<"${presets[*]}"
status=0
passed=0
failed=0
# Runs ctest and adds its counts to the totals printed at the end.
run_ctest() {
  local log
  log=$(mktemp)
  ctest "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  elif [[ $rc -ne 0 ]]; then
    failed=$((failed + 1))
  fi
  rm -f "$log"
  return "$rc"
}
for preset in "${presets[@]}"; do
  echo "================ $preset ================"
  start=$(date +%s)
  cmake --preset "$preset" >/dev/null || { status=1; failed=$((failed + 1)); echo "== $preset: build failed"; continue; }
  if [[ "$preset" == fuzz ]]; then
    targets=$(for f in fuzz/*_fuzz.cpp; do basename "$f" .cpp; done)
    # shellcheck disable=SC2086
    cmake --build --preset fuzz --target $targets || { status=1; failed=$((failed + 1)); echo "== $preset: build failed"; continue; }
    for target in build/fuzz/*_fuzz; do
      corpus="build/fuzz/corpus/$(basename "$target")"
      mkdir -p "$corpus"
      echo "== $(basename "$target"): ${FUZZ_SECONDS:-30} s"
      if (cd build/fuzz && "../../$target" -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096 "../../$corpus" 2>&1 | tail -3); then
        passed=$((passed + 1))
      else
        failed=$((failed + 1))
        status=1
      fi
    done
  elif [[ "$preset" == release ]]; then
    cmake --build --preset "$preset" || { status=1; failed=$((failed + 1)); echo "== $preset: build failed"; continue; }
    run_ctest --preset "$preset" || status=1
  else
    # The core (term, runtime, otp) is what the sanitizer runs cover.
    cmake --build --preset "$preset" --target term_tests runtime_tests otp_tests || { status=1; failed=$((failed + 1)); echo "== $preset: build failed"; continue; }
    run_ctest --preset "$preset" -L 'term|runtime|otp' || status=1
  fi
  echo "== $preset took $(($(date +%s) - start)) s"
done
echo "================ all presets (${presets[*]}) ================"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]] || status=1
exit $status
