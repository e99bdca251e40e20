// athanor::web channels: Phoenix Channels on Athanor's WebSocket server, wire-compatible with the
// official `phoenix` JavaScript client (V2 JSON serializer, vsn 2.0.0). A browser written against
// Phoenix cannot tell the server is not Phoenix.
//
//   struct room : web::channel<room> {
//     web::join_reply join(std::string_view topic, const term& params, web::socket& s) {
//       const term* user = params.find(term("user"));
//       if (!user) return web::join_reply::error(map({{term("reason"), term("user required")}}));
//       s.assign(atom("user"), *user);
//       return web::join_reply::ok();
//     }
//     web::in_reply handle_in(std::string_view event, const term& payload, web::socket& s) {
//       if (event == "new_msg") s.broadcast("new_msg", payload);
//       return web::in_reply::noreply();
//     }
//   };
//   web::endpoint ep;
//   ep.socket("/socket").channel<room>("room:*");
//   router r;
//   ep.mount(r);                       // GET /socket/websocket, GET+POST /socket/longpoll
//
// Model (what Phoenix does, and what a Phoenix user expects):
//   * one process per socket (the WebSocket connection's), and one process per joined channel,
//     linked to its socket's process: a channel that crashes gives its client `phx_error` (the
//     client rejoins by itself), and a socket that closes ends its channels;
//   * a channel type C is constructed per join in the channel's process; its member functions run
//     there, one message at a time (join, handle_in, handle_info, terminate), so C needs no locks;
//   * every frame of one channel (its join reply, replies, pushes, phx_close) is written by its own
//     process, in the order made; broadcasts go out by the fastlane: serialized to JSON once, and
//     the same frame queued to every subscriber's connection, with no hop through the channel
//     processes (Phoenix's fastlane);
//   * topics match a channel by exact name, or by a pattern ending in `*` ("room:*").
//
// Thread-safety: endpoint is built, then mounted, on one thread; after mount() it is read only
// and shared by all sockets. A socket is used by its channel's process only. broadcast() and
// pubsub functions may be called from any process or thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "athanor/runtime/process.h"
#include "athanor/term/term.h"
#include "athanor/web/router.h"
#include "athanor/web/websocket.h"

namespace athanor::web {

// A join's answer: ok with a response (an object, `{}` by default), or an error with one
// (by convention `{"reason": "..."}`); the client's join().receive("ok"|"error", cb) gets it.
class join_reply {
 public:
  static join_reply ok(term response = map({})) { return join_reply(true, std::move(response)); }
  static join_reply error(term response) { return join_reply(false, std::move(response)); }
  bool is_ok() const noexcept { return ok_; }
  const term& response() const noexcept { return response_; }

 private:
  join_reply(bool ok, term response) : ok_(ok), response_(std::move(response)) {}
  bool ok_;
  term response_;
};

// handle_in's answer, Phoenix's {:reply, {status, response}, socket} / {:noreply, socket} /
// {:stop, reason, socket}: a reply to the push (any status string; the client's
// push.receive(status, cb) gets it), none, or the end of the channel (the client gets
// phx_close, after the reply if there is one).
class in_reply {
 public:
  static in_reply reply(std::string status, term response = map({})) {
    return in_reply(kind::reply, std::move(status), std::move(response), term());
  }
  static in_reply ok(term response = map({})) { return reply("ok", std::move(response)); }
  static in_reply noreply() { return in_reply(kind::none, {}, term(), term()); }
  // Ends the channel with `reason` (normal, or {shutdown, _}: no error is logged), after
  // replying `status`/`response` if `status` is not empty.
  static in_reply stop(term reason, std::string status = {}, term response = map({})) {
    return in_reply(kind::stop, std::move(status), std::move(response), std::move(reason));
  }

  bool has_reply() const noexcept { return !status_.empty(); }
  bool stops() const noexcept { return kind_ == kind::stop; }
  const std::string& status() const noexcept { return status_; }
  const term& response() const noexcept { return response_; }
  const term& reason() const noexcept { return reason_; }

 private:
  enum class kind { reply, none, stop };
  in_reply(kind k, std::string status, term response, term reason)
      : kind_(k), status_(std::move(status)), response_(std::move(response)), reason_(std::move(reason)) {}
  kind kind_;
  std::string status_;
  term response_;
  term reason_;
};

namespace detail {
struct socket_core;
}

// A joined channel's view of its client (Phoenix.Socket inside a channel). Owned by the channel's
// process; its functions may be called only from there.
class socket {
 public:
  // The topic this channel joined ("room:lobby").
  const std::string& topic() const noexcept;
  // The channel's process (what Presence tracks; messages sent to it reach handle_info).
  pid channel_pid() const noexcept;
  // What the socket's connect callback assigned, plus what this channel assigned since
  // (Phoenix's socket.assigns), as a map; an empty map at first.
  const term& assigns() const noexcept;
  void assign(term key, term value);

  // Payloads are maps (JSON objects), or {binary, <<Bytes>>} (binary_payload(), channel_message.h)
  // for a binary frame, as Phoenix's {:binary, data}; replies likewise.
  // Sends `event` with `payload` to this client only (Phoenix.Channel.push/3). Returns
  // false if the connection is gone or refused it (it is then closed: see ws_outbox).
  bool push(std::string_view event, const term& payload);
  // Sends `event` with `payload` to every client joined to this topic, this one included
  // (broadcast/3), or every one but this one (broadcast_from/3), on every node of the cluster
  // (see web::broadcast). Returns how many of this node's clients got it.
  std::size_t broadcast(std::string_view event, const term& payload);
  std::size_t broadcast_from(std::string_view event, const term& payload);

  // Internal.
  explicit socket(detail::socket_core* core) noexcept : core_(core) {}

 private:
  detail::socket_core* core_;
};

// Sends `event` with `payload` to every client joined to `topic`, from anywhere (Phoenix's
// Endpoint.broadcast/3): on this node, and on every node of the cluster once pubsub.h's relay
// runs (one message per node). The frame is serialized once per node. Returns how many of this
// node's clients got it. Throws json::json_error if payload has no JSON form.
std::size_t broadcast(std::string_view topic, std::string_view event, const term& payload);

// Optional base for channel types (`struct room : channel<room>`): documents the interface. A
// channel type C must be default-constructible and have
//   join_reply join(std::string_view topic, const term& params, socket& s);
// and may have
//   in_reply handle_in(std::string_view event, const term& payload, socket& s);
//     (without one, every push is answered with an error reply {"reason": "unhandled event"})
//   void handle_info(message& m, socket& s);        messages sent to the channel's process
//   void terminate(const term& reason, socket& s);  when the channel ends for any reason but a crash
//   static inline const std::vector<std::string> intercepts{"event", ...};
//   void handle_out(std::string_view event, const term& payload, socket& s);
//     (Phoenix's intercept/handle_out: broadcasts of the intercepted events reach this channel's
//     process instead of going straight to its client, and handle_out decides what, if anything,
//     to push. Each intercepted broadcast costs a message per subscriber and an encoding per push,
//     which the fastlane avoids: intercept only what must differ per client.)
template <class C>
struct channel {};

namespace detail {

// The type-erased channel a route makes for each join.
class channel_base {
 public:
  virtual ~channel_base() = default;
  virtual join_reply join(std::string_view topic, const term& params, socket& s) = 0;
  virtual std::optional<in_reply> handle_in(std::string_view event, const term& payload, socket& s) = 0;
  virtual void handle_info(message& m, socket& s) = 0;
  virtual void terminate(const term& reason, socket& s) = 0;
  virtual void handle_out(std::string_view event, const term& payload, socket& s) = 0;
};

template <class C>
class channel_model final : public channel_base {
 public:
  join_reply join(std::string_view topic, const term& params, socket& s) override { return c_.join(topic, params, s); }
  std::optional<in_reply> handle_in(std::string_view event, const term& payload, socket& s) override {
    if constexpr (requires { c_.handle_in(event, payload, s); }) {
      return c_.handle_in(event, payload, s);
    } else {
      return std::nullopt;
    }
  }
  void handle_info(message& m, socket& s) override {
    if constexpr (requires { c_.handle_info(m, s); }) c_.handle_info(m, s);
  }
  void terminate(const term& reason, socket& s) override {
    if constexpr (requires { c_.terminate(reason, s); }) c_.terminate(reason, s);
  }
  void handle_out(std::string_view event, const term& payload, socket& s) override {
    if constexpr (requires { c_.handle_out(event, payload, s); }) {
      c_.handle_out(event, payload, s);
    } else {
      s.push(event, payload);  // intercepted without a handle_out: pushed unchanged
    }
  }

 private:
  C c_;
};

// C's intercepted events (C::intercepts, if it has any): one list per channel type, for the life
// of the program, because a broadcast may still read a subscriber's list a moment after its
// channel ended and its endpoint was destroyed (channel.cpp, "Broadcasts").
template <class C>
const std::vector<std::string>& intercepts_of() {
  static const std::vector<std::string> events = [] {
    std::vector<std::string> v;
    if constexpr (requires { C::intercepts; }) {
      for (const auto& e : C::intercepts) v.emplace_back(e);
    }
    return v;
  }();
  return events;
}

struct channel_route {
  std::string pattern;  // "room:*" (a prefix) or an exact topic
  std::function<std::unique_ptr<channel_base>()> make;
  const std::vector<std::string>* intercepts;  // intercepts_of<C>()
  bool matches(std::string_view topic) const noexcept;
};

struct socket_routes;
}  // namespace detail

// What a socket's connect callback sees: the connect params (the query string's keys, the last
// of a repeated key winning, as Plug reads them; `vsn` included), the request (the WebSocket
// upgrade, or the LongPoll request that opens the session) and the client's auth token.
struct connect_info {
  const term& params;       // a map of binary keys to binary values
  const ws_request& request;
  // The client's authToken option (phoenix.js `new Socket(url, {authToken})`), decoded: sent as
  // the `base64url.bearer.phx.` subprotocol over WebSocket, the x-phoenix-authtoken header over
  // LongPoll (Phoenix's connect_info auth_token). nullopt if the client sent none.
  std::optional<std::string> auth_token = std::nullopt;
};

// A socket's connect callback (Phoenix's UserSocket.connect/3): the socket's assigns (a map), or
// nullopt to refuse the connection (HTTP 403).
using connect_fn = std::function<std::optional<term>(const connect_info&)>;

// A socket endpoint's channels and connect callback (Phoenix's UserSocket). Built before mount().
class socket_handler {
 public:
  // Routes topics matching `pattern` ("room:*", or an exact topic) to channel type C. Patterns are
  // tried in the order given.
  template <class C>
  socket_handler& channel(std::string pattern) {
    static_assert(std::is_default_constructible_v<C>, "a channel type is constructed for every join");
    add_route(std::move(pattern), [] { return std::unique_ptr<detail::channel_base>(new detail::channel_model<C>()); },
              &detail::intercepts_of<C>());
    return *this;
  }
  // Sets the connect callback; without one every connection is accepted with empty assigns.
  socket_handler& connect(connect_fn f);
  // Whether the LongPoll transport (path + "/longpoll") is served too; on by default, so that a
  // client whose WebSocket is blocked (a proxy, or phoenix.js's longPollFallbackMs) still connects.
  socket_handler& longpoll(bool enabled);
  // Origins (scheme://host[:port]) allowed to connect; empty: any (check_origin: false).
  socket_handler& check_origin(std::vector<std::string> origins);
  // Names each socket from its assigns (Phoenix's UserSocket.id/1; nullopt: anonymous). A
  // broadcast of "disconnect" to that name (web::broadcast(id, "disconnect", map({}))) closes
  // every socket of that id (1001; their channels end, and the client reconnects, through the
  // connect callback again): how a user is logged out everywhere.
  socket_handler& id(std::function<std::optional<std::string>(const term& assigns)> f);

  // Internal.
  explicit socket_handler(std::string path);
  const std::shared_ptr<detail::socket_routes>& routes() const noexcept { return routes_; }

 private:
  void add_route(std::string pattern, std::function<std::unique_ptr<detail::channel_base>()> make,
                 const std::vector<std::string>* intercepts);
  std::shared_ptr<detail::socket_routes> routes_;
};

// Phoenix's Endpoint, for its sockets: declares them, then mounts them on a router.
class endpoint {
 public:
  // Declares a socket at `path` ("/socket"): its transports are `path` + "/websocket" and, unless
  // turned off with socket_handler::longpoll(false), `path` + "/longpoll".
  socket_handler& socket(std::string path);
  // Adds every declared socket's routes to `r`. Call once, after declaring.
  void mount(router& r) const;

 private:
  std::vector<std::unique_ptr<socket_handler>> sockets_;
};

}  // namespace athanor::web
