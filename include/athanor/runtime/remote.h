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

#include <stdexcept>

#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

class remote_nodes {
 public:
  virtual ~remote_nodes() = default;

  // Sends `msg` from `from` (the null pid when not sent from a process) to the remote process
  // `to`. Messages from one sender to one receiver arrive in the order sent. A message for a node
  // that cannot be reached is dropped, as Erlang drops it (and true is returned: Erlang's send
  // does not fail either). Returns false when the message is refused because the connection is
  // overloaded past a hard limit (the runtime then throws send_refused at the sender). Below that
  // limit an implementation may slow a busy sender down with hold_current_process().
  virtual bool send(pid from, pid to, term msg) noexcept = 0;
  // Sends `msg` to the process registered as `name` on node `node` (Erlang's {Name, Node} ! Msg),
  // connecting to that node first if needed. Dropped if the node cannot be reached or no process
  // there has that name. Returns false as send() does.
  virtual bool send_named(pid from, atom name, atom node, term msg) noexcept = 0;
  // Sends `msg` from `from` through `alias`, a reference another node's process made an alias
  // (Erlang's Alias ! Msg; ALIAS_SEND on the wire). Received only if that process keeps the alias
  // active when it arrives; dropped otherwise, and when the node cannot be reached. Returns false
  // as send() does. This default drops it (for an implementation that carries no aliases).
  virtual bool send_alias(pid from, ref alias, term msg) noexcept {
    (void)from, (void)alias, (void)msg;
    return true;
  }

  // The signals between processes, when the receiving end is on another node (`to`, or the
  // monitored `target`). The runtime calls these where it would signal a local process: link(),
  // unlink(), exit/2, a linked process ending (via_link), monitor(), demonitor(). The distribution
  // layer carries them, and answers for the other node when it cannot be reached: a link or a
  // monitor of a process on a node it cannot reach gets `noconnection` back (remote_signals).
  virtual void link(pid from, pid to) noexcept = 0;
  virtual void unlink(pid from, pid to) noexcept = 0;
  virtual void exit(pid from, pid to, term reason, bool via_link) noexcept = 0;
  virtual void monitor(pid watcher, pid target, ref monitor) noexcept = 0;
  virtual void demonitor(pid watcher, pid target, ref monitor) noexcept = 0;
  // A monitor of whatever process is registered as `name` on `node` (Erlang's
  // monitor(process, {Name, Node})), and its removal. When it fires, the watcher's `down` has
  // the null pid as `from` (Erlang gives {Name, Node}).
  virtual void monitor_name(pid watcher, atom name, atom node, ref monitor) noexcept = 0;
  virtual void demonitor_name(pid watcher, atom name, atom node, ref monitor) noexcept = 0;
};

// What the distribution layer delivers to local processes on behalf of processes of other nodes:
// the same signals a local process would send, with the remote pid as the sender. Each returns
// false if the local process does not exist (then Erlang answers noproc: see the callers).
// Thread-safe.
namespace remote_signals {
// `from` (remote) links to `to` (local).
bool link(pid from, pid to);
// `from` (remote) removes its link to `to` (local).
bool unlink(pid from, pid to);
// An exit signal from `from` (remote) to `to` (local): through their link (via_link: dropped if
// the link is gone, as in Erlang), or exit/2.
bool exit(pid from, pid to, term reason, bool via_link);
// The monitor `monitor` that `watcher` (local) holds on `target` (remote) fired with `reason`:
// `watcher` gets its `down` (unless it demonitored meanwhile).
bool down(pid watcher, ref monitor, pid target, term reason);

// Back-pressure (Erlang's dist_buf_busy_limit): a process that sends to a busy connection is
// suspended at its next suspension point (its next co_await that could let others run: a
// receive, a yield, a sleep, an I/O wait, consume()) and stays suspended, receiving into its mailbox as
// usual, until release_hold(). Signals still reach it (it can be killed while held).
// hold_current_process() marks the process running on the calling thread and returns its pid,
// to be released later; the null pid when called outside a process (a plain thread cannot be
// suspended: the implementation bounds it another way, see remote_nodes::send). Holding a
// process that is already held changes nothing.
pid hold_current_process() noexcept;
// True if the process running on the calling thread is held and has not reached a suspension
// point since (it keeps sending without ever waiting); false outside a process.
bool current_process_held() noexcept;
// Lets `p` run again if it is held (a release for a process that is not held, or has ended, is
// ignored). Thread-safe; never blocks.
void release_hold(pid p) noexcept;
}  // namespace remote_signals

// Thrown by send() to a process of another node when the connection to that node refuses the
// message: its queue is past the hard limit the distribution layer sets (a sender that does not
// suspend, or a plain thread, outrunning the network). The message was not sent.
class send_refused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Installs `nodes` as the runtime's way to other nodes (nullptr: none). The caller keeps it alive
// until it installs another or nullptr. Returns the one installed before.
remote_nodes* install_remote_nodes(remote_nodes* nodes) noexcept;
// The installed remote_nodes, or nullptr.
remote_nodes* installed_remote_nodes() noexcept;

}  // namespace athanor
