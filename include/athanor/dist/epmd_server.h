// An EPMD server embedded in an Athanor program: a stand-in for the `epmd` daemon that real
// Erlang/Elixir nodes and Athanor nodes can register with and query (ALIVE2, PORT_PLEASE2, NAMES).
// It runs as Athanor processes: one acceptor per listening address and one process per
// connection; a registration lasts as long as its connection stays open.
//
//   athanor::runtime rt;
//   auto srv = athanor::dist::epmd_server::start({.port = 4370});
//   // ERL_EPMD_PORT=4370 erl -sname a ... registers here; net_adm:names() lists it
//   srv.stop();
//
// Like epmd it has no authentication, so it binds loopback unless told otherwise (ERL_EPMD_ADDRESS
// or epmd_server_config::addresses), accepts registrations only from this host, and bounds what a
// client can make it hold: request size, idle time of a request connection, open request
// connections and registrations. Bad input closes that connection only.
//
// `epmd_server` is a movable handle; its member functions are thread-safe. The runtime must
// outlive it. See src/dist/epmd_server.cpp for the design.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "athanor/dist/epmd_wire.h"

namespace athanor::dist {

// The EPMD port: ERL_EPMD_PORT when set (as erl and epmd read it), else 4369. Throws epmd_error
// when the variable is set but is not a number from 1 to 65535.
std::uint16_t default_epmd_port();

// The IPv4 addresses an EPMD server binds by default: those in ERL_EPMD_ADDRESS (separated by
// commas or spaces; IPv6 entries are skipped, Athanor's TCP being IPv4 only) plus 127.0.0.1, which
// epmd always adds; just 127.0.0.1 when the variable is unset or empty; just 0.0.0.0 when the list
// has it (it covers loopback already). Never throws for a malformed entry: epmd_server::start
// reports it.
std::vector<std::string> default_epmd_addresses();

// Server settings; the defaults are epmd's behaviour with bounds suited to a loopback daemon.
// A plain value type.
struct epmd_server_config {
  std::vector<std::string> addresses = default_epmd_addresses();  // numeric IPv4 addresses to bind
  std::uint16_t port = default_epmd_port();   // 0: any free port (see epmd_server::port)
  std::size_t max_registrations = 1024;       // beyond: ALIVE2 refused (result 1)
  std::size_t max_connections = 256;          // request connections open at once (registrations not
                                              // counted); beyond: closed as soon as accepted
  std::size_t max_request_bytes = 2100;       // a request's Len (the largest ALIVE2 epmd accepts is 2053)
  std::chrono::milliseconds request_timeout{5000};  // to send a whole request and read the reply
};

// One registered node as the server holds it. A plain value type.
struct epmd_registered_node {
  epmd_node node;
  std::uint32_t creation = 0;  // what the ALIVE2 reply carried
  bool operator==(const epmd_registered_node&) const = default;
};

namespace epmd_detail {
struct server_state;
}

// A running EPMD server. Movable handle, thread-safe; destroying it stops the server.
class [[nodiscard]] epmd_server {
 public:
  epmd_server() = default;
  epmd_server(epmd_server&&) noexcept = default;
  epmd_server& operator=(epmd_server&& other) noexcept;
  ~epmd_server();

  // Binds every configured address on config.port (all on the same port: with port 0, the one
  // the first address got), listens and spawns the acceptors. Callable from any thread once the
  // runtime exists. Throws std::system_error when an address cannot be bound (EADDRINUSE when
  // another EPMD holds the port, EINVAL for an address that is not IPv4) and std::invalid_argument
  // for an empty address list or a zero limit.
  static epmd_server start(epmd_server_config config = {});

  // The port every address listens on (0 for an empty handle).
  std::uint16_t port() const noexcept;
  // True from start() until stop().
  bool running() const noexcept;
  // The nodes registered now, sorted by name (a snapshot).
  std::vector<epmd_registered_node> registered() const;

  // Stops at once: the listening sockets stop accepting (new connections are refused, so the
  // port can be bound again right away) and every process of the server is killed, which closes
  // the registrations' connections (their owners see end of stream soon after). Idempotent;
  // returns without waiting for the processes to end.
  void stop() noexcept;

 private:
  std::shared_ptr<epmd_detail::server_state> s_;
};

}  // namespace athanor::dist
