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
// subscriber is the channel's pid with its connection's outbox. The registry is sharded by topic
// (16 shards, each a mutex over a hash map of topic -> subscriber list). A broadcast holds its
// shard's lock only to take a reference to the topic's list (a shared_ptr) and pushes with the
// lock released, so a fan-out to 10,000 clients (10-25 ms of pushes) delays no join or leave of
// any topic. Lists are copy-on-write: a join or leave changes the list in place when no broadcast
// holds it, and otherwise replaces it with a changed copy, leaving the broadcast its snapshot
// (joins during a fan-out pay one copy; the next ones are in place again). References are taken
// and dropped under the lock only, so under the lock use_count() is exact, and the lock orders a
// broadcast's reads of a list before a later in-place change. A leave is O(1): the last subscriber
// moves into its place (their order does not matter), its index kept by each subscription. A
// slow client does not slow a broadcast: its outbox refuses past its bound and cuts the connection
// (counted and logged by the server), as for any push.
//
// Memory per channel (a joined client is a socket process plus one process per topic; the issue's
// budget for both is 3 KiB). A channel's process keeps what its socket handed it (topic,
// join_ref, assigns, outbox) in its spawn closure, which lives as long as the process, and its
// coroutine (run_channel) keeps a reference to it, the user's channel object, its subscription
// and what a wait needs: the join and the message handling are plain functions, not inlined, so
// their temporaries do not sit in the frame for the channel's whole life (~330 bytes for closure
// and frame, from ~1,180). The join's params are dropped once join has run. A socket's channels
// are a vector, not two hash maps (a socket joins few topics).
//
// Rejected:
//   * Broadcasts through the channel processes (Phoenix without fastlane): a message per
//     subscriber per broadcast, and a JSON encoding each.
//   * Replies written by the socket process with ws::send(): the outbox and send() are not
//     ordered with each other, so a crash report could overtake the channel's last push.
//   * One registry lock: every join and leave would wait for the largest fan-out.
//   * Pushing under the shard's lock (as first done): every join and leave of the 1/16 of topics
//     in that shard waited for the whole fan-out, on a scheduler thread (42-96 ms measured).
//   * An immutable list copied on every join and leave (plain RCU): 10,000 joins to one topic
//     would copy O(n^2) subscribers; copy-on-write copies only while a broadcast holds the list.
//   * Checking use_count() with references dropped outside the lock: the count is read relaxed,
//     so nothing would order the broadcast's last reads before the writer's in-place change (a
//     data race, which TSan reports). Dropping under the lock costs a broadcast one more
//     uncontended lock.
//   * Finding a leaving subscriber by a scan: 10,000 clients closing at once would cost O(n^2).
//
// Invariants:
//   1. A topic maps to at most one live channel per socket; a second join replaces the first
//      (its process gets channel_close and answers phx_close with the old join_ref).
//   2. A channel is subscribed only while its process lives (the subscription is an object in
//      its frame, so a crash unsubscribes it too), and only after its join reply was queued. A
//      broadcast that took its snapshot before an unsubscribe may still push to that channel's
//      connection afterwards (the outbox is the connection's, shared, and refuses pushes once the
//      connection is closed), so a client can get a broadcast of a topic just after its
//      phx_close (the official client drops it: no channel of that topic is joined), or twice
//      around a quick leave and rejoin. Phoenix's fastlane has the same race (its dispatcher
//      sends to the transports it read from the registry, and a channel leaves the registry when
//      its process is gone), and so did this registry before (a channel unsubscribes as its
//      process ends, after its phx_close). Preventing it would mean unsubscribes waiting for
//      fan-outs, which is what this design removes. What a subscriber points to outlives any snapshot: the
//      outbox by shared ownership, its intercepts by static storage (intercepts_of<C>()).
//   3. Client frames naming a join_ref other than the topic's current one are dropped.
//   4. In a topic's current list, subscriber i's subscription holds i (changed under the lock).
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

// One subscriber of a topic. A broadcast may read it after its channel ended (it pushes to a
// snapshot of the list), so it holds nothing its channel owns: the outbox is shared, and the
// intercepts have static storage.
struct subscriber {
  pid who;
  ws_outbox out;
  const std::vector<std::string>* intercepts;  // intercepts_of<C>() or disconnect_only(): static
  // Its index in the topic's current list, kept in its subscription object: read and written
  // under the shard's lock only, and only through the current list (never through a snapshot).
  std::size_t* index;
};
using subscriber_list = std::vector<subscriber>;

// An intercepted broadcast, to the channel's process (handle_out).
struct channel_out {
  std::string event;
  term payload;
};

// Looks topics up by string_view (no std::string made per broadcast).
struct topic_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// A topic's list is shared by the registry and the broadcasts pushing to it: a broadcast takes a
// reference under the lock and pushes with the lock released; a subscribe or an unsubscribe
// changes the list in place if nobody else holds it, or replaces it with a changed copy if a
// broadcast does (copy-on-write). References are taken *and dropped* under the lock (snapshot), so
// under the lock use_count() is exact and the lock orders a broadcast's reads before a later
// writer's writes.
struct shard {
  std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<subscriber_list>, topic_hash, std::equal_to<>> topics;
};

constexpr std::size_t kShards = 16;
std::array<shard, kShards>& shards() {
  static std::array<shard, kShards> s;
  return s;
}
shard& shard_of(std::string_view topic) { return shards()[std::hash<std::string_view>{}(topic) % kShards]; }

// `list`, ready to change: copied first if a broadcast holds it. Under the shard's lock.
subscriber_list& writable(std::shared_ptr<subscriber_list>& list) {
  if (list.use_count() > 1) list = std::make_shared<subscriber_list>(*list);
  return *list;
}

void subscribe(std::string_view topic, subscriber x) {
  shard& s = shard_of(topic);
  std::lock_guard lock(s.mu);
  auto it = s.topics.find(topic);
  if (it == s.topics.end()) it = s.topics.emplace(std::string(topic), std::make_shared<subscriber_list>()).first;
  subscriber_list& list = writable(it->second);
  *x.index = list.size();
  list.push_back(std::move(x));
}

// Removes the subscriber whose index `index` holds: O(1), by moving the last one into its place.
void unsubscribe(std::string_view topic, const std::size_t* index) {
  shard& s = shard_of(topic);
  std::lock_guard lock(s.mu);
  auto it = s.topics.find(topic);
  if (it == s.topics.end()) return;
  if (it->second->size() == 1) {  // the last one: the topic goes (a broadcast holding it keeps it alive)
    s.topics.erase(it);
    return;
  }
  subscriber_list& list = writable(it->second);
  const std::size_t i = *index;
  if (i + 1 != list.size()) {
    list[i] = std::move(list.back());
    *list[i].index = i;
  }
  list.pop_back();
  if (list.capacity() >= 64 && list.size() <= list.capacity() / 4) list.shrink_to_fit();
}

// A broadcast's reference to a topic's list: taken and dropped under the shard's lock (see shard),
// read with the lock released. Empty if nobody subscribes.
class snapshot {
 public:
  snapshot(shard& s, std::string_view topic) : s_(s) {
    std::lock_guard lock(s.mu);
    auto it = s.topics.find(topic);
    if (it != s.topics.end()) list_ = it->second;
  }
  ~snapshot() {
    if (!list_) return;
    std::unique_lock lock(s_.mu);
    if (list_.use_count() > 1) {
      list_.reset();  // only a count changes
      return;
    }
    lock.unlock();  // the last reference: nobody else can reach the list, so it is freed unlocked
    list_.reset();
  }
  snapshot(const snapshot&) = delete;
  snapshot& operator=(const snapshot&) = delete;

  const subscriber_list* get() const noexcept { return list_.get(); }

 private:
  shard& s_;
  std::shared_ptr<subscriber_list> list_;
};

std::size_t fan_out(std::string_view topic, std::string_view event, const term& payload, pid except) {
  const bool binary = is_binary_payload(payload);
  const std::string text = binary ? encode_binary_broadcast(topic, event, payload.element(1).as_binary())
                                  : frame(term(atom("nil")), term(atom("nil")), topic, event, payload);  // once
  const snapshot subscribers(shard_of(topic), topic);
  if (!subscribers.get()) return 0;
  std::size_t n = 0;
  for (const subscriber& x : *subscribers.get()) {
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

// A subscription to `topic` for as long as this object lives (its owner's process, however it
// ends). `topic` must outlive it. Does not move: the registry keeps its subscriber's index here.
class subscription {
 public:
  subscription(std::string_view topic, pid who, ws_outbox out, const std::vector<std::string>* intercepts)
      : topic_(topic) {
    subscribe(topic_, subscriber{who, std::move(out), intercepts, &index_});
  }
  ~subscription() { unsubscribe(topic_, &index_); }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

 private:
  std::string_view topic_;
  std::size_t index_ = 0;  // under the shard's lock only
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

// What the socket's process hands a channel's process. Its spawn closure owns it, and a process's
// closure lives as long as the process and is destroyed after its frame (process.h; finish() in
// process.cpp), so the channel refers to it for its whole life and nothing in it is copied again.
struct channel_start {
  std::shared_ptr<socket_routes> routes;  // keeps *route alive
  const channel_route* route = nullptr;
  term params;  // the join's; released once join has run
  pid socket_pid;
  socket_core core;  // core.self is set when the channel starts
};

// Untracks, when destroyed, whatever process `p` tracks in Presence.
struct presence_guard {
  pid p;
  ~presence_guard() { presence::detail::untrack_process(p); }
};

// What a channel's process makes, in its frame (run_channel): members end in reverse order, so
// the channel is unsubscribed first, then its object destroyed, then its Presence entries
// untracked, however the process ends.
class channel_run {
 public:
  channel_run(channel_start& st, pid self) : st_(st), sock_(&st.core), untrack_at_end_{self} { st.core.self = self; }

  // Runs the channel's join and queues its reply. True if it joined (then it is subscribed).
  // (Not inlined, here and below: inlined into a coroutine, a function's temporaries would take
  // room in its frame for the process's whole life.)
  [[gnu::noinline]] bool join() {
    socket_core& core = st_.core;
    ch_ = st_.route->make();
    std::optional<join_reply> answer;
    try {
      answer.emplace(ch_->join(core.topic, st_.params, sock_));
    } catch (const std::exception& e) {
      logger::log("web", log_level::error, fmt::format("channel join of {} crashed: {}", core.topic, e.what()));
      answer.emplace(join_reply::error(map({{term("reason"), term("join crashed")}})));
    }
    st_.params = term();
    const term join_ref(core.join_ref);
    push_reply(core.out, join_ref, join_ref, core.topic, answer->is_ok() ? "ok" : "error", answer->response());
    if (!answer->is_ok()) return false;
    sub_.emplace(core.topic, core.self, core.out, st_.route->intercepts);
    return true;
  }

  // Handles one message. False when the channel is done.
  [[gnu::noinline]] bool handle(message& m) {
    socket_core& core = st_.core;
    const term join_ref(core.join_ref);
    if (auto* in = m.get_if<channel_in>()) {
      std::optional<in_reply> r = ch_->handle_in(in->event, in->payload, sock_);
      if (!r) r = in_reply::reply("error", map({{term("reason"), term("unhandled event")}}));
      if (r->has_reply()) push_reply(core.out, join_ref, in->ref, core.topic, r->status(), r->response());
      if (r->stops()) {
        core.out.push_text(frame(join_ref, join_ref, core.topic, "phx_close", map({})));
        ch_->terminate(r->reason(), sock_);
        return false;
      }
    } else if (auto* o = m.get_if<channel_out>()) {
      ch_->handle_out(o->event, o->payload, sock_);
    } else if (auto* leave = m.get_if<channel_leave>()) {
      core.out.push_text(reply_frame(join_ref, leave->ref, core.topic, "ok", map({})));
      core.out.push_text(frame(join_ref, join_ref, core.topic, "phx_close", map({})));
      ch_->terminate(tuple(atom("shutdown"), atom("left")), sock_);
      return false;
    } else if (m.get_if<channel_close>()) {
      core.out.push_text(frame(join_ref, join_ref, core.topic, "phx_close", map({})));
      ch_->terminate(tuple(atom("shutdown"), atom("replaced")), sock_);
      return false;
    } else if (auto* x = m.get_if<exit_signal>(); x && x->from == st_.socket_pid) {
      ch_->terminate(tuple(atom("shutdown"), atom("closed")), sock_);
      return false;
    } else {
      ch_->handle_info(m, sock_);
    }
    return true;
  }

 private:
  channel_start& st_;
  socket sock_;
  presence_guard untrack_at_end_;  // whatever this channel tracks leaves with it
  std::unique_ptr<channel_base> ch_;
  std::optional<subscription> sub_;
};

// A channel's process. Its frame holds a channel_run and what a wait needs; the message handling
// is in plain functions, so that their temporaries are not kept in the frame.
proc run_channel(process& self, channel_start& st) {
  channel_run ch(st, self.self());
  if (!ch.join()) co_return;
  for (;;) {
    message m = co_await self.receive_any();
    if (!ch.handle(m)) co_return;
  }
}

// ---- a socket's process ---------------------------------------------------------------------------

const std::vector<std::string>& disconnect_only() {
  static const std::vector<std::string> events{"disconnect"};
  return events;
}

// One of a socket's channel processes, until its exit signal comes: its topic and join_ref (for
// its phx_error if it crashes), and whether it is the topic's current channel (one replaced by a
// second join, or leaving, is not, and gets no more frames).
struct joined {
  std::string topic;
  std::string join_ref;
  pid channel;
  bool current;
};

// A socket's session: its channels, and the client's frames routed to them. A socket joins few
// topics, so they are a vector searched in order (two hash maps cost ~400 bytes per socket).
class socket_session {
 public:
  socket_session(std::shared_ptr<socket_routes> routes, ws_outbox out, term assigns, pid self)
      : routes_(std::move(routes)), out_(std::move(out)), assigns_(std::move(assigns)), self_(self) {
    // A socket with an id hears broadcasts to it; "disconnect" comes to this process.
    if (routes_->id) {
      if (std::optional<std::string> id = routes_->id(assigns_)) {
        id_ = std::move(*id);
        named_.emplace(id_, self_, out_, &disconnect_only());
      }
    }
  }

  // A frame from the client: text (JSON) or binary (§A.3). (Not inlined: see channel_run.)
  [[gnu::noinline]] void on_frame(const ws_message& frame) {
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
    joined* current = current_of(topic);
    if (event == "phx_join") {
      if (current) {  // a second join replaces the first (Phoenix's rule)
        send(current->channel, channel_close{});
        current->current = false;
      }
      join(std::move(msg.topic), null_join_ref ? std::string() : std::move(*msg.join_ref), ref, payload);
      return;
    }
    if (!current) {
      // Phoenix answers a leave of a topic not joined with ok, and anything else with an error.
      if (event == "phx_leave") {
        out_.push_text(reply_frame(join_ref, ref, topic, "ok", map({})));
      } else {
        out_.push_text(reply_frame(term(atom("nil")), ref, topic, "error", map({{term("reason"), term("unmatched topic")}})));
      }
      return;
    }
    if (!null_join_ref && join_ref.as_binary() != current->join_ref) return;  // stale: dropped
    if (event == "phx_leave") {
      send(current->channel, channel_leave{ref});
      current->current = false;
      return;
    }
    send(current->channel, channel_in{event, payload, ref});
  }

  // A channel process ended (its exit signal).
  [[gnu::noinline]] void on_exit(const exit_signal& x) {
    auto it = std::find_if(channels_.begin(), channels_.end(), [&](const joined& j) { return j.channel == x.from; });
    if (it == channels_.end()) return;
    joined gone = std::move(*it);
    if (it != channels_.end() - 1) *it = std::move(channels_.back());
    channels_.pop_back();
    if (!is_normal_end(x.reason)) {
      const term jr(gone.join_ref);
      out_.push_text(frame(jr, jr, gone.topic, "phx_error", map({{term("reason"), term("channel_crash")}})));
    }
  }

 private:
  joined* current_of(std::string_view topic) {
    for (joined& j : channels_) {
      if (j.current && j.topic == topic) return &j;
    }
    return nullptr;
  }

  void join(std::string topic, std::string join_ref, const term& ref, const term& params) {
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
    channels_.reserve(channels_.size() + 1);  // before the spawn: a channel started is a channel listed
    const pid ch = spawn(spawn_options{.link = true, .trap_exit = true},
                         [st = channel_start{routes_, route, params.is_map() ? params : map({}), self_,
                                             socket_core{topic, join_ref, assigns_, out_, pid()}}](
                             process& p) mutable -> proc { return run_channel(p, st); });
    channels_.push_back(joined{std::move(topic), std::move(join_ref), ch, true});
  }

  std::shared_ptr<socket_routes> routes_;
  ws_outbox out_;
  term assigns_;
  pid self_;
  std::vector<joined> channels_;
  std::string id_;                         // the socket's id (socket_handler::id), if it has one
  std::optional<subscription> named_;      // to id_: its "disconnect" broadcasts
};

// What the connect callback returned (ws::accepted()), taken out of the connection.
term take_assigns(ws& w) {
  term assigns = map({});
  if (auto* a = std::any_cast<term>(&w.accepted())) assigns = std::move(*a);
  w.accepted().reset();
  return assigns;
}

// Takes what the socket's channels and its id's broadcasts sent it: channel exits, and
// "disconnect". Only those: the connection's own doorbells are mail too, and taking one here
// would leave the outbox unflushed (ws_outbox). True if the socket must close. A coroutine of its
// own, so that its waits take room only while it runs (mail is rare), not in run_socket's frame
// for the connection's whole life.
task<bool> take_mail(process& self, socket_session& session) {
  while (std::optional<exit_signal> x = co_await self.receive_for<exit_signal>(std::chrono::milliseconds(0))) {
    session.on_exit(*x);
  }
  bool disconnect = false;
  while (std::optional<channel_out> o = co_await self.receive_for<channel_out>(std::chrono::milliseconds(0))) {
    disconnect |= o->event == "disconnect";
  }
  co_return disconnect;
}

proc run_socket(ws& w, std::shared_ptr<socket_routes> routes) {
  process& self = this_process();
  self.trap_exit(true);
  socket_session session(std::move(routes), w.outbox(), take_assigns(w), self.self());
  for (;;) {
    std::optional<ws_message> m = co_await w.receive_or_mail();
    if (!m) break;
    if (m->mailbox) {
      if (co_await take_mail(self, session)) break;
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

std::optional<std::string> auth_token(const ws_request& request) {
  constexpr std::string_view kPrefix = "base64url.bearer.phx.";
  for (std::string_view p : request.subprotocols) {
    if (p.substr(0, kPrefix.size()) == kPrefix) return base64_decode(p.substr(kPrefix.size()));
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
                               const std::vector<std::string>* intercepts) {
  routes_->routes.push_back(detail::channel_route{std::move(pattern), std::move(make), intercepts});
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
