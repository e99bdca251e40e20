// Distribution: this OS process as a node of an Erlang cluster.
//
// Design
// ------
// Concepts. A *node* is this OS process under a name (alive@host) and a creation (EPMD's number for
// this incarnation). A *peer* is another node, known by name. A *connection* is one TCP stream to a
// peer, owned by one Athanor process (the connection process) from the handshake to the end; there
// is at most one per peer, as in Erlang. The *node table* gives every (peer name, creation) seen in
// a pid or reference a node number (1..65534), the 16 bits a pid keeps; pids of the peer's other
// incarnations get other numbers, so a pid of a restarted peer never reaches the new incarnation's
// processes (the peer drops signals for stale creations, as erts does, and so does this node:
// its own name with another creation decodes to the reserved number kStaleSelf, whose messages are
// dropped).
//
// Sending. The runtime hands every send to a pid of another node to node_state::send (through
// remote.h), on the sender's own thread. The message is encoded there, into a whole packet, so
// that encoding runs in parallel on every scheduler and the connection process only moves bytes;
// the packet goes to the peer's outbound queue, and the connection process is woken by one
// message if it was not already (wake_pending). One queue per peer, appended under a mutex held for
// a push: the order of two sends from one process to one peer is the order they were made.
// While the connection has nothing of its own to write, a sender writes its packet to the socket
// itself (outbound::direct_fd, under the queue's mutex, so senders stay in order): a round trip
// then costs no wake-up of the connection process. Not twice within kDirectWriteGap, though: a
// stream of messages then goes through the queue, where the connection gathers whatever has
// piled up into one sendmsg (one system call per message would cap a stream at the rate of
// system calls; the gap is shorter than any round trip, so request-reply traffic never waits). If the socket takes only part of it, the rest
// and everything after go through the queue, and the connection takes the stream back before it
// writes anything of its own (a reply, a tick), so nothing a sender writes later can overtake it.
//
// Fragments. With FRAGMENTS negotiated, a message larger than one fragment (64 KiB, as OTP)
// goes out as fragments (fragment_writer: a small header each, plus a view of the one encoded
// buffer, handed to sendmsg as two iovecs: nothing is copied), and the connection writes one
// fragment of each such message in turn, taking what other senders queued between two
// fragments. So a 100 MB message delays neither ticks nor other processes' messages by more than
// a fragment. Order is Erlang's: per pair of processes, not global. The receiver delivers a
// fragmented message with its last fragment, so a sender's later packets (messages, and the
// signals it sends: a link, its exit, a DOWN the connection sends for it) wait behind its
// message in fragments (large_message::after) and follow its last fragment. Rejected: holding
// the sender until its fragments are out (OTP's way): a plain thread cannot be held, and the
// bytes are encoded once anyway.
//
// Back-pressure (Erlang's dist_buf_busy_limit). Every queue counts the bytes of senders' packets
// not yet written (outbound::backlog). A process whose message finds it past
// node_config::busy_limit_bytes is held (remote.h: it runs on to its next suspension point, a
// receive, a sleep, a yield, and stays there) and listed on the queue; the connection releases
// the list when its writes bring the backlog back under the limit, or when it ends. The hold is
// decided under the queue's lock, which the connection takes to release, so no release is
// missed. Past send_queue_hard_limit_bytes a message from a sender that cannot be held (a plain
// thread, or a process already held that goes on sending without waiting) is refused and
// send() throws send_refused: memory stays bounded, and the failure is loud. Signals are never
// held or refused (a link or an exit must not be lost).
//
// A send to a peer with no connection starts one (Erlang's auto-connect): the queue exists from
// the first send, and the connecting process drains it once the handshake is done; if the peer
// cannot be reached, what was queued is dropped, as Erlang drops it.
//
// Receiving. The connection process reads packets, checks each against its opcode's shape
// (control.cpp) and acts: a message is delivered as a `term`; a monitor of a local process by a
// remote one is held by the connection process on the watcher's behalf (it monitors the local
// process itself and turns the `down` into MONITOR_P_EXIT); `net_kernel`'s is_auth call, which
// net_adm:ping makes, is answered `yes` (the handshake already authenticated the peer). A packet
// that breaks the protocol ends the connection with a log line, as OTP does.
//
// Links and monitors. The runtime keeps a process's links and monitors as it does for local ones
// and hands the signals for a remote end to this layer (remote.h): LINK, UNLINK_ID, EXIT (a linked
// process ended), EXIT2 (exit/2), MONITOR_P, DEMONITOR_P go out on the peer's stream, in order
// with the messages; the peer's answers come back as the runtime's own signals
// (remote_signals), so the semantics (trap_exit, `normal`, `kill`, a down after demonitor never
// delivered) are the runtime's, written once. Each peer's queue also remembers which links and
// monitors cross its connection, for one reason: when the connection ends, or never comes up,
// each of them fires `noconnection` at its local end, as in Erlang.
//
// Liveness. A connection that has read nothing for net_ticktime is down; one that has written
// nothing for a quarter of it sends a tick. When a connection ends, monitors held for its peer's
// processes are removed (their watchers are gone with the connection), and links and monitors of
// local processes on the peer's processes fire `noconnection`.
//
// Rejected approaches. A reader and a writer process per connection (Erlang's dist controller
// has one port): two processes would need their own protocol to share the socket's end, for no
// gain since the writer never blocks the reader here (writes are non-blocking; the loop waits for
// readable and writable together). Encoding in the connection process: it would serialise every
// sender of a busy peer on one thread. Offering the atom cache: OTP then writes a closure's atoms
// as references to the packet's header, and a fun is kept as its bytes (to be sent back
// verbatim), which cannot hold them; FRAGMENTS alone gives header framing with no cache
// references (OTP sends none then), and packet_reader reassembles the fragments.
//
// Node monitors. monitor_node and monitor_nodes subscribers, and connect_node callers, are kept
// on the node (node monitors) and on the peer's queue (connect waiters); the connection process
// tells them when its handshake is done (connection_up) and when it ends or never comes
// (connection_down, from end() or abandon()). A queue is abandoned only by the process setting its
// connection up: when both nodes dial at once and our acceptor wins, the acceptor takes the queue
// over (owner) and our dial, refused by the peer, leaves it alone.
//
// Calls by name (rpc.cpp): SPAWN_REQUEST is answered here, with a process rpc.cpp starts; the
// SPAWN_REPLY and MONITOR_P_EXIT of this node's own requests go back to their callers.
//
// Aliases. ALIAS_SEND reaches the process an alias() reference names (it carries its owner's pid,
// as OTP's aliases do) while the alias is active; a reference activated with alias(ref) is
// reachable only from this node.
//
// TLS distribution (node_config::tls). The connection's bytes go through a tls_session, an
// OpenSSL engine over memory that owns no socket (tls.cpp), so the loop above serves TLS
// connections too: ciphertext read is decrypted into the same read buffer, packets written are
// encrypted a batch at a time, small ones gathered into one record. Senders never write to the
// socket of a TLS connection themselves (records must come from one session in order). The TLS
// handshake comes first (the accepting node is the TLS server), then the distribution handshake
// inside TLS with 4-byte lengths, as OTP's inet_tls_dist does.
#include "athanor/dist/node.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <set>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "athanor/dist/control.h"
#include "athanor/dist/cookie.h"
#include "athanor/runtime/alias.h"
#include "athanor/runtime/io.h"
#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/remote.h"
#include "athanor/term/etf.h"
#include "dist/epmd_io.h"
#include "dist/node_state.h"
#include "dist/rpc_internal.h"
#include "dist/tls_session.h"

namespace athanor::dist {

namespace detail {

// The connection to a peer is gone (or never came): every link across it delivers `noconnection`
// to its local end, every monitor a local process held on a process there fires with it.
void fire_noconnection(outbound& q) {
  std::set<std::pair<pid, pid>> links;
  std::map<ref, std::pair<pid, pid>> monitors;
  const term reason(atom("noconnection"));
  {
    std::lock_guard lock(q.mu);
    q.ended = true;  // out of the table already: nothing may be recorded on it from now on
    links.swap(q.links);
    monitors.swap(q.monitors);
    // Under the lock: a caller giving up takes its entry under it, then flushes (erpc_call).
    for (const auto& [r, who] : q.spawns) athanor::send(who.first, spawn_outcome{r, reason});
    q.spawns.clear();
  }
  for (const auto& [local, remote] : links) remote_signals::exit(remote, local, reason, true);
  for (const auto& [r, who] : monitors) remote_signals::down(who.first, r, who.second, reason);
}


// Tells the connect_node callers waiting on `q` whether the connection came up.
void answer_connect_waiters(atom peer, outbound& q, bool up) {
  std::vector<pid> waiters;
  {
    std::lock_guard lock(q.mu);
    waiters.swap(q.connect_waiters);
  }
  for (pid w : waiters) athanor::send(w, connect_outcome{peer, up});
}

void node_state::connection_up(atom peer, outbound& q) {
  answer_connect_waiters(peer, q, true);
  std::vector<pid> subscribers;
  {
    std::lock_guard lock(watch_mu);
    std::erase_if(all_watchers, [](pid p) { return !athanor::is_alive(p); });
    subscribers = all_watchers;
  }
  for (pid w : subscribers) athanor::send(w, nodeup{peer});
}

void node_state::connection_down(atom peer, outbound& q, bool was_up) {
  answer_connect_waiters(peer, q, false);
  std::vector<pid> told;
  {
    std::lock_guard lock(watch_mu);
    auto [b, e] = node_watchers.equal_range(peer);
    for (auto it = b; it != e; ++it) told.push_back(it->second);
    node_watchers.erase(b, e);  // a node monitor fires once
    if (was_up) {
      std::erase_if(all_watchers, [](pid p) { return !athanor::is_alive(p); });
      told.insert(told.end(), all_watchers.begin(), all_watchers.end());
    }
  }
  for (pid w : told) athanor::send(w, nodedown{peer});
}

// The running node (start() to stop()), for the free functions of node.h.
std::mutex g_current_mu;
std::shared_ptr<node_state> g_current;

std::shared_ptr<node_state> current() {
  std::lock_guard lock(g_current_mu);
  return g_current;
}

void wake(const std::shared_ptr<outbound>& q) {
  pid owner;
  {
    std::lock_guard lock(q->mu);
    owner = q->owner;
  }
  if (owner && !q->wake_pending.exchange(true, std::memory_order_acq_rel)) athanor::send(owner, wake_msg{});
}

std::shared_ptr<outbound> node_state::queue_of(atom peer, bool& fresh) {
  std::lock_guard lock(mu);
  auto& slot = peers[peer];
  fresh = !slot;
  if (fresh) slot = std::make_shared<outbound>();
  return slot;
}

std::shared_ptr<outbound> node_state::ensure_connection(atom peer) {
  if (stopping.load(std::memory_order_acquire)) return nullptr;
  bool fresh = false;
  std::shared_ptr<outbound> q = queue_of(peer, fresh);
  if (fresh) connect_to(peer, q);
  return q;
}

// About how many bytes `t` encodes to, counting its binaries (and those of the tuples and maps
// around them, a few levels down): enough to size a large message's buffer at once.
std::size_t rough_size(const term& t, int depth = 0) {
  if (t.is_binary()) return t.as_binary().size() + 8;
  std::size_t n = 16;
  if (depth < 3 && t.is_tuple()) {
    for (std::size_t i = 0; i < t.tuple_size(); ++i) n += rough_size(t.element(i), depth + 1);
  }
  return n;
}

// A buffer for a packet of about `hint` bytes: a spare one of a large packet already written,
// or an empty one with that much room.
std::vector<std::byte> packet_buffer(outbound& q, std::size_t hint) {
  std::vector<std::byte> packet;
  if (hint >= kSparePacketMinBytes && q.spare_count.load(std::memory_order_relaxed) > 0) {
    std::lock_guard lock(q.mu);
    for (auto it = q.spare_packets.begin(); it != q.spare_packets.end(); ++it) {
      if (it->capacity() >= hint) {
        packet = std::move(*it);
        q.spare_packets.erase(it);
        q.spare_count.store(q.spare_packets.size(), std::memory_order_relaxed);
        break;
      }
    }
  }
  packet.reserve(hint);
  return packet;
}

bool node_state::enqueue(pid sender, atom peer, const term& control, const term* payload,
                         const std::function<void(outbound&)>& record, bool is_message) {
  if (stopping.load(std::memory_order_acquire)) return false;
  for (;;) {
    bool start_connecting = false;
    std::shared_ptr<outbound> q = queue_of(peer, start_connecting);
    // Past the hard limit only a process that can still be held gets through (it stops at its
    // next suspension point, below): not a plain thread, nor a process already held that keeps
    // sending without ever waiting.
    if (is_message && q->backlog.load(std::memory_order_relaxed) > cfg.send_queue_hard_limit_bytes &&
        (!athanor::self() || remote_signals::current_process_held())) {
      throw queue_overloaded(fmt::format("the queue to {} holds {} bytes not yet written, past send_queue_hard_limit_bytes ({})",
                                         peer.name(), q->backlog.load(std::memory_order_relaxed),
                                         cfg.send_queue_hard_limit_bytes));
    }
    // Encoded on the sender's thread, outside the queue's lock (see "Sending").
    packet_mode mode = q->mode.load(std::memory_order_acquire);
    std::vector<std::byte> packet = packet_buffer(*q, 64 + rough_size(control) + (payload ? rough_size(*payload) : 0));
    write_packet(packet, mode, control, payload, encode_options());
    {
      std::lock_guard lock(q->mu);
      // Its connection ended after we took it from the table (and fired noconnection): what this
      // packet records would never hear of it. Go again: this send starts the next connection.
      if (q->ended) continue;
      if (q->mode.load(std::memory_order_relaxed) != mode) {  // the handshake ended meanwhile: rare
        packet.clear();
        write_packet(packet, q->mode.load(std::memory_order_relaxed), control, payload, encode_options());
      }
      if (record) record(*q);
      const auto now = clock::now();
      if (q->direct_fd >= 0 && q->packets.empty() && now - q->last_direct_write >= kDirectWriteGap &&
          packet.size() <= kDirectWriteMaxBytes) {
        // The connection is idle: write on this thread, saving the connection process's wake-up.
        q->last_direct_write = now;
        const ssize_t w = ::send(q->direct_fd, packet.data(), packet.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == ssize_t(packet.size())) return true;
        // The socket is full (or failing: the connection will find out): the rest is the
        // connection's to write, and so is everything after it.
        q->direct_fd = -1;
        q->first_offset = w > 0 ? std::size_t(w) : 0;
      }
      const std::size_t backlog = q->backlog.fetch_add(packet.size(), std::memory_order_relaxed) + packet.size();
      q->packets.push_back({std::move(packet), sender});
      // Busy (Erlang's dist_buf_busy_limit): the sending process stops at its next suspension
      // point until the connection has written the backlog down (release_held). Decided under
      // the lock the connection takes to release, so that no release is missed.
      if (is_message && backlog > cfg.busy_limit_bytes && !remote_signals::current_process_held()) {
        if (pid held = remote_signals::hold_current_process()) {
          q->held.push_back(held);
          q->held_count.store(q->held.size(), std::memory_order_relaxed);
        }
      }
    }
    if (start_connecting) connect_to(peer, q);
    else wake(q);
    return true;
  }
}

void release_held(outbound& q) {
  std::vector<pid> held;
  {
    std::lock_guard lock(q.mu);
    held.swap(q.held);
    q.held_count.store(0, std::memory_order_relaxed);
  }
  for (pid p : held) remote_signals::release_hold(p);
}

bool node_state::send(pid from, pid to, term msg) noexcept {
  std::optional<etf::node_identity> peer = identity_of(to.node());
  if (!peer) return true;  // a stale incarnation of this node, or a number never given: unreachable
  try {
    // SEND {2, '', ToPid}: no sender (SEND_SENDER is not negotiated); `from` orders it.
    const term control = tuple(term(2), term(atom("")), term(to));
    enqueue(from, peer->name, control, &msg, {}, true);
  } catch (const queue_overloaded& e) {
    log(log_level::error, fmt::format("refused a message to {}: {}", to.to_string(), e.what()));
    return false;
  } catch (const std::exception& e) {
    log(log_level::error, fmt::format("cannot send to {} on {}: {}", to.to_string(), peer->name.name(), e.what()));
  }
  return true;
}

bool node_state::send_alias(pid from, ref alias, term msg) noexcept {
  std::optional<etf::node_identity> peer = identity_of(alias.node());
  if (!peer) return true;  // a stale incarnation of this node, or a number never given: unreachable
  try {
    // ALIAS_SEND {33, FromPid, Alias}. Not checked against the peer's DFLAG_ALIAS: a node whose
    // processes make aliases (OTP 24 and later, Athanor) is one that handles ALIAS_SEND.
    const term control = tuple(term(33), from ? term(from) : term(pid(0, 0, 0)), term(alias));
    enqueue(from, peer->name, control, &msg, {}, true);
  } catch (const queue_overloaded& e) {
    log(log_level::error, fmt::format("refused a message to alias {}: {}", alias.to_string(), e.what()));
    return false;
  } catch (const std::exception& e) {
    log(log_level::error, fmt::format("cannot send to alias {} on {}: {}", alias.to_string(), peer->name.name(), e.what()));
  }
  return true;
}

bool node_state::send_control(pid sender, pid to, const term& control, const term* payload,
                              const std::function<void(outbound&)>& record) {
  std::optional<etf::node_identity> peer = identity_of(to.node());
  if (!peer) return false;
  try {
    enqueue(sender, peer->name, control, payload, record);
    return true;
  } catch (const std::exception& e) {
    log(log_level::error, fmt::format("cannot signal {} on {}: {}", to.to_string(), peer->name.name(), e.what()));
    return false;
  }
}

void node_state::link(pid from, pid to) noexcept {
  const bool sent = send_control(from, to, tuple(term(1), term(from), term(to)), nullptr,
                                 [&](outbound& q) { q.links.emplace(from, to); });
  // A node never given a number (or a stale incarnation of this one) cannot be reached.
  if (!sent) remote_signals::exit(to, from, term(atom("noconnection")), true);
}

void node_state::unlink(pid from, pid to) noexcept {
  const std::uint64_t id = next_unlink_id.fetch_add(1, std::memory_order_relaxed);
  send_control(from, to, tuple(term(35), term(id), term(from), term(to)), nullptr,
               [&](outbound& q) { q.links.erase({from, to}); });
}

void node_state::exit(pid from, pid to, term reason, bool via_link) noexcept {
  if (via_link) {  // a linked local process ended: EXIT, and the link is gone
    send_control(from, to, tuple(term(3), term(from), term(to), reason), nullptr, [&](outbound& q) { q.links.erase({from, to}); });
  } else {         // exit/2
    send_control(from, to, tuple(term(8), term(from), term(to), reason), nullptr);
  }
}

void node_state::monitor(pid watcher, pid target, ref r) noexcept {
  const bool sent = send_control(watcher, target, tuple(term(19), term(watcher), term(target), term(r)), nullptr,
                                 [&](outbound& q) { q.monitors.emplace(r, std::make_pair(watcher, target)); });
  if (!sent) remote_signals::down(watcher, r, target, term(atom("noconnection")));
}

void node_state::demonitor(pid watcher, pid target, ref r) noexcept {
  send_control(watcher, target, tuple(term(20), term(watcher), term(target), term(r)), nullptr,
               [&](outbound& q) { q.monitors.erase(r); });
}

void node_state::monitor_name(pid watcher, atom name, atom node, ref r) noexcept {
  try {
    enqueue(watcher, node, tuple(term(19), term(watcher), term(name), term(r)), nullptr,
            [&](outbound& q) { q.monitors.emplace(r, std::make_pair(watcher, pid())); });
  } catch (const std::exception& e) {
    log(log_level::error, fmt::format("cannot monitor {{{}, {}}}: {}", name.name(), node.name(), e.what()));
    remote_signals::down(watcher, r, pid(), term(atom("noconnection")));
  }
}

void node_state::demonitor_name(pid watcher, atom name, atom node, ref r) noexcept {
  try {
    enqueue(watcher, node, tuple(term(20), term(watcher), term(name), term(r)), nullptr, [&](outbound& q) { q.monitors.erase(r); });
  } catch (const std::exception& e) {
    log(log_level::error, fmt::format("cannot demonitor {{{}, {}}}: {}", name.name(), node.name(), e.what()));
  }
}

bool node_state::send_named(pid from, atom to_name, atom node, term msg) noexcept {
  if (node == name_atom) {  // {Name, node()} ! Msg: a local send
    if (pid p = athanor::whereis(to_name)) athanor::send(p, std::move(msg));
    return true;
  }
  try {
    const term control = tuple(term(6), from ? term(from) : term(pid(0, 0, 0)), term(atom("")), term(to_name));
    enqueue(from, node, control, &msg, {}, true);
  } catch (const queue_overloaded& e) {
    log(log_level::error, fmt::format("refused a message to {{{}, {}}}: {}", to_name.name(), node.name(), e.what()));
    return false;
  } catch (const std::exception& e) {
    log(log_level::error, fmt::format("cannot send to {{{}, {}}}: {}", to_name.name(), node.name(), e.what()));
  }
  return true;
}

// A stopped node's state is kept until the OS process ends: a thread that took the runtime's
// remote_nodes pointer just before stop() uninstalled it may still be inside one of its functions,
// and the encoding contexts point at it. Small (a stopped node holds no connection), and bounded
// by the number of nodes an OS process starts.
void retire(std::shared_ptr<node_state> st) {
  static std::mutex mu;
  static std::vector<std::shared_ptr<node_state>> retired;
  std::lock_guard lock(mu);
  retired.push_back(std::move(st));
}

// ---- the connection process -------------------------------------------------------------------

// A monitor a remote process holds on a local one, held by the connection process for it.
struct held_monitor {
  pid watcher;     // the remote process
  ref remote_ref;  // its reference
  term target;     // what it monitored: the local pid, or the name it used
};

// Received bytes not yet acted on. Reads land in its spare room (never zero-filled), and its
// storage is kept from one large message to the next: a fresh 1 MiB buffer per message cost
// ~250 page faults of ~10 us each here. Not thread-safe (the connection process's).
class read_buffer {
 public:
  std::size_t size() const noexcept { return end_ - begin_; }
  const std::byte* data() const noexcept { return data_.get() + begin_; }
  std::size_t capacity() const noexcept { return capacity_; }
  // Room for at least `want` more bytes at the end (moving what is kept to the front, or
  // growing, if needed).
  std::span<std::byte> room(std::size_t want) {
    if (capacity_ - end_ < want) {
      if (begin_ > 0 && capacity_ - size() >= want) {
        std::memmove(data_.get(), data_.get() + begin_, size());
      } else {
        const std::size_t grown = std::max(capacity_ * 2, size() + want);
        auto bigger = std::make_unique_for_overwrite<std::byte[]>(grown);
        if (size() > 0) std::memcpy(bigger.get(), data_.get() + begin_, size());
        data_ = std::move(bigger);
        capacity_ = grown;
      }
      end_ = size();
      begin_ = 0;
    }
    return {data_.get() + end_, capacity_ - end_};
  }
  void commit(std::size_t n) noexcept { end_ += n; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Gives the storage back when nothing is buffered (an idle connection).
  void release_if_empty() noexcept {
    if (size() == 0) {
      data_.reset();
      capacity_ = begin_ = end_ = 0;
    }
  }

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t capacity_ = 0, begin_ = 0, end_ = 0;
};

class connection {
 public:
  connection(std::shared_ptr<node_state> st, tcp_socket sock, std::optional<tls_session> tls, handshake_outcome hs,
             std::shared_ptr<outbound> q)
      : st_(std::move(st)), sock_(std::move(sock)), tls_(std::move(tls)), peer_(atom(hs.peer.full())), q_(std::move(q)),
        decode_(st_->decode_options()), encode_(st_->encode_options()), mode_(packet_mode_for(hs.negotiated_flags)),
        reader_(hs.negotiated_flags, reader_limits{.max_message_bytes = st_->cfg.max_message_bytes}) {
    if (!hs.unread.empty()) {
      std::span<std::byte> r = in_.room(hs.unread.size());
      std::memcpy(r.data(), hs.unread.data(), hs.unread.size());
      in_.commit(hs.unread.size());
    }
  }

  // A connection process that ends without end() (killed, or an exception outside the loop's
  // handlers) still leaves the table and tells everyone, so that no sender keeps writing to a
  // descriptor that may be reused and no link or monitor waits forever.
  ~connection() {
    if (!ended_) close_and_leave("the connection process ended");
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  task<void> run();

 private:
  void close_and_leave(const std::string& why);
  bool ended_ = false;
  void handle(std::span<const std::byte> packet);
  void dispatch(message& m);
  // Queues a packet of the connection's own, in order after everything senders queued so far
  // and after the last packet of `on_behalf_of` (the local process it speaks for, if any).
  void reply(const term& control, const term* payload, pid on_behalf_of = pid());
  void take_queued();
  // Puts a sender's packet in its place: behind that sender's message still going out in
  // fragments, if any; as a fragmented message of its own if it is large; else next in out_.
  void route(outbound::queued&& q, bool counted);
  // Adds the next fragment of every message going out in fragments to out_ (see "Fragments").
  void add_fragments();
  void written(std::size_t accounted);
  struct chunk;
  // Keeps the buffer of a large packet just written (or of a fragmented message's last
  // fragment) for senders to reuse (outbound::spare_packets).
  void recycle(chunk& c);
  // The stream's order: senders may write to the socket themselves while this connection has
  // nothing to write (offer_stream); it takes that back before it writes anything of its own.
  void take_stream();
  void offer_stream();
  bool write_some(bool& progress);
  void on_down(const down& d);
  void end(const std::string& why, log_level level);

  std::shared_ptr<node_state> st_;
  tcp_socket sock_;
  // Under TLS distribution: the session every byte goes through (no sender writes to the socket
  // itself then: the records must come out of one session in order).
  std::optional<tls_session> tls_;
  std::vector<std::byte> cipher_in_;  // a read's ciphertext (TLS only)
  std::vector<std::byte> stage_;      // small packets gathered into one TLS record
  bool write_some_tls(bool& progress);
  bool read_tls(clock::time_point& last_read);
  atom peer_;
  std::shared_ptr<outbound> q_;
  read_buffer in_;
  // What goes out next, in order: whole packets, and fragments of large messages.
  struct chunk {
    std::vector<std::byte> packet;                  // a whole packet (empty for a fragment)
    fragment_writer::fragment fragment;             // or a fragment: its header and a view...
    std::shared_ptr<fragment_writer> message;       // ...into this message's bytes (kept alive)
    std::size_t accounted = 0;                      // of outbound::backlog, taken off once written
    std::size_t size() const noexcept { return message ? fragment.size() : packet.size(); }
  };
  std::deque<chunk> out_;
  std::size_t out_offset_ = 0;  // written of out_.front()
  std::size_t out_bytes_ = 0;   // in out_, less out_offset_
  // Messages going out in fragments, a fragment of each in turn; each holds the packets its
  // sender queued after it, which go out after its last fragment (a sender's order is kept).
  struct large_message {
    std::shared_ptr<fragment_writer> writer;
    pid sender;
    bool counted;  // a sender's (in outbound::backlog), not the connection's own
    std::deque<std::pair<outbound::queued, bool>> after;  // (packet, counted)
  };
  std::list<large_message> large_;
  std::unordered_map<pid, std::list<large_message>::iterator> large_by_sender_;
  std::uint64_t next_sequence_ = 1;  // fragment sequence ids: unique on this connection
  etf::decode_options decode_;
  etf::encode_options encode_;
  packet_mode mode_;       // the framing the handshake chose (see outbound::mode)
  packet_reader reader_;   // atom-cache headers and fragments, in header mode
  athanor::detail::lazy_deadline wake_timer_;          // the waits' timer, kept across waits
  std::unordered_map<ref, held_monitor> held_;        // by the local monitor's reference
  std::map<std::pair<pid, ref>, ref> held_by_remote_;  // (watcher, remote ref) -> local reference
};

void connection::take_queued() {
  q_->wake_pending.store(false, std::memory_order_release);
  std::deque<outbound::queued> taken;
  {
    std::lock_guard lock(q_->mu);
    // What it takes is not written yet: until it is (offer_stream), no sender may write to the
    // socket itself, or its packet would overtake these (a packet queued because of
    // kDirectWriteGap or its size leaves the stream offered; SendQueue's order test caught it).
    if (!q_->packets.empty()) q_->direct_fd = -1;
    if (q_->first_offset > 0) {
      // A sender wrote the start of the first queued packet. It could only while the stream was
      // offered, that is with nothing in out_ or in fragments, and every later addition took the
      // queue first. The rest goes out first, whole (it was small: kDirectWriteMaxBytes).
      if (!out_.empty() || !large_.empty() || q_->packets.empty()) {
        throw std::logic_error("dist: a half-written packet behind the connection's own");
      }
      out_offset_ = q_->first_offset;
      q_->first_offset = 0;
      const std::size_t n = q_->packets.front().packet.size();
      out_bytes_ += n - out_offset_;
      out_.push_back(chunk{.packet = std::move(q_->packets.front().packet), .accounted = n});
      q_->packets.pop_front();
    }
    taken.swap(q_->packets);
  }
  for (outbound::queued& q : taken) route(std::move(q), true);
}

void connection::route(outbound::queued&& q, bool counted) {
  if (auto it = large_by_sender_.find(q.sender); it != large_by_sender_.end()) {
    it->second->after.emplace_back(std::move(q), counted);  // behind its sender's fragmented message
    return;
  }
  if (mode_ == packet_mode::header && !fits_one_packet(q.packet)) {
    // Fragments account for the message's bytes after its whole-packet header (length, 131 68
    // 0): the header's are written off now.
    constexpr std::size_t kWholeHeader = 7;
    auto writer = std::make_shared<fragment_writer>(std::move(q.packet), next_sequence_++);
    if (counted) written(kWholeHeader);
    large_.push_back(large_message{std::move(writer), q.sender, counted, {}});
    large_by_sender_.emplace(q.sender, std::prev(large_.end()));
    return;
  }
  out_bytes_ += q.packet.size();
  const std::size_t accounted = counted ? q.packet.size() : 0;
  out_.push_back(chunk{.packet = std::move(q.packet), .accounted = accounted});
}

void connection::add_fragments() {
  for (auto it = large_.begin(); it != large_.end();) {
    const fragment_writer::fragment f = it->writer->next();
    out_bytes_ += f.size();
    out_.push_back(chunk{.fragment = f, .message = it->writer, .accounted = it->counted ? f.body.size() : 0});
    if (!it->writer->done()) {
      ++it;
      continue;
    }
    // Its last fragment is in out_: what its sender queued behind it follows, in order (a
    // fragmented message among them takes the sender's place in large_by_sender_ again).
    auto after = std::move(it->after);
    large_by_sender_.erase(it->sender);
    it = large_.erase(it);
    for (auto& [q, counted] : after) route(std::move(q), counted);
  }
}

void connection::recycle(chunk& c) {
  std::vector<std::byte> buffer;
  if (c.message) {
    if (c.message.use_count() == 1) buffer = c.message->release_buffer();  // its last fragment, written
  } else {
    buffer = std::move(c.packet);
  }
  if (buffer.capacity() < kSparePacketMinBytes || buffer.capacity() > kSparePacketMaxBytes) return;
  buffer.clear();
  std::lock_guard lock(q_->mu);
  if (q_->spare_packets.size() >= kMaxSparePackets) return;
  q_->spare_packets.push_back(std::move(buffer));
  q_->spare_count.store(q_->spare_packets.size(), std::memory_order_relaxed);
}

void connection::written(std::size_t accounted) {
  if (accounted == 0) return;
  const std::size_t left = q_->backlog.fetch_sub(accounted, std::memory_order_relaxed) - accounted;
  if (left <= st_->cfg.busy_limit_bytes && q_->held_count.load(std::memory_order_relaxed) > 0) release_held(*q_);
}

void connection::reply(const term& control, const term* payload, pid on_behalf_of) {
  std::vector<std::byte> packet;
  write_packet(packet, mode_, control, payload, encode_);
  take_stream();  // before anything a sender writes after this point
  route(outbound::queued{std::move(packet), on_behalf_of ? on_behalf_of : athanor::self()}, false);
}

void connection::take_stream() {
  {
    std::lock_guard lock(q_->mu);
    q_->direct_fd = -1;
  }
  // What senders queued (and the rest of a packet one of them half wrote) was sent before what
  // this connection is about to add: it goes first, whole.
  take_queued();
}

void connection::offer_stream() {
  if (!out_.empty() || !large_.empty() || tls_) return;
  std::lock_guard lock(q_->mu);
  if (q_->packets.empty()) q_->direct_fd = sock_.native_handle();
}

void connection::on_down(const down& d) {
  auto it = held_.find(d.monitor);
  if (it == held_.end()) return;
  const held_monitor& h = it->second;
  // MONITOR_P_EXIT {21, FromProc, ToPid, Ref, Reason}: FromProc as the watcher named it.
  // After the last packet the ended process itself sent there (a DOWN never overtakes a message).
  reply(tuple(term(21), h.target, term(h.watcher), term(h.remote_ref), d.reason), nullptr, d.from);
  held_by_remote_.erase({h.watcher, h.remote_ref});
  held_.erase(it);
}

void connection::dispatch(message& m) {
  const term& c = m.control;
  switch (m.op) {
    case op::send:
    case op::send_tt:
    case op::send_sender:
    case op::send_sender_tt: {
      const pid to = c.element(2).as_pid();
      if (to.is_local()) athanor::send(to, std::move(*m.payload));  // other nodes' pids: not ours to route
      return;
    }
    case op::alias_send:
    case op::alias_send_tt: {
      // {33, FromPid, Alias}: to the process the alias names (alias() writes the owner into it),
      // delivered only while that process keeps the alias active; dropped otherwise, as erts does.
      const term& a = c.element(2);
      if (!a.is_reference()) return;
      const ref alias = a.as_ref();
      if (pid owner = athanor::alias_owner(alias)) athanor::send_alias(owner, alias, std::move(*m.payload));
      return;
    }
    case op::reg_send:
    case op::reg_send_tt: {
      const atom name = c.element(3).as_atom();
      if (name == atom("net_kernel")) {
        // net_adm:ping's call: {'$gen_call', {From, Tag}, {is_auth, Node}} -> From ! {Tag, yes}.
        const term& p = *m.payload;
        if (p.is_tuple() && p.tuple_size() == 3 && p.element(0) == term(atom("$gen_call")) && p.element(1).is_tuple() &&
            p.element(1).tuple_size() == 2 && p.element(1).element(0).is_pid()) {
          const term answer = tuple(p.element(1).element(1), term(atom("yes")));
          reply(tuple(term(2), term(atom("")), p.element(1).element(0)), &answer);
        }
        return;
      }
      if (pid p = athanor::whereis(name)) athanor::send(p, std::move(*m.payload));
      return;  // an unknown name: dropped, as Erlang drops it
    }
    case op::monitor_p: {
      const pid watcher = c.element(1).as_pid();
      const term& target = c.element(2);
      const ref remote_ref = c.element(3).as_ref();
      if (target == term(atom("net_kernel"))) return;  // always there: nothing will ever fire
      pid local = target.is_atom() ? athanor::whereis(target.as_atom()) : target.as_pid();
      if (!local || !local.is_local() || !athanor::is_alive(local)) {
        reply(tuple(term(21), target, term(watcher), term(remote_ref), term(atom("noproc"))), nullptr);
        return;
      }
      if (held_by_remote_.count({watcher, remote_ref})) return;  // a repeat: one monitor per reference
      const ref mine = athanor::monitor(local);
      held_.emplace(mine, held_monitor{watcher, remote_ref, target});
      held_by_remote_[{watcher, remote_ref}] = mine;
      return;
    }
    case op::demonitor_p: {
      auto it = held_by_remote_.find({c.element(1).as_pid(), c.element(3).as_ref()});
      if (it == held_by_remote_.end()) return;
      athanor::demonitor(it->second, true);
      held_.erase(it->second);
      held_by_remote_.erase(it);
      return;
    }
    case op::link: {
      const pid from = c.element(1).as_pid(), to = c.element(2).as_pid();
      if (!to.is_local() || !remote_signals::link(from, to)) {
        reply(tuple(term(3), term(to), term(from), term(atom("noproc"))), nullptr);  // as OTP answers
        return;
      }
      std::lock_guard lock(q_->mu);
      q_->links.emplace(to, from);
      return;
    }
    case op::exit:
    case op::exit_tt:
    case op::payload_exit:
    case op::payload_exit_tt: {
      const pid from = c.element(1).as_pid(), to = c.element(2).as_pid();
      const term reason = m.payload ? *m.payload : c.element(c.tuple_size() - 1);
      {
        std::lock_guard lock(q_->mu);
        q_->links.erase({to, from});
      }
      if (to.is_local()) remote_signals::exit(from, to, reason, true);
      return;
    }
    case op::exit2:
    case op::exit2_tt:
    case op::payload_exit2:
    case op::payload_exit2_tt: {
      const pid from = c.element(1).as_pid(), to = c.element(2).as_pid();
      const term reason = m.payload ? *m.payload : c.element(c.tuple_size() - 1);
      if (to.is_local()) remote_signals::exit(from, to, reason, false);
      return;
    }
    case op::unlink_id: {
      // The peer removes its link: so do we, and we acknowledge (always, and before any other
      // signal to that process: the ack goes out on this same ordered stream).
      const pid from = c.element(2).as_pid(), to = c.element(3).as_pid();
      {
        std::lock_guard lock(q_->mu);
        q_->links.erase({to, from});
      }
      if (to.is_local()) remote_signals::unlink(from, to);
      reply(tuple(term(36), c.element(1), term(to), term(from)), nullptr);
      return;
    }
    case op::unlink: {  // the old form (peers without UNLINK_ID): no acknowledgement
      const pid from = c.element(1).as_pid(), to = c.element(2).as_pid();
      {
        std::lock_guard lock(q_->mu);
        q_->links.erase({to, from});
      }
      if (to.is_local()) remote_signals::unlink(from, to);
      return;
    }
    case op::unlink_id_ack:
      return;  // our unlink was done locally when it was made
    case op::monitor_p_exit:
    case op::payload_monitor_p_exit: {
      const pid watcher = c.element(2).as_pid();
      const ref r = c.element(3).as_ref();
      const term reason = m.payload ? *m.payload : c.element(4);
      pid target;
      {
        std::lock_guard lock(q_->mu);
        if (auto s = q_->spawns.find(r); s != q_->spawns.end()) {  // a spawn request of ours ended
          const pid caller = s->second.first;
          q_->spawns.erase(s);
          athanor::send(caller, spawn_outcome{r, reason});
          return;
        }
        auto it = q_->monitors.find(r);
        if (it == q_->monitors.end()) return;  // demonitored meanwhile
        target = it->second.second;
        q_->monitors.erase(it);
      }
      remote_signals::down(watcher, r, target, reason);
      return;
    }
    case op::spawn_request:
    case op::spawn_request_tt: {
      // {29, ReqId, From, GroupLeader, {M, F, Arity}, Opts} + Args: a process for exposed
      // functions (rpc.cpp), its link and monitor set up before it may run, then SPAWN_REPLY
      // {31, ReqId, From, Flags, Pid | Error}; Flags: 1 link, 2 monitor.
      const term& request = c.element(1);
      const pid from = c.element(2).as_pid();
      bool want_link = false, want_monitor = false;
      for (term o = c.element(5); o.is_cons(); o = o.tail()) {
        if (o.head() == term(atom("link"))) want_link = true;
        if (o.head() == term(atom("monitor"))) want_monitor = true;
      }
      term refusal;
      const pid p = start_requested(c.element(4), *m.payload, refusal);
      if (!p) {
        reply(tuple(term(31), request, term(from), term(0), refusal), nullptr);
        return;
      }
      std::int64_t flags = 0;
      if (want_link && remote_signals::link(from, p)) {
        std::lock_guard lock(q_->mu);
        q_->links.emplace(p, from);
        flags |= 1;
      }
      if (want_monitor) {
        const ref mine = athanor::monitor(p);
        held_.emplace(mine, held_monitor{from, request.as_ref(), term(p)});
        held_by_remote_[{from, request.as_ref()}] = mine;
        flags |= 2;
      }
      reply(tuple(term(31), request, term(from), term(flags), term(p)), nullptr);
      athanor::send(p, spawn_go{});
      return;
    }
    case op::spawn_reply:
    case op::spawn_reply_tt: {
      // The answer to an erpc_call of ours: the spawned pid (its DOWN brings the result), or an
      // error atom (the request was refused).
      const ref request = c.element(1).as_ref();
      const term& result = c.element(4);
      {
        std::lock_guard lock(q_->mu);
        auto it = q_->spawns.find(request);
        if (it != q_->spawns.end()) {
          if (result.is_pid()) {
            it->second.second = result.as_pid();
          } else {
            // Sent under the lock: a caller giving up takes its entry under it, then flushes.
            athanor::send(it->second.first, spawn_outcome{request, result, true});
            q_->spawns.erase(it);
          }
          return;
        }
      }
      // The caller gave up before the process existed: end it, as erpc does ('abandoned').
      if (result.is_pid()) reply(tuple(term(8), c.element(2), result, term(atom("abandoned"))), nullptr);
      return;
    }
    default:
      log(log_level::debug, fmt::format("{}: control message {} not handled yet: {}", peer_.name(), int(m.op),
                                        c.to_string()));
      return;
  }
}

void connection::handle(std::span<const std::byte> packet) {
  // Past peer_atom_limit, packets are decoded as binary_to_term(B, [safe]) decodes: no new atoms.
  decode_.safe = atom::count() >= st_->cfg.peer_atom_limit;
  try {
    if (std::optional<message> m = reader_.feed(packet, decode_)) dispatch(*m);  // nothing yet: a fragment
  } catch (const protocol_error& e) {
    if (!decode_.safe) throw;
    throw protocol_error(std::string(e.what()) + " (the atom table holds " + std::to_string(atom::count()) +
                         " atoms, past peer_atom_limit " + std::to_string(st_->cfg.peer_atom_limit) +
                         ": peers may not add atoms)");
  }
}

void connection::end(const std::string& why, log_level level) {
  log(level, fmt::format("connection to {} closed: {}", peer_.name(), why));
  for (auto& [mine, h] : held_) athanor::demonitor(mine, true);
  held_.clear();
  held_by_remote_.clear();
  close_and_leave(why);
}

void connection::close_and_leave(const std::string& why) {
  if (ended_) return;
  ended_ = true;
  {
    std::lock_guard lock(q_->mu);
    q_->direct_fd = -1;  // no sender writes to the descriptor once it is closed (and perhaps reused)
  }
  if (tls_ && sock_.native_handle() >= 0) {  // close_notify, best effort
    tls_->close();
    const std::span<const std::byte> bye = tls_->pending_output();
    if (!bye.empty()) (void)::send(sock_.native_handle(), bye.data(), bye.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  sock_.close();
  {
    std::lock_guard lock(st_->mu);
    auto it = st_->peers.find(peer_);
    if (it != st_->peers.end() && it->second == q_) st_->peers.erase(it);
  }
  fire_noconnection(*q_);  // after leaving the table: a new send starts a new connection
  release_held(*q_);       // nobody waits for a connection that is gone
  st_->connection_down(peer_, *q_, true);
  st_->cv.notify_all();
  (void)why;
}

// Writes what fits of out_, packets gathered into one sendmsg (a packet per system call would
// cost one call and one TCP segment per small message), and the fragments of large messages a
// fragment at a time, taking what senders queued meanwhile between two fragments. Returns false
// if the peer is gone.
bool connection::write_some(bool& progress) {
  progress = false;
  if (tls_) return write_some_tls(progress);
  for (;;) {
    if (!large_.empty() && out_bytes_ < kDefaultFragmentBytes) {
      take_queued();    // other senders' packets go between two fragments...
      add_fragments();  // ...and the next fragment of each large message after them
    }
    if (out_.empty()) return true;
    iovec iov[64];
    int n = 0;
    std::size_t total = 0;
    for (auto it = out_.begin(); it != out_.end() && n < 63; ++it) {
      std::size_t skip = it == out_.begin() ? out_offset_ : 0;
      auto add = [&](std::span<const std::byte> bytes) {
        if (skip >= bytes.size()) {
          skip -= bytes.size();
          return;
        }
        iov[n].iov_base = const_cast<std::byte*>(bytes.data() + skip);
        iov[n].iov_len = bytes.size() - skip;
        total += iov[n].iov_len;
        skip = 0;
        ++n;
      };
      if (it->message) {
        add(it->fragment.header());
        add(it->fragment.body);
      } else {
        add(it->packet);
      }
    }
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = std::size_t(n);
    const ssize_t w = ::sendmsg(sock_.native_handle(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      return false;
    }
    progress = progress || w > 0;
    std::size_t left = std::size_t(w);
    out_bytes_ -= left;
    while (left > 0 && !out_.empty()) {
      const std::size_t rest = out_.front().size() - out_offset_;
      if (left < rest) {
        out_offset_ += left;
        left = 0;
      } else {
        left -= rest;
        written(out_.front().accounted);
        recycle(out_.front());
        out_.pop_front();
        out_offset_ = 0;
      }
    }
    if (std::size_t(w) < total) return true;  // the socket is full
  }
}

// Under TLS: reads the ciphertext that has arrived, and decrypts it into in_. Returns false if
// the connection ended (the peer closed it, or TLS failed).
bool connection::read_tls(clock::time_point& last_read) {
  constexpr std::size_t kCipherRead = 64 * 1024;
  if (cipher_in_.size() < kCipherRead) cipher_in_.resize(kCipherRead);
  bool eof = false;
  try {
    for (;;) {
      io_result r = sock_.try_read(cipher_in_);
      if (r.would_block) break;
      if (r.eof) {
        eof = true;
        break;
      }
      tls_->put_received(std::span(cipher_in_).first(r.n));
      last_read = clock::now();
      if (r.n < cipher_in_.size()) break;
    }
    for (;;) {
      std::size_t want = 16 * 1024;  // a record's plaintext at most
      if (in_.size() >= 4) {         // a packet under way: room for all of it at once
        const std::byte* h = in_.data();
        const std::size_t len = std::size_t(h[0]) << 24 | std::size_t(h[1]) << 16 | std::size_t(h[2]) << 8 | std::size_t(h[3]);
        if (len <= st_->cfg.max_message_bytes && len + 4 > in_.size()) want = std::max(want, len + 4 - in_.size());
      }
      const std::size_t n = tls_->read(in_.room(want));
      if (n == 0) break;
      in_.commit(n);
    }
  } catch (const tls_error& e) {
    end(std::string("TLS: ") + e.what(), log_level::notice);
    return false;
  } catch (const std::exception& e) {
    end(e.what(), log_level::notice);
    return false;
  }
  if (tls_->peer_closed() || eof) {
    end("the peer closed it", log_level::info);  // as on a plain connection's end of stream
    return false;
  }
  return true;
}

// Under TLS: encrypts what is in out_ (small packets gathered into one record) and writes the
// ciphertext, a batch at a time so that encrypted bytes never pile up ahead of the socket.
bool connection::write_some_tls(bool& progress) {
  const int fd = sock_.native_handle();
  for (;;) {
    for (std::span<const std::byte> pending = tls_->pending_output(); !pending.empty(); pending = tls_->pending_output()) {
      const ssize_t w = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
        if (errno == EINTR) continue;
        return false;
      }
      tls_->consume_output(std::size_t(w));
      progress = progress || w > 0;
      if (std::size_t(w) < pending.size()) return true;  // the socket is full
    }
    if (!large_.empty() && out_bytes_ < kDefaultFragmentBytes) {
      take_queued();
      add_fragments();
    }
    if (out_.empty()) return true;
    constexpr std::size_t kBatch = 64 * 1024, kRecord = 16 * 1024;
    std::size_t fed = 0;
    auto flush_stage = [&] {
      if (!stage_.empty()) tls_->write(stage_);
      stage_.clear();
    };
    auto feed = [&](std::span<const std::byte> bytes) {
      if (bytes.size() >= kRecord) {
        flush_stage();
        tls_->write(bytes);
        return;
      }
      stage_.insert(stage_.end(), bytes.begin(), bytes.end());
      if (stage_.size() >= kRecord) flush_stage();
    };
    try {
      while (!out_.empty() && fed < kBatch) {
        chunk& c = out_.front();
        // (Whole chunks only: under TLS nothing is half-written, out_offset_ stays 0.)
        if (c.message) {
          feed(c.fragment.header());
          feed(c.fragment.body);
        } else {
          feed(c.packet);
        }
        fed += c.size();
        out_bytes_ -= c.size();
        written(c.accounted);
        recycle(c);
        out_.pop_front();
      }
      flush_stage();
    } catch (const std::exception&) {
      return false;
    }
  }
}

task<void> connection::run() {
  process& self = this_process();
  // One edge-triggered registration for the connection's life instead of an epoll_ctl per wait
  // (epoll only: senders write to the socket themselves, which io_uring's queue would not allow).
  (void)sock_.attach(self.self(), false);
  const milliseconds tick = st_->cfg.net_ticktime / 4;
  auto last_read = clock::now(), last_write = clock::now();
  auto last_traffic = clock::now();  // the last packet other than a tick, either way
  constexpr std::size_t kReadSize = 64 * 1024;
  for (;;) {
    // ---- read what has arrived (until a short read: the socket is drained) ----
    if (tls_ && !read_tls(last_read)) co_return;
    for (; !tls_;) {
      std::size_t want = kReadSize;
      if (in_.size() >= 4) {  // a packet under way: make room for all of it at once
        const std::byte* h = in_.data();
        const std::size_t len = std::size_t(h[0]) << 24 | std::size_t(h[1]) << 16 | std::size_t(h[2]) << 8 | std::size_t(h[3]);
        if (len <= st_->cfg.max_message_bytes && len + 4 > in_.size()) want = std::max(want, len + 4 - in_.size());
      }
      std::span<std::byte> room = in_.room(want);
      io_result r;
      try {
        r = sock_.try_read(room);
      } catch (const std::exception& e) {
        end(e.what(), log_level::notice);
        co_return;
      }
      if (r.would_block) break;
      if (r.eof) {
        end("the peer closed it", log_level::info);
        co_return;
      }
      in_.commit(r.n);
      last_read = clock::now();
      if (r.n < room.size()) break;
    }
    // ---- act on every whole packet ----
    while (in_.size() >= 4) {
      const std::byte* h = in_.data();
      const std::uint32_t len = std::uint32_t(h[0]) << 24 | std::uint32_t(h[1]) << 16 | std::uint32_t(h[2]) << 8 | std::uint32_t(h[3]);
      if (len > st_->cfg.max_message_bytes) {
        end(fmt::format("a {}-byte packet, over the {}-byte limit", len, st_->cfg.max_message_bytes), log_level::warning);
        co_return;
      }
      if (in_.size() - 4 < len) break;
      if (len > 0) {  // 0: a tick
        last_traffic = clock::now();
        try {
          handle(std::span(in_.data() + 4, len));
        } catch (const protocol_error& e) {
          end(e.what(), log_level::warning);
          co_return;
        } catch (const std::exception& e) {
          end(std::string("while handling a message: ") + e.what(), log_level::error);
          co_return;
        }
      }
      in_.consume(4 + len);
    }

    // ---- the mailbox: queued packets, monitors firing, stop (one look when it is empty) ----
    if (self.message_queue_len() > 0) {
      while (auto d = co_await self.receive_for<down>(milliseconds(0))) on_down(*d);
      if (co_await self.receive_for<stop_msg>(milliseconds(0))) {
        end(st_->stopping.load() ? "the node stops" : "disconnected", log_level::info);
        co_return;
      }
      while (co_await self.receive_for<wake_msg>(milliseconds(0))) {
      }
    }
    take_queued();

    // ---- liveness ----
    const auto now = clock::now();
    if (!out_.empty() || !large_.empty()) last_traffic = now;
    if (now - last_read >= st_->cfg.net_ticktime) {
      end("not responding (nothing read for net_ticktime)", log_level::warning);
      co_return;
    }
    if (now - last_traffic >= tick) {  // only ticks for a while: give the buffers back
      in_.release_if_empty();
      reader_.release_spare();
      std::vector<std::vector<std::byte>> spares;
      {
        std::lock_guard lock(q_->mu);
        spares.swap(q_->spare_packets);
        q_->spare_count.store(0, std::memory_order_relaxed);
      }
    }
    if (out_.empty() && large_.empty() && now - last_write >= tick) {
      take_stream();
      if (out_.empty() && large_.empty()) {
        out_.push_back(chunk{.packet = std::vector<std::byte>(std::begin(kTick), std::end(kTick))});
        out_bytes_ += sizeof(kTick);
      }
    }

    // ---- write what fits ----
    bool wrote = false;
    if (!write_some(wrote)) {
      end(std::string("writing: ") + std::strerror(errno), log_level::notice);
      co_return;
    }
    if (wrote) last_write = clock::now();
    offer_stream();  // nothing left to write: senders may write themselves until we need the stream

    // ---- wait: input, room to write, a message, or the next tick ----
    const auto next_tick = last_write + tick, dead = last_read + st_->cfg.net_ticktime;
    const auto until = std::min(next_tick, dead);
    milliseconds wait = std::chrono::duration_cast<milliseconds>(until - clock::now()) + milliseconds(1);
    if (wait.count() < 0) wait = milliseconds(0);
    const bool to_write = !out_.empty() || !large_.empty() || (tls_ && !tls_->pending_output().empty());
    const std::uint32_t events = io_readable | (to_write ? io_writable : 0);
    (void)co_await athanor::detail::fd_wait_for(sock_.native_handle(), events, wait.count(), true, nullptr,
                                                 sock_.is_attached(), &wake_timer_);
  }
}

// ---- handshakes ---------------------------------------------------------------------------------

// Reads more handshake bytes into `into` (decrypted, under TLS); false on end of stream, a TLS
// failure, or timeout.
task<bool> read_some(tcp_socket& s, tls_session* tls, std::vector<std::byte>& into, clock::time_point deadline) {
  std::byte buf[4096];
  for (;;) {
    if (tls) {
      try {
        const std::size_t n = tls->read(buf);
        if (n > 0) {
          into.assign(buf, buf + n);
          co_return true;
        }
      } catch (const tls_error&) {
        co_return false;
      }
      if (tls->peer_closed()) co_return false;
    }
    io_result r = s.try_read(buf);
    if (!r.would_block) {
      if (r.eof) co_return false;
      if (!tls) {
        into.assign(buf, buf + r.n);
        co_return true;
      }
      tls->put_received(std::span(buf, r.n));
      continue;
    }
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now());
    if (left.count() <= 0) co_return false;
    io_wait_result w = co_await io_wait(s.native_handle(), io_readable, left);
    if (w == io_wait_result::timeout) co_return false;
  }
}

// Writes `bytes` (encrypted, under TLS) and clears it; false if the peer is gone.
task<bool> write_bytes(tcp_socket& s, tls_session* tls, std::vector<std::byte>& bytes) {
  try {
    if (tls) {
      if (!bytes.empty()) tls->write(bytes);
      bytes.clear();
      std::vector<std::byte> cipher(tls->pending_output().begin(), tls->pending_output().end());
      tls->consume_output(cipher.size());
      if (!cipher.empty()) co_await s.write_all(std::span<const std::byte>(cipher));
      co_return true;
    }
    if (bytes.empty()) co_return true;
    co_await s.write_all(std::span<const std::byte>(bytes));
  } catch (const std::exception&) {
    co_return false;
  }
  bytes.clear();
  co_return true;
}

// Runs the TLS handshake of a connection under TLS distribution (nothing without it). Returns
// false, with a log line, if it failed.
task<bool> start_tls(node_state& st, tcp_socket& sock, std::optional<tls_session>& tls, bool accepted,
                     std::string_view peer_host) {
  if (!st.tls_server) co_return true;
  try {
    tls.emplace(accepted ? tls_session::server(*st.tls_server) : tls_session::client(*st.tls_client, peer_host));
    co_await tls_handshake(sock, *tls, st.cfg.setup_time);
    co_return true;
  } catch (const std::exception& e) {
    log(log_level::notice, fmt::format("TLS handshake {} {} failed: {}", accepted ? "from" : "with",
                                       accepted ? sock.peer_name() : std::string(peer_host), e.what()));
    co_return false;
  }
}

// Becomes the connection for `peer` once a handshake is done: registers the queue's owner and
// runs the connection loop. Returns false if another connection to that peer won meanwhile.
void abandon(node_state& st, atom peer, const std::shared_ptr<outbound>& q);

task<void> run_connection(std::shared_ptr<node_state> st, tcp_socket sock, std::optional<tls_session> tls,
                          handshake_outcome hs, std::shared_ptr<outbound> q) {
  std::string failed;
  {
    std::lock_guard lock(q->mu);
    if (q->ended) {  // given up while this handshake ran (another attempt's failure): start over
      log(log_level::info, fmt::format("connection to {} dropped: its queue was abandoned", hs.peer.full()));
      co_return;
    }
    q->owner = athanor::self();
    q->peer_flags = hs.negotiated_flags;
    // The framing is settled: from now on senders encode for it. What they queued before the
    // handshake was framed pass-through; reframed here, once (a few packets at most).
    const packet_mode mode = packet_mode_for(hs.negotiated_flags);
    try {
      if (mode != q->mode.load(std::memory_order_relaxed)) {
        for (outbound::queued& queued : q->packets) {
          std::vector<std::byte>& packet = queued.packet;
          message m = read_packet(std::span(packet).subspan(4), st->decode_options());
          std::vector<std::byte> reframed;
          write_packet(reframed, mode, m.control, m.payload ? &*m.payload : nullptr, st->encode_options());
          q->backlog.fetch_add(reframed.size(), std::memory_order_relaxed);
          q->backlog.fetch_sub(packet.size(), std::memory_order_relaxed);
          packet = std::move(reframed);
        }
        q->mode.store(mode, std::memory_order_release);
      }
      q->connected = true;
    } catch (const std::exception& e) {
      failed = e.what();  // out of memory: the queue is given up below (never left ownerless)
    }
  }
  if (!failed.empty()) {
    log(log_level::error, fmt::format("connection to {} given up: {}", hs.peer.full(), failed));
    abandon(*st, atom(hs.peer.full()), q);
    co_return;
  }
  log(log_level::info, fmt::format("connected to {} (flags {:#x})", hs.peer.full(), hs.negotiated_flags));
  st->connection_up(atom(hs.peer.full()), *q);
  connection c(st, std::move(sock), std::move(tls), std::move(hs), q);
  co_await c.run();
}

// A connection to `peer` that this process was setting up will not come: unless another process
// has taken the queue over (an incoming connection that won a simultaneous connect), the queue
// leaves the table (what was queued is dropped, as Erlang drops it) and everything waiting on it
// hears: links and monitors get noconnection, node monitors nodedown, connect_node false.
void abandon(node_state& st, atom peer, const std::shared_ptr<outbound>& q) {
  {
    std::lock_guard qlock(q->mu);
    if (q->connected || (q->owner && q->owner != athanor::self())) return;  // not ours to end
  }
  {
    std::lock_guard lock(st.mu);
    auto it = st.peers.find(peer);
    if (it != st.peers.end() && it->second == q) st.peers.erase(it);
  }
  fire_noconnection(*q);
  release_held(*q);
  st.connection_down(peer, *q, false);
  st.cv.notify_all();
}

// Keeps an acceptor's challenge in the node's pending set while its handshake lasts.
class pending_challenge {
 public:
  explicit pending_challenge(node_state& st) : st_(st) {}
  ~pending_challenge() {
    if (!challenge_) return;
    std::lock_guard lock(st_.challenges_mu);
    auto it = st_.pending_challenges.find(*challenge_);
    if (it != st_.pending_challenges.end()) st_.pending_challenges.erase(it);
  }
  void note(std::optional<std::uint32_t> c) {
    if (challenge_ || !c) return;
    challenge_ = c;
    std::lock_guard lock(st_.challenges_mu);
    st_.pending_challenges.insert(*c);
  }

 private:
  node_state& st_;
  std::optional<std::uint32_t> challenge_;
};

proc accept_connection(std::shared_ptr<node_state> st, tcp_socket sock) {
  std::optional<tls_session> tls;
  if (!co_await start_tls(*st, sock, tls, true, "")) co_return;
  tls_session* t = tls ? &*tls : nullptr;
  handshake_acceptor hs(st->handshake_settings_for());
  pending_challenge challenge(*st);
  const auto deadline = clock::now() + st->cfg.setup_time;
  std::vector<std::byte> in, out;
  std::shared_ptr<outbound> q;
  for (;;) {
    if (!co_await read_some(sock, t, in, deadline)) {
      hs.end_of_input();
      log(log_level::notice, fmt::format("handshake from {} did not finish in time", sock.peer_name()));
      if (q) abandon(*st, atom(hs.outcome().peer.full()), q);
      co_return;
    }
    handshake_state s = hs.feed(in, out);
    if (s == handshake_state::awaiting_decision) {
      const atom peer(hs.outcome().peer.full());
      existing_connection existing = existing_connection::none;
      {
        std::lock_guard lock(st->mu);
        auto it = st->peers.find(peer);
        if (it != st->peers.end()) {
          std::lock_guard qlock(it->second->mu);
          existing = it->second->connected ? existing_connection::connected : existing_connection::dialling;
        }
      }
      handshake_status status = status_for_incoming(st->name, hs.outcome().peer, existing);
      if (status == handshake_status::ok || status == handshake_status::ok_simultaneous) {
        {
          std::lock_guard lock(st->mu);
          auto& slot = st->peers[peer];
          if (!slot) slot = std::make_shared<outbound>();
          q = slot;
        }
        // This process sets the connection up from now on (a dial of ours that was under way
        // gives way: see abandon()).
        std::lock_guard qlock(q->mu);
        q->owner = athanor::self();
      }
      s = hs.answer(status, out);
    }
    challenge.note(hs.own_challenge());
    if (!co_await write_bytes(sock, t, out)) {
      if (q) abandon(*st, atom(hs.outcome().peer.full()), q);
      co_return;
    }
    if (s == handshake_state::failed) {
      const bool wrong_cookie = hs.failure() == handshake_failure::bad_digest;
      log(wrong_cookie ? log_level::warning : log_level::notice,
          fmt::format("connection attempt from {} refused: {}{}", sock.peer_name(),
                      wrong_cookie ? "wrong cookie: " : "", hs.failure_detail()));
      if (q) abandon(*st, atom(hs.outcome().peer.full()), q);
      co_return;
    }
    if (s == handshake_state::connected) break;
  }
  if (!q) co_return;
  co_await run_connection(st, std::move(sock), std::move(tls), hs.outcome(), q);
}

proc dial(std::shared_ptr<node_state> st, atom peer, std::shared_ptr<outbound> q) {
  auto give_up = [&](const std::string& why) {
    log(log_level::info, fmt::format("cannot connect to {}: {}", peer.name(), why));  // a cluster keeper retries: no alarm
    abandon(*st, peer, q);
  };
  node_name target;
  try {
    target = node_name::parse_peer(peer.name());
  } catch (const std::exception& e) {
    give_up(e.what());
    co_return;
  }
  epmd_address at = st->cfg.epmd.epmd;
  at.host = std::string(target.host());
  std::optional<epmd_node> found;
  try {
    found = co_await epmd_port_please(std::string(target.alive()), at);
  } catch (const std::exception& e) {
    give_up(std::string("EPMD on its host: ") + e.what());
    co_return;
  }
  if (!found) {
    give_up("not registered with EPMD on its host");
    co_return;
  }
  tcp_socket sock;
  try {
    sock = co_await epmd_detail::connect_before(at.host, found->port, clock::now() + st->cfg.setup_time);
  } catch (const std::exception& e) {
    give_up(e.what());
    co_return;
  }
  std::optional<tls_session> tls;
  if (!co_await start_tls(*st, sock, tls, false, target.host())) {
    abandon(*st, peer, q);
    co_return;
  }
  tls_session* t = tls ? &*tls : nullptr;
  handshake_initiator hs(st->handshake_settings_for(), target);
  std::vector<std::byte> in, out;
  handshake_state s = hs.start(out);
  const auto deadline = clock::now() + st->cfg.setup_time;
  while (s != handshake_state::connected && s != handshake_state::failed) {
    if (!co_await write_bytes(sock, t, out)) {
      give_up("the peer closed the connection during the handshake");
      co_return;
    }
    if (!co_await read_some(sock, t, in, deadline)) {
      hs.end_of_input();
      give_up("the handshake did not finish in time");
      co_return;
    }
    s = hs.feed(in, out);
    // "alive": the peer still counts a connection from us. We dial only without one, so it is a
    // dead one the peer has not noticed: replace it (as OTP does while its own attempt is pending).
    if (s == handshake_state::awaiting_decision) s = hs.answer_alive(true, out);
  }
  if (s == handshake_state::failed) {
    (void)co_await write_bytes(sock, t, out);
    give_up(std::string(to_string(hs.failure())) + ": " + hs.failure_detail());
    co_return;
  }
  co_await run_connection(st, std::move(sock), std::move(tls), hs.outcome(), q);
}

void node_state::connect_to(atom peer, const std::shared_ptr<outbound>& q) {
  std::shared_ptr<node_state> self = shared_from_this();
  try {
    pid p = athanor::spawn([self, peer, q](process&) -> proc { return dial(self, peer, q); });
    std::lock_guard lock(q->mu);
    if (!q->owner) q->owner = p;  // an acceptor may have taken the queue over already (abandon())
  } catch (const std::exception& e) {
    log(log_level::error, fmt::format("cannot start connecting to {}: {}", peer.name(), e.what()));
    abandon(*this, peer, q);  // nobody will: its senders must not wait for it
  }
}

proc accept_loop(std::shared_ptr<node_state> st, tcp_listener l, std::promise<void>* registered) {
  process& self = this_process();
  try {
    epmd_node me{.name = std::string(st->name.alive()), .port = st->port};
    st->epmd = co_await ensure_epmd(std::move(me), st->cfg.epmd);
    st->creation = st->epmd.creation();
    st->make_contexts();
    registered->set_value();  // `registered` is gone after this: start() returns
  } catch (...) {
    registered->set_exception(std::current_exception());
    co_return;
  }
  for (;;) {
    int err = 0;
    tcp_socket s = l.try_accept(err);
    if (s.is_open()) {
      try {
        athanor::spawn([st, sock = std::move(s)](process&) mutable -> proc { return accept_connection(st, std::move(sock)); });
      } catch (const std::exception& e) {
        log(log_level::error, std::string("cannot start a connection process: ") + e.what());
      }
      continue;
    }
    if (err) {
      log(log_level::warning, fmt::format("accept failed: {}", std::strerror(err)));
      if (co_await self.receive_for<stop_msg>(milliseconds(100))) co_return;
      continue;
    }
    const io_wait_result w = co_await io_wait(l.native_handle(), io_readable, milliseconds(-1), true);
    if (w != io_wait_result::message) continue;
    // Mail: stop, or news from the EPMD keeper (it reports to this process, its owner).
    athanor::message m = co_await self.receive_any();
    if (m.is<stop_msg>()) co_return;
    if (auto* lost = m.get_if<epmd_registration_lost>()) {
      log(log_level::warning, "EPMD registration lost (" + lost->reason + "): registering again");
    } else if (auto* back = m.get_if<epmd_reregistered>()) {
      log(log_level::notice, fmt::format("registered with EPMD again{}", back->serving ? " (serving it)" : ""));
    }
  }
}

}  // namespace detail

// ---- node ---------------------------------------------------------------------------------------

node::node(std::shared_ptr<detail::node_state> s) noexcept : s_(std::move(s)) {}

node& node::operator=(node&& o) noexcept {
  if (this != &o) {
    stop();
    s_ = std::move(o.s_);
  }
  return *this;
}

node::~node() { stop(); }

atom node::name() const noexcept { return s_ ? s_->name_atom : atom("nonode@nohost"); }
const node_name& node::full_name() const noexcept {
  static const node_name none;
  return s_ ? s_->name : none;
}
std::uint32_t node::creation() const noexcept { return s_ ? s_->creation : 0; }
std::uint16_t node::port() const noexcept { return s_ ? s_->port : 0; }

std::vector<atom> node::connected_nodes() const { return s_ ? s_->connected() : std::vector<atom>{}; }

atom node::node_of(pid p) const {
  if (!s_) return atom("nonode@nohost");
  if (p.is_local()) return s_->name_atom;
  std::optional<etf::node_identity> id = s_->identity_of(p.node());
  return id ? id->name : atom("nonode@nohost");
}

bool node::disconnect(atom peer) {
  if (!s_) return false;
  pid owner;
  {
    std::lock_guard lock(s_->mu);
    auto it = s_->peers.find(peer);
    if (it == s_->peers.end()) return false;
    std::lock_guard qlock(it->second->mu);
    owner = it->second->owner;
  }
  if (!owner) return false;
  athanor::send(owner, detail::stop_msg{});
  return true;
}

void node::stop() {
  if (!s_) return;
  std::shared_ptr<detail::node_state> st = std::move(s_);
  if (st->stopping.exchange(true)) return;
  if (installed_remote_nodes() == st.get()) install_remote_nodes(nullptr);
  {
    std::lock_guard lock(detail::g_current_mu);
    if (detail::g_current == st) detail::g_current.reset();
  }
  detail::retire(st);
  athanor::send(st->acceptor, detail::stop_msg{});
  athanor::send(st->rex, detail::rex_stop{});
  athanor::send(st->group_leader, detail::rex_stop{});
  std::vector<pid> owners;
  {
    std::lock_guard lock(st->mu);
    for (const auto& [name, q] : st->peers) {
      std::lock_guard qlock(q->mu);
      if (q->owner) owners.push_back(q->owner);
    }
  }
  for (pid p : owners) athanor::send(p, detail::stop_msg{});
  std::unique_lock lock(st->mu);
  st->cv.wait_for(lock, std::chrono::seconds(5), [&] { return st->peers.empty(); });
  lock.unlock();
  st->epmd.stop();
}

atom this_node() {
  std::shared_ptr<detail::node_state> st = detail::current();
  return st ? st->name_atom : atom("nonode@nohost");
}

std::vector<atom> nodes() {
  std::shared_ptr<detail::node_state> st = detail::current();
  return st ? st->connected() : std::vector<atom>{};
}

atom node_of(pid p) {
  std::shared_ptr<detail::node_state> st = detail::current();
  if (!st) return atom("nonode@nohost");
  if (p.is_local()) return st->name_atom;
  std::optional<etf::node_identity> id = st->identity_of(p.node());
  return id ? id->name : atom("nonode@nohost");
}

task<bool> connect_node(atom peer) {
  process& self = this_process();
  std::shared_ptr<detail::node_state> st = detail::current();
  if (!st) co_return false;
  if (peer == st->name_atom) co_return true;  // as net_kernel:connect_node(node())
  // Join the waiters before the attempt can end, so that its outcome reaches us.
  for (;;) {
    if (st->stopping.load()) co_return false;
    bool fresh = false;
    std::shared_ptr<detail::outbound> q = st->queue_of(peer, fresh);
    {
      std::lock_guard lock(q->mu);
      if (q->ended) continue;  // that connection just ended: try the next one
      if (q->connected) co_return true;
      q->connect_waiters.push_back(self.self());
    }
    if (fresh) st->connect_to(peer, q);
    break;
  }
  // The attempt ends within setup_time (plus EPMD's lookup); a margin covers a slow scheduler.
  const auto limit = st->cfg.setup_time * 2 + std::chrono::seconds(5);
  bool up = false;
  co_await self.receive(on<detail::connect_outcome>([peer](const detail::connect_outcome& o) { return o.peer == peer; },
                                                    [&up](detail::connect_outcome o) { up = o.up; }),
                        after(std::chrono::duration_cast<std::chrono::milliseconds>(limit), [] {}));
  co_return up;
}

void monitor_node(atom peer, bool on) {
  process& self = this_process();
  std::shared_ptr<detail::node_state> st = detail::current();
  if (!on) {
    if (!st) return;
    std::lock_guard lock(st->watch_mu);
    auto [b, e] = st->node_watchers.equal_range(peer);
    for (auto it = b; it != e; ++it) {
      if (it->second == self.self()) {
        st->node_watchers.erase(it);
        break;
      }
    }
    return;
  }
  if (!st || peer == atom("nonode@nohost")) {
    athanor::send(self.self(), nodedown{peer});  // not alive: Erlang answers {nodedown, Node} at once
    return;
  }
  if (peer == st->name_atom) return;  // this node never goes down while its processes run
  {
    std::lock_guard lock(st->watch_mu);
    st->node_watchers.emplace(peer, self.self());
  }
  // No connection: make one; if it cannot be made, the attempt's end fires this monitor.
  if (!st->ensure_connection(peer)) {
    std::lock_guard lock(st->watch_mu);
    auto [b, e] = st->node_watchers.equal_range(peer);
    for (auto it = b; it != e; ++it) {
      if (it->second == self.self()) {
        st->node_watchers.erase(it);
        break;
      }
    }
    athanor::send(self.self(), nodedown{peer});
  }
}

void monitor_nodes(bool on) {
  process& self = this_process();
  std::shared_ptr<detail::node_state> st = detail::current();
  if (!st) return;
  std::lock_guard lock(st->watch_mu);
  auto& v = st->all_watchers;
  auto it = std::find(v.begin(), v.end(), self.self());
  if (on && it == v.end()) v.push_back(self.self());
  if (!on && it != v.end()) v.erase(it);
}

node start(node_config config) {
  auto st = std::make_shared<detail::node_state>();
  st->cfg = std::move(config);
  const node_config& cfg = st->cfg;
  try {
    st->name = cfg.naming == naming_mode::short_names ? node_name::from_sname(cfg.name) : node_name::from_name(cfg.name);
  } catch (const std::exception& e) {
    throw node_error(std::string("athanor::dist::start: ") + e.what());
  }
  st->name_atom = atom(st->name.full());
  try {
    st->cookie = load_cookie(cfg.cookie ? std::optional<std::string_view>(*cfg.cookie) : std::nullopt).cookie;
  } catch (const std::exception& e) {
    throw node_error(std::string("athanor::dist::start: ") + e.what());
  }
  if (cfg.tls) {
    try {
      st->tls_server.emplace(tls_role::server, cfg.tls->server);
      st->tls_client.emplace(tls_role::client, cfg.tls->client);
    } catch (const std::exception& e) {
      throw node_error(std::string("athanor::dist::start: TLS distribution: ") + e.what());
    }
  }
  tcp_listener listener;
  try {
    listener = tcp_listener::listen(cfg.listen_host, cfg.listen_port);
  } catch (const std::exception& e) {
    throw node_error(std::string("athanor::dist::start: cannot listen: ") + e.what());
  }
  st->port = listener.port();
  // Registering is a conversation with EPMD, held by the acceptor process for the node's life
  // (the registration ends with its owner), while this thread waits for the first answer.
  std::promise<void> registered;
  std::future<void> done = registered.get_future();
  st->acceptor = athanor::spawn([st, l = std::move(listener), &registered](process&) mutable -> proc {
    return detail::accept_loop(st, std::move(l), &registered);
  });
  try {
    done.get();
  } catch (const std::exception& e) {
    throw node_error(std::string("athanor::dist::start: EPMD: ") + e.what());
  }
  // rex (rpc:block_call, ei_rpc, C nodes) and the group leader of this node's spawn requests.
  st->group_leader = athanor::spawn([](process&) -> proc { return detail::io_server(); });
  st->rex = athanor::spawn([](process&) -> proc { return detail::rex_server(); });
  if (!athanor::register_name(atom("rex"), st->rex)) {
    detail::log(log_level::warning, "the name rex is taken: rpc:block_call and C nodes cannot reach this node");
  }
  if (install_remote_nodes(st.get()) != nullptr) {
    detail::log(log_level::warning, "another node was installed in this OS process: replaced");
  }
  {
    std::lock_guard lock(detail::g_current_mu);
    detail::g_current = st;
  }
  detail::log(log_level::info, fmt::format("node {} started (creation {}, port {})", st->name.full(), st->creation, st->port));
  return node(st);
}

}  // namespace athanor::dist
