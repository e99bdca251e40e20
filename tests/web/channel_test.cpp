// Phoenix Channels (channel.h) driven by the official npm `phoenix` client in Node
// (tests/web/js/phoenix_client.js, `ws` as its WebSocket transport): what a Phoenix app's
// browser code sees must be what Phoenix would show it. Each rule is named after Phoenix's.
#include <nlohmann/json.hpp>

#include <stdexcept>

#include "athanor/web/channel.h"
#include "athanor/web/channel_message.h"
#include "athanor/web/presence.h"
#include "athanor/web/pubsub.h"
#include "web/socket_internal.h"
#include "web_test_util.h"

namespace athanor::web::testing {
namespace {

// room:* — a join needs a "user" param; "ping" {n} is answered {pong: n}; "shout" is broadcast to
// the room; "crash" throws; "bye" stops the channel after replying.
struct room : channel<room> {
  join_reply join(std::string_view, const term& params, socket& s) {
    const term* user = params.find(term("user"));
    if (!user) return join_reply::error(map({{term("reason"), term("user required")}}));
    s.assign(term("user"), *user);
    return join_reply::ok(map({{term("welcome"), *user}}));
  }
  in_reply handle_in(std::string_view event, const term& payload, socket& s) {
    if (event == "ping") return in_reply::ok(map({{term("pong"), *payload.find(term("n"))}}));
    if (event == "whoami") return in_reply::ok(map({{term("user"), *s.assigns().find(term("user"))}}));
    if (event == "shout") {
      s.broadcast("shout", map({{term("from"), *s.assigns().find(term("user"))}, {term("body"), *payload.find(term("body"))}}));
      return in_reply::noreply();
    }
    if (event == "echo_push") {
      s.push("echoed", payload);
      return in_reply::noreply();
    }
    if (event == "binup" && is_binary_payload(payload)) {  // bytes back reversed, pushed, broadcast
      std::string bytes(payload.element(1).as_binary());
      s.push("bin_push", binary_payload(bytes));
      s.broadcast("bin_bcast", binary_payload(bytes + "!"));
      return in_reply::ok(binary_payload(std::string(bytes.rbegin(), bytes.rend())));
    }
    if (event == "binsize" && is_binary_payload(payload)) {  // what LongPoll can answer: JSON
      return in_reply::ok(map({{term("size"), term(payload.element(1).as_binary().size())}}));
    }
    if (event == "auth") return in_reply::ok(map({{term("auth"), *s.assigns().find(term("auth"))}}));
    if (event == "crash") throw std::runtime_error("crash requested");
    if (event == "log_me_out") {  // every socket of this user's id closes
      web::broadcast("user_socket:" + std::string(s.assigns().find(term("token"))->as_binary()), "disconnect", map({}));
      return in_reply::noreply();
    }
    if (event == "bye") return in_reply::stop(term(atom("normal")), "ok", map({{term("bye"), true}}));
    return in_reply::reply("error", map({{term("reason"), term("unknown event")}}));
  }
};

// feed:* — Phoenix's intercept/handle_out: "shout" broadcasts reach each channel's process, which
// pushes them with the name of the user it serves; "drop" broadcasts are intercepted and dropped.
struct feed : channel<feed> {
  static inline const std::vector<std::string> intercepts{"shout", "drop"};
  join_reply join(std::string_view, const term& params, socket& s) {
    s.assign(term("user"), *params.find(term("user")));
    return join_reply::ok();
  }
  in_reply handle_in(std::string_view, const term& payload, socket& s) {
    s.broadcast("drop", payload);
    s.broadcast("shout", payload);
    s.broadcast("plain", payload);  // not intercepted: the fastlane
    return in_reply::noreply();
  }
  void handle_out(std::string_view event, const term& payload, socket& s) {
    if (event == "drop") return;
    s.push(event, map({{term("for"), *s.assigns().find(term("user"))}, {term("body"), *payload.find(term("body"))}}));
  }
};

// lobby:* — the chat's shape: Presence keyed by user with online_at, presence_state after the
// join, new_msg broadcast to everyone with the sender's name; "away" updates the meta.
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
    const std::string user(s.assigns().find(term("user"))->as_binary());
    const auto ref = presence::track(s, user, map({{term("online_at"), term("1700000000")}}));
    EXPECT_TRUE(ref.has_value());
    EXPECT_FALSE(presence::track(s, user, map({})).has_value());  // Phoenix's already_tracked
  }
  in_reply handle_in(std::string_view event, const term& payload, socket& s) {
    const term user = *s.assigns().find(term("user"));
    if (event == "new_msg") s.broadcast("new_msg", map({{term("user"), user}, {term("body"), *payload.find(term("body"))}}));
    if (event == "away") {
      const auto ref = presence::update(s, std::string(user.as_binary()), map({{term("status"), term("away")}}));
      return in_reply::ok(map({{term("updated"), term(ref.has_value())}}));
    }
    if (event == "hide") return in_reply::ok(map({{term("untracked"), term(presence::untrack(s, std::string(user.as_binary())))}}));
    return in_reply::noreply();
  }
};

// A channel without handle_in, on exact topic "quiet".
struct quiet : channel<quiet> {
  join_reply join(std::string_view, const term&, socket&) { return join_reply::ok(); }
};

class ChannelTest : public WebTest {
 protected:
  void SetUp() override {
    WebTest::SetUp();
    if (!have_tool("node") || !have_tool("npm")) GTEST_SKIP() << "node/npm are not installed (scripts/install-deps.sh --test installs them)";
    if (!ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/web/js (offline without node_modules?)";
    endpoint ep;
    ep.socket("/socket")
        .connect([](const connect_info& c) -> std::optional<term> {
          const term* token = c.params.find(term("token"));
          if (token && *token == term("bad")) return std::nullopt;  // refused: 403
          return map({{term("token"), token ? *token : term(atom("nil"))},
                      {term("auth"), c.auth_token ? term(*c.auth_token) : term(atom("nil"))}});
        })
        .id([](const term& assigns) -> std::optional<std::string> {
          const term* token = assigns.find(term("token"));
          if (!token || !token->is_binary()) return std::nullopt;
          return "user_socket:" + std::string(token->as_binary());
        })
        .channel<room>("room:*")
        .channel<feed>("feed:*")
        .channel<lobby>("lobby:*")
        .channel<quiet>("quiet");
    router r;
    ep.mount(r);
    start(std::move(r));
  }
  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port()) + "/socket"; }

  // Runs the official client with `args`; returns its JSON lines (and checks it exited 0 unless
  // `may_fail`).
  std::vector<nlohmann::json> client(const std::string& args, bool may_fail = false) {
    command_result r = sh("node '" + js_dir() + "/phoenix_client.js' " + args + " 2>&1");
    std::vector<nlohmann::json> lines;
    std::size_t pos = 0;
    while (pos < r.out.size()) {
      std::size_t nl = r.out.find('\n', pos);
      if (nl == std::string::npos) nl = r.out.size();
      const std::string line = r.out.substr(pos, nl - pos);
      pos = nl + 1;
      if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line, nullptr, false));
    }
    if (!may_fail) EXPECT_EQ(r.status, 0) << r.out;
    output_ = r.out;
    return lines;
  }
  // The first line whose "event" is `event`, or null.
  static nlohmann::json first(const std::vector<nlohmann::json>& lines, const std::string& event) {
    for (const auto& l : lines) {
      if (l.is_object() && l.value("event", "") == event) return l;
    }
    return nullptr;
  }
  // The last line whose "event" is `event`, or null.
  static nlohmann::json last(const std::vector<nlohmann::json>& lines, const std::string& event) {
    nlohmann::json found;
    for (const auto& l : lines) {
      if (l.is_object() && l.value("event", "") == event) found = l;
    }
    return found;
  }
  static std::size_t count(const std::vector<nlohmann::json>& lines, const std::string& event) {
    std::size_t n = 0;
    for (const auto& l : lines) n += l.is_object() && l.value("event", "") == event;
    return n;
  }
  std::string output_;
};

TEST_F(ChannelTest, JoinRepliesOkWithTheResponseOverWebSocket) {
  auto lines = client("join " + url() + " room:lobby '{\"user\":\"ann\"}'");
  EXPECT_EQ(first(lines, "transport")["name"], "WebSocket") << output_;
  auto ok = first(lines, "join_ok");
  ASSERT_FALSE(ok.is_null()) << output_;
  EXPECT_EQ(ok["reply"], nlohmann::json({{"welcome", "ann"}})) << output_;
}

TEST_F(ChannelTest, JoinRefusedByTheChannelGivesItsReason) {
  auto lines = client("join " + url() + " room:lobby '{}'");
  auto err = first(lines, "join_error");
  ASSERT_FALSE(err.is_null()) << output_;
  EXPECT_EQ(err["reply"], nlohmann::json({{"reason", "user required"}})) << output_;
}

TEST_F(ChannelTest, PhoenixRule_ATopicNoChannelMatchesIsAnUnmatchedTopic) {
  auto lines = client("join " + url() + " lounge:x '{\"user\":\"ann\"}'");
  auto err = first(lines, "join_error");
  ASSERT_FALSE(err.is_null()) << output_;
  EXPECT_EQ(err["reply"], nlohmann::json({{"reason", "unmatched topic"}})) << output_;
}

TEST_F(ChannelTest, PushGetsTheChannelsReplyAndConnectAssignsReachTheChannel) {
  auto lines = client("push " + url() + " room:a '{\"user\":\"bob\"}' ping '{\"n\":42}'");
  auto reply = first(lines, "reply");
  ASSERT_FALSE(reply.is_null()) << output_;
  EXPECT_EQ(reply["status"], "ok") << output_;
  EXPECT_EQ(reply["response"], nlohmann::json({{"pong", 42}})) << output_;
  lines = client("push " + url() + " room:a '{\"user\":\"bob\"}' whoami '{}'");
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"user", "bob"}})) << output_;
}

TEST_F(ChannelTest, AnErrorStatusReachesTheClientsReceiveError) {
  auto lines = client("push " + url() + " room:a '{\"user\":\"bob\"}' nonsense '{}'");
  auto reply = first(lines, "reply");
  ASSERT_FALSE(reply.is_null()) << output_;
  EXPECT_EQ(reply["status"], "error") << output_;
  EXPECT_EQ(reply["response"], nlohmann::json({{"reason", "unknown event"}})) << output_;
  lines = client("push " + url() + " quiet '{}' anything '{}'");  // no handle_in at all
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"reason", "unhandled event"}})) << output_;
}

TEST_F(ChannelTest, PushToOneClientCarriesItsJoinRef) {
  auto lines = client("push " + url() + " room:a '{\"user\":\"bob\"}' echo_push '{\"x\":1}' --no-reply --expect 1:echoed");
  auto push = first(lines, "push");
  ASSERT_FALSE(push.is_null()) << output_;
  EXPECT_EQ(push["payload"], nlohmann::json({{"x", 1}})) << output_;
}

TEST_F(ChannelTest, BroadcastReachesTheSenderToo) {
  auto lines = client("push " + url() + " room:b '{\"user\":\"cy\"}' shout '{\"body\":\"hi\"}' --no-reply --expect 1:shout");
  auto push = first(lines, "push");
  ASSERT_FALSE(push.is_null()) << output_;
  EXPECT_EQ(push["payload"], nlohmann::json({{"from", "cy"}, {"body", "hi"}})) << output_;
}

TEST_F(ChannelTest, PhoenixRule_InterceptedBroadcastsGoThroughHandleOut) {
  auto lines = client("push " + url() + " feed:a '{\"user\":\"fay\"}' go '{\"body\":\"yo\"}' --no-reply --expect 1:shout");
  std::vector<nlohmann::json> pushes;
  for (const auto& l : lines) {
    if (l.value("event", "") == "push") pushes.push_back(l);
  }
  // The fastlane's "plain" is queued while handle_in runs, handle_out's "shout" after it; "drop"
  // (made first) never reaches the client.
  ASSERT_EQ(pushes.size(), 2u) << output_;
  EXPECT_EQ(pushes[0]["name"], "plain") << output_;
  EXPECT_EQ(pushes[0]["payload"], nlohmann::json({{"body", "yo"}})) << output_;
  EXPECT_EQ(pushes[1]["name"], "shout") << output_;
  EXPECT_EQ(pushes[1]["payload"], nlohmann::json({{"for", "fay"}, {"body", "yo"}})) << output_;
}

TEST_F(ChannelTest, PhoenixRule_ADisconnectBroadcastToASocketIdClosesItsSockets) {
  // The client sees its socket closed (1001), reconnects and rejoins by itself.
  auto lines = client("push " + url() + " room:k '{\"user\":\"gus\"}' log_me_out '{}' --params '{\"token\":\"gus1\"}' "
                      "--no-reply --expect-joins 2");
  auto closed = first(lines, "socket_close");
  ASSERT_FALSE(closed.is_null()) << output_;
  EXPECT_EQ(closed["code"], 1001) << output_;
  EXPECT_EQ(count(lines, "join_ok"), 2u) << output_;
}

TEST_F(ChannelTest, BinaryPayloadsGoBothWaysInBinaryFrames) {
  auto lines = client("push " + url() + " room:bin '{\"user\":\"hal\"}' binup '\"abc\"' --binary --expect 2");
  auto reply = first(lines, "reply");
  ASSERT_FALSE(reply.is_null()) << output_;
  EXPECT_EQ(reply["status"], "ok") << output_;
  EXPECT_EQ(reply["response"], nlohmann::json({{"binary_base64", "Y2Jh"}})) << output_;  // "cba"
  std::vector<nlohmann::json> pushes;
  for (const auto& l : lines) {
    if (l.value("event", "") == "push") pushes.push_back(l);
  }
  ASSERT_EQ(pushes.size(), 2u) << output_;
  EXPECT_EQ(pushes[0]["name"], "bin_push") << output_;
  EXPECT_EQ(pushes[0]["payload"], nlohmann::json({{"binary_base64", "YWJj"}})) << output_;  // "abc"
  EXPECT_EQ(pushes[1]["name"], "bin_bcast") << output_;
  EXPECT_EQ(pushes[1]["payload"], nlohmann::json({{"binary_base64", "YWJjIQ=="}})) << output_;  // "abc!"
}

TEST_F(ChannelTest, PresenceStateAfterJoinShowsTheTrackedMeta) {
  auto lines = client("join " + url() + " lobby:p '{\"user\":\"ann\"}' --presence ann");
  EXPECT_EQ(first(lines, "push")["name"], "presence_state") << output_;  // first, then the diff
  auto p = last(lines, "presence");
  ASSERT_FALSE(p.is_null()) << output_;
  ASSERT_TRUE(p["users"].contains("ann")) << output_;
  const auto& metas = p["users"]["ann"];
  ASSERT_EQ(metas.size(), 1u) << output_;
  EXPECT_EQ(metas[0]["online_at"], "1700000000") << output_;
  EXPECT_TRUE(metas[0]["phx_ref"].is_string()) << output_;
}

// The chat: two clients see each other in Presence, each receives both messages (its own too),
// and the one that stays sees the other drop out of its list when it disconnects.
TEST_F(ChannelTest, TwoClientsChatAndSeeEachOtherComeAndGo) {
  const std::string out_a = ::testing::TempDir() + "/chat_a_" + std::to_string(port()) + ".out";
  auto a = sh("(node '" + js_dir() + "/phoenix_client.js' push " + url() +
              " lobby:q '{\"user\":\"ann\"}' new_msg '{\"body\":\"hi from ann\"}' --no-reply --expect 2:new_msg "
              "--presence ann,bob --then-presence ann > '" + out_a + "' 2>&1; echo exit=$? >> '" + out_a + "') & "
              "node '" + js_dir() + "/phoenix_client.js' push " + url() +
              " lobby:q '{\"user\":\"bob\"}' new_msg '{\"body\":\"hi from bob\"}' --no-reply --expect 2:new_msg "
              "--presence ann,bob 2>&1; wait");
  EXPECT_EQ(a.status, 0) << a.out;
  std::size_t bob_msgs = 0;
  for (const char* body : {"hi from ann", "hi from bob"}) bob_msgs += a.out.find(body) != std::string::npos;
  EXPECT_EQ(bob_msgs, 2u) << a.out;
  const auto ann = sh("cat '" + out_a + "'");
  EXPECT_NE(ann.out.find("exit=0"), std::string::npos) << ann.out;  // saw bob leave: list back to [ann]
  EXPECT_NE(ann.out.find("hi from bob"), std::string::npos) << ann.out;
  EXPECT_NE(ann.out.find("hi from ann"), std::string::npos) << ann.out;
}

TEST_F(ChannelTest, PresenceUpdateAndUntrackAreDiffsTheClientApplies) {
  auto lines = client("push " + url() + " lobby:u '{\"user\":\"cat\"}' away '{}' --presence cat");
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"updated", true}})) << output_;
  lines = client("push " + url() + " lobby:v '{\"user\":\"dan\"}' hide '{}' --presence dan --then-presence ''");
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"untracked", true}})) << output_;
}

TEST(Presence, ListIsEmptyForATopicNobodyTracks) { EXPECT_EQ(presence::list("nobody:here"), map({})); }

// The cluster relay needs a distribution node (chat_test.cpp runs two); without one it refuses.
TEST(PubSub, StartClusterNeedsARunningNodeAndThereAreNoPeersWithoutOne) {
  runtime rt;
  EXPECT_THROW(pubsub::start_cluster(), std::logic_error);
  EXPECT_TRUE(pubsub::peers().empty());
}

TEST_F(ChannelTest, HeartbeatIsAnswered) {
  auto lines = client("heartbeat " + url());
  EXPECT_FALSE(first(lines, "heartbeat").is_null()) << output_;
}

TEST_F(ChannelTest, PhoenixRule_ACrashedChannelGivesPhxErrorAndTheClientsRejoinWorks) {
  auto lines = client("push " + url() + " room:c '{\"user\":\"dee\"}' crash '{}' --no-reply --expect-joins 2");
  EXPECT_EQ(count(lines, "join_ok"), 2u) << output_;
  EXPECT_FALSE(first(lines, "channel_error").is_null()) << output_;
}

TEST_F(ChannelTest, StopRepliesThenClosesTheChannel) {
  auto lines = client("push " + url() + " room:d '{\"user\":\"eve\"}' bye '{}'");
  auto reply = first(lines, "reply");
  ASSERT_FALSE(reply.is_null()) << output_;
  EXPECT_EQ(reply["response"], nlohmann::json({{"bye", true}})) << output_;
}

TEST_F(ChannelTest, AConnectCallbackRefusalIsA403AndTheClientCannotJoin) {
  // The client retries a refused socket for ever: it reports the socket error, then times out.
  auto lines = client("join " + url() + " room:a '{\"user\":\"ann\"}' --params '{\"token\":\"bad\"}' --timeout 1500", true);
  EXPECT_TRUE(first(lines, "join_ok").is_null()) << output_;
  EXPECT_FALSE(first(lines, "socket_error").is_null()) << output_;
  const auto r = sh("curl -s -o /dev/null -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' "
                    "-H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "
                    "'http://127.0.0.1:" + std::to_string(port()) + "/socket/websocket?token=bad&vsn=2.0.0'");
  EXPECT_EQ(r.out, "403");
}

TEST_F(ChannelTest, AnAuthTokenClientGetsThePhoenixSubprotocolAndTheConnectCallbackTheToken) {
  auto lines = client("push " + url() + " room:a '{\"user\":\"ann\"}' auth '{}' --auth-token 's3cret-token!'");  // base64 with padding the client strips
  EXPECT_FALSE(first(lines, "join_ok").is_null()) << output_;
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"auth", "s3cret-token!"}})) << output_;
}

// ---- the LongPoll transport (phoenix.js LongPoll: what a client falls back to) --------------------

TEST_F(ChannelTest, LongPollJoinsPushesAndGetsRepliesAndBroadcasts) {
  auto lines = client("push " + url() + " room:lp '{\"user\":\"lou\"}' ping '{\"n\":7}' --longpoll");
  EXPECT_EQ(first(lines, "transport")["name"], "LongPoll") << output_;
  EXPECT_EQ(first(lines, "join_ok")["reply"], nlohmann::json({{"welcome", "lou"}})) << output_;
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"pong", 7}})) << output_;
  lines = client("push " + url() + " room:lp '{\"user\":\"lou\"}' shout '{\"body\":\"hey\"}' --longpoll --no-reply --expect 1:shout");
  EXPECT_EQ(first(lines, "push")["payload"], nlohmann::json({{"from", "lou"}, {"body", "hey"}})) << output_;
  lines = client("join " + url() + " nowhere:x '{}' --longpoll");
  EXPECT_EQ(first(lines, "join_error")["reply"], nlohmann::json({{"reason", "unmatched topic"}})) << output_;
}

TEST_F(ChannelTest, LongPollAnswersTheClientsPing) {
  auto lines = client("heartbeat " + url() + " --longpoll");
  EXPECT_EQ(first(lines, "transport")["name"], "LongPoll") << output_;
  EXPECT_FALSE(first(lines, "heartbeat").is_null()) << output_;
}

TEST_F(ChannelTest, LongPollCarriesBinaryPushesFromTheClientAsBase64Lines) {
  auto lines = client("push " + url() + " room:lpb '{\"user\":\"bo\"}' binsize '\"abcde\"' --binary --longpoll");
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"size", 5}})) << output_;
}

TEST_F(ChannelTest, PhoenixRule_ACrashedChannelRejoinsOverLongPollToo) {
  auto lines = client("push " + url() + " room:lpc '{\"user\":\"cy\"}' crash '{}' --no-reply --expect-joins 2 --longpoll");
  EXPECT_EQ(count(lines, "join_ok"), 2u) << output_;
  EXPECT_FALSE(first(lines, "channel_error").is_null()) << output_;
}

TEST_F(ChannelTest, LongPollRunsTheConnectCallbackWithParamsAndAuthToken) {
  auto lines = client("push " + url() + " room:lpa '{\"user\":\"al\"}' auth '{}' --longpoll --auth-token tok-1");
  EXPECT_EQ(first(lines, "reply")["response"], nlohmann::json({{"auth", "tok-1"}})) << output_;
  lines = client("join " + url() + " room:a '{\"user\":\"ann\"}' --params '{\"token\":\"bad\"}' --timeout 1500 --longpoll", true);
  EXPECT_TRUE(first(lines, "join_ok").is_null()) << output_;
  EXPECT_FALSE(first(lines, "socket_error").is_null()) << output_;
  // The wire, as the client reads it: HTTP 200, the status in the body.
  const std::string base = "http://127.0.0.1:" + std::to_string(port()) + "/socket/longpoll";
  auto r = sh("curl -s -w ' %{http_code}' '" + base + "?token=bad&vsn=2.0.0'");
  EXPECT_EQ(r.out, "{\"status\":403} 200");
  r = sh("curl -s '" + base + "?vsn=1.0.0'");
  EXPECT_EQ(r.out, "{\"status\":403}");
}

TEST_F(ChannelTest, PhoenixRule_ADisconnectBroadcastEndsALongPollSessionAndTheClientReconnects) {
  // The session ends; the client's next poll is told 410 (session gone, close code 3410), and it
  // opens a new session and rejoins by itself.
  auto lines = client("push " + url() + " room:lpk '{\"user\":\"gil\"}' log_me_out '{}' --params '{\"token\":\"gil1\"}' "
                      "--no-reply --expect-joins 2 --longpoll");
  EXPECT_EQ(first(lines, "socket_close")["code"], 3410) << output_;
  EXPECT_EQ(count(lines, "join_ok"), 2u) << output_;
}

// A LongPoll client and a WebSocket client in one room: messages and Presence cross transports.
TEST_F(ChannelTest, LongPollAndWebSocketClientsChatInOneRoom) {
  const std::string out_lp = ::testing::TempDir() + "/chat_lp_" + std::to_string(port()) + ".out";
  auto ws = sh("(node '" + js_dir() + "/phoenix_client.js' push " + url() +
               " lobby:mix '{\"user\":\"lp\"}' new_msg '{\"body\":\"from lp\"}' --no-reply --expect 2:new_msg "
               "--presence lp,ws --then-presence lp --longpoll > '" + out_lp + "' 2>&1; echo exit=$? >> '" + out_lp + "') & "
               "node '" + js_dir() + "/phoenix_client.js' push " + url() +
               " lobby:mix '{\"user\":\"ws\"}' new_msg '{\"body\":\"from ws\"}' --no-reply --expect 2:new_msg "
               "--presence lp,ws 2>&1; wait");
  EXPECT_EQ(ws.status, 0) << ws.out;
  EXPECT_NE(ws.out.find("from lp"), std::string::npos) << ws.out;
  const auto lp = sh("cat '" + out_lp + "'");
  EXPECT_NE(lp.out.find(R"("name":"LongPoll")"), std::string::npos) << lp.out;
  EXPECT_NE(lp.out.find("from ws"), std::string::npos) << lp.out;
  EXPECT_NE(lp.out.find("exit=0"), std::string::npos) << lp.out;  // saw ws leave
}

// Phoenix's session protocol, step by step: 410 opens a session and names its token; a POST
// carries ndjson frames; a poll returns what is queued; a garbage line is a 400; a token
// no session has is 410 again.
TEST_F(ChannelTest, LongPollSessionsFollowPhoenixsWireProtocol) {
  const std::string base = "http://127.0.0.1:" + std::to_string(port()) + "/socket/longpoll?vsn=2.0.0";
  auto opened = nlohmann::json::parse(sh("curl -s '" + base + "'").out, nullptr, false);
  ASSERT_EQ(opened["status"], 410) << opened;
  const std::string token = opened["token"];
  EXPECT_EQ(token.size(), 32u);
  EXPECT_EQ(opened["messages"], nlohmann::json::array());
  auto posted = sh("printf '%s\\n%s' '[\"1\",\"1\",\"room:w\",\"phx_join\",{\"user\":\"wu\"}]' "
                   "'[\"1\",\"2\",\"room:w\",\"ping\",{\"n\":3}]' | curl -s -H 'Content-Type: application/x-ndjson' "
                   "--data-binary @- '" + base + "&token=" + token + "'");
  EXPECT_EQ(posted.out, "{\"status\":200}");
  // The join reply and the ping's reply, in order (the session may answer the first poll before
  // the second reply is queued: poll until both are in).
  std::vector<std::string> messages;
  for (int i = 0; i < 5 && messages.size() < 2; ++i) {
    auto polled = nlohmann::json::parse(sh("curl -s '" + base + "&token=" + token + "'").out, nullptr, false);
    ASSERT_EQ(polled["token"], token) << polled;
    if (polled["status"] == 200) {
      for (const auto& m : polled["messages"]) messages.push_back(m);
    }
  }
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(messages[0]),
            nlohmann::json::parse(R"(["1","1","room:w","phx_reply",{"status":"ok","response":{"welcome":"wu"}}])"));
  EXPECT_EQ(nlohmann::json::parse(messages[1]),
            nlohmann::json::parse(R"(["1","2","room:w","phx_reply",{"status":"ok","response":{"pong":3}}])"));
  // A garbage line is refused; the session stays.
  EXPECT_EQ(sh("printf 'not base64!' | curl -s -H 'Content-Type: application/x-ndjson' --data-binary @- '" + base +
               "&token=" + token + "'").out,
            "{\"status\":400}");
  EXPECT_EQ(sh("curl -s -X POST -d '[]' '" + base + "&token=0000'").out, "{\"status\":410}");
  auto unknown = nlohmann::json::parse(sh("curl -s '" + base + "&token=0000'").out, nullptr, false);
  EXPECT_EQ(unknown["status"], 410);
  EXPECT_NE(unknown["token"], "0000");
}

TEST(Base64Decode, TakesStandardAndUrlSafeWithOrWithoutPadding) {
  EXPECT_EQ(base64_decode("YWJj"), "abc");
  EXPECT_EQ(base64_decode("YWJjIQ=="), "abc!");
  EXPECT_EQ(base64_decode("YWJjIQ"), "abc!");
  EXPECT_EQ(base64_decode("-_-_"), std::string("\xfb\xff\xbf", 3));
  EXPECT_EQ(base64_decode("+/+/"), std::string("\xfb\xff\xbf", 3));
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("YWJjI"), std::nullopt);  // 4n+1 characters: no byte boundary
  EXPECT_EQ(base64_decode("YW Jj"), std::nullopt);
}

TEST(ChannelRoute, PatternsMatchByPrefixOrExactly) {
  detail::channel_route star{"room:*", nullptr, {}};
  EXPECT_TRUE(star.matches("room:lobby"));
  EXPECT_TRUE(star.matches("room:"));
  EXPECT_FALSE(star.matches("rooms:x"));
  detail::channel_route exact{"quiet", nullptr, {}};
  EXPECT_TRUE(exact.matches("quiet"));
  EXPECT_FALSE(exact.matches("quiet:1"));
}

}  // namespace
}  // namespace athanor::web::testing
