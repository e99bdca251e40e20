// The embedded EPMD server.
//
// Design
// ------
// Processes. start() binds one listening socket per address (all on one port) and spawns one
// acceptor process per socket. An acceptor accepts in a loop and spawns a linked process per
// connection. A connection process reads one request (Len:u16, then Len bytes), answers it and
// closes, except for ALIVE2: that process then holds the connection for as long as the registrant
// keeps it open, and its registration lasts exactly that long. A connection process never
// crashes (any error, malformed input included, ends it normally and closes its socket only), so
// its link to the acceptor matters only the other way: stop() kills the acceptors, and the kill
// propagates to every connection, which closes the registrations; their owners see end of stream
// (ensure_epmd's keepers then race to become the next server). An acceptor that notices the stop
// first (its socket shut down) ends with reason `shutdown`, never `normal`, which its links would
// ignore: the connections must go whichever way the acceptor ends.
//
// State. The table of registrations (name → node, creation, owner token) and the creation counter
// live in one mutex-guarded state shared by the processes; every critical section is a few map
// operations and never spans a suspension. A registration is removed by an RAII guard in its
// connection process's frame, so it goes when the process ends for any reason (end of stream,
// a stray byte, a kill); the token makes sure a guard removes its own entry and nothing else.
// The listening sockets live in the state too, so that stop() can shut them down from any thread
// (the port is refused, and can be bound again, at once) while their descriptors stay valid
// until the last process lets go of the state.
//
// Protocol choices (epmd's, checked against the real daemon of OTP 25):
// - ALIVE2_X_RESP (118, u32 creation) when the registrant's highest version is 6 or more, else
//   ALIVE2_RESP (121) with a creation of 1..3, as old nodes expect.
// - Creations count up from a random start and skip 0, so a node that registers again gets a
//   different creation than its previous incarnation, and none is ever 0.
// - A taken name is refused with result 1 and creation 99 (epmd's bytes: 76 01 00 00 00 63) and
//   the connection closed. A full table is refused the same way.
// - ALIVE2 is accepted only from this host (a loopback peer, or one connected to the address it
//   reached us on), as epmd does: anyone who can reach EPMD may ask where nodes are, but only
//   local nodes may claim names.
// - Anything but ALIVE2, PORT_PLEASE2 and NAMES (epmd's DUMP, KILL, STOP included) closes the
//   connection without a reply, as epmd does with garbage. KILL in particular: a daemon that
//   anyone local could stop would let them take over every name.
// - A registrant that sends anything on its registration connection is dropped (epmd does the
//   same: it closes the connection and unregisters).
//
// Bounds. A request's Len above max_request_bytes, or zero, closes the connection unread. A
// request connection must deliver its request and take its reply within request_timeout, so a
// client that connects and goes quiet costs a process for that long at most. At max_connections
// open request connections, new ones are closed as soon as accepted. At max_registrations, ALIVE2
// is refused. Registrations have no timeout (they are meant to last) but are capped in number and
// only local clients can make them.
//
// Rejected: one process owning the table, with requests as messages (Erlang's way). It would
// serialise every lookup through one mailbox and add a round trip per request, where a mutex held
// for a map lookup is cheaper and as safe; and it would need its own shutdown protocol.
#include "athanor/dist/epmd_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>

#include "athanor/runtime/io.h"
#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "dist/epmd_io.h"

namespace athanor::dist {

namespace epmd_detail {

struct registration_entry {
  epmd_node node;
  std::uint32_t creation = 0;
  std::uint64_t token = 0;  // which connection holds it
};

struct server_state {
  epmd_server_config cfg;
  std::uint16_t port = 0;
  std::vector<tcp_listener> listeners;  // shut down by stop(), closed when the state goes
  std::vector<pid> acceptors;           // written by start() before the handle is returned
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> open_requests{0};

  mutable std::mutex mu;
  std::map<std::string, registration_entry, std::less<>> nodes;  // guarded by mu
  std::uint32_t next_creation = 1;                                // guarded by mu
  std::uint64_t next_token = 1;                                   // guarded by mu

  // Adds a registration; returns its token and the creation to send, or nullopt when refused (a
  // taken name, a full table, a stopping server).
  std::optional<std::pair<std::uint64_t, std::uint32_t>> add(const epmd_node& n) {
    std::lock_guard lock(mu);
    if (stopping.load() || nodes.size() >= cfg.max_registrations || nodes.count(n.name)) return std::nullopt;
    std::uint32_t c = next_creation++;
    if (next_creation == 0) next_creation = 1;
    // Old (version 5) registrants get a creation that fits their 2-bit field, 1..3.
    std::uint32_t sent = n.highest_version >= 6 ? c : (c - 1) % 3 + 1;
    std::uint64_t token = next_token++;
    nodes.emplace(n.name, registration_entry{n, sent, token});
    return std::pair{token, sent};
  }

  void remove(const std::string& name, std::uint64_t token) {
    std::lock_guard lock(mu);
    auto it = nodes.find(name);
    if (it != nodes.end() && it->second.token == token) nodes.erase(it);
  }

  std::optional<epmd_node> find(std::string_view name) const {
    std::lock_guard lock(mu);
    auto it = nodes.find(name);
    if (it == nodes.end()) return std::nullopt;
    return it->second.node;
  }

  names_response names() const {
    names_response r;
    r.epmd_port = port;
    std::lock_guard lock(mu);
    r.nodes.reserve(nodes.size());
    for (const auto& [name, e] : nodes) r.nodes.push_back(epmd_name_entry{name, e.node.port});
    return r;
  }
};

}  // namespace epmd_detail

using epmd_detail::server_state;

namespace {

void debug(std::string text) { logger::log("dist", log_level::debug, "EPMD server: " + std::move(text)); }

// Counts a request connection while it is one (see server_state::open_requests).
struct request_slot {
  server_state* st;
  bool held = true;
  explicit request_slot(server_state* s) noexcept : st(s) {}
  request_slot(const request_slot&) = delete;
  request_slot& operator=(const request_slot&) = delete;
  void release() noexcept {
    if (held) st->open_requests.fetch_sub(1);
    held = false;
  }
  ~request_slot() { release(); }
};

// Removes a registration when its connection process ends, however it ends.
class registration_guard {
 public:
  registration_guard(server_state* st, std::string name, std::uint64_t token) : st_(st), name_(std::move(name)), token_(token) {}
  registration_guard(const registration_guard&) = delete;
  registration_guard& operator=(const registration_guard&) = delete;
  ~registration_guard() { st_->remove(name_, token_); }

 private:
  server_state* st_;
  std::string name_;
  std::uint64_t token_;
};

// epmd's rule for ALIVE2: the peer is on this host (127/8, or the very address it connected to).
bool is_local_peer(int fd) {
  sockaddr_in peer{}, local{};
  socklen_t plen = sizeof peer, llen = sizeof local;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0 || peer.sin_family != AF_INET) return false;
  if ((ntohl(peer.sin_addr.s_addr) >> 24) == 127) return true;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0) return false;
  return peer.sin_addr.s_addr == local.sin_addr.s_addr;
}

// Registers the node, answers, then holds the connection until the registrant closes it.
task<void> serve_alive2(server_state& st, tcp_socket& s, request_slot& slot, epmd_node node,
                        epmd_detail::clock::time_point deadline) {
  if (!is_local_peer(s.native_handle())) {
    debug("ALIVE2 for \"" + node.name + "\" from another host refused");
    co_return;
  }
  auto added = st.add(node);
  alive2_response reply{.extended = node.highest_version >= 6, .result = 0, .creation = 0};
  std::optional<registration_guard> guard;
  if (added) {
    guard.emplace(&st, node.name, added->first);
    reply.creation = added->second;
    slot.release();  // a registration now, not a request connection
  } else {
    reply.result = 1;
    reply.creation = 99;  // epmd's filler in a refusal
    debug("ALIVE2 for \"" + node.name + "\" refused (name taken or table full)");
  }
  co_await epmd_detail::write_all_before(s, encode_epmd_response(reply), deadline);
  if (!added) co_return;
  for (;;) {
    std::byte b{};
    io_result r = s.try_read(std::span(&b, 1));  // throws on socket errors: the caller ends us
    if (!r.would_block) co_return;               // end of stream, or a byte the protocol forbids
    (void)co_await io_wait(s.native_handle(), io_readable, std::chrono::milliseconds(-1));
  }
}

task<void> serve_request(server_state& st, tcp_socket& s, request_slot& slot) {
  auto deadline = epmd_detail::deadline_after(st.cfg.request_timeout);
  std::array<std::byte, 2> prefix{};
  if (!co_await epmd_detail::read_exactly_before(s, prefix, deadline)) co_return;
  std::size_t len = (std::size_t(std::uint8_t(prefix[0])) << 8) | std::uint8_t(prefix[1]);
  if (len == 0 || len > st.cfg.max_request_bytes) {
    debug("request of " + std::to_string(len) + " bytes refused");
    co_return;
  }
  std::string body(len, '\0');
  if (!co_await epmd_detail::read_exactly_before(s, std::as_writable_bytes(std::span(body)), deadline)) co_return;
  epmd_request req = parse_epmd_request_body(body);  // epmd_error: the caller closes
  if (auto* a = std::get_if<alive2_request>(&req)) {
    co_await serve_alive2(st, s, slot, std::move(a->node), deadline);
    co_return;
  }
  std::string reply;
  if (auto* p = std::get_if<port_please2_request>(&req)) reply = encode_epmd_response(port2_response{st.find(p->name)});
  else reply = encode_epmd_response(st.names());
  co_await epmd_detail::write_all_before(s, std::move(reply), deadline);
  // Returning closes the connection: the client reads the reply up to end of stream.
}

proc connection_main(std::shared_ptr<server_state> st, tcp_socket s) {
  request_slot slot{st.get()};
  try {
    co_await serve_request(*st, s, slot);
  } catch (const std::exception& e) {
    debug(std::string("connection closed: ") + e.what());
  }
}

// An acceptor ends only by stopping, and then with reason `shutdown`, never `normal`: its links
// to the connection processes must take them down with it (a `normal` exit signal would not).
[[noreturn]] void acceptor_stops() { athanor::exit(term(atoms::shutdown)); }

proc acceptor_main(process& self, std::shared_ptr<server_state> st, std::size_t index) {
  tcp_listener& listener = st->listeners[index];
  bool warned = false;
  for (;;) {
    if (st->stopping.load()) acceptor_stops();
    int err = 0;
    tcp_socket c = listener.try_accept(err);
    if (!c.is_open()) {
      if (err == 0) {
        (void)co_await io_wait(listener.native_handle(), io_readable, std::chrono::milliseconds(-1));
        continue;
      }
      if (st->stopping.load() || err == EINVAL) acceptor_stops();  // shut down
      if (!warned) {
        logger::log("dist", log_level::warning,
                    "EPMD server: accept failed (" + std::system_category().message(err) + "); retrying");
        warned = true;
      }
      co_await self.sleep(std::chrono::milliseconds(100));  // out of descriptors: let some close
      continue;
    }
    warned = false;
    if (st->stopping.load()) acceptor_stops();
    if (st->open_requests.load() >= st->cfg.max_connections) {
      debug("connection refused: " + std::to_string(st->cfg.max_connections) + " request connections open");
      continue;  // `c` closes here
    }
    st->open_requests.fetch_add(1);
    try {
      spawn_link([st, c = std::move(c)](process&) mutable -> proc { return connection_main(st, std::move(c)); });
    } catch (const std::exception& e) {
      st->open_requests.fetch_sub(1);
      debug(std::string("cannot start a connection process: ") + e.what());
    }
    co_await self.consume(1);  // a flood of connections must not starve the connections themselves
  }
}

}  // namespace

std::uint16_t default_epmd_port() {
  const char* v = std::getenv("ERL_EPMD_PORT");
  if (v == nullptr || *v == '\0') return epmd_well_known_port;
  std::string_view text(v);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  if (ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535)
    throw epmd_error("ERL_EPMD_PORT is \"" + std::string(text) + "\", not a port number (1 to 65535)");
  return std::uint16_t(port);
}

std::vector<std::string> default_epmd_addresses() {
  std::vector<std::string> out;
  const char* v = std::getenv("ERL_EPMD_ADDRESS");
  std::string_view text = v ? v : "";
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = text.find_first_of(", \t", i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(i, end - i);
    i = end + 1;
    if (item.empty() || item.find(':') != std::string_view::npos) continue;  // IPv6: not served
    if (std::find(out.begin(), out.end(), item) == out.end()) out.emplace_back(item);
  }
  if (std::find(out.begin(), out.end(), "0.0.0.0") != out.end()) return {"0.0.0.0"};
  if (std::find(out.begin(), out.end(), "127.0.0.1") == out.end()) out.emplace_back("127.0.0.1");
  return out;
}

epmd_server epmd_server::start(epmd_server_config config) {
  if (config.addresses.empty()) throw std::invalid_argument("epmd_server: no address to listen on");
  if (config.max_registrations == 0 || config.max_connections == 0 || config.max_request_bytes == 0)
    throw std::invalid_argument("epmd_server: limits must be positive");
  auto st = std::make_shared<server_state>();
  st->cfg = std::move(config);
  std::uint16_t port = st->cfg.port;
  for (const std::string& a : st->cfg.addresses) {
    st->listeners.push_back(tcp_listener::listen(a, port));
    port = st->listeners.back().port();  // port 0: the others take the first one's
  }
  st->port = port;
  std::random_device rd;
  std::uint32_t start = std::uint32_t(rd());
  st->next_creation = start == 0 ? 1 : start;
  for (std::size_t i = 0; i < st->listeners.size(); ++i)
    st->acceptors.push_back(spawn([st, i](process& self) -> proc { return acceptor_main(self, st, i); }));
  epmd_server srv;
  srv.s_ = std::move(st);
  return srv;
}

epmd_server& epmd_server::operator=(epmd_server&& other) noexcept {
  if (this != &other) {
    stop();
    s_ = std::move(other.s_);
  }
  return *this;
}

epmd_server::~epmd_server() { stop(); }

std::uint16_t epmd_server::port() const noexcept { return s_ ? s_->port : 0; }

bool epmd_server::running() const noexcept { return s_ && !s_->stopping.load(); }

std::vector<epmd_registered_node> epmd_server::registered() const {
  std::vector<epmd_registered_node> out;
  if (!s_) return out;
  std::lock_guard lock(s_->mu);
  for (const auto& [name, e] : s_->nodes) out.push_back(epmd_registered_node{e.node, e.creation});
  return out;
}

void epmd_server::stop() noexcept {
  if (!s_ || s_->stopping.exchange(true)) return;
  for (tcp_listener& l : s_->listeners) ::shutdown(l.native_handle(), SHUT_RDWR);
  for (pid a : s_->acceptors) {
    try {
      athanor::exit(a, atoms::kill);
    } catch (...) {
      // No runtime any more: its processes are gone already.
    }
  }
}

}  // namespace athanor::dist
