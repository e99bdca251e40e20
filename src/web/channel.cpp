// Phoenix Channels over Athanor's WebSocket server (channel.h).
//
// Design
// ======
// Processes. A socket is the WebSocket connection's own process (the route's handler): it reads
// frames, answers heartbeats, and starts one process per joined topic, linked to it, both sides
// trapping exits. A channel's crash reaches the socket as an exit message, and the socket pushes
// `phx_error` (the client rejoins by itself); the socket's end reaches every channel the same way,
// and each runs its terminate and ends. This is Phoenix's shape (Phoenix.Socket and
// Phoenix.Channel.Server), and what makes a crash in one channel cost its client one rejoin and
// nothing else.
//
// Frames and their order. Everything a client receives goes through the connection's outbox
// (ws_outbox), the socket's own replies included: the outbox is one FIFO per connection, so a
// channel's pushes and its crash report (pushed by the socket after the exit signal, which comes
// after every push the channel made) arrive in the order they happened. A channel's frames are
// all made by its own process, so its join reply comes before anything it pushes.
//
// Broadcasts: the fastlane. A broadcast is serialized to JSON once ([null, null, topic, event,
// payload]: the same bytes for every subscriber, since a broadcast carries no join_ref) and queued
// to each subscriber's connection directly, without a hop through the channel processes; a
// subscription is the channel's pid with its connection's outbox. The registry is sharded by topic
// (16 shards, each a mutex over a hash map), so subscribing to one topic never waits for a
// fan-out to another. A slow client does not slow a broadcast: its outbox refuses past its bound
// and cuts the connection (counted and logged by the server), as for any push.
//
// Rejected:
//   * Broadcasts through the channel processes (Phoenix without fastlane): a message per
//     subscriber per broadcast, and a JSON encoding each.
//   * Replies written by the socket process with ws::send(): the outbox and send() are not
//     ordered with each other, so a crash report could overtake the channel's last push.
//   * One registry lock: every join and leave would wait for the largest fan-out.
//
// Invariants:
//   1. A topic maps to at most one live channel per socket; a second join replaces the first
//      (its process gets channel_close and answers phx_close with the old join_ref).
//   2. A channel is subscribed only while its process lives (the subscription is an object in
//      its frame, so a crash unsubscribes it too), and only after its join reply was queued.
//   3. Client frames naming a join_ref other than the topic's current one are dropped.
#include "athanor/web/channel.h"

#include <fmt/core.h>

#include <algorithm>
#include <any>
#include <array>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>

#include "athanor/runtime/logger.h"
#include "athanor/term/json.h"
#include "athanor/web/channel_message.h"
#include "athanor/web/http.h"
#include "athanor/web/presence.h"
#include "web/cluster_internal.h"
#include "web/server_state.h"
#include "web/socket_internal.h"

namespace athanor::web {

namespace detail {

struct socket_core {
  std::string topic;
  std::string join_ref;
  term assigns = map({});
  ws_outbox out;
  pid self;
};

bool channel_route::matches(std::string_view topic) const noexcept {
  if (!pattern.empty() && pattern.back() == '*') {
    const std::string_view prefix = std::string_view(pattern).substr(0, pattern.size() - 1);
    return topic.substr(0, prefix.size()) == prefix;
  }
  return topic == pattern;
}

namespace {

// ---- frames ---------------------------------------------------------------------------------


std::string frame(const term& join_ref, const term& ref, std::string_view topic, std::string_view event,
                  const term& payload) {
  return json::encode(list({join_ref, ref, term(std::string(topic)), term(std::string(event)), payload}));
}

std::string reply_frame(const term& join_ref, const term& ref, std::string_view topic, std::string_view status,
                        const term& response) {
  return frame(join_ref, ref, topic, "phx_reply",
               map({{term("status"), term(std::string(status))}, {term("response"), response}}));
}

// A reply, in a binary frame when its response is {binary, Bytes} (§A.3).
bool push_reply(const ws_outbox& out, const term& join_ref, const term& ref, std::string_view topic,
                std::string_view status, const term& response) {
  if (is_binary_payload(response)) {
    return out.push_binary(encode_binary_reply(join_ref.is_binary() ? join_ref.as_binary() : std::string_view(),
                                               ref.is_binary() ? ref.as_binary() : std::string_view(), topic, status,
                                               response.element(1).as_binary()));
  }
  return out.push_text(reply_frame(join_ref, ref, topic, status, response));
}

// ---- the local registry (PubSub's fastlane) ---------------------------------------------------

struct subscriber {
  pid who;
  ws_outbox out;
  const std::vector<std::string>* intercepts;  // its route's (alive while its channel is)
};

// An intercepted broadcast, to the channel's process (handle_out).
struct channel_out {
  std::string event;
  term payload;
};

struct shard {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<subscriber>> topics;
};

constexpr std::size_t kShards = 16;
std::array<shard, kShards>& shards() {
  static std::array<shard, kShards> s;
  return s;
}
shard& shard_of(std::string_view topic) { return shards()[std::hash<std::string_view>{}(topic) % kShards]; }

void subscribe(const std::string& topic, pid who, ws_outbox out, const std::vector<std::string>* intercepts) {
  shard& s = shard_of(topic);
  std::lock_guard lock(s.mu);
  s.topics[topic].push_back(subscriber{who, std::move(out), intercepts});
}

void unsubscribe(const std::string& topic, pid who) {
  shard& s = shard_of(topic);
  std::lock_guard lock(s.mu);
  auto it = s.topics.find(topic);
  if (it == s.topics.end()) return;
  std::erase_if(it->second, [&](const subscriber& x) { return x.who == who; });
  if (it->second.empty()) s.topics.erase(it);
}

std::size_t fan_out(std::string_view topic, std::string_view event, const term& payload, pid except) {
  const bool binary = is_binary_payload(payload);
  const std::string text = binary ? encode_binary_broadcast(topic, event, payload.element(1).as_binary())
                                  : frame(term(atom("nil")), term(atom("nil")), topic, event, payload);  // once
  shard& s = shard_of(topic);
  std::lock_guard lock(s.mu);
  auto it = s.topics.find(std::string(topic));
  if (it == s.topics.end()) return 0;
  std::size_t n = 0;
  for (const subscriber& x : it->second) {
    if (x.who == except) continue;
    if (!x.intercepts->empty() && std::find(x.intercepts->begin(), x.intercepts->end(), event) != x.intercepts->end()) {
      send(x.who, channel_out{std::string(event), payload});  // handle_out decides
      ++n;
      continue;
    }
    n += (binary ? x.out.push_binary(text) : x.out.push_text(text)) ? 1 : 0;
  }
  return n;
}

// Unsubscribes when the channel's process ends, however it ends (its frame is destroyed).
class subscription {
 public:
  subscription(std::string topic, pid who, ws_outbox out, const std::vector<std::string>* intercepts)
      : topic_(std::move(topic)), who_(who) {
    subscribe(topic_, who_, std::move(out), intercepts);
  }
  ~subscription() { unsubscribe(topic_, who_); }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

 private:
  std::string topic_;
  pid who_;
};

// ---- messages between a socket and its channels -----------------------------------------------

struct channel_in {
  std::string event;
  term payload;
  term ref;
};
struct channel_leave {
  term ref;
};
struct channel_close {};  // replaced by a second join of its topic

bool is_normal_end(const term& reason) {
  if (reason == term(atom("normal"))) return true;
  return reason.is_tuple() && reason.tuple_size() == 2 && reason.element(0) == term(atom("shutdown"));
}

// ---- a channel's process ------------------------------------------------------------------------

struct join_request {
  const channel_route* route;
  std::string topic;
  term params;
  std::string join_ref;
  term assigns;
  ws_outbox out;
  pid socket_pid;
};

proc run_channel(process& self, std::shared_ptr<socket_routes> keep, join_request rq) {
  (void)keep;  // keeps rq.route alive
  socket_core core{rq.topic, rq.join_ref, rq.assigns, rq.out, self.self()};
  socket s(&core);
  // Whatever this channel tracks in Presence leaves with it, however it ends.
  struct untrack_at_end {
    pid p;
    ~untrack_at_end() { presence::detail::untrack_process(p); }
  } presence_guard{self.self()};
  const term join_ref(rq.join_ref);
  std::unique_ptr<channel_base> ch = rq.route->make();
  std::optional<join_reply> answer;
  try {
    answer.emplace(ch->join(rq.topic, rq.params, s));
  } catch (const std::exception& e) {
    logger::log("web", log_level::error, fmt::format("channel join of {} crashed: {}", rq.topic, e.what()));
    answer.emplace(join_reply::error(map({{term("reason"), term("join crashed")}})));
  }
  push_reply(rq.out, join_ref, join_ref, rq.topic, answer->is_ok() ? "ok" : "error", answer->response());
  if (!answer->is_ok()) co_return;
  subscription sub(rq.topic, self.self(), rq.out, &rq.route->intercepts);
  for (;;) {
    message m = co_await self.receive_any();
    if (auto* in = m.get_if<channel_in>()) {
      std::optional<in_reply> r = ch->handle_in(in->event, in->payload, s);
      if (!r) r = in_reply::reply("error", map({{term("reason"), term("unhandled event")}}));
      if (r->has_reply()) push_reply(rq.out, join_ref, in->ref, rq.topic, r->status(), r->response());
      if (r->stops()) {
        rq.out.push_text(frame(join_ref, join_ref, rq.topic, "phx_close", map({})));
        ch->terminate(r->reason(), s);
        co_return;
      }
    } else if (auto* o = m.get_if<channel_out>()) {
      ch->handle_out(o->event, o->payload, s);
    } else if (auto* leave = m.get_if<channel_leave>()) {
      rq.out.push_text(reply_frame(join_ref, leave->ref, rq.topic, "ok", map({})));
      rq.out.push_text(frame(join_ref, join_ref, rq.topic, "phx_close", map({})));
      ch->terminate(tuple(atom("shutdown"), atom("left")), s);
      co_return;
    } else if (m.get_if<channel_close>()) {
      rq.out.push_text(frame(join_ref, join_ref, rq.topic, "phx_close", map({})));
      ch->terminate(tuple(atom("shutdown"), atom("replaced")), s);
      co_return;
    } else if (auto* x = m.get_if<exit_signal>(); x && x->from == rq.socket_pid) {
      ch->terminate(tuple(atom("shutdown"), atom("closed")), s);
      co_return;
    } else {
      ch->handle_info(m, s);
    }
  }
}

// ---- a socket's process ---------------------------------------------------------------------------

struct joined {
  std::string join_ref;
  pid channel;
};

class socket_session {
 public:
  socket_session(std::shared_ptr<socket_routes> routes, ws_outbox out, term assigns, pid self)
      : routes_(std::move(routes)), out_(std::move(out)), assigns_(std::move(assigns)), self_(self) {}

  // A text frame from the client.
  // A frame from the client: text (JSON) or binary (§A.3).
  void on_frame(const ws_message& frame) {
    channel_message msg;
    try {
      msg = frame.type == ws_opcode::text ? decode_channel_message(frame.data) : decode_channel_binary(frame.data);
    } catch (const channel_message_error& e) {
      logger::log("web", log_level::warning, fmt::format("channel socket: {}", e.what()));  // dropped, as Phoenix drops it
      return;
    }
    const term join_ref = msg.join_ref ? term(*msg.join_ref) : term(atom("nil"));
    const term ref = msg.ref ? term(*msg.ref) : term(atom("nil"));
    const std::string& topic = msg.topic;
    const std::string& event = msg.event;
    const term& payload = msg.payload;
    const bool null_join_ref = !msg.join_ref;

    if (topic == "phoenix" && event == "heartbeat") {
      out_.push_text(reply_frame(term(atom("nil")), ref, topic, "ok", map({})));
      return;
    }
    auto it = topics_.find(topic);
    if (event == "phx_join") {
      if (it != topics_.end()) {  // a second join replaces the first (Phoenix's rule)
        send(it->second.channel, channel_close{});
        topics_.erase(it);
      }
      join(topic, null_join_ref ? std::string() : std::string(join_ref.as_binary()), ref, payload);
      return;
    }
    if (it == topics_.end()) {
      // Phoenix answers a leave of a topic not joined with ok, and anything else with an error.
      if (event == "phx_leave") {
        out_.push_text(reply_frame(join_ref, ref, topic, "ok", map({})));
      } else {
        out_.push_text(reply_frame(term(atom("nil")), ref, topic, "error", map({{term("reason"), term("unmatched topic")}})));
      }
      return;
    }
    if (!null_join_ref && join_ref.as_binary() != it->second.join_ref) return;  // stale: dropped
    if (event == "phx_leave") {
      send(it->second.channel, channel_leave{ref});
      topics_.erase(it);
      return;
    }
    send(it->second.channel, channel_in{event, payload, ref});
  }

  // A channel process ended (its exit signal).
  void on_exit(const exit_signal& x) {
    auto p = by_pid_.find(x.from);
    if (p == by_pid_.end()) return;
    const std::string topic = std::move(p->second.first);
    const std::string join_ref = std::move(p->second.second);
    by_pid_.erase(p);
    auto it = topics_.find(topic);
    if (it != topics_.end() && it->second.channel == x.from) topics_.erase(it);
    if (!is_normal_end(x.reason)) {
      const term jr(join_ref);
      out_.push_text(frame(jr, jr, topic, "phx_error", map({{term("reason"), term("channel_crash")}})));
    }
  }

 private:
  void join(const std::string& topic, std::string join_ref, const term& ref, const term& params) {
    const channel_route* route = nullptr;
    for (const channel_route& r : routes_->routes) {
      if (r.matches(topic)) {
        route = &r;
        break;
      }
    }
    if (!route) {
      out_.push_text(reply_frame(term(atom("nil")), ref, topic, "error", map({{term("reason"), term("unmatched topic")}})));
      return;
    }
    // The client sends the join's ref as its join_ref; a join without one answers with its ref.
    if (join_ref.empty() && ref.is_binary()) join_ref = std::string(ref.as_binary());
    join_request rq{route, topic, params.is_map() ? params : map({}), join_ref, assigns_, out_, self_};
    const pid ch = spawn(spawn_options{.link = true, .trap_exit = true},
                         [keep = routes_, rq = std::move(rq)](process& p) mutable -> proc {
                           return run_channel(p, std::move(keep), std::move(rq));
                         });
    topics_[topic] = joined{join_ref, ch};
    by_pid_[ch] = {topic, join_ref};
  }

  std::shared_ptr<socket_routes> routes_;
  ws_outbox out_;
  term assigns_;
  pid self_;
  std::unordered_map<std::string, joined> topics_;
  std::unordered_map<pid, std::pair<std::string, std::string>> by_pid_;  // channel -> topic, join_ref
};

const std::vector<std::string>& disconnect_only() {
  static const std::vector<std::string> events{"disconnect"};
  return events;
}

proc run_socket(ws& w, std::shared_ptr<socket_routes> routes) {
  process& self = this_process();
  self.trap_exit(true);
  term assigns = map({});
  if (auto* a = std::any_cast<term>(&w.accepted())) assigns = *a;
  // A socket with an id hears broadcasts to it; "disconnect" comes to this process.
  std::optional<subscription> named;
  if (routes->id) {
    if (std::optional<std::string> id = routes->id(assigns)) named.emplace(*id, self.self(), w.outbox(), &disconnect_only());
  }
  socket_session session(std::move(routes), w.outbox(), std::move(assigns), self.self());
  for (;;) {
    std::optional<ws_message> m = co_await w.receive_or_mail();
    if (!m) break;
    if (m->mailbox) {
      // Only what channels and the id's broadcasts send: the connection's own doorbells are mail
      // too, and taking one here would leave the outbox unflushed (ws_outbox).
      while (std::optional<exit_signal> x = co_await self.receive_for<exit_signal>(std::chrono::milliseconds(0))) {
        session.on_exit(*x);
      }
      bool disconnect = false;
      while (std::optional<channel_out> o = co_await self.receive_for<channel_out>(std::chrono::milliseconds(0))) {
        disconnect |= o->event == "disconnect";
      }
      if (disconnect) break;
      continue;
    }
    session.on_frame(*m);
  }
  co_await w.close(ws_close::going_away);
}

// ---- a socket without a WebSocket (socket_internal.h) ----------------------------------------------

proc run_detached_socket(process& self, std::shared_ptr<socket_routes> routes, term assigns,
                         detached_socket_options opts) {
  using clock = std::chrono::steady_clock;
  using std::chrono::milliseconds;
  self.trap_exit(true);
  struct run_at_end {
    std::function<void()> f;
    ~run_at_end() {
      if (f) f();
    }
  } at_end{std::move(opts.at_end)};
  const ws_outbox out = detached_outbox::make(opts.max_outbox, self.self(), opts.peer, opts.path);
  struct seal_at_end {
    const ws_outbox& box;
    ~seal_at_end() { detached_outbox::seal(box); }  // pushes after the end are refused, not kept
  } sealer{out};
  if (opts.owner) monitor(opts.owner);
  std::optional<subscription> named;
  if (routes->id) {
    if (std::optional<std::string> id = routes->id(assigns)) named.emplace(*id, self.self(), out, &disconnect_only());
  }
  socket_session session(std::move(routes), out, std::move(assigns), self.self());

  std::optional<socket_poll> waiting;  // the poll held until a frame comes or its hold ends
  clock::time_point waiting_until{}, idle_since = clock::now();
  auto answer = [&](const socket_poll& poll, std::vector<ws_message> frames) {
    send(poll.from, socket_poll_answer{poll.id, std::move(frames)});
  };
  for (;;) {
    const clock::time_point now = clock::now();
    clock::time_point deadline = now + std::chrono::hours(1);
    if (waiting) deadline = waiting_until;
    else if (opts.idle_timeout) deadline = idle_since + *opts.idle_timeout;
    message m = co_await self.receive_any_for(
        std::max(milliseconds(0), std::chrono::ceil<milliseconds>(deadline - now)));
    if (!m) {  // a deadline passed
      if (waiting && clock::now() >= waiting_until) {
        answer(*waiting, {});
        waiting.reset();
        idle_since = clock::now();
      } else if (!waiting && opts.idle_timeout && clock::now() - idle_since >= *opts.idle_timeout) {
        break;  // the client went away without closing
      }
      continue;
    }
    if (auto* in = m.get_if<socket_frames_in>()) {
      for (const ws_message& f : in->frames) session.on_frame(f);
    } else if (auto* poll = m.get_if<socket_poll>()) {
      if (waiting) answer(*waiting, {});  // abandoned by its client
      waiting.reset();
      std::vector<ws_message> frames = detached_outbox::take(out);
      if (!frames.empty() || poll->hold.count() <= 0) {
        answer(*poll, std::move(frames));
        idle_since = clock::now();
      } else {
        waiting = *poll;
        waiting_until = clock::now() + poll->hold;
      }
    } else if (m.get_if<drain_msg>()) {
      if (detached_outbox::was_cut(out)) break;  // too slow a reader: logged by the push
      if (!waiting) {
        detached_outbox::rearm(out);  // the frames wait in the outbox for the next poll
        continue;
      }
      std::vector<ws_message> frames = detached_outbox::take(out);
      if (frames.empty()) continue;
      answer(*waiting, std::move(frames));
      waiting.reset();
      idle_since = clock::now();
    } else if (auto* x = m.get_if<exit_signal>()) {
      session.on_exit(*x);
    } else if (auto* o = m.get_if<channel_out>()) {
      if (o->event == "disconnect") break;
    } else if (auto* d = m.get_if<down>(); d && d->from == opts.owner) {
      break;
    } else if (m.get_if<socket_close>()) {
      break;
    }
  }
  // A waiting poll learns of the end from its monitor (LongPoll answers it 410).
}

}  // namespace

pid spawn_detached_socket(std::shared_ptr<socket_routes> routes, term assigns, detached_socket_options opts) {
  return spawn([routes = std::move(routes), assigns = std::move(assigns), opts = std::move(opts)](process& p) mutable -> proc {
    return run_detached_socket(p, std::move(routes), std::move(assigns), std::move(opts));
  });
}

term query_params(std::string_view query) {
  std::map<std::string, std::string> last;
  for (auto& [k, v] : parse_query(query)) last[k] = v;
  std::vector<std::pair<term, term>> entries;
  entries.reserve(last.size());
  for (auto& [k, v] : last) entries.emplace_back(term(k), term(v));
  return map(entries);
}

std::optional<std::string> decode_base64(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string bytes;
  bytes.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else return std::nullopt;
    acc = (acc << 6) | std::uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return bytes;
}

std::optional<std::string> auth_token(const ws_request& request) {
  constexpr std::string_view kPrefix = "base64url.bearer.phx.";
  for (std::string_view p : request.subprotocols) {
    if (p.substr(0, kPrefix.size()) == kPrefix) return decode_base64(p.substr(kPrefix.size()));
  }
  std::string_view header = request.header("x-phoenix-authtoken");
  if (!header.empty()) return std::string(header);
  return std::nullopt;
}

bool is_supported_vsn(const term& params) {
  const term* vsn = params.find(term("vsn"));
  return vsn && vsn->is_binary() && vsn->as_binary().substr(0, 2) == "2.";
}

std::optional<term> connect_socket(const socket_routes& routes, const term& params, const ws_request& request) {
  if (!routes.connect) return map({});
  const std::optional<std::string> token = auth_token(request);
  std::optional<term> got = routes.connect(connect_info{params, request, token});
  if (!got) return std::nullopt;
  return got->is_map() ? std::move(*got) : map({});
}

}  // namespace detail

// ---- public functions ------------------------------------------------------------------------------

const std::string& socket::topic() const noexcept { return core_->topic; }
pid socket::channel_pid() const noexcept { return core_->self; }
const term& socket::assigns() const noexcept { return core_->assigns; }
void socket::assign(term key, term value) {
  const auto old = core_->assigns.map_entries();
  std::vector<std::pair<term, term>> entries(old.begin(), old.end());
  entries.emplace_back(std::move(key), std::move(value));  // a key given twice keeps its last value
  core_->assigns = map(entries);
}

bool socket::push(std::string_view event, const term& payload) {
  if (is_binary_payload(payload)) {
    return core_->out.push_binary(encode_binary_push(core_->join_ref, core_->topic, event, payload.element(1).as_binary()));
  }
  const term jr(core_->join_ref);
  return core_->out.push_text(detail::frame(jr, term(atom("nil")), core_->topic, event, payload));
}

std::size_t socket::broadcast(std::string_view event, const term& payload) {
  const std::size_t n = detail::fan_out(core_->topic, event, payload, pid());
  detail::forward_broadcast(core_->topic, event, payload);
  return n;
}

std::size_t socket::broadcast_from(std::string_view event, const term& payload) {
  const std::size_t n = detail::fan_out(core_->topic, event, payload, core_->self);
  detail::forward_broadcast(core_->topic, event, payload);
  return n;
}

std::size_t broadcast(std::string_view topic, std::string_view event, const term& payload) {
  const std::size_t n = detail::fan_out(topic, event, payload, pid());
  detail::forward_broadcast(topic, event, payload);
  return n;
}

std::size_t detail::local_broadcast(std::string_view topic, std::string_view event, const term& payload, pid except) {
  return fan_out(topic, event, payload, except);
}

socket_handler::socket_handler(std::string path) : routes_(std::make_shared<detail::socket_routes>()) {
  routes_->path = std::move(path);
}

void socket_handler::add_route(std::string pattern, std::function<std::unique_ptr<detail::channel_base>()> make,
                               std::vector<std::string> intercepts) {
  routes_->routes.push_back(detail::channel_route{std::move(pattern), std::move(make), std::move(intercepts)});
}

socket_handler& socket_handler::connect(connect_fn f) {
  routes_->connect = std::move(f);
  return *this;
}

socket_handler& socket_handler::id(std::function<std::optional<std::string>(const term&)> f) {
  routes_->id = std::move(f);
  return *this;
}

socket_handler& socket_handler::longpoll(bool enabled) {
  routes_->longpoll = enabled;
  return *this;
}

socket_handler& socket_handler::check_origin(std::vector<std::string> origins) {
  routes_->origins = std::move(origins);
  return *this;
}

socket_handler& endpoint::socket(std::string path) {
  sockets_.push_back(std::make_unique<socket_handler>(std::move(path)));
  return *sockets_.back();
}

void endpoint::mount(router& r) const {
  for (const auto& s : sockets_) {
    std::shared_ptr<detail::socket_routes> routes = s->routes();
    ws_options opts;
    opts.permessage_deflate = false;            // Phoenix's default (compress: false): no zlib state per socket
    opts.allowed_origins = routes->origins;
    opts.idle_timeout = std::chrono::seconds(60);  // Phoenix's: two of the client's 30 s heartbeats
    opts.accept = [routes](const ws_request& req) -> ws_accept {
      ws_accept a;
      const term params = detail::query_params(req.query);
      if (!detail::is_supported_vsn(params)) {
        a.refuse_status = 403;
        a.refuse_body = "unsupported vsn";
        return a;
      }
      std::optional<term> assigns = detail::connect_socket(*routes, params, req);
      if (!assigns) {
        a.refuse_status = 403;
        a.refuse_body = "connection refused";
        return a;
      }
      for (std::string_view p : req.subprotocols) {
        if (p == "phoenix") a.subprotocol = "phoenix";  // offered with an auth token: must be chosen
      }
      a.state = std::move(*assigns);
      return a;
    };
    r.websocket(routes->path + "/websocket", [routes](ws& w) -> proc { return detail::run_socket(w, routes); },
                std::move(opts));
    if (routes->longpoll) detail::mount_longpoll(r, routes);
  }
}

}  // namespace athanor::web
