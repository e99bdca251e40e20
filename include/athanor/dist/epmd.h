// Talking to EPMD from Athanor processes: look a node up (epmd_port_please), list the registered
// nodes (epmd_names), register a node (epmd_register), and keep a node registered for its whole
// life, embedding an EPMD server when the host has none (ensure_epmd).
//
//   // in a process, at node start, after listening on the distribution port:
//   epmd_keeper k = co_await ensure_epmd({.name = "cpp", .port = dist_port});
//   std::uint32_t creation = k.creation();            // goes into the handshake and every pid
//   auto where = co_await epmd_port_please("b", {.host = "127.0.0.1"});   // nullopt: not registered
//
// Every function here is a coroutine to be awaited in an Athanor process: waiting for EPMD
// suspends the process, never a scheduler thread (a host name that is not a numeric IPv4 address
// is resolved on a dirty I/O thread). Each exchange has a deadline (`timeout`).
//
// Errors: std::system_error for the network (ECONNREFUSED when no EPMD listens, ETIMEDOUT when the
// deadline passes, EHOSTUNREACH...), epmd_error when the EPMD's reply is malformed or missing (it
// closed the connection without one), epmd_registration_refused when it refuses a registration.
// Not-registered is an answer (nullopt), not an error.
//
// Thread-safety: the functions may be called from any number of processes at once; an
// epmd_registration or epmd_keeper belongs to one process at a time, like a tcp_socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "athanor/dist/epmd_server.h"
#include "athanor/dist/epmd_wire.h"
#include "athanor/runtime/io.h"
#include "athanor/runtime/proc.h"
#include "athanor/term/pid.h"

namespace athanor::dist {

// How long one exchange with EPMD (connect, request, reply) may take by default.
inline constexpr std::chrono::milliseconds epmd_default_timeout{5000};

// Where an EPMD listens. A plain value type.
struct epmd_address {
  std::string host = "127.0.0.1";            // numeric IPv4 address, "localhost" or a host name
  std::uint16_t port = default_epmd_port();  // ERL_EPMD_PORT or 4369 (epmd_server.h)
};

// The EPMD refused a registration (ALIVE2 result not 0): the name is taken (epmd's result 1), or
// the server is full. A value type; result() is the code EPMD sent.
class epmd_registration_refused : public epmd_error {
 public:
  epmd_registration_refused(std::string name, std::uint8_t result);
  std::uint8_t result() const noexcept { return result_; }
  const std::string& name() const noexcept { return name_; }

 private:
  std::string name_;
  std::uint8_t result_;
};

// Where the node called `name` (its alive part: "b" for b@host) listens, as EPMD at `at` knows it;
// nullopt when no such node is registered. Throws as the file comment says, and epmd_error for
// a name that is not valid (is_valid_epmd_name).
task<std::optional<epmd_node>> epmd_port_please(std::string name, epmd_address at = {},
                                                std::chrono::milliseconds timeout = epmd_default_timeout);

// The nodes registered with EPMD at `at`, and the port it says it listens on.
task<names_response> epmd_names(epmd_address at = {}, std::chrono::milliseconds timeout = epmd_default_timeout);

// A node's registration with EPMD: the open connection its ALIVE2_REQ went on. EPMD keeps the
// node registered exactly as long as this connection is open; nothing more is sent on it by
// either side. Movable, not copyable; one process uses it at a time. Destroying or closing it
// unregisters the node.
class epmd_registration {
 public:
  epmd_registration() = default;
  epmd_registration(tcp_socket socket, std::uint32_t creation, bool extended) noexcept;
  epmd_registration(epmd_registration&&) noexcept = default;
  epmd_registration& operator=(epmd_registration&&) noexcept = default;

  // The creation EPMD assigned (the ALIVE2 reply's): 32 bits after a 118 reply, 1..3 after 121.
  std::uint32_t creation() const noexcept { return creation_; }
  // True if the reply was ALIVE2_X_RESP (118), false for ALIVE2_RESP (121).
  bool extended() const noexcept { return extended_; }
  bool is_open() const noexcept { return socket_.is_open(); }

  // Without suspending: true if the registration has ended, because EPMD closed or reset the
  // connection or sent a byte (which the protocol never does; the connection is then closed so
  // that EPMD drops the registration too). False while it stands. True once closed.
  bool lost() noexcept;
  // Suspends until the registration ends (returns true) or `timeout` passes (false; negative:
  // never). Call from the owning process.
  task<bool> wait_lost(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));
  // The connection's descriptor, to wait on it together with other events (io_wait,
  // io_wait_or_message); when it is readable, lost() says whether the registration ended.
  int native_handle() const noexcept { return socket_.native_handle(); }
  // Closes the connection: EPMD unregisters the node.
  void close() noexcept { socket_.close(); }

 private:
  tcp_socket socket_;
  std::uint32_t creation_ = 0;
  bool extended_ = true;
};

// Registers `node` with EPMD at `at` (ALIVE2_REQ) and returns the registration, which must be kept
// open for as long as the node should stay registered. Throws epmd_registration_refused when EPMD
// refuses (a taken name), epmd_error for an invalid node (name, Extra) or a malformed reply,
// std::system_error as the file comment says.
task<epmd_registration> epmd_register(epmd_node node, epmd_address at = {},
                                      std::chrono::milliseconds timeout = epmd_default_timeout);

// ---- keeping a node registered ----

// Sent by an epmd_keeper to its `notify` process when the node's registration ends (the EPMD it
// was registered with closed the connection: it died or was stopped). The keeper is already
// trying to register again.
struct epmd_registration_lost {
  pid keeper;
  std::string reason;
};
// Sent by an epmd_keeper to its `notify` process each time it has registered the node again
// after a loss. `creation` is the new registration's; a node should keep using the creation it
// started with (its pids carry it and no peer checks it against EPMD), so this is for logs and
// tests. `serving` is true when this keeper now runs the embedded EPMD server itself.
struct epmd_reregistered {
  pid keeper;
  std::uint32_t creation = 0;
  bool serving = false;
};

// How ensure_epmd registers and re-registers. A plain value type.
struct epmd_options {
  epmd_address epmd{};                   // the EPMD to register with
  std::chrono::milliseconds timeout = epmd_default_timeout;  // one exchange; also the whole first registration
  bool embed_server = true;              // no EPMD answering on this host: become one (epmd_server)
  epmd_server_config server{};           // the embedded server's settings (its port is epmd.port)
  std::chrono::milliseconds max_retry_interval{3000};  // after a loss, the longest pause between attempts
  // Gets epmd_registration_lost and epmd_reregistered (one pair per loss of the EPMD: rare); null:
  // the process that calls ensure_epmd. A process that never receives them should name another.
  pid notify{};
};

// Keeps a node registered with EPMD for as long as it lives: a handle on the keeper process that
// holds the registration (see ensure_epmd). Movable, not copyable; destroying it (or stop())
// ends the keeper, which unregisters the node and stops the embedded EPMD server if it runs one.
class [[nodiscard]] epmd_keeper {
 public:
  epmd_keeper() = default;
  epmd_keeper(pid keeper, std::uint32_t creation, bool serving) noexcept
      : keeper_(keeper), creation_(creation), serving_(serving) {}
  epmd_keeper(epmd_keeper&& o) noexcept;
  epmd_keeper& operator=(epmd_keeper&& o) noexcept;
  ~epmd_keeper();

  // The creation of the first registration: the node's creation.
  std::uint32_t creation() const noexcept { return creation_; }
  // True if, at the first registration, this keeper was running the embedded EPMD server.
  bool started_server() const noexcept { return serving_; }
  // The keeper process (null for an empty handle).
  pid keeper() const noexcept { return keeper_; }
  // Ends the keeper now (an exit signal `kill`): the node is unregistered and an embedded server
  // it runs stops. Idempotent; thread-safe.
  void stop() noexcept;

 private:
  pid keeper_{};
  std::uint32_t creation_ = 0;
  bool serving_ = false;
};

// Registers `node` with the host's EPMD and keeps it registered, for a node's startup. Spawns a
// keeper process (it monitors the caller and ends with it) that:
//  1. connects to options.epmd; when that is refused (ECONNREFUSED: no EPMD runs) and the EPMD's
//     host is this one (loopback, or one of options.server.addresses) and options.embed_server,
//     starts an embedded epmd_server on that port and registers with it, so that real erl nodes
//     can use it too; if another process won the port meanwhile (EADDRINUSE), registers there;
//  2. holds the registration open and watches it;
//  3. when it is lost (the EPMD holding the port died), tells `notify` (epmd_registration_lost),
//     tries again from step 1 (becoming the server itself if the port is free) after pauses that
//     grow to options.max_retry_interval, and tells `notify` when it has re-registered
//     (epmd_reregistered).
// Returns once the first registration is done. Throws epmd_registration_refused if the name is
// taken, std::system_error if no EPMD could be reached or started within options.timeout (the
// last error), epmd_error for an invalid node or a malformed reply. Call from a process.
task<epmd_keeper> ensure_epmd(epmd_node node, epmd_options options = {});

}  // namespace athanor::dist
