// `ws`: a WebSocket connection driven by its own process.
//
// Reading: bytes land in the thread's scratch buffer and are decoded at once; only a partial frame
// is copied into the connection, so an idle WebSocket holds no buffer. Control frames are handled
// inside receive(), between the messages it returns.
//
// Writing and backpressure: send() appends the frame to `out` and writes what the socket takes.
// What it does not take stays queued; while at most max_send_buffer bytes are queued send()
// returns at once, beyond that it waits for the socket (the sender slows to the reader's pace),
// and if the socket stays full for send_timeout the reader is too slow: the connection is closed
// with 1008. receive() flushes `out` before it waits for input. So the memory a slow reader can
// pin is bounded by max_send_buffer plus one message.
#include <exception>

#include "athanor/runtime/process.h"
#include "athanor/web/websocket.h"
#include "web/server_state.h"

namespace athanor::web {

namespace {
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

milliseconds until(clock::time_point t) {
  auto d = std::chrono::duration_cast<milliseconds>(t - clock::now());
  return d.count() < 0 ? milliseconds(0) : d;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  std::string p;
  if (code == ws_close::no_status || code == ws_close::abnormal) return p;
  p.push_back(char(code >> 8));
  p.push_back(char(code & 0xFF));
  p.append(reason.substr(0, 123));
  return p;
}

// Writes as much of s.out as the socket takes now. Returns false if the peer is gone.
bool write_some(detail::ws_state& s) {
  std::size_t done = 0;
  while (done < s.out.size()) {
    io_result r = s.io.try_write(std::string_view(s.out).substr(done));
    if (r.eof) {
      s.out.clear();
      return false;
    }
    if (r.would_block) break;
    done += r.n;
  }
  s.out.erase(0, done);
  if (s.out.empty() && s.out.capacity() > 4096) s.out.shrink_to_fit();  // idle connections stay small
  return true;
}

// Ends the connection now (no handshake): the socket closes, later calls see a closed ws.
void abort(detail::ws_state& s, std::uint16_t code) {
  if (!s.closed) s.close_code = code;
  s.closed = true;
  s.out.clear();
  s.io.close();
}

// Writes s.out until at most `keep` bytes remain, waiting up to send_timeout for the socket.
// Returns false (and aborts with 1008) if the peer does not drain it in time or is gone.
task<bool> flush_until(detail::ws_state* s, std::size_t keep) {
  auto deadline = clock::now() + s->opts->send_timeout;
  for (;;) {
    if (!write_some(*s)) {
      abort(*s, ws_close::abnormal);
      co_return false;
    }
    if (s->out.size() <= keep) co_return true;
    io_wait_result w = co_await s->io.wait_writable(until(deadline));
    if (w == io_wait_result::timeout) {
      abort(*s, ws_close::policy);
      co_return false;
    }
  }
}

// Queues a close frame with `code` and writes it (briefly); marks the close as sent.
task<void> send_close(detail::ws_state* s, std::uint16_t code, std::string reason) {
  if (s->close_sent || s->closed) co_return;
  s->close_sent = true;
  s->close_code = code;
  ws_encode_frame(s->out, ws_opcode::close, close_payload(code, reason));
  auto deadline = clock::now() + milliseconds(1000);
  while (!s->out.empty()) {
    if (!write_some(*s)) break;
    if (s->out.empty()) break;
    io_wait_result w = co_await s->io.wait_writable(until(deadline));
    if (w == io_wait_result::timeout) break;
  }
}

task<std::optional<ws_message>> receive_impl(detail::ws_state* s, bool any_mail) {
  using kind = ws_decoder::event::kind;
  // Every way of closing ends at one co_await below (`closing:`): each suspension point keeps
  // its temporaries in the frame, which every idle connection holds while it waits.
  bool send_close_frame = false;
  std::uint16_t code = 0;
  std::string reason;
  for (;;) {
    if (s->closed) co_return std::nullopt;
    // Decoded events first, in order.
    while (s->next_event < s->events.size()) {
      ws_decoder::event e = std::move(s->events[s->next_event++]);
      if (s->next_event == s->events.size()) {
        s->events.clear();
        s->next_event = 0;
      }
      switch (e.k) {
        case kind::message:
          co_return ws_message{e.op, std::move(e.data), false};
        case kind::ping:
          ws_encode_frame(s->out, ws_opcode::pong, e.data);
          break;
        case kind::pong:
          break;
        case kind::close:
          // Echo the peer's code (RFC 6455 §5.5.1); a close without a code gets an empty one.
          // The server closes the TCP connection first (§7.1.1).
          send_close_frame = !s->close_sent;
          code = e.code;
          goto closing;
        case kind::fail:
          send_close_frame = true;
          code = e.code;
          reason = std::move(e.data);
          goto closing;
      }
    }
    if (!s->out.empty()) {
      bool ok = co_await flush_until(s, 0);
      if (!ok) co_return std::nullopt;
    }
    // Wait for input until the next ping or the idle deadline.
    const ws_options& o = *s->opts;
    auto idle_at = s->last_seen + o.idle_timeout;
    auto ping_at = std::max(s->last_seen, s->last_ping) + o.ping_interval;
    auto wake_at = std::min(idle_at, ping_at);
    // The read and the wait are done here rather than through transport::read(), a coroutine
    // whose frame every idle connection would hold while it waits (~330 bytes).
    detail::read_outcome r;
    std::uint32_t want;
    if (!s->io.read_now(r, want)) {
      io_wait_result w = co_await athanor::detail::fd_wait_for(
          s->io.fd(), want, until(wake_at).count(), true,
          any_mail ? nullptr : athanor::detail::type_of<detail::drain_msg>(), s->io.is_attached(), &s->wake_timer);
      if (w == io_wait_result::ready) continue;  // read at the top of the loop
      r.timeout = w == io_wait_result::timeout;
      r.message = w == io_wait_result::message;
    }
    if (r.n > 0) {
      s->last_seen = clock::now();
      std::size_t used;
      if (s->in.empty()) {
        used = s->decoder.feed(r.data, s->events);
        s->in.assign(r.data.substr(used));
      } else {
        s->in.append(r.data);
        used = s->decoder.feed(s->in, s->events);
        s->in.erase(0, used);
        if (s->in.empty()) s->in.shrink_to_fit();
      }
      continue;
    }
    if (r.eof) {
      abort(*s, s->close_sent ? s->close_code : ws_close::abnormal);
      co_return std::nullopt;
    }
    if (r.message) {
      if (s->guard.server() && s->guard.server()->stopping.load()) {
        send_close_frame = true;
        code = ws_close::going_away;
        reason = "server shutting down";
        goto closing;
      }
      if (any_mail) co_return ws_message{ws_opcode::text, std::string(), true};
      continue;
    }
    // Timed out: idle, or time to ping.
    auto now = clock::now();
    if (now >= idle_at) {
      send_close_frame = true;
      code = ws_close::going_away;
      reason = "idle timeout";
      goto closing;
    }
    if (now >= ping_at) {
      s->last_ping = now;
      ws_encode_frame(s->out, ws_opcode::ping, std::string_view());
    }
  }
closing:
  if (send_close_frame) co_await send_close(s, code, std::move(reason));
  s->close_code = code;
  abort(*s, code);
  co_return std::nullopt;
}

}  // namespace

ws::ws(std::unique_ptr<detail::ws_state> s) noexcept : s_(std::move(s)) {
  if (s_) s_->last_seen = s_->last_ping = clock::now();
}
ws::ws(ws&&) noexcept = default;
ws& ws::operator=(ws&&) noexcept = default;

ws::~ws() {
  if (!s_ || s_->closed) return;
  // Best effort, without waiting: a close frame if the socket takes it, then the socket closes.
  if (!s_->close_sent) {
    std::uint16_t code = std::uncaught_exceptions() > 0 ? ws_close::internal_error : ws_close::normal;
    ws_encode_frame(s_->out, ws_opcode::close, close_payload(code, ""));
    s_->close_code = code;
  }
  write_some(*s_);
  s_->io.close();
  s_->closed = true;
}

task<std::optional<ws_message>> ws::receive() { return receive_impl(s_.get(), false); }
task<std::optional<ws_message>> ws::receive_or_mail() { return receive_impl(s_.get(), true); }

task<bool> ws::send(ws_message m) {
  detail::ws_state* s = s_.get();
  if (!s || s->closed || s->close_sent) co_return false;
  ws_opcode op = m.type == ws_opcode::binary ? ws_opcode::binary : ws_opcode::text;
  // Tiny messages are sent as they are: deflate would make them bigger and costs a stream.
  if (s->deflate && m.data.size() >= 64) {
    std::string z;
    if (s->deflate->compress(m.data, z)) {
      ws_encode_frame(s->out, op, z, true, true);
    } else {
      ws_encode_frame(s->out, op, m.data);
    }
  } else {
    ws_encode_frame(s->out, op, m.data);
  }
  bool ok = co_await flush_until(s, s->opts->max_send_buffer);
  co_return ok;
}

task<bool> ws::send_text(std::string t) { return send(ws_message::text(std::move(t))); }
task<bool> ws::send_binary(std::string b) { return send(ws_message::binary(std::move(b))); }

task<bool> ws::ping(std::string payload) {
  detail::ws_state* s = s_.get();
  if (!s || s->closed || s->close_sent) co_return false;
  if (payload.size() > 125) payload.resize(125);
  ws_encode_frame(s->out, ws_opcode::ping, payload);
  bool ok = co_await flush_until(s, s->opts->max_send_buffer);
  co_return ok;
}

task<void> ws::close(std::uint16_t code, std::string reason) {
  detail::ws_state* s = s_.get();
  if (!s || s->closed) co_return;
  co_await send_close(s, code, std::move(reason));
  // Wait briefly for the peer's close frame, dropping any data frames still in flight.
  auto deadline = clock::now() + milliseconds(2000);
  while (!s->closed && clock::now() < deadline) {
    detail::read_outcome r = co_await s->io.read(until(deadline));
    if (r.n == 0) break;
    std::size_t used;
    s->in.append(r.data);
    used = s->decoder.feed(s->in, s->events);
    s->in.erase(0, used);
    bool done = false;
    for (auto& e : s->events) done |= e.k == ws_decoder::event::kind::close || e.k == ws_decoder::event::kind::fail;
    s->events.clear();
    s->next_event = 0;
    if (done) break;
  }
  std::uint16_t sent = s->close_code;
  abort(*s, sent);
  s->close_code = code;
}

bool ws::is_open() const noexcept { return s_ && !s_->closed && !s_->close_sent; }
std::uint16_t ws::close_code() const noexcept { return s_ ? s_->close_code : ws_close::abnormal; }
const std::string& ws::path() const noexcept { return s_->path; }
const std::string& ws::query() const noexcept { return s_->query; }
std::string ws::param(std::string_view name) const {
  for (const auto& [k, v] : s_->params)
    if (k == name) return v;
  for (const auto& [k, v] : parse_query(s_->query))
    if (k == name) return v;
  return {};
}
bool ws::compressed() const noexcept { return s_ && s_->deflate != nullptr; }

}  // namespace athanor::web
