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
//
// Pushes from other processes (ws_outbox). A fan-out used to send each member a process message
// that the member's handler turned into a send(): a member that does not read blocks in send()
// while its mailbox grows without bound (2.3 GB in 10 s with two flooding clients). So pushes
// bypass the mailbox: they go into a queue shared by the connection and its outbox handles,
// whose size is an atomic counted against max_outbox at push time, and the pusher refuses (and
// cuts the connection with 1008) rather than queue more. Dropping instead would be allowed only
// for protocols that tolerate gaps, which channels and LiveView do not, so nothing is dropped.
// Why the wake-up is a drain_msg: the connection's waits can filter the mailbox on one message
// type only, and receive() already wakes for drain_msg (server shutdown), so the "doorbell" is a
// drain_msg too; `rung` keeps at most one doorbell in the mailbox however many pushes are
// queued (a pusher rings only on false -> true; the connection clears it after taking the
// doorbell and before taking the queue, so no push goes unnoticed). The connection takes pushes
// into `out` while `out` is under max_send_buffer, so the memory a connection holds stays at
// most max_outbox + max_send_buffer + one message however fast others push. send() waits for
// the socket with the doorbell in its filter as well, so a cut is noticed at once rather than
// after send_timeout.
#include <exception>
#include <list>
#include <mutex>

#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "athanor/web/websocket.h"
#include "web/server_state.h"

namespace athanor::web {

namespace detail {

// The queue behind a connection's ws_outbox handles. Shared by the handles (any thread) and the
// connection's process; `mu` guards `queue` and every write to `queued` and `state`.
struct ws_outbox_core {
  enum : std::uint8_t { open, closed, cut };

  const std::size_t limit;                                  // ws_options::max_outbox
  const pid owner;                                          // the connection's process
  const std::string peer, path;                             // for the log line
  const std::shared_ptr<std::atomic<std::size_t>> cut_count;  // the server's (may be null)
  std::atomic<std::uint8_t> state{open};
  std::atomic<std::size_t> queued{0};                       // bytes charged for `queue`
  std::atomic<bool> rung{false};                            // a doorbell is on its way or waiting
  std::mutex mu;
  std::list<ws_message> queue;  // a list: empty costs no allocation, and a node is freed outside mu

  ws_outbox_core(std::size_t l, pid o, std::string pr, std::string pa, std::shared_ptr<std::atomic<std::size_t>> c)
      : limit(l), owner(o), peer(std::move(pr)), path(std::move(pa)), cut_count(std::move(c)) {}
};

}  // namespace detail

namespace {
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::size_t charge(const ws_message& m) noexcept { return m.data.size() + ws_outbox::per_message_overhead; }

// Counts a slow client's cut and logs it (once per connection: callers make sure).
void report_cut(const std::shared_ptr<std::atomic<std::size_t>>& counter, std::string_view peer,
                std::string_view path, std::string_view why, std::size_t limit) noexcept {
  if (counter) counter->fetch_add(1, std::memory_order_acq_rel);
  try {
    std::string text = "WebSocket client ";
    text += peer.empty() ? std::string_view("(unknown peer)") : peer;
    text += " on ";
    text += path;
    text += " reads too slowly: ";
    text += why;
    text += " (limit ";
    text += std::to_string(limit);
    text += " bytes); closing with 1008";
    logger::log("web", log_level::warning, std::move(text),
                {{"peer", term(peer)}, {"path", term(path)}, {"limit", term(limit)}});
  } catch (...) {
  }
}

// Rings the connection's doorbell unless it is already ringing.
void ring(detail::ws_outbox_core& c) {
  if (!c.rung.exchange(true, std::memory_order_seq_cst)) athanor::send(c.owner, detail::drain_msg{});
}

bool outbox_cut(const detail::ws_state& s) noexcept {
  return s.box && s.box->state.load(std::memory_order_acquire) == detail::ws_outbox_core::cut;
}

// The connection is closing: refuse later pushes and free what is queued.
void seal_outbox(detail::ws_state& s) noexcept {
  if (!s.box) return;
  std::list<ws_message> dropped;
  {
    std::lock_guard lock(s.box->mu);
    if (s.box->state.load(std::memory_order_relaxed) == detail::ws_outbox_core::open)
      s.box->state.store(detail::ws_outbox_core::closed, std::memory_order_release);
    dropped.swap(s.box->queue);
    s.box->queued.store(0, std::memory_order_release);
  }
}

// A send waited past send_timeout: the client is too slow. Counts and logs the cut unless a push
// already did (the outbox is marked cut under its mutex, so exactly one of them counts).
void report_send_timeout(detail::ws_state& s) {
  if (s.box) {
    std::lock_guard lock(s.box->mu);
    if (s.box->state.load(std::memory_order_relaxed) == detail::ws_outbox_core::cut) return;
    s.box->state.store(detail::ws_outbox_core::cut, std::memory_order_release);
  }
  detail::server_state* st = s.guard.server();
  report_cut(st ? st->slow_clients_cut : nullptr, s.io.socket().peer_name(), s.path,
             "a send stayed blocked past send_timeout", s.opts->max_send_buffer);
}

// Appends one message's frame to s.out (compressed when permessage-deflate is on).
void encode_message(detail::ws_state& s, const ws_message& m) {
  ws_opcode op = m.type == ws_opcode::binary ? ws_opcode::binary : ws_opcode::text;
  // Tiny messages are sent as they are: deflate would make them bigger and costs a stream.
  if (s.deflate && m.data.size() >= 64) {
    std::string z;
    if (s.deflate->compress(m.data, z)) {
      ws_encode_frame(s.out, op, z, true, true);
      return;
    }
  }
  ws_encode_frame(s.out, op, m.data);
}

// Moves pushed messages into s.out while it holds less than max_send_buffer. Returns true if
// pushes are still queued.
bool take_pushes(detail::ws_state& s) {
  detail::ws_outbox_core& c = *s.box;
  while (s.out.size() < s.opts->max_send_buffer) {
    std::list<ws_message> one;
    {
      std::lock_guard lock(c.mu);
      if (c.queue.empty()) return false;
      one.splice(one.begin(), c.queue, c.queue.begin());
      c.queued.store(c.queued.load(std::memory_order_relaxed) - charge(one.front()), std::memory_order_release);
    }
    encode_message(s, one.front());
  }
  return c.queued.load(std::memory_order_acquire) > 0;
}

// Takes the doorbells (and any server drain_msg: the caller checks `stopping` itself) out of the
// mailbox; then clears `rung`, so the next push rings again. A coroutine of its own, so that the
// frames of idle connections do not hold its receive.
task<void> take_doorbells(detail::ws_state* s) {
  process& self = this_process();
  bool any = false;
  while (co_await self.receive_for<detail::drain_msg>(milliseconds(0))) any = true;
  if (any && s->box) s->box->rung.store(false, std::memory_order_seq_cst);
}

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

// The size (header and payload) of the whole server frame (unmasked) that starts at out[at].
std::size_t frame_size(const std::string& out, std::size_t at) noexcept {
  std::size_t len = std::uint8_t(out[at + 1]) & 0x7F, header = 2;
  if (len == 126) {
    len = (std::size_t(std::uint8_t(out[at + 2])) << 8) | std::uint8_t(out[at + 3]);
    header = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | std::uint8_t(out[at + 2 + std::size_t(i)]);
    header = 10;
  }
  return header + len;
}

// Writes as much of s.out as the socket takes now. Returns false if the peer is gone.
bool write_some(detail::ws_state& s) {
  std::size_t done = 0;
  while (done < s.out.size()) {
    io_result r = s.io.try_write(std::string_view(s.out).substr(done));
    if (r.eof) {
      s.out.clear();
      s.out_partial = 0;
      return false;
    }
    if (r.would_block) break;
    done += r.n;
  }
  // Keep track of where the first unwritten frame starts (see cut_now).
  std::size_t boundary = s.out_partial;
  while (boundary < done) boundary += frame_size(s.out, boundary);
  s.out_partial = boundary - done;
  s.out.erase(0, done);
  if (s.out.empty() && s.out.capacity() > 4096) s.out.shrink_to_fit();  // idle connections stay small
  return true;
}

// Ends the connection now (no handshake): the socket closes, later calls see a closed ws.
void abort(detail::ws_state& s, std::uint16_t code) {
  if (!s.closed) s.close_code = code;
  s.closed = true;
  s.out.clear();
  s.out_partial = 0;
  seal_outbox(s);
  s.io.close();
}

task<void> send_close(detail::ws_state* s, std::uint16_t code, std::string reason);

// Closes a connection whose outbox was cut: the frames not yet begun are dropped (the client is
// being cut anyway, and they would only delay the close and hold memory), a 1008 close frame
// follows the rest of the frame being written (if the peer takes it within send_close's grace),
// then the socket closes.
task<void> cut_now(detail::ws_state* s) {
  s->out.resize(s->out_partial);
  co_await send_close(s, ws_close::policy, "outbox overflow");
  abort(*s, ws_close::policy);
}

// Writes s.out until at most `keep` bytes remain, waiting up to send_timeout for the socket.
// Returns false (and aborts with 1008) if the peer does not drain it in time or is gone.
// A doorbell ends the wait too: a cut outbox closes the connection (1008) at once.
task<bool> flush_until(detail::ws_state* s, std::size_t keep) {
  auto deadline = clock::now() + s->opts->send_timeout;
  for (;;) {
    if (!write_some(*s)) {
      abort(*s, ws_close::abnormal);
      co_return false;
    }
    if (s->out.size() <= keep) co_return true;
    io_wait_result w = co_await s->io.wait_writable(until(deadline), athanor::detail::type_of<detail::drain_msg>());
    if (w == io_wait_result::message) {
      co_await take_doorbells(s);
      if (outbox_cut(*s)) {
        co_await cut_now(s);
        co_return false;
      }
      continue;
    }
    if (w == io_wait_result::timeout) {
      report_send_timeout(*s);
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
  seal_outbox(*s);
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
    // Pushes from other processes (ws_outbox), as much as max_send_buffer allows at a time.
    bool more_pushes = false;
    if (s->box) {
      if (outbox_cut(*s)) {
        s->out.resize(s->out_partial);  // as cut_now() does
        send_close_frame = true;
        code = ws_close::policy;
        reason = "outbox overflow";
        goto closing;
      }
      more_pushes = take_pushes(*s);
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
      // A doorbell taken while flushing (flush_until) is gone from the mailbox, and the pushes it
      // announced may have come after take_pushes above: look again before waiting, or they would
      // wait for the next push or the next ping.
      if (!more_pushes && s->box && s->box->queued.load(std::memory_order_acquire) > 0 &&
          s->out.size() < s->opts->max_send_buffer) {
        continue;
      }
      if (more_pushes) {
        // Nothing to read and more pushes queued: write them first (yielding at the end of this
        // time slice, so that a steady stream of pushes cannot monopolise the scheduler).
        co_await this_process().consume(1);
        continue;
      }
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
      // Doorbells are ours (they go before the handler sees its mail); pushes are taken above.
      co_await take_doorbells(s);
      if (any_mail && this_process().message_queue_len() > 0) co_return ws_message{ws_opcode::text, std::string(), true};
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

detail::ws_state::~ws_state() { seal_outbox(*this); }

ws::ws(std::unique_ptr<detail::ws_state> s) noexcept : s_(std::move(s)) {
  if (s_) s_->last_seen = s_->last_ping = clock::now();
}
ws::ws(ws&&) noexcept = default;
ws& ws::operator=(ws&&) noexcept = default;

ws::~ws() {
  if (!s_ || s_->closed) return;
  // Best effort, without waiting: a close frame if the socket takes it, then the socket closes.
  if (!s_->close_sent) {
    const bool cut = outbox_cut(*s_);
    std::uint16_t code = cut                              ? ws_close::policy
                         : std::uncaught_exceptions() > 0 ? ws_close::internal_error
                                                          : ws_close::normal;
    if (cut) s_->out.resize(s_->out_partial);  // as cut_now() does
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
  if (outbox_cut(*s)) {
    co_await cut_now(s);
    co_return false;
  }
  encode_message(*s, m);
  bool ok = co_await flush_until(s, s->opts->max_send_buffer);
  co_return ok;
}

task<bool> ws::send_text(std::string t) { return send(ws_message::text(std::move(t))); }
task<bool> ws::send_binary(std::string b) { return send(ws_message::binary(std::move(b))); }

task<bool> ws::ping(std::string payload) {
  detail::ws_state* s = s_.get();
  if (!s || s->closed || s->close_sent) co_return false;
  if (outbox_cut(*s)) {
    co_await cut_now(s);
    co_return false;
  }
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
std::any& ws::accepted() noexcept { return s_->accepted; }
std::string_view ws::subprotocol() const noexcept {
  return s_ ? std::string_view(s_->subprotocol) : std::string_view();
}

ws_request::ws_request(const request_head& head, const param_list& params, std::string remote)
    : path(head.path), query(head.query), route_params(params), peer(std::move(remote)), head_(&head) {
  // RFC 6455 §4.1: a comma-separated list, which may also be split over several header lines.
  for (const auto& h : head.headers) {
    if (h.name != "sec-websocket-protocol") continue;
    std::string_view rest = h.value;
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (!item.empty()) subprotocols.push_back(item);
    }
  }
}

std::string_view ws_request::header(std::string_view name) const {
  // The parser stores names in lower case; request_head::header expects a lower-case name.
  std::string lower(name);
  for (char& c : lower)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return head_->header(lower);
}

ws_outbox ws::outbox() {
  detail::ws_state* s = s_.get();
  if (!s) return {};
  if (!s->box) {
    detail::server_state* st = s->guard.server();
    s->box = std::make_shared<detail::ws_outbox_core>(s->opts->max_outbox, athanor::self(),
                                                      s->closed ? std::string() : s->io.socket().peer_name(), s->path,
                                                      st ? st->slow_clients_cut : nullptr);
    if (s->closed || s->close_sent) seal_outbox(*s);
  }
  return ws_outbox(s->box);
}

// ---- ws_outbox ----------------------------------------------------------------------------

bool ws_outbox::push(ws_message m) const {
  detail::ws_outbox_core* c = c_.get();
  if (!c || c->state.load(std::memory_order_acquire) != detail::ws_outbox_core::open) return false;
  const std::size_t bytes = charge(m);
  bool queued_it = false;
  std::list<ws_message> dropped;  // freed outside the mutex
  {
    std::lock_guard lock(c->mu);
    if (c->state.load(std::memory_order_relaxed) != detail::ws_outbox_core::open) return false;
    const std::size_t queued = c->queued.load(std::memory_order_relaxed);
    if (bytes <= c->limit && queued <= c->limit - bytes) {
      m.mailbox = false;
      c->queue.push_back(std::move(m));
      c->queued.store(queued + bytes, std::memory_order_release);
      queued_it = true;
    } else {
      // Over the limit: this push cuts the connection (only one push can get here: the state
      // is no longer open for the others).
      c->state.store(detail::ws_outbox_core::cut, std::memory_order_release);
      dropped.swap(c->queue);
      c->queued.store(0, std::memory_order_release);
    }
  }
  if (!queued_it) report_cut(c->cut_count, c->peer, c->path, "its outbox is full", c->limit);
  ring(*c);
  return queued_it;
}

bool ws_outbox::push_text(std::string s) const { return push(ws_message::text(std::move(s))); }
bool ws_outbox::push_binary(std::string s) const { return push(ws_message::binary(std::move(s))); }

bool ws_outbox::is_open() const noexcept {
  return c_ && c_->state.load(std::memory_order_acquire) == detail::ws_outbox_core::open;
}

std::size_t ws_outbox::queued_bytes() const noexcept { return c_ ? c_->queued.load(std::memory_order_acquire) : 0; }

}  // namespace athanor::web

namespace athanor::web::detail {

ws_outbox detached_outbox::make(std::size_t limit, pid owner, std::string peer, std::string path) {
  return ws_outbox(std::make_shared<ws_outbox_core>(limit, owner, std::move(peer), std::move(path), nullptr));
}

std::vector<ws_message> detached_outbox::take(const ws_outbox& box) {
  std::vector<ws_message> taken;
  ws_outbox_core* c = box.c_.get();
  if (!c) return taken;
  c->rung.store(false, std::memory_order_seq_cst);  // first: a push from now on rings again
  std::list<ws_message> queue;
  {
    std::lock_guard lock(c->mu);
    queue.swap(c->queue);
    c->queued.store(0, std::memory_order_release);
  }
  taken.reserve(queue.size());
  for (ws_message& m : queue) taken.push_back(std::move(m));
  return taken;
}

void detached_outbox::rearm(const ws_outbox& box) noexcept {
  if (box.c_) box.c_->rung.store(false, std::memory_order_seq_cst);
}

bool detached_outbox::was_cut(const ws_outbox& box) noexcept {
  return box.c_ && box.c_->state.load(std::memory_order_acquire) == ws_outbox_core::cut;
}

void detached_outbox::seal(const ws_outbox& box) noexcept {
  ws_outbox_core* c = box.c_.get();
  if (!c) return;
  std::list<ws_message> dropped;  // freed outside the mutex
  std::lock_guard lock(c->mu);
  if (c->state.load(std::memory_order_relaxed) == ws_outbox_core::open)
    c->state.store(ws_outbox_core::closed, std::memory_order_release);
  dropped.swap(c->queue);
  c->queued.store(0, std::memory_order_release);
}

}  // namespace athanor::web::detail
