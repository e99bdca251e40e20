// The state of a running node, shared by the files of src/dist (node.cpp: connections and the
// remote_nodes hook; rpc.cpp: calls by name in both directions). Internal: not installed.
// See node.cpp for the design.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "athanor/dist/control.h"
#include "athanor/dist/cookie.h"
#include "athanor/dist/epmd.h"
#include "athanor/dist/node.h"
#include "athanor/dist/tls.h"
#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/remote.h"
#include "athanor/term/etf.h"

namespace athanor::dist {

namespace detail {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The shortest time between two packets a sender writes itself (see "Sending" in node.cpp).
inline constexpr std::chrono::microseconds kDirectWriteGap{20};
// The largest packet a sender writes itself: a larger one goes through the queue, where the
// connection can send it in fragments between other senders' packets.
inline constexpr std::size_t kDirectWriteMaxBytes = kDefaultFragmentBytes;
// Packet buffers from this capacity up are kept for reuse (outbound::spare_packets), at most
// kMaxSparePackets per peer.
inline constexpr std::size_t kSparePacketMinBytes = std::size_t(256) << 10;
inline constexpr std::size_t kSparePacketMaxBytes = std::size_t(16) << 20;
inline constexpr std::size_t kMaxSparePackets = 4;

// Node numbers: 0 is this node, 1..kStaleSelf-1 are peers, kStaleSelf is this node's name with
// another creation (signals for a previous incarnation: dropped).
constexpr std::uint32_t kStaleSelf = pid::kNodeMask;

struct wake_msg {};  // outbound packets are queued

// enqueue() refused a message: the peer's queue is past node_config::send_queue_hard_limit_bytes.
struct queue_overloaded : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct stop_msg {};  // the node stops: close the connection

inline void log(log_level level, std::string text) { athanor::logger::log("dist", level, std::move(text)); }

// One peer's outbound queue: every sender appends whole packets, the connection process takes
// them. Thread-safe (mu).
struct outbound {
  // A packet and the process it is from (the null pid: a plain thread). The connection keeps each
  // sender's packets in order behind a message it sends in fragments (see "Fragments" in node.cpp).
  struct queued {
    std::vector<std::byte> packet;
    pid sender;
  };
  std::mutex mu;
  std::deque<queued> packets;
  // Bytes of senders' packets queued or taken by the connection and not yet written: what the
  // busy limit and the hard limit (node_config) compare. Added by senders, taken off by the
  // connection as packets go out.
  std::atomic<std::size_t> backlog{0};
  // Buffers of large packets already written, for senders to encode their next large message
  // into (a fresh one costs a page fault per 4 KiB); freed when the connection goes idle.
  std::vector<std::vector<std::byte>> spare_packets;
  std::atomic<std::size_t> spare_count{0};  // spare_packets.size(), for a look without the lock
  std::vector<pid> held;                  // senders held by back-pressure until the backlog drains
  std::atomic<std::size_t> held_count{0};  // held.size(), for a look without the lock
  pid owner;                          // the connection (or connecting) process
  bool connected = false;             // the handshake is done
  bool ended = false;                 // its connection ended (or never came): see fire_noconnection
  std::uint64_t peer_flags = 0;       // the flags negotiated with the peer, once connected
  std::atomic<bool> wake_pending{false};
  // The socket a sender may write to itself (see "Sending" in node.cpp), or -1. Set by the
  // connection only while it has nothing of its own to write and `packets` is empty; whoever
  // sets it back to -1 owns the stream's order from then on. `first_offset`: bytes of
  // packets.front() a sender already wrote before the socket filled up.
  int direct_fd = -1;
  std::size_t first_offset = 0;
  clock::time_point last_direct_write{};  // see kDirectWriteGap
  // How packets for this peer are framed: pass-through until the handshake says otherwise (header
  // mode when FRAGMENTS or DIST_HDR_ATOM_CACHE is negotiated; the two cannot be mixed). Written
  // under mu, once, when the connection comes up; read without it to encode, and checked again
  // under it before a packet is queued.
  std::atomic<packet_mode> mode{packet_mode::pass_through};
  // What fires `noconnection` when the connection ends (or never comes up):
  std::set<std::pair<pid, pid>> links;          // (local, remote) pairs linked across it
  std::map<ref, std::pair<pid, pid>> monitors;  // a local watcher's monitor -> (watcher, remote target)
  std::vector<pid> connect_waiters;             // connect_node() callers: told the outcome
  // Spawn requests this node made there (erpc_call), by request id: the caller, and the process
  // the peer spawned once its SPAWN_REPLY came (null before).
  std::map<ref, std::pair<pid, pid>> spawns;
};

// Lets every sender held by back-pressure on `q` run again (the backlog drained, or the
// connection ended: held senders must never wait for a connection that is gone).
void release_held(outbound& q);

// What a spawn request of this node (erpc_call) comes to, delivered to the caller: the spawned
// process ended with `reason` (its monitor fired), or the peer refused to spawn it (`refused`,
// with the peer's error atom as the reason).
struct spawn_outcome {
  ref request;
  term reason;
  bool refused = false;
};

// The answer a connect_node() caller waits for.
struct connect_outcome {
  atom peer;
  bool up;
};

// The connection to a peer is gone (or never came): every link across it delivers `noconnection`
// to its local end, every monitor a local process held on a process there fires with it, and
// every spawn request waiting there ends with noconnection.
void fire_noconnection(outbound& q);

class node_state final : public remote_nodes, public std::enable_shared_from_this<node_state> {
 public:
  node_config cfg;
  dist::node_name name;
  atom name_atom;
  std::optional<dist::cookie> cookie;
  std::uint32_t creation = 0;
  std::uint16_t port = 0;
  epmd_keeper epmd;
  pid acceptor;
  pid rex;           // the registered `rex` (rpc.cpp)
  pid group_leader;  // the I/O server this node's spawn requests name (rpc.cpp)
  std::atomic<bool> stopping{false};
  // TLS distribution (cfg.tls): the contexts of accepted and dialled connections, made at start.
  std::optional<tls_context> tls_server, tls_client;

  // ---- the node table and the connections (mu) ----
  mutable std::mutex mu;
  std::vector<etf::node_identity> table;  // node number n is table[n - 1]
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> numbers;  // (atom index, creation) -> n
  std::unordered_map<atom, std::shared_ptr<outbound>> peers;                 // by peer name
  std::condition_variable cv;             // a connection ended (stop() waits for none left)

  // The number of a node as a pid names it, assigning one on first sight. nullopt when the
  // table is full (65,533 incarnations seen: the connection that brought one more is refused).
  std::optional<std::uint32_t> number_of(const etf::node_identity& n) {
    if (n.name == name_atom) return kStaleSelf;  // this node, another creation: see kStaleSelf
    std::lock_guard lock(mu);
    auto key = std::make_pair(n.name.index(), n.creation);
    if (auto it = numbers.find(key); it != numbers.end()) return it->second;
    if (table.size() + 1 >= kStaleSelf) return std::nullopt;
    table.push_back(n);
    const std::uint32_t number = std::uint32_t(table.size());
    numbers.emplace(key, number);
    return number;
  }
  std::optional<etf::node_identity> identity_of(std::uint32_t number) const {
    std::lock_guard lock(mu);
    if (number == 0 || number > table.size()) return std::nullopt;
    return table[number - 1];
  }

  // The pid and reference mapping for every term this node encodes or decodes. Made once, when
  // the node has its name and creation: a send pays no allocation for it. (`this` outlives every
  // use: a node_state is never destroyed while the process runs; see g_retired.)
  etf::encode_options encoding;
  etf::decode_options decoding;
  void make_contexts() {
    etf::etf_context c;
    c.node = name_atom;
    c.creation = creation;
    c.node_name = [this](std::uint32_t n) { return identity_of(n); };
    c.node_number = [this](const etf::node_identity& id) { return number_of(id); };
    encoding.context = c;
    decoding.context = std::move(c);
  }
  const etf::encode_options& encode_options() const { return encoding; }
  const etf::decode_options& decode_options() const { return decoding; }

  // Challenges our acceptors have sent and not yet seen answered: our initiators refuse to
  // answer them (a peer relaying one would get our acceptor's digest without the cookie).
  std::mutex challenges_mu;
  std::multiset<std::uint32_t> pending_challenges;

  handshake_settings handshake_settings_for() {
    handshake_settings s{.name = name, .creation = creation, .cookie = *cookie};
    // SPAWN: erpc and rpc:call reach this node (rpc.cpp). FRAGMENTS: peers may split large
    // messages (header framing, received by packet_reader); the atom cache is not offered (a
    // closure's atoms would arrive as cache references, which a fun's kept bytes cannot hold).
    s.flags = dflag::recommended_hidden | dflag::spawn | dflag::fragments;
    // Under TLS distribution the handshake's messages have 4-byte lengths too (inet_tls_dist).
    if (tls_server) s.framing = framing::four_byte_length;
    std::weak_ptr<node_state> weak = weak_from_this();
    s.is_own_challenge = [weak](std::uint32_t c) {
      auto st = weak.lock();
      if (!st) return false;
      std::lock_guard lock(st->challenges_mu);
      return st->pending_challenges.count(c) > 0;
    };
    return s;
  }

  // Encodes `control` (+ payload) as a packet in the framing of `peer`'s connection and queues it,
  // connecting first if there is no connection. `record`, if given, runs on the peer's queue under
  // its lock first (links and monitors to remember). Throws etf::etf_error (nothing queued, nothing
  // recorded) when the terms cannot be encoded.
  // Returns false (nothing queued or recorded) while the node stops.
  //
  // `sender` is the local process the packet is from (the null pid for a plain thread or the
  // node itself): its packets stay in order. A message (`is_message`) is also subject to the
  // send-queue limits: past node_config::busy_limit_bytes the sending process is held at its
  // next suspension point until the queue drains, and past send_queue_hard_limit_bytes it is
  // refused: throws queue_overloaded (nothing queued). Signals are never held or refused.
  bool enqueue(pid sender, atom peer, const term& control, const term* payload,
               const std::function<void(outbound&)>& record = {}, bool is_message = false);
  // Encodes `control` (+ payload) and queues it for the node of remote pid `to`. False if that
  // node is unknown or the packet cannot be encoded.
  bool send_control(pid sender, pid to, const term& control, const term* payload,
                    const std::function<void(outbound&)>& record = {});
  void connect_to(atom peer, const std::shared_ptr<outbound>& q);
  // The peers with a connection up, sorted by name.
  std::vector<atom> connected() const {
    std::vector<atom> out;
    std::lock_guard lock(mu);
    for (const auto& [peer, q] : peers) {
      std::lock_guard qlock(q->mu);
      if (q->connected) out.push_back(peer);
    }
    std::sort(out.begin(), out.end(), [](atom a, atom b) { return a.name() < b.name(); });
    return out;
  }
  // The queue of `peer` in the table, made (fresh = true) if there was none.
  std::shared_ptr<outbound> queue_of(atom peer, bool& fresh);
  // The queue of `peer`, starting a connection if there is none; null while the node stops.
  std::shared_ptr<outbound> ensure_connection(atom peer);

  // remote_nodes
  bool send(pid from, pid to, term msg) noexcept override;
  bool send_named(pid from, atom name, atom node, term msg) noexcept override;
  bool send_alias(pid from, ref alias, term msg) noexcept override;
  void link(pid from, pid to) noexcept override;
  void unlink(pid from, pid to) noexcept override;
  void exit(pid from, pid to, term reason, bool via_link) noexcept override;
  void monitor(pid watcher, pid target, ref monitor) noexcept override;
  void demonitor(pid watcher, pid target, ref monitor) noexcept override;
  void monitor_name(pid watcher, atom name, atom node, ref monitor) noexcept override;
  void demonitor_name(pid watcher, atom name, atom node, ref monitor) noexcept override;

  std::atomic<std::uint64_t> next_unlink_id{1};

  // ---- node monitors (watch_mu) ----
  std::mutex watch_mu;
  std::multimap<atom, pid> node_watchers;  // monitor_node(Peer, true), one entry per call
  std::vector<pid> all_watchers;           // monitor_nodes(true)

  // A connection to `peer` is up: nodeup to monitor_nodes subscribers, true to connect_node callers.
  void connection_up(atom peer, outbound& q);
  // The connection to `peer` ended (was_up) or could not be made: nodedown to its monitor_node
  // watchers (and to subscribers if it had been up), false to connect_node callers.
  void connection_down(atom peer, outbound& q, bool was_up);
};

// The running node (start() to stop()), or null.
std::shared_ptr<node_state> current();

}  // namespace detail
}  // namespace athanor::dist
