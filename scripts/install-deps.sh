#!/usr/bin/env bash
# Installs the Debian packages Athanor needs, if they are missing (idempotent; no-op when all are there).
#   scripts/install-deps.sh            what the build and the demo need (node + npm included)
#   scripts/install-deps.sh --test     also what the tests drive: curl, wrk, Erlang, Elixir and Chromium
#   scripts/install-deps.sh --bench    also CAF, perf, wrk and nginx, for the benchmark scripts
set -euo pipefail

# The compiler is clang-19 (with libstdc++ 12), with its sanitizer and libFuzzer runtimes: g++ 12
# miscompiles coroutine code written in the natural style (cmake/AthanorCompiler.cmake).
packages=(cmake make clang-19 libclang-rt-19-dev pkg-config libgtest-dev libgmock-dev libfmt-dev
          libspdlog-dev zlib1g-dev erlang-base libssl-dev nlohmann-json3-dev librapidcheck-dev libgmp-dev
          liburing-dev)
# Node.js: Debian's nodejs + npm, unless a node with npm is already installed some other way. The
# build needs npm: athanor-chat's page bundles the official phoenix client from npm.
command -v npm >/dev/null || packages+=(nodejs npm)
case "${1:-}" in
  # chromium: tests/web/chromium_chat_test.cpp runs athanor-chat's page in it (npm's playwright-core
  # drives /usr/bin/chromium itself, over the DevTools protocol: no chromium-driver needed).
  --test) packages+=(curl wrk erlang-crypto erlang-ssl elixir chromium) ;;
  --bench) packages+=(libcaf-dev linux-perf wrk nginx-light curl) ;;
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
