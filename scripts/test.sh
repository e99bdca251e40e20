#!/usr/bin/env bash
# Builds and runs every test: all tests in the release build, then the core (term + runtime)
# under AddressSanitizer+UBSan and under ThreadSanitizer. Exits non-zero if any test fails.
#   scripts/test.sh            everything (what CI runs)
#   scripts/test.sh release    only the plain build's tests (also: asan, tsan)
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1

presets=("${@:-release asan tsan}")
read -r -a presets <<<"${presets[*]}"
status=0
for preset in "${presets[@]}"; do
  echo "================ $preset ================"
  start=$(date +%s)
  cmake --preset "$preset" >/dev/null || { status=1; continue; }
  if [[ "$preset" == release ]]; then
    cmake --build --preset "$preset" || { status=1; continue; }
    ctest --preset "$preset" || status=1
  else
    # The core (term, runtime) is what the sanitizer runs cover.
    cmake --build --preset "$preset" --target term_tests runtime_tests || { status=1; continue; }
    ctest --preset "$preset" -L 'term|runtime' || status=1
  fi
  echo "== $preset took $(($(date +%s) - start)) s"
done
exit $status
