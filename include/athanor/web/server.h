// The HTTP/1.1 + WebSocket server: listen() starts a pool of acceptor processes and every accepted
// connection becomes its own Athanor process (a crash loses one connection, never the server).
//
//   athanor::runtime rt;
//   athanor::web::router r;
//   r.get("/hello/:name", [](athanor::web::conn& c) { return c.text(200, "Hello, " + c.param("name")); });
//   auto srv = athanor::web::listen({.port = 4000, .acceptors = 2}, r);
//   ...
//   srv.stop(5s);   // stop accepting, let in-flight requests finish, then close the rest
//
// `server` is a handle; its member functions are thread-safe. See src/web/server.cpp for the design.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "athanor/web/router.h"

namespace athanor::web {

// TLS settings: PEM files for the certificate chain and the private key. A plain value type.
// A TLS server sets SIGPIPE to be ignored (unless the program has its own handler), because
// OpenSSL's writes to a socket whose peer has gone would otherwise end the program.
struct tls_config {
  std::string cert_file;
  std::string key_file;
};

// Server settings; the defaults suit a public-facing server. A plain value type.
struct server_config {
  std::uint16_t port = 4000;                 // 0: any free port (see server::port())
  unsigned acceptors = 2;                    // acceptor processes
  std::string host = "0.0.0.0";              // IPv4 address to bind
  // Off: one listening socket, shared by the acceptors, and a port already in use is an error
  // (EADDRINUSE from listen(), as nginx and Ranch do). On: one SO_REUSEPORT socket per acceptor
  // (the kernel spreads connections over them), and other servers may share the port too.
  bool reuse_port = false;
  int backlog = 1024;
  std::size_t max_connections = 16384;       // beyond: answered "503" and closed at once
  parse_limits limits{};                     // request line (414), header bytes and count (431)
  std::uint64_t max_body = 8 << 20;          // request body (413)
  std::chrono::milliseconds request_timeout{10000};  // from a request's first byte to its last (408)
  std::chrono::milliseconds idle_timeout{60000};     // keep-alive connection with no request: closed
  std::chrono::milliseconds write_timeout{30000};    // a response the peer does not read: connection closed
  std::optional<tls_config> tls;             // off by default: plain HTTP
  bool log_errors = true;                    // handler exceptions and refusals to stderr
};

namespace detail {
struct server_state;
}

// A running server. Movable handle; thread-safe. The runtime must outlive it.
class [[nodiscard]] server {
 public:
  server() = default;
  explicit server(std::shared_ptr<detail::server_state> s) noexcept : s_(std::move(s)) {}
  server(server&&) noexcept = default;
  server& operator=(server&&) noexcept;
  ~server();  // stop(0ms) if still running

  // The bound port.
  std::uint16_t port() const noexcept;
  // Connections open now (HTTP and WebSocket).
  std::size_t connections() const noexcept;
  // Connections refused so far (connection limit or out of file descriptors).
  std::size_t refused() const noexcept;
  // Graceful stop: closes the listeners, asks every connection to finish (idle keep-alive
  // connections close now, requests in flight complete with "Connection: close", WebSockets get
  // 1001), waits up to `drain` for them, then kills the rest. Returns how many had to be killed.
  // Blocks the caller: call it from a thread that is not a scheduler (e.g. main). Idempotent.
  std::size_t stop(std::chrono::milliseconds drain = std::chrono::milliseconds(5000));
  // WebSocket connections cut so far (closed with 1008) because the client read too slowly: its
  // outbox overflowed (ws_options::max_outbox) or a send stayed blocked past send_timeout. Each
  // cut connection counts once. 0 for an empty handle.
  std::size_t slow_clients_cut() const noexcept;

 private:
  std::shared_ptr<detail::server_state> s_;
};

// Binds, listens and starts the acceptors. Throws std::system_error if the address cannot be
// bound, std::runtime_error if the TLS files cannot be loaded. Call after the runtime is created.
server listen(server_config config, router r);

}  // namespace athanor::web
