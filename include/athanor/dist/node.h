// athanor::dist::node: this OS process as a node of an Erlang cluster. start() names the node,
// registers it with EPMD (starting an embedded EPMD when the host has none), listens for other
// nodes, and installs itself as the runtime's way to other nodes (athanor/runtime/remote.h): from
// then on a pid of another node is as good as a local one for send(), and Erlang and Elixir nodes
// reach this node's registered processes with their own `!`, gen_server:call and net_adm:ping.
//
//   athanor::runtime rt;
//   athanor::dist::node n = athanor::dist::start({.name = "cpp", .cookie = "secret"});   // cpp@<host>
//   athanor::register_name(athanor::atom("echo"), some_pid);   // {echo, 'cpp@host'} ! Msg from Erlang
//
// The node is hidden (erlang-distribution.md §8.6): Erlang nodes list it in nodes(hidden), and it
// never takes part in `global`. Messages from other nodes arrive as `term` messages.
//
// `node` is a handle; its member functions are thread-safe. See src/dist/node.cpp for the design.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "athanor/dist/epmd.h"
#include "athanor/dist/handshake.h"
#include "athanor/dist/node_name.h"
#include "athanor/dist/tls.h"
#include "athanor/runtime/proc.h"
#include "athanor/term/atom.h"
#include "athanor/term/pid.h"

namespace athanor::dist {

// A node's settings; the defaults are Erlang's. A plain value type.
struct node_config {
  // "cpp" (short names: cpp@<hostname -s>, as `erl -sname cpp`; long names: cpp@<FQDN>, as
  // `erl -name cpp`) or a full "cpp@host".
  std::string name;
  naming_mode naming = naming_mode::short_names;
  // The cookie. Unset: $HOME/.erlang.cookie, as erl reads it (created when missing; see cookie.h).
  std::optional<std::string> cookie;
  std::string listen_host = "0.0.0.0";   // where other nodes connect (IPv4)
  std::uint16_t listen_port = 0;          // 0: any free port (EPMD tells peers which)
  epmd_options epmd{};                    // the EPMD to register with; an embedded one if none runs
  // A connection silent this long is down (Erlang's net_ticktime); this node ticks every quarter.
  std::chrono::milliseconds net_ticktime{60000};
  std::chrono::milliseconds setup_time = default_setup_time;  // a handshake's deadline
  std::size_t max_message_bytes = std::size_t(256) << 20;    // larger packets end the connection
  // Atoms are never freed, and a peer can name as many as it likes. So peers may add atoms only
  // while the atom table holds fewer than this many (default: three quarters of
  // atom::kMaxAtoms, keeping the last quarter for this node's own code); past it, a packet that
  // names an atom this node has never seen ends its connection with a log line, as a malformed
  // packet does, and atoms the node already has keep working.
  std::size_t peer_atom_limit = std::size_t(atom::kMaxAtoms) / 4 * 3;
  // Back-pressure, per connection (Erlang's dist_buf_busy_limit, 1 MiB by default as in OTP): a
  // process that sends a message to a peer whose queue holds more than this many bytes not yet
  // written is suspended at its next suspension point until the queue drains below it (its
  // process_info status is then `suspended`). Messages are never dropped for it.
  std::size_t busy_limit_bytes = std::size_t(1) << 20;
  // The bound for senders that cannot be held: when a peer's queue already holds more than this
  // many bytes, a message from a plain thread, or from a process that was held and keeps sending
  // without reaching a suspension point, is refused: athanor::send() throws
  // athanor::send_refused. What was queued before is kept. (Any other process's message is
  // accepted, and the process held.)
  std::size_t send_queue_hard_limit_bytes = std::size_t(128) << 20;
  // TLS distribution (OTP's `-proto_dist inet_tls`), off when unset: every connection, accepted
  // and dialled, runs TLS first (this node is the TLS server of the connections it accepts) and
  // the whole distribution protocol inside it, handshake included; EPMD stays plain. Peers must
  // use TLS too (a plain peer's handshake fails, logged). The certificates are loaded by start(),
  // which throws node_error naming a file that cannot be used. See tls.h for the options, and
  // the README for the matching erl option file.
  std::optional<tls_options> tls;
};

// A node that could not start (name, cookie, EPMD, listening socket). what() says which.
class node_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
class node_state;
}

// A running node. Movable handle; thread-safe. The runtime must outlive it.
class [[nodiscard]] node {
 public:
  node() = default;
  explicit node(std::shared_ptr<detail::node_state> s) noexcept;
  node(node&&) noexcept = default;
  node& operator=(node&&) noexcept;
  ~node();  // stop()

  // This node's full name, as an atom ('cpp@host') and as a node_name.
  atom name() const noexcept;
  const node_name& full_name() const noexcept;
  // The creation EPMD gave this incarnation (in every pid and reference it sends).
  std::uint32_t creation() const noexcept;
  // The port other nodes connect to.
  std::uint16_t port() const noexcept;
  // The nodes connected now (Erlang's nodes(connected)).
  std::vector<atom> connected_nodes() const;
  // The node a pid belongs to (Erlang's node/1): this node's name for a local pid, the peer's for
  // a remote one, 'nonode@nohost' for a number this node never gave.
  atom node_of(pid p) const;
  // Closes the connection to `peer` (Erlang's erlang:disconnect_node/1). Returns false if there
  // was none. The peer sees the connection close; a later send reconnects.
  bool disconnect(atom peer);
  // Closes every connection and the listener, unregisters from EPMD and uninstalls the node from
  // the runtime: pids of other nodes become unreachable again. Blocks the caller (call it from a
  // thread that is not a scheduler). Idempotent.
  void stop();

 private:
  std::shared_ptr<detail::node_state> s_;
};

// ---- the running node, as Erlang's BIFs see it -------------------------------------------------
// These act on the node start() made (one per OS process) and are thread-safe. Without a running
// node they behave as on an Erlang node that is not alive: this_node() is 'nonode@nohost', nodes()
// is empty, connect_node() is false and monitor_node() delivers nodedown at once.

// Erlang's node(): this node's full name, or 'nonode@nohost'.
atom this_node();
// Erlang's nodes(connected): the peers with a connection up now, sorted by name.
std::vector<atom> nodes();
// Erlang's node/1: the node a pid belongs to ('nonode@nohost' for a node number never given).
atom node_of(pid p);

// net_kernel:connect_node/1: sets up a connection to `peer` if there is none, and returns true
// once it is up, false if it cannot be made (unknown host, not registered with EPMD, wrong cookie,
// refused, or setup_time passed). Must be awaited in a process; it waits by receiving, so other
// messages stay in the mailbox.
task<bool> connect_node(atom peer);

// The messages node monitors deliver: Erlang's {nodeup, Node} and {nodedown, Node}.
struct nodeup {
  atom node;
};
struct nodedown {
  atom node;
};

// Erlang's monitor_node(Node, true): the calling process gets one nodedown{peer} when the
// connection to `peer` ends; if there is no connection, one is attempted, and a failed attempt
// also gives nodedown. Each call adds one monitor (one nodedown each); monitor_node(peer, false)
// removes one. A monitor fires once and is gone. Must be called from a process.
void monitor_node(atom peer, bool on);
// net_kernel:monitor_nodes(true, [{node_type, all}]): the calling process gets nodeup and nodedown
// for every peer from now on, until monitor_nodes(false) or its end. Must be called from a process.
void monitor_nodes(bool on);

// Starts this OS process's node. Throws node_error when the name is invalid, the cookie cannot be
// read or created, the port cannot be bound, or EPMD refuses the name (taken). Blocks the caller
// until the node is registered: call it after the runtime is created, from a thread that is not a
// scheduler (e.g. main). One node per OS process at a time.
node start(node_config config);

}  // namespace athanor::dist
