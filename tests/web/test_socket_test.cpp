// test_socket (channel_test.h), Phoenix.ChannelTest's equivalent: channels joined, pushed to and
// asserted on from a test's process, with no server or client. Each test names the ChannelTest
// assertion it mirrors.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "athanor/athanor.h"
#include "athanor/web/channel_test.h"
#include "athanor/web/presence.h"

namespace athanor::web::testing {
namespace {

using namespace std::chrono_literals;

struct told_terminated {
  std::string topic;
  term reason;
};

// game:* — joins need a "player"; tells the process named in the assigns ("test") when it ends.
struct game : channel<game> {
  static inline const std::vector<std::string> intercepts{"score"};
  join_reply join(std::string_view, const term& params, socket& s) {
    const term* player = params.find(term("player"));
    if (!player) return join_reply::error(map({{term("reason"), term("player required")}}));
    s.assign(term("player"), *player);
    return join_reply::ok(map({{term("hello"), *player}}));
  }
  in_reply handle_in(std::string_view event, const term& payload, socket& s) {
    if (event == "ping") return in_reply::ok(map({{term("pong"), *payload.find(term("n"))}}));
    if (event == "move") {
      s.broadcast_from("moved", map({{term("by"), *s.assigns().find(term("player"))}}));
      return in_reply::noreply();
    }
    if (event == "shout") {
      s.broadcast("shout", payload);
      return in_reply::noreply();
    }
    if (event == "score") {
      s.broadcast("score", payload);
      return in_reply::noreply();
    }
    if (event == "bytes" && is_binary_payload(payload)) {
      const std::string b(payload.element(1).as_binary());
      return in_reply::ok(binary_payload(std::string(b.rbegin(), b.rend())));
    }
    if (event == "crash") throw std::runtime_error("crash requested");
    return in_reply::reply("error", map({{term("reason"), term("unknown")}}));
  }
  void handle_out(std::string_view event, const term& payload, socket& s) {  // per-player scores
    s.push(event, map({{term("for"), *s.assigns().find(term("player"))}, {term("points"), *payload.find(term("points"))}}));
  }
  void terminate(const term& reason, socket& s) {
    if (const term* test = s.assigns().find(term("test")); test && test->is_pid())
      send(test->as_pid(), told_terminated{s.topic(), reason});
  }
};

// Runs `body` in a process of a fresh runtime and waits for it.
template <class F>
void in_process(F body) {
  runtime rt;
  spawn([body = std::move(body)](process& self) mutable -> proc { return body(self); });
  rt.wait();
}

socket_handler& handler(endpoint& ep) { return ep.socket("/socket").channel<game>("game:*"); }

TEST(TestSocket, SubscribeAndJoinThenAssertReply) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process&) -> proc {
    test_socket s(h);
    auto joined = co_await s.join("game:1", map({{term("player"), term("ann")}}));
    EXPECT_TRUE(joined.has_value());
    EXPECT_EQ(joined->status, "ok");
    EXPECT_EQ(joined->response, map({{term("hello"), term("ann")}}));
    auto r = co_await s.reply_to(s.push("game:1", "ping", map({{term("n"), term(5)}})));
    EXPECT_TRUE(r.has_value());
    EXPECT_EQ(r->status, "ok");
    EXPECT_EQ(r->response, map({{term("pong"), term(5)}}));  // through JSON: an integer stays one
    r = co_await s.reply_to(s.push("game:1", "nonsense", map({})));
    EXPECT_EQ(r->status, "error");
  });
}

TEST(TestSocket, JoinErrorsAndUnmatchedTopicsAreReplies) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process&) -> proc {
    test_socket s(h);
    auto refused = co_await s.join("game:1", map({}));
    EXPECT_EQ(refused->status, "error");
    EXPECT_EQ(refused->response, map({{term("reason"), term("player required")}}));
    auto unmatched = co_await s.join("chess:1", map({}));
    EXPECT_EQ(unmatched->status, "error");
    EXPECT_EQ(unmatched->response, map({{term("reason"), term("unmatched topic")}}));
  });
}

TEST(TestSocket, AssertBroadcastSeesBroadcastsAndBroadcastFromSkipsTheSender) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process&) -> proc {
    test_socket ann(h), bob(h);
    (void)co_await ann.join("game:2", map({{term("player"), term("ann")}}));
    (void)co_await bob.join("game:2", map({{term("player"), term("bob")}}));
    (void)ann.push("game:2", "shout", map({{term("text"), term("hi")}}));
    EXPECT_EQ(co_await ann.pushed("game:2", "shout"), map({{term("text"), term("hi")}}));
    EXPECT_EQ(co_await bob.pushed("game:2", "shout"), map({{term("text"), term("hi")}}));
    (void)ann.push("game:2", "move", map({}));
    EXPECT_EQ(co_await bob.pushed("game:2", "moved"), map({{term("by"), term("ann")}}));
    // refute_push: ann's own move does not come back to her.
    EXPECT_EQ(co_await ann.pushed("game:2", "moved", 200ms), std::nullopt);
  });
}

TEST(TestSocket, InterceptedBroadcastsArePushedByHandleOut) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process&) -> proc {
    test_socket ann(h), bob(h);
    (void)co_await ann.join("game:3", map({{term("player"), term("ann")}}));
    (void)co_await bob.join("game:3", map({{term("player"), term("bob")}}));
    (void)ann.push("game:3", "score", map({{term("points"), term(3)}}));
    EXPECT_EQ(co_await ann.pushed("game:3", "score"), map({{term("for"), term("ann")}, {term("points"), term(3)}}));
    EXPECT_EQ(co_await bob.pushed("game:3", "score"), map({{term("for"), term("bob")}, {term("points"), term(3)}}));
  });
}

TEST(TestSocket, BinaryPayloadsGoBothWays) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process&) -> proc {
    test_socket s(h);
    (void)co_await s.join("game:4", map({{term("player"), term("ann")}}));
    auto r = co_await s.reply_to(s.push("game:4", "bytes", binary_payload("abc")));
    EXPECT_EQ(r->status, "ok");
    EXPECT_EQ(r->response, binary_payload("cba"));
  });
}

TEST(TestSocket, LeaveRepliesClosesAndRunsTerminate) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process& self) -> proc {
    test_socket s(h, map({{term("test"), term(self.self())}}));
    (void)co_await s.join("game:5", map({{term("player"), term("ann")}}));
    auto left = co_await s.leave("game:5");
    EXPECT_EQ(left->status, "ok");
    EXPECT_TRUE((co_await s.pushed("game:5", "phx_close")).has_value());
    auto told = co_await self.receive_for<told_terminated>(5s);
    EXPECT_TRUE(told.has_value());
    EXPECT_EQ(told->reason, tuple(atom("shutdown"), atom("left")));
  });
}

TEST(TestSocket, CloseEndsTheChannelsAsAClosedConnectionDoes) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process& self) -> proc {
    test_socket s(h, map({{term("test"), term(self.self())}}));
    (void)co_await s.join("game:6", map({{term("player"), term("ann")}}));
    s.close();
    auto told = co_await self.receive_for<told_terminated>(5s);
    EXPECT_TRUE(told.has_value());
    EXPECT_EQ(told->reason, tuple(atom("shutdown"), atom("closed")));
    EXPECT_EQ(co_await s.pushed("game:6", "anything", 0ms), std::nullopt);  // closed: nothing more
  });
}

TEST(TestSocket, ACrashedChannelIsAPhxError) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process&) -> proc {
    test_socket s(h);
    (void)co_await s.join("game:7", map({{term("player"), term("ann")}}));
    (void)s.push("game:7", "crash", map({}));
    EXPECT_EQ(co_await s.pushed("game:7", "phx_error"), map({{term("reason"), term("channel_crash")}}));
    auto again = co_await s.join("game:7", map({{term("player"), term("ann")}}));  // the client's rejoin
    EXPECT_EQ(again->status, "ok");
  });
}

TEST(TestSocket, ReceivedListsWhatNoAssertionTook) {
  endpoint ep;
  socket_handler& h = handler(ep);
  in_process([&](process&) -> proc {
    test_socket s(h);
    (void)co_await s.join("game:8", map({{term("player"), term("ann")}}));
    EXPECT_TRUE((co_await s.received(50ms)).empty());  // refute_push: nothing was pushed
    (void)s.push("game:8", "shout", map({{term("n"), term(1)}}));
    (void)s.push("game:8", "shout", map({{term("n"), term(2)}}));
    EXPECT_EQ(co_await s.pushed("game:8", "shout"), map({{term("n"), term(1)}}));  // oldest first
    std::vector<channel_message> rest;
    for (int i = 0; i < 50 && rest.empty(); ++i) rest = co_await s.received(100ms);
    EXPECT_EQ(rest.size(), 1u);
    if (rest.size() == 1) {
      EXPECT_EQ(rest[0].event, "shout");
      EXPECT_EQ(rest[0].payload, map({{term("n"), term(2)}}));
    }
  });
}

// Presence through a test socket: the state after the join, the diff when another player joins.
struct after_join {};
struct lobby : channel<lobby> {
  join_reply join(std::string_view, const term& params, socket& s) {
    s.assign(term("user"), *params.find(term("user")));
    send(s.channel_pid(), after_join{});
    return join_reply::ok();
  }
  void handle_info(message& m, socket& s) {
    if (!m.is<after_join>()) return;
    s.push("presence_state", presence::list(s.topic()));
    (void)presence::track(s, std::string(s.assigns().find(term("user"))->as_binary()), map({{term("n"), term(1)}}));
  }
};

TEST(TestSocket, PresenceStateAndDiffReachTheTestSocket) {
  endpoint ep;
  socket_handler& h = ep.socket("/socket").channel<lobby>("lobby:*");
  in_process([&](process&) -> proc {
    test_socket ann(h), bob(h);
    (void)co_await ann.join("lobby:t", map({{term("user"), term("ann")}}));
    auto state = co_await ann.pushed("lobby:t", "presence_state");
    EXPECT_EQ(state, map({}));
    (void)co_await bob.join("lobby:t", map({{term("user"), term("bob")}}));
    // ann's own join's diff first, then bob's.
    std::optional<term> diff;
    for (int i = 0; i < 2; ++i) {
      diff = co_await ann.pushed("lobby:t", "presence_diff");
      if (diff && diff->find(term("joins"))->find(term("bob"))) break;
    }
    EXPECT_TRUE(diff.has_value());
    EXPECT_TRUE(diff && diff->find(term("joins"))->find(term("bob")) != nullptr);
  });
}

}  // namespace
}  // namespace athanor::web::testing
