// A channel socket without a WebSocket of its own: the process that runs a socket's session
// (channel.cpp) for the LongPoll transport (longpoll.cpp) and for tests (channel_test.cpp).
// Internal to the web part.
//
// The session process owns the socket's outbox (a detached_outbox: bounded and cut like a
// connection's). Frames from the client reach it as socket_frames_in; what it sends the client
// is taken by polls (socket_poll), each answered once with socket_poll_answer: at once if frames
// are queued, else when the first arrives or the poll's hold time ends (then with none). A poll
// that arrives while another waits answers the older one empty (LongPoll's clients poll one at a
// time; a second poll means the first was abandoned).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "athanor/runtime/process.h"
#include "athanor/term/term.h"
#include "athanor/web/channel.h"
#include "athanor/web/websocket.h"

namespace athanor::web::detail {

// A socket_handler's settings, shared by its transports and sessions (read only after mount()).
struct socket_routes {
  std::string path;
  std::vector<channel_route> routes;
  connect_fn connect;
  std::vector<std::string> origins;
  std::function<std::optional<std::string>(const term&)> id;
  bool longpoll = true;
};

struct socket_frames_in {
  std::vector<ws_message> frames;  // text (JSON) or binary, in the client's order
};
struct socket_poll {
  pid from;
  std::uint64_t id;
  std::chrono::milliseconds hold;  // how long to wait for a first frame
};
struct socket_poll_answer {
  std::uint64_t id;
  std::vector<ws_message> frames;  // empty: nothing within the hold time
};
struct socket_close {};  // ends the session (its channels end as on a closed WebSocket)

struct detached_socket_options {
  std::size_t max_outbox = 1 << 20;
  // The session ends when no poll has waited for this long (LongPoll's client that went away
  // without a word); none for a test's socket, which ends with its owner instead.
  std::optional<std::chrono::milliseconds> idle_timeout;
  pid owner;                       // if set: the session ends when this process does
  std::string peer, path;          // name the session in the log
  std::function<void()> at_end;    // run by the session's process as it ends, however it ends
};

// Starts a session of `routes`' socket with `assigns` (what its connect callback returned).
// Call from a process. Throws what spawn throws.
pid spawn_detached_socket(std::shared_ptr<socket_routes> routes, term assigns, detached_socket_options opts);

// The connect params: the query string's pairs, a repeated key's last value winning (Plug's rule).
term query_params(std::string_view query);
// The auth token a client sends: the `base64url.bearer.phx.<token>` subprotocol (WebSocket) or
// the x-phoenix-authtoken header (LongPoll). nullopt if absent or not base64.
std::optional<std::string> auth_token(const ws_request& request);
// Runs the socket's connect callback for a request. nullopt: refused (403); else the assigns.
std::optional<term> connect_socket(const socket_routes& routes, const term& params, const ws_request& request);
// A LongPoll POST's frames: ndjson (Content-Type application/x-ndjson), a line per frame, a line
// not starting with '[' being a base64 binary frame; any other body is one text frame. nullopt if
// a line is not base64 or there are more than kMaxLongPollBatch lines (the client sends 100).
inline constexpr std::size_t kMaxLongPollBatch = 1'000;
std::optional<std::vector<ws_message>> longpoll_frames(std::string_view content_type, std::string_view body);
// Adds the socket's LongPoll transport (GET/POST/OPTIONS routes->path + "/longpoll") to `r`.
void mount_longpoll(router& r, std::shared_ptr<socket_routes> routes);
// The version check of the connect params: only the V2 serializer (phoenix.js 1.6+) is spoken.
bool is_supported_vsn(const term& params);

}  // namespace athanor::web::detail
