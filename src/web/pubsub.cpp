// The cluster relay (pubsub.h): broadcasts and Presence across Athanor nodes.
//
// Design
// ======
// One relay process per node, registered as `athanor_pubsub`. It watches nodes
// (dist::monitor_nodes) and greets the relay of every node that comes up with
// {athanor_pubsub_hello, Relay}; a relay that receives a greeting from a node it did not know adds
// that node to its peers, greets back, and sends it a snapshot of this node's own presences. So
// two relays meet whichever greets first, each sends exactly one snapshot per meeting, and a node
// without a relay (an Erlang node) is greeted once, drops the message (no such name), and never
// becomes a peer.
//
// Broadcasts: the caller fans out to this node's channel subscribers itself (channel.cpp) and to
// the processes subscribed with pubsub::subscribe (forward_broadcast, here), then sends
// {athanor_pubsub_fwd, Topic, Event, Payload} once to each peer relay, which fans it out to its
// own (the frame is serialized once per node). Forwards go straight from the caller, so one
// process's broadcasts arrive in the order made (per-pair order); they are never forwarded again.
//
// Presence: a change to this node's entries goes to the local relay first, which sends it to each
// peer after the snapshot it sent that peer (one sender per pair: the peer applies the snapshot,
// then every later change, in order). Changes and snapshots are idempotent by phx_ref. A nodedown
// drops that node's entries here (its clients' leaves are broadcast to ours) and forgets its relay.
//
// Rejected:
//   * Forwarding every broadcast to every node in nodes(): Erlang and Elixir nodes of the cluster
//     would get messages for a name they do not have, one per broadcast.
//   * Erlang's pg for membership: OTP's pg ignores hidden nodes, which Athanor nodes are.
//   * Sending presence changes straight from the channels: a change could overtake the snapshot
//     that did not contain it and be wiped when the snapshot is applied.
#include "athanor/web/pubsub.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <string>
#include <unordered_map>
#include <optional>
#include <stdexcept>
#include <vector>

#include "athanor/dist/node.h"
#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "athanor/web/channel.h"
#include "web/cluster_internal.h"

namespace athanor::web {

namespace {

const atom& relay_name() {
  static const atom a("athanor_pubsub");
  return a;
}

struct relay_state {
  std::mutex mu;
  pid relay;
  std::vector<atom> peers;  // sorted
};
relay_state& state() {
  static relay_state s;
  return s;
}

// A change to this node's presences, on its way to the local relay.
struct presence_out {
  term delta;
};

bool add_peer(atom n) {
  relay_state& s = state();
  std::lock_guard lock(s.mu);
  auto it = std::lower_bound(s.peers.begin(), s.peers.end(), n);
  if (it != s.peers.end() && *it == n) return false;
  s.peers.insert(it, n);
  return true;
}

void remove_peer(atom n) {
  relay_state& s = state();
  std::lock_guard lock(s.mu);
  std::erase(s.peers, n);
}

std::vector<atom> peer_list() {
  relay_state& s = state();
  std::lock_guard lock(s.mu);
  return s.peers;
}

void greet(atom n, pid self) {
  try {
    send(name_on_node{relay_name(), n}, tuple(atom("athanor_pubsub_hello"), term(self)));
  } catch (const std::exception& e) {
    logger::log("web", log_level::warning, fmt::format("pubsub: cannot greet {}: {}", n.name(), e.what()));
  }
}

// ---- processes subscribed to topics (pubsub::subscribe) ----------------------------------------
//
// Sharded by topic like the channels' registry; a fan-out copies the topic's subscribers under
// the shard's lock and sends outside it, so a subscribe never waits for a fan-out's sends. A
// process that ended is dropped the next time a broadcast finds it gone (pids are not reused:
// its pid can never name another process).

struct process_shard {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<pid>> topics;
};
constexpr std::size_t kProcessShards = 16;
std::array<process_shard, kProcessShards>& process_shards() {
  static std::array<process_shard, kProcessShards> s;
  return s;
}
process_shard& process_shard_of(std::string_view topic) {
  return process_shards()[std::hash<std::string_view>{}(topic) % kProcessShards];
}

std::size_t deliver_to_processes(std::string_view topic, std::string_view event, const term& payload) {
  process_shard& sh = process_shard_of(topic);
  std::vector<pid> targets;
  {
    std::lock_guard lock(sh.mu);
    auto it = sh.topics.find(std::string(topic));
    if (it == sh.topics.end()) return 0;
    targets = it->second;
  }
  std::size_t n = 0;
  bool gone = false;
  for (pid p : targets) {
    if (!is_alive(p)) {
      gone = true;
      continue;
    }
    send(p, pubsub::broadcast_message{std::string(topic), std::string(event), payload});
    ++n;
  }
  if (gone) {
    std::lock_guard lock(sh.mu);
    if (auto it = sh.topics.find(std::string(topic)); it != sh.topics.end()) {
      std::erase_if(it->second, [](pid p) { return !is_alive(p); });
      if (it->second.empty()) sh.topics.erase(it);
    }
  }
  return n;
}

void handle(const term& t, pid self) {
  if (!t.is_tuple() || t.tuple_size() < 2 || !t.element(0).is_atom()) return;
  const atom tag = t.element(0).as_atom();
  if (tag == atom("athanor_pubsub_fwd") && t.tuple_size() == 4 && t.element(1).is_binary() && t.element(2).is_binary()) {
    try {
      detail::local_broadcast(t.element(1).as_binary(), t.element(2).as_binary(), t.element(3), pid());
      deliver_to_processes(t.element(1).as_binary(), t.element(2).as_binary(), t.element(3));
    } catch (const std::exception& e) {
      logger::log("web", log_level::warning, fmt::format("pubsub: a forwarded broadcast was dropped: {}", e.what()));
    }
  } else if (tag == atom("athanor_pubsub_hello") && t.element(1).is_pid()) {
    const pid other = t.element(1).as_pid();
    if (other.is_local()) return;
    const atom n = dist::node_of(other);
    if (!add_peer(n)) return;
    greet(n, self);
    send(other, tuple(atom("athanor_presence_snapshot"), term(dist::this_node()), presence::detail::local_snapshot()));
  } else if (tag == atom("athanor_presence_snapshot") && t.tuple_size() == 3 && t.element(1).is_atom()) {
    presence::detail::apply_snapshot(t.element(1).as_atom(), t.element(2));
  } else if (tag == atom("athanor_presence")) {
    presence::detail::apply_remote(t);
  }
}

proc relay_main(process& self) {
  dist::monitor_nodes(true);
  for (atom n : dist::nodes()) greet(n, self.self());
  for (;;) {
    message m = co_await self.receive_any();
    if (auto* up = m.get_if<dist::nodeup>()) {
      greet(up->node, self.self());
    } else if (auto* down = m.get_if<dist::nodedown>()) {
      remove_peer(down->node);
      presence::detail::drop_node(down->node);
    } else if (auto* out = m.get_if<presence_out>()) {
      for (atom n : peer_list()) {
        try {
          send(name_on_node{relay_name(), n}, out->delta);
        } catch (const std::exception& e) {
          logger::log("web", log_level::warning, fmt::format("pubsub: a presence change for {} was dropped: {}", n.name(), e.what()));
        }
      }
    } else if (auto* t = m.get_if<term>()) {
      handle(*t, self.self());
    }
  }
}

}  // namespace

void detail::forward_broadcast(std::string_view topic, std::string_view event, const term& payload) noexcept {
  // This node's processes first (channel.cpp did its channels), then the peers.
  try {
    deliver_to_processes(topic, event, payload);
  } catch (const std::exception& e) {
    logger::log("web", log_level::warning, fmt::format("pubsub: a broadcast to {}'s processes was dropped: {}", topic, e.what()));
  }
  std::vector<atom> peers = peer_list();
  if (peers.empty()) return;
  try {
    const term fwd = tuple(atom("athanor_pubsub_fwd"), term(topic), term(event), payload);
    for (atom n : peers) send(name_on_node{relay_name(), n}, fwd);
  } catch (const std::exception& e) {
    logger::log("web", log_level::warning, fmt::format("pubsub: a broadcast to {} was not forwarded: {}", topic, e.what()));
  }
}

void detail::replicate_presence(term delta) noexcept {
  pid relay;
  {
    relay_state& s = state();
    std::lock_guard lock(s.mu);
    if (s.peers.empty()) return;  // nobody to tell (a peer met later gets a snapshot)
    relay = s.relay;
  }
  if (relay) send(relay, presence_out{std::move(delta)});
}

namespace pubsub {

pid start_cluster() {
  relay_state& s = state();
  {
    std::lock_guard lock(s.mu);
    if (s.relay && is_alive(s.relay)) return s.relay;
  }
  if (dist::this_node() == atom("nonode@nohost")) {
    throw std::logic_error("athanor::web::pubsub::start_cluster: no distribution node runs (dist::start first)");
  }
  const pid p = spawn([](process& self) -> proc { return relay_main(self); });
  if (!register_name(relay_name(), p)) {
    exit(p, term(atom("kill")));
    std::lock_guard lock(s.mu);
    return s.relay;
  }
  std::lock_guard lock(s.mu);
  s.relay = p;
  return p;
}

std::vector<atom> peers() { return peer_list(); }

void subscribe(std::string topic) {
  const pid me = athanor::self();
  process_shard& sh = process_shard_of(topic);
  std::lock_guard lock(sh.mu);
  std::vector<pid>& subs = sh.topics[std::move(topic)];
  if (std::find(subs.begin(), subs.end(), me) == subs.end()) subs.push_back(me);
}

bool unsubscribe(const std::string& topic) {
  const pid me = athanor::self();
  process_shard& sh = process_shard_of(topic);
  std::lock_guard lock(sh.mu);
  auto it = sh.topics.find(topic);
  if (it == sh.topics.end()) return false;
  const std::size_t removed = std::erase(it->second, me);
  if (it->second.empty()) sh.topics.erase(it);
  return removed > 0;
}

std::size_t broadcast(std::string_view topic, std::string_view event, const term& payload) {
  return web::broadcast(topic, event, payload);
}

std::size_t local_broadcast(std::string_view topic, std::string_view event, const term& payload) {
  return detail::local_broadcast(topic, event, payload, pid()) + deliver_to_processes(topic, event, payload);
}

}  // namespace pubsub
}  // namespace athanor::web
