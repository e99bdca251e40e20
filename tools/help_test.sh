#!/usr/bin/env bash
# Tests every tool's command line: `help_test.sh path/to/tool...`.
#
# For each tool: --help prints a "Usage:" line and the flags on stdout, nothing on stderr, and
# exits 0; an unknown flag exits 2 with one line on stderr that says "try --help" and nothing on
# stdout. A tool whose --help lists --config takes the node settings (athanor/runtime/config.h):
# then a bad --schedulers, a bad ATHANOR_LOG_LEVEL and a missing --config file each exit 2 with
# one line naming the culprit, before the tool does anything else, and --help still works with a
# bad environment. Nothing here starts a server or a workload.
set -uo pipefail

[ $# -gt 0 ] || { echo "usage: help_test.sh path/to/tool..." >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

# Runs the command with a 10 s limit (a tool that started its real work would hang here) and
# leaves its status in $rc, stdout in $TMP/out, stderr in $TMP/err.
run() {
  timeout 10 "$@" >"$TMP/out" 2>"$TMP/err"
  rc=$?
}

# The command must exit 2 with nothing on stdout and one line on stderr containing each of the
# strings given after --.
expect_usage_error() { # name command... -- strings...
  local name=$1; shift
  local cmd=()
  while [ "$1" != "--" ]; do cmd+=("$1"); shift; done
  shift
  run "${cmd[@]}"
  [ "$rc" -eq 2 ] || fail "$name: exit status $rc, expected 2"
  [ ! -s "$TMP/out" ] || fail "$name: wrote to stdout: $(head -c 200 "$TMP/out")"
  [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$name: expected one line on stderr, got: $(cat "$TMP/err")"
  local s
  for s in "$@"; do
    grep -qF -- "$s" "$TMP/err" || fail "$name: stderr lacks '$s': $(cat "$TMP/err")"
  done
}

for bin in "$@"; do
  tool=$(basename "$bin")
  [ -x "$bin" ] || { fail "$tool: $bin is not an executable"; continue; }

  run "$bin" --help
  [ "$rc" -eq 0 ] || fail "$tool --help: exit status $rc, expected 0"
  grep -q "^Usage: " "$TMP/out" || fail "$tool --help: no 'Usage:' line on stdout"
  grep -q -- "--help" "$TMP/out" || fail "$tool --help: does not list --help"
  [ ! -s "$TMP/err" ] || fail "$tool --help: wrote to stderr: $(cat "$TMP/err")"
  cp "$TMP/out" "$TMP/help"
  takes_settings=0
  grep -q -- "--config FILE" "$TMP/help" && takes_settings=1

  expect_usage_error "$tool --no-such-flag" "$bin" --no-such-flag -- "--no-such-flag" "try --help"

  if [ "$takes_settings" = 1 ]; then
    for flag in --schedulers --log-level --max-processes --cookie --node; do
      grep -q -- "$flag" "$TMP/help" || fail "$tool --help: does not list $flag"
    done
    expect_usage_error "$tool --schedulers abc" "$bin" --schedulers abc -- "--schedulers" "'abc'" "try --help"
    expect_usage_error "$tool --log-level=loud" "$bin" --log-level=loud -- "--log-level" "'loud'"
    expect_usage_error "$tool ATHANOR_LOG_LEVEL=loud" env ATHANOR_LOG_LEVEL=loud "$bin" -- "ATHANOR_LOG_LEVEL" "'loud'"
    expect_usage_error "$tool --config missing" "$bin" --config "$TMP/missing.config" -- "$TMP/missing.config" \
      "No such file"
    printf '[{athanor, [{schedulers, 2}, {shedulers, 4}]}].\n' >"$TMP/typo.config"
    expect_usage_error "$tool --config with a typo" "$bin" --config "$TMP/typo.config" -- "$TMP/typo.config" \
      "unknown key 'shedulers'"
    run env ATHANOR_SCHEDULERS=abc "$bin" --help
    [ "$rc" -eq 0 ] || fail "$tool --help with ATHANOR_SCHEDULERS=abc: exit status $rc, expected 0"
  fi
  echo "$tool: checked$([ "$takes_settings" = 1 ] && echo ", with node settings")"
done

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "help_test: all checks passed ($# tools)"
