// athanor::remote_nodes: how the runtime reaches processes of other nodes. An interface that the
// distribution part (athanor::dist) implements and installs; the runtime never includes it.
//
// A pid whose node() is not 0 belongs to another node. send() to such a pid converts the message
// to a term (see send() in process.h) and hands it to the installed remote_nodes, which carries it
// to that node. With none installed, a remote pid behaves as the pid of a process that has ended:
// sends to it are dropped, as Erlang drops sends to a node it cannot reach.
//
// Thread-safety: install_remote_nodes() and the functions here may be called from any thread; an
// implementation must accept calls from every scheduler thread at once, and never block the
// caller (a message to a busy connection is queued; see the implementation for its bounds).
#pragma once

#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/term.h"

namespace athanor {

class remote_nodes {
 public:
  virtual ~remote_nodes() = default;

  // Sends `msg` from `from` (the null pid when not sent from a process) to the remote process
  // `to`. Messages from one sender to one receiver arrive in the order sent. A message for a node
  // that cannot be reached is dropped, as Erlang drops it.
  virtual void send(pid from, pid to, term msg) noexcept = 0;
  // Sends `msg` to the process registered as `name` on node `node` (Erlang's {Name, Node} ! Msg),
  // connecting to that node first if needed. Dropped if the node cannot be reached or no process
  // there has that name.
  virtual void send_named(pid from, atom name, atom node, term msg) noexcept = 0;
};

// Installs `nodes` as the runtime's way to other nodes (nullptr: none). The caller keeps it alive
// until it installs another or nullptr. Returns the one installed before.
remote_nodes* install_remote_nodes(remote_nodes* nodes) noexcept;
// The installed remote_nodes, or nullptr.
remote_nodes* installed_remote_nodes() noexcept;

}  // namespace athanor
