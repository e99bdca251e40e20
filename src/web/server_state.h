// The state a running server shares between its handle, acceptors and connection processes, and
// the WebSocket connection state. Internal to the web part.
#pragma once

#include <any>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "athanor/term/pid.h"
#include "athanor/web/server.h"
#include "athanor/web/websocket.h"
#include "web/transport.h"

namespace athanor::web::detail {

// Sent to acceptors and connections when the server stops: finish what is in flight, then end.
// Also an outbox's doorbell (websocket.cpp).
struct drain_msg {};

// Outboxes that no WebSocket connection drains: a channel socket's on another transport (LongPoll)
// or in a test (channel_test.h). Pushes are bounded and cut exactly as a connection's are (see
// ws_outbox); the owner process gets a drain_msg when something is queued and takes it with take().
struct detached_outbox {
  // A new outbox whose doorbell rings `owner`. `peer` and `path` name it in the cut's log line.
  static ws_outbox make(std::size_t limit, pid owner, std::string peer, std::string path);
  // The owner, after a doorbell: lets the next push ring again, then takes every queued message
  // (in push order; none if the outbox is sealed or cut).
  static std::vector<ws_message> take(const ws_outbox& box);
  // The owner, after a doorbell it does not want to act on yet: lets the next push ring again.
  static void rearm(const ws_outbox& box) noexcept;
  // True if a push overflowed the bound (the client reads too slowly: the owner ends the session).
  static bool was_cut(const ws_outbox& box) noexcept;
  // Refuses later pushes and frees what is queued (the owner is ending).
  static void seal(const ws_outbox& box) noexcept;
};

// Shared by the handle and every process of one server. Thread-safe (atomics and mu).
struct server_state {
  server_config cfg;
  router routes;
  std::unique_ptr<tls_context> tls;
  std::uint16_t port = 0;

  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> active{0};      // open connections (counted from accept to close)
  std::atomic<std::size_t> refused{0};
  std::atomic<bool> fd_exhausted_logged{false};
  std::atomic<int> spare_fd{-1};           // closed to accept-and-refuse when out of descriptors
  std::atomic<std::size_t> lingering{0};   // refused sockets still lingering (bounded)
  std::atomic<int> spare_lent{0};          // refusals holding the spare's slot (they reopen it)
  std::atomic<std::uint64_t> spare_moves{0};  // odd while the spare's slot may be free (server.cpp)

  std::mutex mu;                           // guards the sets; cv signals "a process ended"
  std::condition_variable cv;
  std::unordered_set<pid> connections;
  std::unordered_set<pid> acceptors;
  // WebSocket connections cut with 1008 for reading too slowly (outbox overflow or send_timeout);
  // shared with the outboxes, which count from the pushing thread and may outlive the server.
  std::shared_ptr<std::atomic<std::size_t>> slow_clients_cut = std::make_shared<std::atomic<std::size_t>>(0);

  ~server_state();
  void add_connection(pid p);
  // A connection process is done (its socket closed): drop it from the set and the count.
  void connection_ended(pid p) noexcept;
  void replace_connection(pid old_pid, pid new_pid);
  void log(const std::string& line) const noexcept;
};

// Counts one open connection for its whole life, whichever process holds it. Not thread-safe.
class conn_guard {
 public:
  conn_guard() = default;
  conn_guard(std::shared_ptr<server_state> s, pid p) noexcept : s_(std::move(s)), p_(p) {}
  conn_guard(conn_guard&& o) noexcept : s_(std::move(o.s_)), p_(o.p_) {}
  conn_guard& operator=(conn_guard&&) = delete;
  ~conn_guard() {
    if (s_) s_->connection_ended(p_);
  }
  // Hands the connection to another process (the WebSocket process after an upgrade).
  void move_to(pid p) {
    if (s_) s_->replace_connection(p_, p);
    p_ = p;
  }
  server_state* server() const noexcept { return s_.get(); }

 private:
  std::shared_ptr<server_state> s_;
  pid p_;
};

// A WebSocket connection's state, owned by its `ws` (so by its process).
struct ws_state {
  transport io;
  std::shared_ptr<const ws_options> opts;
  std::unique_ptr<ws_deflate> deflate;
  ws_decoder decoder;
  std::string in;    // a partial frame carried between reads
  std::string out;   // frames not yet written
  std::size_t out_partial = 0;  // bytes at the front of `out` that end a frame already partly written
  std::vector<ws_decoder::event> events;  // decoded, not yet handled
  std::size_t next_event = 0;
  std::string path, query;
  param_list params;
  std::string subprotocol;  // chosen by ws_options::accept and named in the 101 ("" if none)
  std::any accepted;        // ws_accept::state, for ws::accepted()
  std::uint16_t close_code = ws_close::abnormal;
  bool close_sent = false;
  bool closed = false;
  std::chrono::steady_clock::time_point last_seen{};
  std::chrono::steady_clock::time_point last_ping{};
  athanor::detail::lazy_deadline wake_timer;  // the idle / ping deadline, kept across waits
  conn_guard guard;
  std::shared_ptr<ws_outbox_core> box;  // ws::outbox()'s queue, made on first use (websocket.cpp)

  ws_state(transport t, std::shared_ptr<const ws_options> o, std::unique_ptr<ws_deflate> d, conn_guard g)
      : io(std::move(t)), opts(std::move(o)), deflate(std::move(d)),
        decoder(opts->limits, true, deflate.get()), guard(std::move(g)) {}
  ~ws_state();  // closes the outbox: later pushes are refused, queued ones freed
};

}  // namespace athanor::web::detail
