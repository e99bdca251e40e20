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

#include <vector>

#include "athanor/term/atom.h"
#include "athanor/term/pid.h"

namespace athanor::web::pubsub {

// Starts this node's relay (idempotent: returns the running one). Needs a running distribution
// node (dist::start) and must be called outside a scheduler thread or from a process. Returns
// the relay's pid. Throws std::logic_error without a running node.
pid start_cluster();

// The peer nodes whose relays this node knows (sorted).
std::vector<atom> peers();

}  // namespace athanor::web::pubsub
