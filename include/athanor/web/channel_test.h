// Phoenix.ChannelTest for Athanor: join a socket's channels and assert what they push, reply and
// broadcast, from a test's own process, with no server, port or client library.
//
//   spawn([&](process&) -> proc {
//     web::test_socket s(handler, map({{term("user_id"), term("u1")}}));   // as connect returned
//     auto joined = co_await s.join("room:lobby", map({{term("user"), term("ann")}}));
//     EXPECT_EQ(joined->status, "ok");
//     const std::string ref = s.push("room:lobby", "ping", map({{term("n"), term(1)}}));
//     auto r = co_await s.reply_to(ref);                       // assert_reply ref, :ok, %{...}
//     auto b = co_await s.pushed("room:lobby", "shout");       // assert_push / assert_broadcast
//   });
//
// The channels run exactly as under a WebSocket: the same socket session, channel processes,
// fastlane and Presence; only the transport is replaced. Frames go both ways as the V2 JSON (or
// binary) frames a client would exchange, so what a test sees is what a browser would get,
// encoding included (a payload with no JSON form fails here as it would there).
//
// Thread-safety: a test_socket belongs to the process that made it (its replies come to that
// process's mailbox); use it only there.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "athanor/runtime/proc.h"
#include "athanor/term/term.h"
#include "athanor/web/channel.h"
#include "athanor/web/channel_message.h"

namespace athanor::web {

class test_socket {
 public:
  using duration = std::chrono::milliseconds;
  // How long the waits below wait by default: ample for a channel on a loaded CI machine, short
  // enough that a missing push fails the test quickly.
  static constexpr duration default_timeout{2000};

  // A reply: its status ("ok", "error", or whatever the channel answered) and response.
  struct reply {
    std::string status;
    term response;
  };

  // A socket of `handler`'s (an endpoint's `ep.socket(path)`, with its channels declared), whose
  // connect callback returned `assigns` (the callback itself does not run: a test states the
  // assigns, as Phoenix's socket(UserSocket, id, assigns) does). Call from a process. The socket's
  // process ends with the calling process, or at close().
  explicit test_socket(const socket_handler& handler, term assigns = map({}));
  ~test_socket();  // close()
  test_socket(const test_socket&) = delete;
  test_socket& operator=(const test_socket&) = delete;

  // Joins `topic` with `params` (Phoenix's subscribe_and_join): the join's reply, status "ok" with
  // the channel's response or "error" with its reason (as {"reason": "unmatched topic"} when no
  // channel of the socket matches); nullopt if none came within `timeout`.
  task<std::optional<reply>> join(std::string topic, term params = map({}), duration timeout = default_timeout);
  // Sends `event` with `payload` to the channel joined on `topic` (payload: a map, or
  // binary_payload() for a binary frame). Returns the push's ref, for reply_to(). Sent even if
  // `topic` is not joined (the server answers that as it would a client: "unmatched topic").
  std::string push(std::string_view topic, std::string_view event, const term& payload);
  // The reply to the push `ref` (Phoenix's assert_reply), or nullopt if none came within `timeout`.
  task<std::optional<reply>> reply_to(std::string ref, duration timeout = default_timeout);
  // The oldest push or broadcast this client got on `topic` named `event` that was not taken yet
  // (Phoenix's assert_push and assert_broadcast, which a client cannot tell apart), or nullopt if
  // none came within `timeout`. Its payload: a map, or {binary, Bytes} for a binary frame.
  task<std::optional<term>> pushed(std::string topic, std::string event, duration timeout = default_timeout);
  // Leaves `topic` (phx_leave): the leave's reply (always "ok"), or nullopt after `timeout`. The
  // channel runs terminate and ends; its phx_close is among the frames received.
  task<std::optional<reply>> leave(std::string topic, duration timeout = default_timeout);
  // Every frame received within `wait` and not taken by the calls above, oldest first, taken
  // now (what Phoenix's refute_push checks: an empty result after a wait means nothing came).
  task<std::vector<channel_message>> received(duration wait = duration(0));
  // Closes the socket, as a closed connection does: its channels run terminate and end. Later
  // calls find nothing more. Idempotent.
  void close();

 private:
  // One poll of the session, holding up to `hold`; adds what came to inbox_. False if the
  // session is gone.
  task<bool> poll(duration hold);
  template <class Pred>
  task<std::optional<channel_message>> take(Pred pred, duration timeout);
  void send_frame(const channel_message& m);

  pid session_;
  std::uint64_t next_ref_ = 0;
  std::uint64_t next_poll_ = 0;
  std::deque<channel_message> inbox_;
  std::unordered_map<std::string, std::string> join_refs_;  // topic -> join_ref
};

}  // namespace athanor::web
