#!/usr/bin/env bash
# Installs the Debian packages Athanor needs, if they are missing (idempotent; no-op when all are there).
#   scripts/install-deps.sh            what the build and the demo need
#   scripts/install-deps.sh --test     also clang, for the libFuzzer targets scripts/test.sh runs
#   scripts/install-deps.sh --bench    also CAF and perf, for bench/compare.sh
set -euo pipefail

packages=(cmake make g++ pkg-config libgtest-dev libgmock-dev libfmt-dev zlib1g-dev erlang-base)
case "${1:-}" in
  --test) packages+=(clang) ;;
  --bench) packages+=(libcaf-dev linux-perf) ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "== installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
