// Reads one request's body from its connection, on demand. Internal to the web part.
//
// The connection process makes one per request that has a body and lends it to the request's
// conn; the handler pulls the body through it (conn::read_body, conn::read_body_part), and
// afterwards the connection process asks it to drop what the handler left unread. It works on
// the connection's own input buffer, so bytes that arrived with the head, and a pipelined next
// request after the body, stay where the connection loop expects them. Owned by the connection's
// process; not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "athanor/runtime/proc.h"
#include "athanor/web/http.h"
#include "athanor/web/server.h"
#include "web/transport.h"

namespace athanor::web::detail {

class body_reader {
 public:
  using clock = std::chrono::steady_clock;

  // `in` holds what was read after the head (the body's start, maybe more); `out` holds responses
  // not yet written (flushed before the first wait, so a pipelining client is never kept waiting).
  // The body must be complete by `deadline`.
  body_reader(transport& io, std::string& in, std::string& out, const request_head& head, const server_config& cfg,
              clock::time_point deadline);

  // True once the whole body has been read (at once for a request without one).
  bool done() const noexcept { return done_; }

  // The next part of the body, at most `max` bytes and at least one, or nullopt at its end.
  // Throws body_error (400 malformed or cut short, 408 too slow, 413 beyond max_body).
  task<std::optional<std::string>> next(std::size_t max);
  // Appends the rest of the body to `into`. Throws body_error.
  task<void> read_rest(std::string& into);
  // After the handler: reads and drops an unread rest of at most `limit` bytes, so that the
  // connection can serve its next request. Returns false when the connection must close instead
  // (a longer or broken rest, or a client still waiting for "100 Continue", which will not come).
  task<bool> discard_rest(std::uint64_t limit);

  // True if the server's drain message arrived during a read (the connection should close after
  // this request).
  bool drain_requested() const noexcept { return drain_requested_; }
  // True if the peer closed or reset the connection in the middle of the body.
  bool peer_gone() const noexcept { return peer_gone_; }

 private:
  // Reads more bytes into in_, after sending "100 Continue" if it is due. Throws body_error.
  task<void> fill();
  // Takes body bytes (at most max) from the front of in_ into `part`. Returns the count.
  std::size_t take(std::size_t max, std::string& part);

  transport& io_;
  std::string& in_;
  std::string& out_;
  const server_config& cfg_;
  clock::time_point deadline_;
  chunked_decoder chunked_;
  std::uint64_t remaining_ = 0;   // Content-Length bodies: bytes still to come
  bool is_chunked_ = false;
  bool expect_continue_ = false;  // the client waits for "100 Continue" before sending the body
  bool done_ = false;
  bool drain_requested_ = false;
  bool peer_gone_ = false;
};

}  // namespace athanor::web::detail
