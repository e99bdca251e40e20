// Phoenix's LongPoll transport for channel sockets (phoenix.js LongPoll; spec: the protocol notes,
// §A.7), for clients whose WebSocket cannot get through.
//
// Design
// ======
// A LongPoll socket is a session process (socket_internal.h: the same socket_session a WebSocket
// runs, with a detached outbox) named by a random token. Requests are short-lived HTTP requests
// on whatever connection the client uses, each served by that connection's process:
//   * GET without a live session's token opens one (the connect callback runs, as on a WebSocket
//     upgrade) and answers 410 with its token: the client's "open".
//   * GET with a token is a poll: it asks the session for its queued frames and waits, holding the
//     request up to kWindow (10 s, Phoenix's window_ms) for a first frame; 204 if none came.
//   * POST with a token carries the client's frames, ndjson (one frame a line; a line not
//     starting with '[' is a base64 binary frame), handed to the session in order: the client
//     sends its next batch only after this one's answer.
// Every answer is HTTP 200 with the logical status in the JSON body, as the client expects.
//
// Invariants:
//   1. A token names one session; it is random (128 bits from OpenSSL's CSPRNG), so it cannot be
//      guessed, and it leaves the registry when its session ends, however it ends.
//   2. A session ends when its client stops polling for kWindow with no poll waiting (the client
//      went away: LongPoll has no close), on a `disconnect` to its socket id, or when a poll is
//      not taken fast enough for its outbox's bound (a cut, as on a WebSocket).
//   3. A poll answers with every frame queued, in order; frames are taken from the outbox only by
//      a poll that answers with them, so none is lost between polls.
// Rejected: signing the session's pid into the token (Phoenix.Token) — a registry of random
// tokens needs no secret and cannot be replayed after the session ends.
#include <openssl/rand.h>

#include <fmt/core.h>

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "athanor/term/json.h"
#include "web/server_state.h"
#include "web/socket_internal.h"

namespace athanor::web::detail {

namespace {

using std::chrono::milliseconds;

constexpr milliseconds kWindow(10'000);  // Phoenix's window_ms: a poll's hold, and the idle limit

// token -> session. Thread-safe: requests of one session may be served by any scheduler thread.
class session_registry {
 public:
  void add(const std::string& token, pid session) {
    std::lock_guard lock(mu_);
    sessions_[token] = session;
  }
  void remove(const std::string& token) {
    std::lock_guard lock(mu_);
    sessions_.erase(token);
  }
  pid find(const std::string& token) const {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(token);
    return it == sessions_.end() ? pid() : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, pid> sessions_;
};

session_registry& registry() {
  static session_registry r;
  return r;
}

std::string new_token() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("longpoll: OpenSSL's CSPRNG failed (RAND_bytes)");
  std::string token;
  token.reserve(2 * sizeof bytes);
  for (unsigned char b : bytes) token += fmt::format("{:02x}", b);
  return token;
}

// The answer's body: {"status":S} or, for a poll, {"status":S,"token":T,"messages":[...]}.
void answer(conn& c, int status, const std::string* token = nullptr, const std::vector<std::string>* messages = nullptr) {
  std::vector<std::pair<term, term>> body{{term("status"), term(status)}};
  if (token) body.emplace_back(term("token"), term(*token));
  if (token) {  // a poll's answer (410, 204 or 200) always lists its messages, maybe none
    std::vector<term> items;
    if (messages) {
      items.reserve(messages->size());
      for (const std::string& m : *messages) items.emplace_back(m);
    }
    body.emplace_back(term("messages"), list(items));
  }
  c.json(200, json::encode(map(body)));
}

// The session token: the query's `token` (the last one: the client appends its own last) or
// the x-phoenix-longpoll-token header.
std::string token_of(conn& c) {
  std::string token;
  for (const auto& [k, v] : c.query_params())
    if (k == "token") token = v;
  if (token.empty()) token = std::string(c.header("x-phoenix-longpoll-token"));
  return token;
}

// Phoenix's check_origin: a request without an Origin passes (browsers send none on same-origin
// GETs); one with an Origin must be in the list, when there is a list.
bool origin_allowed(const socket_routes& routes, conn& c) {
  if (routes.origins.empty()) return true;
  std::string_view origin = c.header("origin");
  if (origin.empty()) return true;
  for (const std::string& o : routes.origins)
    if (o == origin) return true;
  return false;
}

void cors(conn& c) {
  std::string_view origin = c.header("origin");
  c.put_header("access-control-allow-origin", origin.empty() ? "*" : std::string(origin));
  c.put_header("access-control-allow-credentials", "true");
}

// A new session: runs the connect callback and answers 410 with the token (or 403).
void open_session(conn& c, const std::shared_ptr<socket_routes>& routes) {
  const term params = query_params(c.query_string());
  if (!is_supported_vsn(params)) return answer(c, 403);
  const ws_request request(c.head(), c.path_params(), c.remote());
  std::optional<term> assigns = connect_socket(*routes, params, request);
  if (!assigns) return answer(c, 403);
  const std::string token = new_token();
  detached_socket_options opts;
  opts.idle_timeout = kWindow;
  opts.peer = c.remote();
  opts.path = routes->path + "/longpoll";
  // The session takes its token out of the registry as it ends, however it ends (a pid is
  // reused later: the token must not name it then).
  opts.at_end = [token] { registry().remove(token); };
  const pid session = spawn_detached_socket(routes, std::move(*assigns), std::move(opts));
  registry().add(token, session);
  answer(c, 410, &token);
}

task<void> poll(conn& c, std::shared_ptr<socket_routes> routes) {
  cors(c);
  if (!origin_allowed(*routes, c)) co_return answer(c, 403);
  const std::string token = token_of(c);
  const pid session = token.empty() ? pid() : registry().find(token);
  if (!session) co_return open_session(c, routes);
  process& self = this_process();
  static std::atomic<std::uint64_t> next_id{1};
  const std::uint64_t id = next_id.fetch_add(1, std::memory_order_relaxed);
  const ref watch = monitor(session);
  send(session, socket_poll{self.self(), id, kWindow});
  std::vector<ws_message> frames;
  // The session answers within kWindow; the slack covers a busy scheduler. A down (or no answer
  // at all) means the session is gone, and a stopping server ends the wait: 410, and the client
  // reconnects and rejoins.
  const bool answered = co_await self.receive(
      on<socket_poll_answer>([id](const socket_poll_answer& a) { return a.id == id; },
                             [&frames](socket_poll_answer& a) {
                               frames = std::move(a.frames);
                               return true;
                             }),
      on<down>([watch](const down& d) { return d.monitor == watch; }, [](const down&) { return false; }),
      // The server is stopping: answer now rather than hold the request through its drain (the
      // client reconnects, to this server once it is back or to another).
      on<drain_msg>([](const drain_msg&) { return false; }),
      after(kWindow + milliseconds(5'000), [] { return false; }));
  (void)demonitor(watch, true);
  if (!answered) co_return answer(c, 410, &token);
  if (frames.empty()) co_return answer(c, 204, &token);
  std::vector<std::string> messages;
  messages.reserve(frames.size());
  for (ws_message& f : frames) {
    if (f.type == ws_opcode::text) {
      messages.push_back(std::move(f.data));
    } else {
      // The client cannot take binary frames over LongPoll (it decodes every message as JSON).
      logger::log("web", log_level::warning,
                  fmt::format("LongPoll client {} on {}: a binary push was dropped (LongPoll carries text only)",
                              c.remote(), routes->path));
    }
  }
  answer(c, 200, &token, &messages);
}

task<void> post(conn& c, std::shared_ptr<socket_routes> routes) {
  cors(c);
  if (!origin_allowed(*routes, c)) co_return answer(c, 403);
  const std::string token = token_of(c);
  const pid session = token.empty() ? pid() : registry().find(token);
  if (!session) co_return answer(c, 410);
  const std::string_view body = co_await c.read_body();
  std::optional<std::vector<ws_message>> frames = longpoll_frames(c.header("content-type"), body);
  if (!frames) co_return answer(c, 400);  // the client treats it as an error and reconnects
  // In order: the client sends its next batch only after this answer.
  send(session, socket_frames_in{std::move(*frames)});
  answer(c, 200);
}

}  // namespace

std::optional<std::vector<ws_message>> longpoll_frames(std::string_view content_type, std::string_view body) {
  std::vector<ws_message> frames;
  if (content_type.substr(0, 20) != "application/x-ndjson") {
    frames.push_back(ws_message::text(std::string(body)));
    return frames;
  }
  while (!body.empty()) {
    const std::size_t nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (frames.size() == kMaxLongPollBatch) return std::nullopt;
    if (line.front() == '[') {
      frames.push_back(ws_message::text(std::string(line)));
    } else if (std::optional<std::string> bytes = base64_decode(line)) {
      frames.push_back(ws_message::binary(std::move(*bytes)));
    } else {
      return std::nullopt;
    }
  }
  return frames;
}

void mount_longpoll(router& r, std::shared_ptr<socket_routes> routes) {
  const std::string path = routes->path + "/longpoll";
  r.get(path, [routes](conn& c) -> task<void> { return poll(c, routes); });
  r.post(path, [routes](conn& c) -> task<void> { return post(c, routes); });
  r.route("OPTIONS", path, [](conn& c) {
    cors(c);
    c.put_header("access-control-allow-headers", "x-requested-with, content-type, authorization, x-phoenix-authtoken");
    c.put_header("access-control-allow-methods", "GET, POST, OPTIONS");
    c.text(200, "");
  });
}

}  // namespace athanor::web::detail
