#!/usr/bin/env bash
# Builds Athanor (release) and runs the demo: a million processes, a contained crash, messages flowing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target athanor_example_demo
exec build/release/demo "$@"
