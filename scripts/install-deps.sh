#!/usr/bin/env bash
# Installs the Debian packages Athanor needs, if they are missing (idempotent; no-op when all are there).
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --bench    also Erlang/OTP and CAF for bench/compare.sh
set -euo pipefail

packages=(cmake make g++ pkg-config libgtest-dev libgmock-dev libfmt-dev zlib1g-dev erlang-base clang)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(libcaf-dev linux-perf)
fi

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
