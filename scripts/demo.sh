#!/usr/bin/env bash
# Builds Athanor (release) and runs the demo: a million processes, a contained crash, messages
# flowing; then the chat: two Athanor nodes in a cluster, each serving the chat page (Phoenix
# Channels and Presence, the official phoenix client in the browser) on localhost, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target athanor_example_demo athanor-chat
build/release/demo "$@"

echo
echo "== The chat: two nodes of one cluster; open both pages, join the same room, chat (Ctrl-C stops)"
chat=build/release/tools/athanor-chat/athanor-chat
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
trap 'exit 0' INT TERM
"$chat" --port "${CHAT_PORT:-4000}" --sname athanor_demo_chat1 --cookie athanor-demo & pids+=($!)
"$chat" --port "$(( ${CHAT_PORT:-4000} + 1 ))" --sname athanor_demo_chat2 --cookie athanor-demo \
  --join athanor_demo_chat1 & pids+=($!)
wait
