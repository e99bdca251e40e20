#!/usr/bin/env bash
# Builds Athanor (release) and runs the demo: a million processes, a contained crash, messages
# flowing; then, on localhost until Ctrl-C, the chat (two Athanor nodes in a cluster, each
# serving the chat page: Phoenix Channels and Presence, the official phoenix client in the
# browser) and a LiveView counter (the official phoenix_live_view client).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target athanor_example_demo athanor-chat athanor-live
build/release/demo "$@"

echo
echo "== The chat: two nodes of one cluster; open both pages, join the same room, chat"
echo "== and a LiveView: the counter page (Ctrl-C stops them)"
chat=build/release/tools/athanor-chat/athanor-chat
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
trap 'exit 0' INT TERM
"$chat" --port "${CHAT_PORT:-4000}" --sname athanor_demo_chat1 --cookie athanor-demo & pids+=($!)
"$chat" --port "$(( ${CHAT_PORT:-4000} + 1 ))" --sname athanor_demo_chat2 --cookie athanor-demo \
  --join athanor_demo_chat1 & pids+=($!)
build/release/tools/athanor-live/athanor-live --port "$(( ${CHAT_PORT:-4000} + 2 ))" > >(sed -u 's|/$|/counter|') &
pids+=($!)
wait
