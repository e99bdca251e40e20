// The HTTP/1.1 and WebSocket server.
//
// Design
// ------
// Processes. listen() binds one listening socket and gives each acceptor a dup() of it (readiness
// is registered per descriptor), so that a second server on a taken port fails with EADDRINUSE
// instead of silently splitting the traffic; with reuse_port, one SO_REUSEPORT socket per acceptor
// (the kernel spreads connections over them). It spawns one acceptor process per socket, as Ranch
// does. An acceptor accepts in a loop and spawns one process per connection; it suspends in the poller
// when the backlog is empty. A connection process owns its socket and serves its requests one
// after the other; an exception or a crash ends that process and closes that socket, nothing else.
// A WebSocket upgrade spawns a new process running the route's handler, which takes the socket
// over, and the HTTP process ends: a WebSocket costs one process, not two.
//
// Connection lifecycle. Read until a whole request head is buffered (parse_request_head is
// re-run on the growing buffer: heads are small and this keeps the parser stateless), check
// limits, then serve the request in a coroutine of its own (serve_request): run the router, whose
// handler reads the body only if it asks (body_reader.cpp), and append the response to an output
// buffer. If the input buffer already holds the next request (pipelining) it is served before
// anything is written, so a pipelined batch goes out in one write; otherwise the output is flushed
// before waiting for more input. Responses with "Connection: close" and errors close after a
// lingering half-close, so that the client reads the error rather than a reset.
//
// What an idle connection holds. Before waiting for its next request a connection frees input and
// output buffers above kIdleBufferBytes, and the request's own state (conn, body reader, handler
// frames) lives in serve_request's frame, which is gone by then: an idle keep-alive connection
// holds about 1.5 KiB (its process, the loop's frame, a small buffer), whatever its largest
// request was. Rejected: shrink_to_fit after each request (keeps up to the largest head anyway,
// and still left one 8 MiB body per connection before bodies were read on demand).
//
// Limits and their statuses. Request line > limits.max_request_line: 414; header section >
// max_header_bytes or more than max_headers fields: 431; body > max_body: 413 (refused before it
// is read, even with 100-continue); anything else malformed: 400; HTTP/2+ or 1.x beyond 1.1: 505;
// a request not complete within request_timeout of its first byte (slowloris): 408. An idle
// keep-alive connection closes silently after idle_timeout. Every wait on a socket has a
// deadline, so no connection can hold a process forever without sending.
//
// Connection limit and descriptors. At max_connections open connections an acceptor accepts and
// answers 503 at once (a clear refusal instead of a silent backlog). When accept fails with
// EMFILE/ENFILE the acceptor logs once, closes a spare descriptor kept for this, accepts the
// waiting connection into its slot and answers 503. The spare's slot is the one shared resource
// of every acceptor (and of any code in this OS process), so one rule keeps it: whenever the spare
// is missing and nobody is about to give it back, the next successful accept refuses its
// connection and reopens the spare with the slot that frees. Without the rule two acceptors lost
// it for good: while A had it closed, B's ordinary accept took the slot, and from then on every
// client waited in the backlog unanswered. A refusal lingers in a process of its own
// (linger_refusal: half-close, drop the client's request until it closes, goes quiet or 2 s pass)
// so that a client still sending reads the 503 instead of a reset; at most kMaxLingering at once.
// An acceptor that cannot get the spare back waits: briefly if a refusal is about to return it,
// else backing off from 10 ms to 1 s.
//
// Backpressure. A connection process writes with its own process suspended until the socket
// drains, so a slow reader slows only its own process; it never buffers more than one response
// (plus a pipelined batch), and write_timeout bounds how long it waits. WebSocket sends are
// bounded by ws_options::max_send_buffer (see websocket.cpp).
//
// Shutdown. stop() closes nothing abruptly first: it marks the server stopping and sends each
// acceptor and connection a drain message (re-sent every 50 ms to catch processes that had not
// yet registered). Acceptors end; a connection between requests ends at once; one in the middle
// of a request finishes it with "Connection: close"; a WebSocket is closed with 1001. After the
// drain deadline the remaining connection processes are killed.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include <any>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "athanor/runtime/io.h"
#include "athanor/runtime/process.h"
#include "athanor/web/server.h"
#include "web/body_reader.h"
#include "web/server_state.h"

namespace athanor::web {

namespace detail {

server_state::~server_state() {
  int fd = spare_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
}

void server_state::add_connection(pid p) {
  std::lock_guard lock(mu);
  connections.insert(p);
}

void server_state::connection_ended(pid p) noexcept {
  {
    std::lock_guard lock(mu);
    connections.erase(p);
    active.fetch_sub(1, std::memory_order_acq_rel);
  }
  cv.notify_all();
}

void server_state::replace_connection(pid old_pid, pid new_pid) {
  std::lock_guard lock(mu);
  connections.erase(old_pid);
  connections.insert(new_pid);
}

void server_state::log(const std::string& line) const noexcept {
  if (!cfg.log_errors) return;
  try {
    fmt::print(stderr, "athanor::web: {}\n", line);
  } catch (...) {
  }
}

}  // namespace detail

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using detail::server_state;

milliseconds until(clock::time_point t) {
  auto d = std::chrono::duration_cast<milliseconds>(t - clock::now());
  return d.count() < 0 ? milliseconds(0) : d;
}

// The Date header value, recomputed at most once a second per thread.
std::string_view http_date() {
  thread_local std::time_t last = 0;
  thread_local char buf[64];
  std::time_t now = std::time(nullptr);
  if (now != last) {
    last = now;
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  return buf;
}

// An idle connection keeps input and output buffers of at most this capacity (a typical request
// head fits; anything bigger is freed before the connection waits for its next request).
constexpr std::size_t kIdleBufferBytes = 1024;

// A body the handler left unread is dropped if at most this long, to keep the connection open;
// beyond, the connection closes after the response.
constexpr std::uint64_t kUnreadBodyLimit = 64 * 1024;

bool status_has_body(int status) { return !(status < 200 || status == 204 || status == 304); }

void append_response(std::string& out, int status, const std::vector<header_field>& headers, std::string_view body,
                     bool keep_alive, bool http10, bool head_only) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += status_text(status);
  out += "\r\ndate: ";
  out += http_date();
  out += "\r\n";
  for (const auto& h : headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  if (status_has_body(status)) {
    out += "content-length: ";
    out += std::to_string(body.size());
    out += "\r\n";
  }
  if (!keep_alive) out += "connection: close\r\n";
  else if (http10) out += "connection: keep-alive\r\n";
  out += "\r\n";
  if (!head_only && status_has_body(status)) out += body;
}

void append_error(std::string& out, int status, std::string_view why) {
  std::string body(status_text(status));
  body += ": ";
  body += why;
  body += "\n";
  append_response(out, status, {{"content-type", "text/plain; charset=utf-8"}}, body, false, false, false);
}

// Writes `out`, half-closes, and reads (dropping) what the client still sends for a moment, so
// that it sees our response rather than a reset caused by unread input.
task<void> close_gracefully(detail::transport* io, std::string out, milliseconds write_timeout) {
  bool ok = co_await io->write_all(std::move(out), write_timeout);
  if (!ok) co_return;
  io->shutdown_write();
  auto deadline = clock::now() + milliseconds(1000);
  std::size_t dropped = 0;
  while (dropped < (1u << 20)) {
    detail::read_outcome r = co_await io->read(until(deadline));
    if (r.n == 0) break;
    dropped += r.n;
  }
}

const char* kRefusal = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 20\r\n"
                       "connection: close\r\nretry-after: 1\r\n\r\nserver at capacity\r\n";

// Refused sockets lingering at once, at most: past this a refusal closes at once (the client may
// then see a reset instead of the 503, but a flood of refused clients cannot pin descriptors).
constexpr std::size_t kMaxLingering = 256;
// A refusal lingers until the client closes, sends nothing for kRefusalQuiet (it has sent its
// request: closing now cannot reset it), or kRefusalLinger has passed; it drops up to max_body of
// the client's request meanwhile. Short, because out of descriptors one refusal at a time holds
// the spare's slot.
constexpr milliseconds kRefusalLinger{2000};
constexpr milliseconds kRefusalQuiet{500};  // a loaded machine can pause a sending client for a few 100 ms

// Opens the spare descriptor again if it is missing. Returns false if the process is still out of
// descriptors. Any number of acceptors may race here: the first to store one wins, the others
// close theirs.
bool restore_spare(server_state& st) noexcept {
  if (st.spare_fd.load(std::memory_order_acquire) >= 0) return true;
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  int expected = -1;
  if (!st.spare_fd.compare_exchange_strong(expected, fd, std::memory_order_acq_rel)) ::close(fd);
  return true;
}

// Brackets a moment when the spare's slot may be free (closed and not yet reopened): the count
// is odd meanwhile, and an acceptor whose accept overlapped such a moment may hold that slot.
struct spare_slot_free {
  server_state& st;
  explicit spare_slot_free(server_state& s) noexcept : st(s) { st.spare_moves.fetch_add(1, std::memory_order_acq_rel); }
  ~spare_slot_free() { st.spare_moves.fetch_add(1, std::memory_order_acq_rel); }
  spare_slot_free(const spare_slot_free&) = delete;
  spare_slot_free& operator=(const spare_slot_free&) = delete;
};

// A refused connection's last moments, in its own process: the 503 (already written), a
// half-close, then the client's request read and dropped (see kRefusalLinger), so that it reads the 503 instead of a reset caused by unread input (nginx's lingering
// close). With `returns_spare` the socket holds the slot of the spare descriptor, which is opened
// again as soon as the socket is closed.
proc linger_refusal(std::shared_ptr<server_state> st, tcp_socket s, bool returns_spare) {
  detail::transport io(std::move(s));
  io.shutdown_write();
  const auto deadline = clock::now() + kRefusalLinger;
  std::uint64_t dropped = 0;
  while (dropped <= st->cfg.max_body) {
    detail::read_outcome r = co_await io.read(std::min(until(deadline), kRefusalQuiet));
    if (r.n == 0) break;
    dropped += r.n;
  }
  if (returns_spare) {
    spare_slot_free freeing(*st);
    io.close();
    restore_spare(*st);
    st->spare_lent.fetch_sub(1, std::memory_order_acq_rel);
  } else {
    io.close();
  }
  st->lingering.fetch_sub(1, std::memory_order_acq_rel);
}

// Answers 503 and closes, lingering in a process of its own while there are fewer than
// kMaxLingering. Never suspends the acceptor.
void refuse(const std::shared_ptr<server_state>& st, tcp_socket& s, bool returns_spare) {
  st->refused.fetch_add(1, std::memory_order_relaxed);  // first: whoever reads the 503 sees it counted
  bool peer_there = true;
  try {
    (void)s.try_write(std::as_bytes(std::span(kRefusal, std::strlen(kRefusal))));
  } catch (...) {
    peer_there = false;  // gone already: nothing to linger for
  }
  if (peer_there && st->lingering.fetch_add(1, std::memory_order_acq_rel) < kMaxLingering) {
    if (returns_spare) st->spare_lent.fetch_add(1, std::memory_order_acq_rel);
    try {
      spawn([st, sock = std::move(s), returns_spare](process&) mutable -> proc {
        return linger_refusal(st, std::move(sock), returns_spare);
      });
      return;
    } catch (...) {
      if (returns_spare) st->spare_lent.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
  if (peer_there) st->lingering.fetch_sub(1, std::memory_order_acq_rel);
  if (returns_spare) {
    spare_slot_free freeing(*st);
    s.close();
    restore_spare(*st);
  } else {
    s.close();
  }
}

// Base64 of exactly 16 bytes is 24 characters ending in "==".
bool valid_ws_key(std::string_view k) {
  if (k.size() != 24 || k.substr(22) != "==") return false;
  for (std::size_t i = 0; i < 22; ++i) {
    char c = k[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/')) return false;
  }
  return true;
}

// Runs in the WebSocket process when it is spawned: the connection now belongs to it.
proc start_ws(process& self, ws& w, const router::ws_handler* h) {
  w.state()->guard.move_to(self.self());
  w.state()->io.attach(self.self());  // this process does every read and write from now on
  return (*h)(w);
}

// Runs the route's accept hook (ws_options::accept) and checks its answer. Returns true to go on
// with the upgrade (filling `chosen` and `state`); otherwise appends the refusal to `out`: the
// hook's status, or 500 when it threw or answered something no client can accept (logged).
bool run_accept_hook(server_state* st, const ws_options& o, const request_head& head, const param_list& params,
                     const std::string& remote, std::string& chosen, std::any& state, std::string& out) {
  ws_request req(head, params, remote);
  ws_accept a;
  try {
    a = o.accept(req);
  } catch (const std::exception& e) {
    st->log(fmt::format("WebSocket accept hook for {} from {} threw: {}", head.path, remote, e.what()));
    append_error(out, 500, "WebSocket accept failed");
    return false;
  } catch (...) {
    st->log(fmt::format("WebSocket accept hook for {} from {} threw", head.path, remote));
    append_error(out, 500, "WebSocket accept failed");
    return false;
  }
  if (a.refuse_status != 0) {
    if (a.refuse_status < 400 || a.refuse_status > 599) {  // a 1xx/2xx/3xx would look like success
      st->log(fmt::format("WebSocket accept hook for {} from {} refused with status {}, not 4xx/5xx", head.path, remote,
                          a.refuse_status));
      append_error(out, 500, "WebSocket accept failed");
    } else if (a.refuse_body.empty()) {
      append_error(out, a.refuse_status, "WebSocket connection refused");
    } else {
      append_response(out, a.refuse_status, {{"content-type", "text/plain; charset=utf-8"}}, a.refuse_body, false,
                      false, false);
    }
    return false;
  }
  if (!a.subprotocol.empty()) {
    bool offered = false;
    for (std::string_view p : req.subprotocols) offered |= p == a.subprotocol;
    if (!offered) {
      st->log(fmt::format("WebSocket accept hook for {} from {} chose subprotocol \"{}\", which the client did "
                          "not offer", head.path, remote, a.subprotocol));
      append_error(out, 500, "WebSocket accept failed");
      return false;
    }
  }
  chosen = std::move(a.subprotocol);
  state = std::move(a.state);
  return true;
}

// Tries the upgrade. Returns true if the connection now belongs to a WebSocket process.
// Otherwise appends the refusal (426/400/403, or what ws_options::accept answered) to `out`.
task<bool> upgrade(server_state* st, detail::transport* io, detail::conn_guard* guard, request_head* head,
                   const router::route_entry* route, param_list params, const std::string* remote, std::string* in,
                   std::string* out) {
  const ws_options& o = *route->ws_opts;
  std::string_view key = head->header("sec-websocket-key");
  if (head->header("sec-websocket-version") != "13") {
    append_response(*out, 426, {{"sec-websocket-version", "13"}, {"upgrade", "websocket"}, {"content-type", "text/plain"}},
                    "Upgrade Required: WebSocket version 13 only\n", false, false, false);
    co_return false;
  }
  if (head->version_minor != 1 || !head->header_has_token("connection", "upgrade") || !valid_ws_key(key) ||
      (head->content_length && *head->content_length > 0) || head->chunked) {
    append_error(*out, 400, "invalid WebSocket upgrade");
    co_return false;
  }
  if (!o.allowed_origins.empty()) {
    std::string_view origin = head->header("origin");
    bool ok = false;
    for (const auto& a : o.allowed_origins) ok |= a == origin;
    if (!ok) {
      append_error(*out, 403, "origin not allowed");
      co_return false;
    }
  }
  std::string subprotocol;
  std::any accepted;
  if (o.accept && !run_accept_hook(st, o, *head, params, *remote, subprotocol, accepted, *out)) co_return false;
  std::unique_ptr<ws_deflate> deflate;
  std::string ext;
  if (o.permessage_deflate) {
    std::string_view offers = head->header("sec-websocket-extensions");
    if (!offers.empty()) {
      auto p = negotiate_permessage_deflate(offers, ext);
      if (p) deflate = std::make_unique<ws_deflate>(*p);
    }
  }
  std::string resp = std::move(*out);
  out->clear();
  resp += "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ";
  resp += ws_accept_key(key);
  resp += "\r\n";
  if (deflate) resp += "sec-websocket-extensions: " + ext + "\r\n";
  if (!subprotocol.empty()) resp += "sec-websocket-protocol: " + subprotocol + "\r\n";
  resp += "\r\n";
  bool ok = co_await io->write_all(std::move(resp), st->cfg.write_timeout);
  if (!ok) co_return true;  // the peer is gone: nothing left to answer
  auto state = std::make_unique<detail::ws_state>(std::move(*io), route->ws_opts, std::move(deflate), std::move(*guard));
  state->path = head->path;
  state->query = head->query;
  state->params = std::move(params);
  state->subprotocol = std::move(subprotocol);
  state->accepted = std::move(accepted);
  // Frames the client sent right after its request (in the same read, even): decoded now, so
  // that receive() answers them without waiting for more input; a partial frame is kept, copied
  // to its size (moving the request buffer would hand its whole capacity to every idle WebSocket
  // for its lifetime).
  if (!in->empty()) {
    const std::string_view early(in->data(), in->size());
    const std::size_t used = state->decoder.feed(early, state->events);
    state->in.assign(early.substr(used));
  }
  const router::ws_handler* h = &route->ws;
  try {
    spawn([w = ws(std::move(state)), h](process& self) mutable -> proc { return start_ws(self, w, h); });
  } catch (const std::exception& e) {
    st->log(std::string("cannot start a WebSocket process: ") + e.what());  // the ws closes as it unwinds
  }
  co_return true;
}

// What the connection does after a request.
enum class request_outcome { next, drain, close };

// Serves one request whose head has been read (and taken off `in`): runs the router, whose handler
// reads the body if it wants it, then appends the response to `out`. Closes the connection itself
// when the request ends it. A coroutine of its own so that an idle connection's frame holds only
// what waiting for the next head needs (issue 12: an idle connection stays under 2 KiB).
task<request_outcome> serve_request(server_state& st, detail::transport& io, std::string& in, std::string& out,
                                    request_head head, clock::time_point started, const std::string& remote,
                                    bool keep_alive) {
  const server_config& cfg = st.cfg;
  const bool http10 = head.version_minor == 0;
  if (head.content_length && *head.content_length > cfg.max_body) {
    append_error(out, 413, "body too large");  // refused before any of it is read, even with 100-continue
    co_await close_gracefully(&io, std::move(out), cfg.write_timeout);
    co_return request_outcome::close;
  }
  bool head_only = head.method == "HEAD";
  detail::body_reader body(io, in, out, head, cfg, started + cfg.request_timeout);
  conn c(std::move(head), std::string(), remote);
  c.attach(&io, &out, keep_alive);
  c.attach_body(&body);
  std::string error;
  int client_error = 0;  // a body_error's status: the request was bad, not the handler
  try {
    co_await st.routes.dispatch(c);
  } catch (const body_error& e) {
    client_error = e.status();
    error = e.what();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "exception";
  } catch (...) {
    error = "unknown exception";
  }
  if (body.peer_gone()) co_return request_outcome::close;
  if (client_error) {
    if (c.state() == conn::resp_state::chunked) co_return request_outcome::close;  // the head is out: cut it short
    append_error(out, client_error, error);
    co_await close_gracefully(&io, std::move(out), cfg.write_timeout);
    co_return request_outcome::close;
  }
  // The body the handler left unread: dropped if short, else the connection closes after this
  // response (see body_reader.cpp).
  if (keep_alive && !body.done() && error.empty()) keep_alive = co_await body.discard_rest(kUnreadBodyLimit);
  if (!body.done()) keep_alive = false;
  const bool drain = body.drain_requested();
  if (drain || st.stopping.load(std::memory_order_acquire)) keep_alive = false;  // draining began meanwhile
  if (!error.empty()) {
    st.log(fmt::format("{} {} from {}: handler threw: {}", c.method(), c.path(), remote, error));
    if (c.state() == conn::resp_state::chunked) co_return request_outcome::close;  // the head is out: cut it short
    append_response(out, 500, {{"content-type", "text/plain; charset=utf-8"}}, "Internal Server Error\n", keep_alive,
                    http10, head_only);
  } else if (c.state() == conn::resp_state::chunked) {
    out += "0\r\n\r\n";
  } else if (!c.sent()) {
    st.log(fmt::format("{} {}: handler sent no response", c.method(), c.path()));
    append_response(out, 500, {{"content-type", "text/plain; charset=utf-8"}}, "Internal Server Error\n", keep_alive,
                    http10, head_only);
  } else {
    append_response(out, c.status(), c.resp_headers(), c.resp_body(), keep_alive, http10, head_only);
  }
  if (!keep_alive) {
    co_await close_gracefully(&io, std::move(out), cfg.write_timeout);
    co_return request_outcome::close;
  }
  if (out.size() > 65536) {
    bool ok = co_await io.write_all(std::move(out), cfg.write_timeout);
    out.clear();
    if (!ok) co_return request_outcome::close;
  }
  co_return drain ? request_outcome::drain : request_outcome::next;
}

// One connection, many requests.
proc connection_loop(std::shared_ptr<server_state> st, tcp_socket sock) {
  pid me = athanor::self();
  st->add_connection(me);
  detail::conn_guard guard(st, me);
  const server_config& cfg = st->cfg;
  detail::transport io(std::move(sock));
  if (st->tls) {
    bool ok = co_await io.tls_accept(st->tls->get(), cfg.request_timeout);
    if (!ok) co_return;
  }
  process& self = this_process();
  std::string remote = io.socket().peer_name();
  std::string in, out;
  bool draining = st->stopping.load();

  for (;;) {
    // ---- the head ----
    request_head head;
    parse_result pr;
    auto started = clock::now();
    for (;;) {
      pr = parse_request_head(in, cfg.limits, head);
      if (pr.status != parse_status::incomplete) break;
      if (!out.empty()) {
        bool ok = co_await io.write_all(std::move(out), cfg.write_timeout);
        out.clear();
        if (!ok) co_return;
      }
      // Idle between requests: whatever the last request needed goes back (bug: a keep-alive
      // connection kept the capacity of its largest request for its whole life).
      if (in.empty() && in.capacity() > kIdleBufferBytes) std::string().swap(in);
      if (out.capacity() > kIdleBufferBytes) std::string().swap(out);
      if (draining && in.empty()) co_return;
      milliseconds wait = in.empty() ? cfg.idle_timeout : until(started + cfg.request_timeout);
      detail::read_outcome r = co_await io.read(wait, athanor::detail::type_of<detail::drain_msg>());
      if (r.n > 0) {
        if (in.empty()) started = clock::now();
        in.append(r.data);
        continue;
      }
      if (r.eof) co_return;
      if (r.message) {
        co_await self.receive<detail::drain_msg>();
        draining = true;
        continue;
      }
      if (in.empty()) co_return;  // idle keep-alive connection: close quietly
      append_error(out, 408, "request not complete in time");
      co_await close_gracefully(&io, std::move(out), cfg.write_timeout);
      co_return;
    }
    if (pr.status == parse_status::error) {
      append_error(out, pr.http_status, pr.reason);
      co_await close_gracefully(&io, std::move(out), cfg.write_timeout);
      co_return;
    }
    std::size_t consumed = pr.consumed;
    bool keep_alive = head.keep_alive && !draining;
    if (head.bad_expect) {
      append_error(out, 417, "only 100-continue is supported");
      co_await close_gracefully(&io, std::move(out), cfg.write_timeout);
      co_return;
    }

    // ---- WebSocket upgrade ----
    if (head.method == "GET" && head.header_has_token("upgrade", "websocket")) {
      router::match_result m = st->routes.match("GET", head.path);
      if (m.kind == router::match_kind::found && m.route->ws) {
        in.erase(0, consumed);
        bool upgraded =
            co_await upgrade(st.get(), &io, &guard, &head, m.route, std::move(m.params), &remote, &in, &out);
        if (upgraded) co_return;
        co_await close_gracefully(&io, std::move(out), cfg.write_timeout);
        co_return;
      }
    }

    // ---- the request ----
    in.erase(0, consumed);
    request_outcome next = co_await serve_request(*st, io, in, out, std::move(head), started, remote, keep_alive);
    if (next == request_outcome::close) co_return;
    if (next == request_outcome::drain) draining = true;
    co_await self.consume(1);  // a pipelining client must not keep this scheduler to itself
  }
}

// Leaves the acceptor set when the acceptor ends, however it ends.
struct acceptor_registration {
  std::shared_ptr<server_state> st;
  pid me;
  ~acceptor_registration() {
    {
      std::lock_guard lock(st->mu);
      st->acceptors.erase(me);
    }
    st->cv.notify_all();
  }
};

proc acceptor_loop(std::shared_ptr<server_state> st, tcp_listener l) {
  pid me = athanor::self();
  {
    std::lock_guard lock(st->mu);
    st->acceptors.insert(me);
  }
  acceptor_registration reg{st, me};
  process& self = this_process();
  milliseconds backoff(10);
  unsigned burst = 0;
  while (!st->stopping.load(std::memory_order_acquire)) {
    int err = 0;
    const std::uint64_t spare_moves = st->spare_moves.load(std::memory_order_acquire);
    tcp_socket s = l.try_accept(err);
    if (err == EMFILE || err == ENFILE) {
      if (!st->fd_exhausted_logged.exchange(true)) {
        st->log(fmt::format("out of file descriptors ({}): refusing new connections with 503 until some close; "
                            "raise `ulimit -n`", err == EMFILE ? "EMFILE" : "ENFILE"));
      }
      // Spend the spare on one refusal: close it, accept into its slot, answer 503. The slot comes
      // back when the refusal closes (linger_refusal), or at the latest with the next successful
      // accept below, if something else took it meanwhile.
      bool refused_one = false;
      if (int spare = st->spare_fd.exchange(-1, std::memory_order_acq_rel); spare >= 0) {
        spare_slot_free freeing(*st);
        ::close(spare);
        int ignored = 0;
        if (tcp_socket t = l.try_accept(ignored); t.is_open()) {
          refuse(st, t, /*returns_spare=*/true);
          refused_one = true;
        } else {
          restore_spare(*st);
        }
      } else if (st->spare_lent.load(std::memory_order_acquire) == 0) {
        restore_spare(*st);  // taken by someone else: maybe free again
      }
      if (!refused_one) {
        // A lent spare comes back within kRefusalLinger: look again soon. A lost one comes back
        // only when some descriptor closes: back off.
        milliseconds wait = st->spare_lent.load(std::memory_order_acquire) > 0 ? milliseconds(5) : backoff;
        std::optional<detail::drain_msg> stop = co_await self.receive_for<detail::drain_msg>(wait);
        if (stop) break;
        if (wait == backoff) backoff = std::min(backoff * 2, milliseconds(1000));
      }
      continue;
    }
    if (err) {
      st->log(fmt::format("accept failed: {}", std::strerror(err)));
      std::optional<detail::drain_msg> stop = co_await self.receive_for<detail::drain_msg>(milliseconds(100));
      if (stop) break;
      continue;
    }
    if (!s.is_open()) {
      io_wait_result w = co_await io_wait_or_message<detail::drain_msg>(l.native_handle(), io_readable, milliseconds(-1));
      if (w == io_wait_result::message) break;
      continue;
    }
    backoff = milliseconds(10);
    // The spare first. This accept may have taken the spare's slot, if it overlapped a moment when
    // the slot was free (another acceptor spending the spare, a refusal giving it back); or the
    // spare may be missing because any other code of this OS process took its slot. Either way
    // this connection gives its slot up with a 503, and the slot becomes the spare again. Without
    // this rule two acceptors lost the spare for good (issue 12, bug 2).
    const std::uint64_t moves_now = st->spare_moves.load(std::memory_order_acquire);
    const bool took_spare_slot = (spare_moves & 1) != 0 || moves_now != spare_moves;
    if (took_spare_slot || (st->spare_fd.load(std::memory_order_acquire) < 0 &&
                            st->spare_lent.load(std::memory_order_acquire) == 0 && !restore_spare(*st))) {
      refuse(st, s, /*returns_spare=*/true);
      continue;
    }
    if (st->fd_exhausted_logged.load(std::memory_order_relaxed) && st->spare_fd.load() >= 0) {
      st->fd_exhausted_logged.store(false);
      st->log("file descriptors available again: accepting");
    }
    if (st->active.load(std::memory_order_acquire) >= st->cfg.max_connections) {
      refuse(st, s, /*returns_spare=*/false);
      continue;
    }
    st->active.fetch_add(1, std::memory_order_acq_rel);
    try {
      spawn([st, sock = std::move(s)](process&) mutable -> proc { return connection_loop(st, std::move(sock)); });
    } catch (const std::exception& e) {
      // Not counted by a guard yet: undo by hand. The socket closed with the closure.
      st->active.fetch_sub(1, std::memory_order_acq_rel);
      st->refused.fetch_add(1, std::memory_order_relaxed);
      st->log(std::string("cannot start a connection process: ") + e.what());
    }
    if (++burst % 64 == 0) co_await self.yield();  // accepting a flood must not starve the connections
  }
}

}  // namespace

server& server::operator=(server&& o) noexcept {
  if (this != &o) {
    if (s_) stop(std::chrono::milliseconds(0));
    s_ = std::move(o.s_);
  }
  return *this;
}

server::~server() {
  if (s_) stop(std::chrono::milliseconds(0));
}

std::uint16_t server::port() const noexcept { return s_ ? s_->port : 0; }
std::size_t server::connections() const noexcept { return s_ ? s_->active.load() : 0; }
std::size_t server::refused() const noexcept { return s_ ? s_->refused.load() : 0; }

std::size_t server::stop(std::chrono::milliseconds drain) {
  if (!s_) return 0;
  server_state& st = *s_;
  st.stopping.store(true, std::memory_order_release);
  auto deadline = clock::now() + drain;
  std::vector<pid> targets;
  for (;;) {
    {
      std::unique_lock lock(st.mu);
      if (st.connections.empty() && st.acceptors.empty() && st.active.load() == 0) return 0;
      targets.assign(st.acceptors.begin(), st.acceptors.end());
      targets.insert(targets.end(), st.connections.begin(), st.connections.end());
    }
    for (pid p : targets) athanor::send(p, detail::drain_msg{});
    std::unique_lock lock(st.mu);
    auto step = std::min(clock::now() + milliseconds(50), deadline);
    st.cv.wait_until(lock, step, [&] { return st.connections.empty() && st.acceptors.empty(); });
    if (clock::now() >= deadline) break;
  }
  std::size_t killed = 0;
  {
    std::unique_lock lock(st.mu);
    targets.assign(st.connections.begin(), st.connections.end());
    targets.insert(targets.end(), st.acceptors.begin(), st.acceptors.end());
  }
  for (pid p : targets) {
    athanor::exit(p, atoms::kill);
    ++killed;
  }
  std::unique_lock lock(st.mu);
  st.cv.wait_for(lock, std::chrono::seconds(5), [&] { return st.connections.empty() && st.acceptors.empty(); });
  return killed;
}

server listen(server_config cfg, router r) {
  auto st = std::make_shared<server_state>();
  st->cfg = std::move(cfg);
  st->routes = std::move(r);
  const server_config& c = st->cfg;
  if (c.tls) st->tls = std::make_unique<detail::tls_context>(c.tls->cert_file, c.tls->key_file);
  st->spare_fd.store(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  unsigned n = std::max(1u, c.acceptors);
  std::vector<tcp_listener> ls;
  ls.push_back(tcp_listener::listen(c.host, c.port, c.backlog, c.reuse_port));
  st->port = ls[0].port();
  for (unsigned i = 1; i < n; ++i) {
    ls.push_back(c.reuse_port ? tcp_listener::listen(c.host, st->port, c.backlog, true) : ls[0].duplicate());
  }
  for (auto& l : ls) {
    spawn([st, l = std::move(l)](process&) mutable -> proc { return acceptor_loop(st, std::move(l)); });
  }
  return server(st);
}

}  // namespace athanor::web
