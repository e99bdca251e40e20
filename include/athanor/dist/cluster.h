// athanor::dist cluster formation: a *keeper* process that keeps this node connected to the nodes
// a strategy names, in the manner of Elixir's libcluster. Two strategies, usable together:
//
//   * a static list of node names (libcluster's Epmd strategy): each is connected at start, and
//     again after it goes down, retried every reconnect_interval until it answers;
//   * DNS polling (libcluster's DNSPoll): every dns_poll_interval a query name is resolved to its
//     IPv4 (A) records, and each address A names the node <basename>@A, kept connected the same way.
//
//   athanor::runtime rt;
//   auto n = athanor::dist::start({.name = "cpp@10.0.0.7", .naming = athanor::dist::naming_mode::long_names});
//   athanor::dist::cluster c = athanor::dist::start_cluster({
//       .nodes = {"app@10.0.0.8", "app@10.0.0.9"},
//       .dns = {{.query = "app.internal", .basename = "app"}},
//   });
//
// or, under a supervisor (as libcluster's Cluster.Supervisor is used):
//
//   std::vector<athanor::child_spec> children{athanor::dist::cluster_child({.nodes = {...}})};
//
// Names made from IP addresses (<basename>@10.0.0.8) are long names, so the DNS strategy needs a
// node started with naming_mode::long_names, and the peers must be started that way too
// (`erl -name app@10.0.0.8`, `iex --name app@10.0.0.8`); a keeper with DNS queries on a
// short-names node fails to start. Static names may be of either mode, but only names of this
// node's mode can ever connect (Erlang's rule), so the others are left out with a warning.
//
// What the keeper does and does not do:
//   * It only adds connections. It never disconnects a node, not even one that DNS stops naming
//     (a connection to a live node is never cut because of a DNS hiccup; a node that leaves ends
//     its own connections). Stopping the keeper leaves the connections up.
//   * Connections are made with connect_node (node.h), one attempt process per missing node, at
//     most max_concurrent_connects at a time, so one slow or unreachable node (an attempt can last
//     the node's setup_time) never delays the others. Attempts to one node start at least
//     reconnect_interval apart, and a failed attempt is followed by at least reconnect_interval
//     of quiet for that node.
//   * It subscribes to node events (monitor_nodes) and logs each nodeup and nodedown at info
//     level, part "cluster", metadata `node` and `wanted` (whether a strategy names it).
//   * A name that is not a node name, a host that does not resolve, a peer that refuses or is not
//     running: none ends the keeper; each is logged and retried (or, for a malformed name, left
//     out) while the other nodes are kept connected. DNS answers are looked up on the runtime's
//     dirty I/O threads (getaddrinfo blocks), never on a scheduler thread.
//
// Thread-safety: cluster_options, dns_query and cluster_status are plain values. The functions
// say where they may be called: the ones that return a task are awaited in a process; `cluster`'s
// member functions block the calling thread and must not be called from a process (they throw
// std::logic_error there). See src/dist/cluster.cpp for the design.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "athanor/otp/child_spec.h"
#include "athanor/otp/gen_server.h"
#include "athanor/otp/start.h"
#include "athanor/runtime/proc.h"
#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/term.h"

namespace athanor::dist {

// One DNS query of the DNS strategy (libcluster's DNSPoll `query` and `node_basename`).
struct dns_query {
  // A host name whose A records are the nodes' addresses ("app.internal", a Kubernetes headless
  // service, "localhost"). An IPv4 literal names itself.
  std::string query;
  // The alive part of every node's name: the address 10.0.0.8 gives node <basename>@10.0.0.8.
  // Letters, digits, '_' and '-'.
  std::string basename;
};

// What the keeper keeps connected, and how often it tries. A plain value; the defaults are
// libcluster's (5 s polling).
struct cluster_options {
  // The static strategy: full node names ("app@host"). This node's own name is skipped.
  std::vector<std::string> nodes;
  // The DNS strategy: each query is resolved at start and every dns_poll_interval.
  std::vector<dns_query> dns;
  // The shortest time between two connection attempts to one node, and the quiet after a failed
  // one: a missing node is retried this often. Must be positive.
  std::chrono::milliseconds reconnect_interval{5000};
  // How often each DNS query is resolved again. Must be positive.
  std::chrono::milliseconds dns_poll_interval{5000};
  // The most connection attempts in flight at once (each a process waiting in connect_node).
  // Must be at least 1.
  std::size_t max_concurrent_connects = 16;
  // Registers the keeper locally under this name (undefined: no name).
  atom name = atoms::undefined;
};

// What a keeper wants and has, at the moment it is asked. A plain value; the lists are sorted.
struct cluster_status {
  std::vector<atom> wanted;       // the nodes the strategies name now (static and DNS), without this node
  std::vector<atom> connected;    // those of `wanted` with a connection up
  std::vector<atom> connecting;   // those of `wanted` with an attempt in flight
  std::vector<std::string> rejected;  // entries of cluster_options::nodes left out (malformed, wrong naming mode)
};

// ---- in a process ---------------------------------------------------------------------------------

// Starts a keeper linked to the calling process (a gen_server that traps exits, so that its
// supervisor's shutdown ends its attempts cleanly); returns once it has started: {ok, Pid}, or
// {error, Reason} where Reason is `not_alive` when no node runs (dist::start), or
// {bad_cluster_options, <<"why">>} for a non-positive interval, max_concurrent_connects 0, a DNS
// query with an empty query or a bad basename, or DNS queries on a short-names node; with
// options.name already registered, {error, {already_started, Pid}}. As with every start_link, a
// keeper that fails to start ends with the reason, and the exit signal reaches the linked caller:
// a caller that is not a supervisor traps exits to read the error. Call from a process (co_await).
task<start_result> start_cluster_link(cluster_options options);

// A child spec that starts a keeper with start_cluster_link under a supervisor: a permanent
// worker with id `id`, shut down within 5 s.
child_spec cluster_child(cluster_options options, term id = term(atom("cluster")));

// The status of the keeper `keeper` (a pid, or options.name). Throws call_error as call() does:
// noproc if there is no such keeper, `timeout` if it does not answer in time. Call from a process.
task<cluster_status> cluster_status_of(server_ref keeper, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// ---- from a thread that is not a scheduler ----------------------------------------------------------

// A keeper started by start_cluster, not linked to any process. Movable handle. Its member
// functions block the calling thread, so they must be called from a thread that is not running a
// process (main, or another plain thread). status() may be called from several threads at once;
// stop(), assignment and destruction need the handle to themselves. The runtime must outlive it.
class [[nodiscard]] cluster {
 public:
  cluster() = default;
  explicit cluster(pid keeper) noexcept : keeper_(keeper) {}
  cluster(cluster&& other) noexcept : keeper_(std::exchange(other.keeper_, pid())) {}
  cluster& operator=(cluster&& other) noexcept;
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;
  // stop(); destroyed in a process (which must not block), the keeper is killed instead, without
  // waiting (its attempts end with it).
  ~cluster();

  // The keeper process (null after stop() or when moved from).
  pid keeper() const noexcept { return keeper_; }
  // The keeper's status. Throws std::runtime_error if the keeper has ended (or does not answer
  // within 30 s), std::logic_error when called from a process.
  cluster_status status() const;
  // Stops the keeper and returns once it has ended (its attempts ended with it; connections stay
  // up). Idempotent; does nothing if the keeper has already ended. Throws std::logic_error when
  // called from a process.
  void stop();

 private:
  pid keeper_;
};

// Starts a keeper (see start_cluster_link) not linked to anything, and returns once it runs.
// Throws std::invalid_argument with the reason start_cluster_link would give ({error, Reason}
// as text), std::logic_error when called from a process. Blocks the caller.
cluster start_cluster(cluster_options options);

}  // namespace athanor::dist
