// athanor::web::pubsub: Channels' broadcasts and Presence across a cluster of Athanor nodes
// (Phoenix.PubSub with its PG adapter, and Phoenix.Tracker's replication), over distribution.
//
//   runtime rt;
//   dist::node n = dist::start({.name = "chat1", .cookie = "secret"});
//   web::pubsub::start_cluster();      // from now on broadcasts and presences span the cluster
//
// Each node runs one relay process, registered as `athanor_pubsub`. Relays find each other when
// their nodes connect (each greets the other's relay; an Erlang or Elixir node, which has none,
// is never sent anything), and then:
//   * a broadcast (web::broadcast, socket::broadcast, broadcast_from) reaches this node's
//     subscribers and goes once to every peer relay, which fans it out to its own: one message
//     per node, not per subscriber;
//   * Presence: each node is the only writer of its own channels' entries; every change goes to
//     every peer relay in order, a relay greeting a new peer sends it a snapshot of its own
//     entries, and a node going down takes its entries with it (the other nodes' clients get the
//     leaves). Every node's list converges to the union of the live nodes' entries.
//
// Thread-safety: functions are callable from any thread once the runtime and the node run.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/term.h"

namespace athanor::web::pubsub {

// What a process subscribed to a topic receives for each broadcast to it (Phoenix's
// %Phoenix.Socket.Broadcast{topic, event, payload}), from whichever node it was made on.
struct broadcast_message {
  std::string topic;
  std::string event;
  term payload;
};

// Subscribes the calling process to `topic` (Phoenix.PubSub.subscribe): every broadcast to it
// (web::broadcast, a channel's broadcast or broadcast_from, pubsub::broadcast; on this node, or on
// any node of the cluster once start_cluster() runs) comes as a broadcast_message. Subscribing
// twice to one topic is one subscription. A subscription ends with unsubscribe() or with the
// process. Call from a process. Thread-safe; subscribing does not wait for a fan-out in progress.
void subscribe(std::string topic);
// Ends the calling process's subscription to `topic`; true if there was one.
bool unsubscribe(const std::string& topic);
// Broadcasts to every subscriber of `topic`, channels and processes, on every node
// (Phoenix.PubSub.broadcast; the same as web::broadcast). Returns how many of this node's
// channel subscribers got it. Throws json::json_error if a channel subscriber needs the payload as JSON
// and it has none.
std::size_t broadcast(std::string_view topic, std::string_view event, const term& payload);
// To this node's subscribers only (Phoenix.PubSub.local_broadcast). Returns how many got it,
// channels and processes.
std::size_t local_broadcast(std::string_view topic, std::string_view event, const term& payload);


// Starts this node's relay (idempotent: returns the running one). Needs a running distribution
// node (dist::start) and must be called outside a scheduler thread or from a process. Returns
// the relay's pid. Throws std::logic_error without a running node.
pid start_cluster();

// The peer nodes whose relays this node knows (sorted).
std::vector<atom> peers();

}  // namespace athanor::web::pubsub
