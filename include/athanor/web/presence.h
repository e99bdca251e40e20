// athanor::web::presence: who is on a topic (Phoenix.Presence), as the official client's Presence
// object expects it: `presence_state` (the whole list) and `presence_diff` ({joins, leaves})
// events, each tracked entry a meta map with a unique `phx_ref`.
//
//   struct after_join {};
//   struct room : web::channel<room> {
//     web::join_reply join(std::string_view, const term& params, web::socket& s) {
//       send(this_process().self(), after_join{});   // runs after the join reply is queued
//       return web::join_reply::ok();
//     }
//     void handle_info(message& m, web::socket& s) {
//       if (!m.is<after_join>()) return;
//       s.push("presence_state", web::presence::list(s.topic()));
//       web::presence::track(s, "ann", map({{term("online_at"), term("1700000000")}}));
//     }
//   };
//
// A tracked entry belongs to the channel process that tracked it and is untracked when that
// process ends, however it ends (Phoenix tracks the channel pid the same way), which every other
// client of the topic sees as a leave. Every change is broadcast to the topic as `presence_diff`
// (an update is a join of the new meta, with phx_ref_prev, plus a leave of the old one, in one
// diff, as Phoenix sends it).
//
// Scope: this node's channels (replication across a cluster is the next step of issue 14).
// Thread-safety: the functions taking a socket are called from its channel's process; list() from
// anywhere.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "athanor/term/pid.h"
#include "athanor/term/term.h"
#include "athanor/web/channel.h"

namespace athanor::web::presence {

// Tracks the socket's channel under `key` on its topic with `meta` (a map; "phx_ref" is added, a
// unique string) and broadcasts the join. Returns the phx_ref, or nullopt if this channel already
// tracks `key` (Phoenix's {:error, {:already_tracked, ...}}: use update()). Throws
// std::invalid_argument if meta is not a map, json::json_error if it has no JSON form.
std::optional<std::string> track(socket& s, std::string_view key, term meta);
// Replaces the meta this channel tracks under `key` (the first, if it tracks several): a new
// phx_ref, with phx_ref_prev naming the old one. Returns the new phx_ref, or nullopt if this
// channel tracks nothing under `key`. Throws as track().
std::optional<std::string> update(socket& s, std::string_view key, term meta);
// Stops tracking this channel under `key`, broadcasting the leave. Returns false if it tracked
// nothing there.
bool untrack(socket& s, std::string_view key);

// The topic's presences as the client's Presence object takes them: a map of key to
// {"metas": [meta, ...]} (the metas in the order tracked).
term list(std::string_view topic);

namespace detail {
// Untracks everything process `p` tracks (its channel ended), broadcasting the leaves.
void untrack_process(pid p) noexcept;
}  // namespace detail

}  // namespace athanor::web::presence
