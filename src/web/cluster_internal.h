// Internal: what channel.cpp, presence.cpp and pubsub.cpp (the cluster relay) share.
#pragma once

#include <string_view>

#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/term.h"

namespace athanor::web::detail {
// To this node's subscribers only (channel.cpp): the frame serialized once, `except` skipped.
std::size_t local_broadcast(std::string_view topic, std::string_view event, const term& payload, pid except);
// To every peer relay, once each (pubsub.cpp); nothing without a running relay.
void forward_broadcast(std::string_view topic, std::string_view event, const term& payload) noexcept;
// A change to this node's presences, for the peers (pubsub.cpp: through the local relay, so that
// it is ordered with the snapshots the relay sends); nothing without a running relay.
void replicate_presence(term delta) noexcept;
}  // namespace athanor::web::detail

namespace athanor::web::presence::detail {
// Called by the relay (pubsub.cpp).
void apply_remote(const term& delta) noexcept;             // a peer's join, leave or update
void apply_snapshot(atom node, const term& entries) noexcept;  // a peer's own entries, whole
void drop_node(atom node) noexcept;                         // a peer went down: its entries leave
term local_snapshot();                                      // this node's own entries
}  // namespace athanor::web::presence::detail
