#!/usr/bin/env bash
# Builds and runs every test, stage by stage, and prints each stage's time and the totals.
#
#   stage     what it builds and runs                                         parts covered
#   release   every test, example and tool test in the optimised build        all (term, runtime, otp,
#             (including the README's code blocks and the toolchain test)     dist, web, live, toolchain, readme)
#   package   cmake --install to a temporary prefix, then a consumer project   the installed package
#             with find_package, with pkg-config, and through FetchContent
#   asan      the tests under AddressSanitizer + UBSan                         term, runtime, otp, dist,
#                                                                              web, live, toolchain, readme
#   tsan      the tests under ThreadSanitizer                                  term, runtime, otp, dist, web,
#                                                                              live
#   fuzz      every libFuzzer target for FUZZ_SECONDS (default 30) each        every parser
#
#   scripts/test.sh                everything (what CI runs; budget: 40 minutes on 2 cores)
#   scripts/test.sh release asan   only those stages
# Exits non-zero if any test fails or a fuzzer finds a crash. Compiler: clang-19 (installed by
# scripts/install-deps.sh; cmake/AthanorCompiler.cmake says why not g++).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test || exit 1

# The web and live tests drive real npm clients (tests/web/js, tests/live/js: ws, phoenix,
# phoenix_live_view, jsdom, playwright-core): install them once, before ctest runs test binaries in
# parallel (a test's own `npm ci` would delete node_modules under another test's feet). `npm ci`
# is skipped where node_modules already matches the lockfile.
for dir in tests/web/js tests/live/js; do
  if ! (cd "$dir" && npm ls --all >/dev/null 2>&1); then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || echo "== npm ci failed in $dir: the node client tests will fail"
  fi
done

stages=("${@:-release package asan tsan fuzz}")
read -r -a stages <<<"${stages[*]}"
status=0
passed=0
failed=0
timings=()

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
build_failed() {
  status=1
  failed=$((failed + 1))
  echo "== $1: build failed"
}

# The test binaries the sanitizer stages build, and the ctest labels they run.
sanitized_targets=(term_tests runtime_tests otp_tests dist_tests web_tests live_tests)
sanitized_labels='term|runtime|otp|dist|web|live'

for stage in "${stages[@]}"; do
  echo "================ $stage ================"
  start=$(date +%s)
  case "$stage" in
    release)
      if cmake --preset release >/dev/null && cmake --build --preset release; then
        run_ctest --preset release || status=1
      else
        build_failed release
      fi
      ;;
    package)
      # Installs build/release to a temporary prefix and builds consumers with find_package,
      # pkg-config and FetchContent; its closing line "package: N passed, M failed" adds to the totals.
      pkg_log=$(mktemp)
      scripts/package-test.sh 2>&1 | tee "$pkg_log"
      rc=${PIPESTATUS[0]}
      if [[ $(tail -1 "$pkg_log") =~ ^package:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
      elif [[ $rc -ne 0 ]]; then
        failed=$((failed + 1))
      fi
      [[ $rc -eq 0 ]] || status=1
      rm -f "$pkg_log"
      ;;
    asan | tsan)
      targets=("${sanitized_targets[@]}")
      labels=$sanitized_labels
      # The toolchain's regression test and the README's programs are ASan checks (a temporary
      # destroyed twice is a double free): what the README shows must run clean under ASan.
      [[ $stage == asan ]] && targets+=(toolchain_tests readme_tests) && labels+='|toolchain|readme'
      if cmake --preset "$stage" >/dev/null && cmake --build --preset "$stage" --target "${targets[@]}"; then
        run_ctest --preset "$stage" -L "$labels" || status=1
      else
        build_failed "$stage"
      fi
      ;;
    fuzz)
      targets=$(for f in fuzz/*_fuzz.cpp; do basename "$f" .cpp; done)
      # shellcheck disable=SC2086
      if cmake --preset fuzz >/dev/null && cmake --build --preset fuzz --target $targets; then
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
      else
        build_failed fuzz
      fi
      ;;
    *)
      echo "== unknown stage '$stage' (release, package, asan, tsan, fuzz)"
      status=1
      failed=$((failed + 1))
      ;;
  esac
  took=$(($(date +%s) - start))
  timings+=("$(printf '%-8s %5d s' "$stage" "$took")")
  echo "== $stage took $took s"
done
echo "================ stage times ================"
printf '%s\n' "${timings[@]}"
echo "================ all stages (${stages[*]}) ================"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]] || status=1
exit $status
