// The EPMD layer: the client functions and the keeper that holds a node's registration.
//
// Design
// ------
// Three pieces, each usable alone. epmd_wire.cpp is the byte format (pure functions, fuzzed).
// This file is the client: one TCP connection per request, as EPMD wants (PORT_PLEASE2 and NAMES
// replies end where EPMD closes), every step bounded by one deadline per exchange (epmd_io.cpp).
// epmd_server.cpp is an EPMD stand-in made of Athanor processes.
//
// Registration. ALIVE2 makes the connection it came on the registration: EPMD forgets the node
// when that connection closes, and nothing else is ever sent on it. epmd_registration is that
// socket plus the creation; watching it means waiting for it to become readable, and any
// readiness (end of stream, reset, or a byte, which the protocol never sends) ends it.
//
// The keeper (ensure_epmd). A node must stay registered for its whole life, and the host may have
// no EPMD at all. So a node's registration is held by a process of its own, the keeper, whose
// loop is: connect to the EPMD port; if nobody listens (ECONNREFUSED) and the EPMD host is this
// one, become the EPMD (start an epmd_server on that port) and register with it over loopback like
// anyone else; hold the registration; when it drops, the EPMD holding the port died, so start
// over, with pauses that grow to max_retry_interval. Whoever holds the port is the server and
// everyone else is a client: this is ergo's model (an Erlang-compatible Go runtime). Two keepers
// that lose their EPMD at once race for the port; the loser's bind fails with EADDRINUSE and it
// simply registers with the winner. The keeper owns the embedded server (a value in its frame), so
// the server lives exactly as long as the node that started it, and killing the keeper (or its
// owner ending: the keeper monitors it) closes the registration and stops the server by RAII.
//
// Rejected:
// - Exec'ing `epmd -daemon` when none runs (what erl does). It needs epmd on PATH, leaves a
//   daemon behind that outlives the program, and is a second moving part in tests; the embedded
//   server serves real erl nodes just as well (tests/dist/epmd_erl_test.cpp).
// - Registering with our own server in memory rather than over loopback. It would save one socket
//   but give the keeper two code paths, and the loopback path is the one real nodes use.
// - Linking the keeper to its owner. A link is two-way: stopping the keeper with `kill` would
//   kill the owner too. The keeper monitors the owner instead and ends when it does.
// - Re-registering under the node's original creation. EPMD has no field for it; the new
//   creation is reported (epmd_reregistered) and the node keeps the one it started with, which is
//   what its pids carry (peers learn it from the handshake, never from EPMD).
//
// Invariants:
// - The keeper sends its owner exactly one of keeper_ready / keeper_failed for the first
//   registration; ensure_epmd also monitors the keeper, so it never waits for a dead one.
// - At most one embedded server per keeper, and it runs only while the keeper holds a
//   registration with it or is registering with it.
// - No wait on a socket is unbounded except the wait on an established registration, which ends
//   with the registration or the owner.
#include "athanor/dist/epmd.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <exception>
#include <system_error>
#include <variant>

#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "dist/epmd_io.h"

namespace athanor::dist {

using namespace epmd_detail;

namespace {

// Bounds on replies: a PORT2 reply carries at most two u16-length fields; a NAMES reply one line
// per registered node.
constexpr std::size_t kMaxPort2Reply = 12 + 65535 + 2 + 65535;
constexpr std::size_t kMaxNamesReply = 16u << 20;

std::string where(const epmd_address& at) { return at.host + ":" + std::to_string(at.port); }

// Messages from a keeper to the process that awaits ensure_epmd.
struct keeper_ready {
  pid keeper;
  std::uint32_t creation;
  bool serving;
};
struct keeper_failed {
  pid keeper;
  std::exception_ptr error;
};

}  // namespace

epmd_registration_refused::epmd_registration_refused(std::string name, std::uint8_t result)
    : epmd_error("EPMD refused to register \"" + name + "\" (result " + std::to_string(result) +
                 (result == 1 ? ": the name is taken, or the EPMD is full)" : ")")),
      name_(std::move(name)),
      result_(result) {}

// ---- client ----

task<std::optional<epmd_node>> epmd_port_please(std::string name, epmd_address at, std::chrono::milliseconds timeout) {
  std::string request = encode_epmd_request(port_please2_request{name});
  clock::time_point deadline = deadline_after(timeout);
  tcp_socket s = co_await connect_before(at.host, at.port, deadline);
  co_await write_all_before(s, std::move(request), deadline);
  std::string reply = co_await read_to_end_before(s, kMaxPort2Reply, deadline);
  if (reply.empty()) throw epmd_error("EPMD at " + where(at) + " closed the connection without answering PORT_PLEASE2");
  port2_response r;
  try {
    r = parse_port2_response(reply);
  } catch (const epmd_error& e) {
    throw epmd_error("EPMD at " + where(at) + ": " + e.what());
  }
  co_return std::move(r.node);
}

task<names_response> epmd_names(epmd_address at, std::chrono::milliseconds timeout) {
  clock::time_point deadline = deadline_after(timeout);
  tcp_socket s = co_await connect_before(at.host, at.port, deadline);
  co_await write_all_before(s, encode_epmd_request(names_request{}), deadline);
  std::string reply = co_await read_to_end_before(s, kMaxNamesReply, deadline);
  if (reply.empty()) throw epmd_error("EPMD at " + where(at) + " closed the connection without answering NAMES");
  try {
    co_return parse_names_response(reply);
  } catch (const epmd_error& e) {
    throw epmd_error("EPMD at " + where(at) + ": " + e.what());
  }
}

task<epmd_registration> epmd_register(epmd_node node, epmd_address at, std::chrono::milliseconds timeout) {
  std::string request = encode_epmd_request(alive2_request{node});
  clock::time_point deadline = deadline_after(timeout);
  tcp_socket s = co_await connect_before(at.host, at.port, deadline);
  co_await write_all_before(s, std::move(request), deadline);
  std::array<std::byte, 6> reply{};
  if (!co_await read_exactly_before(s, std::span(reply).first(1), deadline))
    throw epmd_error("EPMD at " + where(at) + " closed the connection without answering ALIVE2 for \"" + node.name + "\"");
  alive2_response r;
  try {
    std::size_t size = alive2_response_size(std::uint8_t(reply[0]));
    if (!co_await read_exactly_before(s, std::span(reply).subspan(1, size - 1), deadline))
      throw epmd_error("ALIVE2 reply: truncated (connection closed)");
    r = parse_alive2_response(std::string_view(reinterpret_cast<const char*>(reply.data()), size));
  } catch (const epmd_error& e) {
    throw epmd_error("EPMD at " + where(at) + ": " + e.what());
  }
  if (r.result != 0) throw epmd_registration_refused(node.name, r.result);
  co_return epmd_registration(std::move(s), r.creation, r.extended);
}

epmd_registration::epmd_registration(tcp_socket socket, std::uint32_t creation, bool extended) noexcept
    : socket_(std::move(socket)), creation_(creation), extended_(extended) {}

bool epmd_registration::lost() noexcept {
  if (!socket_.is_open()) return true;
  std::byte b{};
  try {
    if (socket_.try_read(std::span(&b, 1)).would_block) return false;
  } catch (const std::system_error&) {
    // A socket error ends the registration like end of stream.
  }
  socket_.close();
  return true;
}

task<bool> epmd_registration::wait_lost(std::chrono::milliseconds timeout) {
  clock::time_point deadline = deadline_after(timeout);
  for (;;) {
    if (lost()) co_return true;
    std::chrono::milliseconds left(-1);
    if (deadline != clock::time_point::max()) {
      auto now = clock::now();
      if (now >= deadline) co_return false;
      left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    }
    if (co_await io_wait(socket_.native_handle(), io_readable, left) == io_wait_result::timeout) co_return lost();
  }
}

// ---- keeper ----

namespace {

// True if the keeper may become the EPMD for options.epmd: the embedded server can only serve on
// this host.
bool can_serve(const epmd_options& o) {
  if (!o.embed_server) return false;
  if (is_loopback(o.epmd.host)) return true;
  return std::find(o.server.addresses.begin(), o.server.addresses.end(), o.epmd.host) != o.server.addresses.end();
}

// The embedded server's settings: on the EPMD port, and reachable at the address the keeper
// registers through.
epmd_server_config server_config(const epmd_options& o) {
  epmd_server_config c = o.server;
  c.port = o.epmd.port;
  auto has = [&](const std::string& a) { return std::find(c.addresses.begin(), c.addresses.end(), a) != c.addresses.end(); };
  std::string local = o.epmd.host == "localhost" ? "127.0.0.1" : o.epmd.host;
  if (is_loopback(local) && !has(local) && !has("0.0.0.0")) c.addresses.push_back(local);
  return c;
}

bool is_errno(const std::exception_ptr& e, std::errc code) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& s) {
    return s.code() == code;
  } catch (...) {
    return false;
  }
}

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

// One attempt at registering: with whatever EPMD holds the port, or, when none does and the
// keeper may serve, with an embedded server it starts (kept in `server`). Throws what
// epmd_register throws, or the bind error when the port could not be taken.
task<epmd_registration> register_once(epmd_node node, epmd_options o, std::optional<epmd_server>& server,
                                      clock::time_point deadline) {
  std::chrono::milliseconds budget = std::max(std::chrono::milliseconds(1),
                                              std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()));
  std::exception_ptr failure;
  try {
    co_return co_await epmd_register(node, o.epmd, budget);
  } catch (...) {
    failure = std::current_exception();
  }
  if (server || !can_serve(o) || !is_errno(failure, std::errc::connection_refused)) std::rethrow_exception(failure);
  // Nobody listens on the EPMD port: take it. EADDRINUSE means another process just did; the
  // caller's next attempt registers with it.
  server.emplace(epmd_server::start(server_config(o)));
  try {
    co_return co_await epmd_register(node, o.epmd, budget);
  } catch (...) {
    failure = std::current_exception();
  }
  server.reset();  // it serves nobody: give the port back
  std::rethrow_exception(failure);
}

// Errors worth another attempt while the first registration's deadline lasts: the port changing
// hands (a reset, a close without reply, EADDRINUSE from a lost race). A refused name, or no EPMD
// and no permission to become one, is final.
bool worth_retrying(const std::exception_ptr& e, const epmd_options& o) {
  try {
    std::rethrow_exception(e);
  } catch (const epmd_registration_refused&) {
    return false;
  } catch (const epmd_error&) {
    return true;  // closed without reply, or a reply cut short: the EPMD went away mid-exchange
  } catch (const std::system_error& s) {
    if (s.code() == std::errc::connection_refused) return can_serve(o);
    return s.code() == std::errc::address_in_use || s.code() == std::errc::connection_reset ||
           s.code() == std::errc::broken_pipe;
  } catch (...) {
    return false;
  }
}

// Waits `pause` for the owner's `down`; true if it came (the keeper must end).
task<bool> owner_ended_within(process& me, std::chrono::milliseconds pause) {
  std::optional<down> d = co_await me.receive_for<down>(pause);
  co_return d.has_value();
}

proc keeper_main(process& me, epmd_node node, epmd_options o, pid owner, pid notify) {
  monitor(owner);  // its `down` ends the keeper (the only monitor it holds)
  std::optional<epmd_server> server;
  epmd_registration reg;

  // The first registration, reported to the owner either way.
  {
    clock::time_point deadline = deadline_after(o.timeout);
    std::chrono::milliseconds pause(10);
    std::exception_ptr failure;
    for (;;) {
      failure = nullptr;
      try {
        reg = co_await register_once(node, o, server, deadline);
      } catch (...) {
        failure = std::current_exception();
      }
      if (!failure) break;
      if (!worth_retrying(failure, o) || clock::now() + pause >= deadline) break;
      if (co_await owner_ended_within(me, pause)) co_return;
      pause = std::min(pause * 2, std::chrono::milliseconds(250));
    }
    if (failure) {
      send(owner, keeper_failed{me.self(), failure});
      co_return;
    }
    send(owner, keeper_ready{me.self(), reg.creation(), server.has_value()});
  }

  for (;;) {
    // Hold the registration until it drops or the owner ends.
    for (;;) {
      io_wait_result w = co_await io_wait_or_message<down>(reg.native_handle(), io_readable, std::chrono::milliseconds(-1));
      if (w == io_wait_result::message) co_return;  // the owner ended: RAII unregisters and stops the server
      if (reg.lost()) break;
    }
    std::string reason = server ? "the embedded EPMD server this node runs stopped"
                                : "the EPMD at " + where(o.epmd) + " closed the registration";
    logger::log("dist", log_level::warning, "EPMD registration of \"" + node.name + "\" lost: " + reason + "; registering again");
    send(notify, epmd_registration_lost{me.self(), reason});
    server.reset();

    // Register again, for as long as it takes.
    std::chrono::milliseconds pause(0);
    for (;;) {
      if (pause.count() > 0 && co_await owner_ended_within(me, pause)) co_return;
      std::exception_ptr failure;
      try {
        reg = co_await register_once(node, o, server, deadline_after(o.timeout));
      } catch (...) {
        failure = std::current_exception();
      }
      if (!failure) break;
      logger::log("dist", log_level::debug, "EPMD registration of \"" + node.name + "\" failed: " + describe(failure));
      std::chrono::milliseconds longest = std::max(o.max_retry_interval, std::chrono::milliseconds(1));
      pause = std::clamp(pause * 2, std::min(std::chrono::milliseconds(50), longest), longest);
    }
    logger::log("dist", log_level::notice,
                "EPMD registration of \"" + node.name + "\" restored" + (server ? " (this node now runs the EPMD server)" : ""));
    send(notify, epmd_reregistered{me.self(), reg.creation(), server.has_value()});
  }
}

}  // namespace

epmd_keeper::epmd_keeper(epmd_keeper&& o) noexcept
    : keeper_(std::exchange(o.keeper_, pid{})), creation_(o.creation_), serving_(o.serving_) {}

epmd_keeper& epmd_keeper::operator=(epmd_keeper&& o) noexcept {
  if (this != &o) {
    stop();
    keeper_ = std::exchange(o.keeper_, pid{});
    creation_ = o.creation_;
    serving_ = o.serving_;
  }
  return *this;
}

epmd_keeper::~epmd_keeper() { stop(); }

void epmd_keeper::stop() noexcept {
  if (pid k = std::exchange(keeper_, pid{})) {
    try {
      athanor::exit(k, atoms::kill);
    } catch (...) {
      // The runtime is gone: so is the keeper.
    }
  }
}

task<epmd_keeper> ensure_epmd(epmd_node node, epmd_options options) {
  (void)encode_epmd_request(alive2_request{node});  // an invalid node fails here, in the caller
  process& self = this_process();
  pid owner = self.self();
  pid notify = options.notify ? options.notify : owner;
  pid k = spawn([node, options, owner, notify](process& me) -> proc { return keeper_main(me, node, options, owner, notify); });
  ref watch = monitor(k);
  using outcome = std::variant<keeper_ready, keeper_failed, down>;
  outcome got = co_await self.receive(
      on<keeper_ready>([k](const keeper_ready& r) { return r.keeper == k; }, [](keeper_ready& r) { return outcome(r); }),
      on<keeper_failed>([k](const keeper_failed& f) { return f.keeper == k; }, [](keeper_failed& f) { return outcome(f); }),
      on<down>([watch](const down& d) { return d.monitor == watch; }, [](down& d) { return outcome(d); }));
  demonitor(watch, true);
  if (auto* ready = std::get_if<keeper_ready>(&got)) co_return epmd_keeper(k, ready->creation, ready->serving);
  if (auto* failed = std::get_if<keeper_failed>(&got)) std::rethrow_exception(failed->error);
  throw epmd_error("the EPMD keeper of \"" + node.name + "\" ended before registering: " + std::get<down>(got).reason.to_string());
}

}  // namespace athanor::dist
