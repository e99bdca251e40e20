// Request bodies, read when the handler asks.
//
// Why on demand: reading every body before routing (what this server did first) let any client
// make any route, a 404 included, hold max_body bytes, twice at the peak (the input buffer and the
// copy handed to the handler). Now a body costs memory only when a handler reads it whole, and
// then only once: a Content-Length body is reserved at its size and filled straight from the
// socket reads; a streaming handler holds one part at a time.
//
// What is left unread when the handler returns is dropped only if that is cheap (up to 64 KiB,
// the size Cowboy and Plug also drain before giving up); otherwise the response says
// "Connection: close" and the lingering close drops the rest. A client that sent
// "Expect: 100-continue" and got no "100 Continue" has not sent its body at all, so the
// connection closes rather than wait for bytes that may never come (RFC 9110 §10.1.1).
#include "web/body_reader.h"

#include <algorithm>

#include "athanor/runtime/process.h"
#include "athanor/web/router.h"
#include "web/server_state.h"

namespace athanor::web::detail {

namespace {

std::chrono::milliseconds until(body_reader::clock::time_point t) {
  auto d = std::chrono::duration_cast<std::chrono::milliseconds>(t - body_reader::clock::now());
  return d.count() < 0 ? std::chrono::milliseconds(0) : d;
}

}  // namespace

body_reader::body_reader(transport& io, std::string& in, std::string& out, const request_head& head,
                         const server_config& cfg, clock::time_point deadline)
    : io_(io), in_(in), out_(out), cfg_(cfg), deadline_(deadline), chunked_(cfg.max_body, cfg.limits.max_request_line),
      remaining_(head.content_length.value_or(0)), is_chunked_(head.chunked), expect_continue_(head.expect_continue) {
  done_ = !is_chunked_ && remaining_ == 0;
}

std::size_t body_reader::take(std::size_t max, std::string& part) {
  if (done_ || in_.empty() || max == 0) return 0;
  if (is_chunked_) {
    std::size_t used = 0;
    const std::size_t before = part.size();
    // Decoded bytes never outnumber encoded ones: a prefix of `max` input bytes yields at most max.
    auto s = chunked_.feed(std::string_view(in_).substr(0, max), used, part);
    in_.erase(0, used);
    if (s == chunked_decoder::status::done) done_ = true;
    if (s == chunked_decoder::status::error) {
      done_ = true;  // nothing more can be read from this body
      if (chunked_.too_large()) throw body_error(413, "body too large");
      throw body_error(400, "malformed chunked body");
    }
    return part.size() - before;
  }
  const std::size_t n = std::size_t(std::min<std::uint64_t>({remaining_, in_.size(), max}));
  part.append(in_, 0, n);
  in_.erase(0, n);
  remaining_ -= n;
  if (remaining_ == 0) done_ = true;
  return n;
}

task<void> body_reader::fill() {
  if (!out_.empty() || expect_continue_) {
    // The client waits for "100 Continue" before it sends the body; earlier pipelined responses go
    // first, in order.
    if (expect_continue_) out_ += "HTTP/1.1 100 Continue\r\n\r\n";
    expect_continue_ = false;
    bool ok = co_await io_.write_all(std::move(out_), cfg_.write_timeout);
    out_.clear();
    if (!ok) {
      peer_gone_ = true;
      done_ = true;
      throw body_error(400, "connection closed before the body ended");
    }
  }
  for (;;) {
    read_outcome r = co_await io_.read(until(deadline_), athanor::detail::type_of<drain_msg>());
    if (r.n > 0) {
      in_.append(r.data);
      co_return;
    }
    if (r.message) {
      co_await this_process().receive<drain_msg>();
      drain_requested_ = true;  // finish this request, then close
      continue;
    }
    done_ = true;
    if (r.eof) {
      peer_gone_ = true;
      throw body_error(400, "connection closed before the body ended");
    }
    throw body_error(408, "body not complete in time");
  }
}

task<std::optional<std::string>> body_reader::next(std::size_t max) {
  max = std::max<std::size_t>(max, 1);
  std::string part;
  while (!done_) {
    const std::size_t buffered = in_.size();
    if (take(max, part) > 0 || done_) break;
    if (in_.size() < buffered) continue;  // consumed framing only (a chunk-size line): more may be buffered
    co_await fill();
  }
  if (part.empty()) co_return std::nullopt;
  co_return part;
}

task<void> body_reader::read_rest(std::string& into) {
  if (!is_chunked_ && remaining_ > 0) into.reserve(into.size() + std::size_t(remaining_));
  while (!done_) {
    const std::size_t buffered = in_.size();
    take(buffered, into);
    if (done_ || in_.size() < buffered) continue;
    co_await fill();
  }
}

task<bool> body_reader::discard_rest(std::uint64_t limit) {
  if (done_) co_return true;
  if (expect_continue_) co_return false;  // the client has not sent it: do not ask for it now
  if (!is_chunked_ && remaining_ > limit) co_return false;
  std::uint64_t dropped = 0;
  try {
    while (!done_ && dropped <= limit) {
      std::optional<std::string> part = co_await next(64 * 1024);
      if (!part) break;
      dropped += part->size();
    }
  } catch (const body_error&) {
    co_return false;
  }
  co_return done_ && dropped <= limit;
}

}  // namespace athanor::web::detail
