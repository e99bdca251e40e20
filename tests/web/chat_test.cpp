// athanor-chat, by its contract (tools/athanor-chat/main.cpp), driven by the official npm `phoenix`
// client in Node: alone, and as a two-node cluster in which clients on either node chat and see
// each other in Presence. The nodes use their own EPMD port and a temporary HOME.
#ifdef ATHANOR_CHAT_BIN
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <csignal>
#include <string>
#include <vector>

#include "../support/child_process.h"
#include "../support/free_port.h"
#include "web_test_util.h"

namespace athanor::web::testing {
namespace {

using child = ::athanor::testing_support::child;

class ChatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_tool("node") || !have_tool("npm")) GTEST_SKIP() << "node/npm are not installed (scripts/install-deps.sh --test installs them)";
    if (!ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/web/js (offline without node_modules?)";
    home_ = ::testing::TempDir() + "/chat_home_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    std::filesystem::create_directories(home_);
    env_ = {"HOME=" + home_, "ERL_EPMD_PORT=" + std::to_string(::athanor::testing_support::free_port())};
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(home_, ec);
  }
  // Starts athanor-chat with `args`; returns the socket URL (ws://.../socket) it serves.
  std::string start(child& c) {
    std::optional<std::string> url = c.line();
    EXPECT_TRUE(url && url->rfind("http://", 0) == 0) << c.output();
    if (!url) return {};
    page_ = *url;
    return "ws" + url->substr(4) + "socket";
  }
  std::string client(const std::string& args, int* status = nullptr) {
    command_result r = sh("node '" + js_dir() + "/phoenix_client.js' " + args + " 2>&1");
    if (status) *status = r.status;
    return r.out;
  }
  std::string home_, page_;
  std::vector<std::string> env_;
  static inline int counter_ = 0;
};

TEST_F(ChatTest, AloneItServesThePageAndKeepsTheContract) {
  child chat({ATHANOR_CHAT_BIN, "--port", "0"}, env_);
  const std::string url = start(chat);
  ASSERT_FALSE(url.empty());
  // The page loads the official client, which the binary serves.
  const command_result page = sh("curl -s '" + page_ + "'");
  EXPECT_NE(page.out.find("/assets/phoenix.js"), std::string::npos) << page.out;
  const command_result js = sh("curl -s '" + page_ + "assets/phoenix.js'");
  EXPECT_NE(js.out.find("Phoenix"), std::string::npos) << js.out.substr(0, 200);
  int status = 0;
  std::string out = client("join " + url + " room:lobby '{}'", &status);
  EXPECT_NE(out.find(R"("reply":{"reason":"user required"})"), std::string::npos) << out;
  out = client("join " + url + " lobby '{\"user\":\"ann\"}'", &status);
  EXPECT_NE(out.find(R"("reply":{"reason":"unmatched topic"})"), std::string::npos) << out;
  out = client("push " + url + " room:lobby '{\"user\":\"ann\"}' new_msg '{\"body\":\"hello\"}' --no-reply --expect 1:new_msg --presence ann", &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(R"("payload":{"body":"hello","user":"ann"})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("online_at")"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(home_ + "/.erlang.cookie"));  // no distribution: no cookie file
}

// The issue's cluster contract: every member of a room, on any node, gets every message, and the
// Presence lists agree; a client that disconnects drops out of the other node's lists.
TEST_F(ChatTest, TwoNodesShareRoomsMessagesAndPresence) {
  child one({ATHANOR_CHAT_BIN, "--port", "0", "--sname", "chat_a", "--cookie", "chat-test"}, env_);
  const std::string url_a = start(one);
  ASSERT_FALSE(url_a.empty());
  ASSERT_TRUE(one.line().has_value()) << one.output();  // its node name
  child two({ATHANOR_CHAT_BIN, "--port", "0", "--sname", "chat_b", "--cookie", "chat-test", "--join", "chat_a"}, env_);
  const std::string url_b = start(two);
  ASSERT_FALSE(url_b.empty());
  ASSERT_TRUE(two.line().has_value()) << two.output();
  // The relays meet once the nodes connect: each client waits until it sees both users, so ann's
  // presence (and bob's) must have crossed; each pushes only then, and waits for both messages.
  const std::string out_a = home_ + "/ann.out";
  const command_result r = sh(
      "(node '" + js_dir() + "/phoenix_client.js' push " + url_a +
      " room:lobby '{\"user\":\"ann\"}' new_msg '{\"body\":\"hi from ann\"}' --no-reply --expect 2:new_msg "
      "--presence ann,bob --then-presence ann --timeout 20000 > '" + out_a + "' 2>&1; echo exit=$? >> '" + out_a + "') & "
      "node '" + js_dir() + "/phoenix_client.js' push " + url_b +
      " room:lobby '{\"user\":\"bob\"}' new_msg '{\"body\":\"hi from bob\"}' --no-reply --expect 2:new_msg "
      "--presence ann,bob --timeout 20000 2>&1; wait");
  EXPECT_EQ(r.status, 0) << r.out << one.output() << two.output();
  EXPECT_NE(r.out.find(R"({"body":"hi from ann","user":"ann"})"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(R"({"body":"hi from bob","user":"bob"})"), std::string::npos) << r.out;
  const command_result ann = sh("cat '" + out_a + "'");
  EXPECT_NE(ann.out.find(R"({"body":"hi from bob","user":"bob"})"), std::string::npos) << ann.out;
  EXPECT_NE(ann.out.find("exit=0"), std::string::npos) << ann.out;  // saw bob leave (node b's client)
}

// Phoenix.Tracker's rule: a node that goes down takes its presences with it. Node b is killed
// (SIGKILL: no channel of it ends cleanly, so no leave is sent); ann, on node a, must see bob go.
TEST_F(ChatTest, PhoenixRule_ANodeThatGoesDownTakesItsPresencesWithIt) {
  child one({ATHANOR_CHAT_BIN, "--port", "0", "--sname", "chat_c", "--cookie", "chat-test"}, env_);
  const std::string url_a = start(one);
  ASSERT_FALSE(url_a.empty());
  ASSERT_TRUE(one.line().has_value()) << one.output();
  auto two = std::make_unique<child>(
      std::vector<std::string>{ATHANOR_CHAT_BIN, "--port", "0", "--sname", "chat_d", "--cookie", "chat-test", "--join", "chat_c"},
      env_);
  const std::string url_b = start(*two);
  ASSERT_FALSE(url_b.empty());
  ASSERT_TRUE(two->line().has_value()) << two->output();
  // bob stays connected to node b (it waits for messages that never come); ann waits until she has
  // seen both, then until bob is gone.
  child bob({"node", js_dir() + "/phoenix_client.js", "join", url_b, "room:lobby", R"({"user":"bob"})", "--presence",
             "ann,bob", "--expect-joins", "2", "--timeout", "30000"},
            {});
  child ann({"node", js_dir() + "/phoenix_client.js", "push", url_a, "room:lobby", R"({"user":"ann"})", "new_msg",
             R"({"body":"anyone?"})", "--no-reply", "--presence", "ann,bob", "--then-presence", "ann", "--timeout", "30000"},
            {});
  // ann has seen bob: she prints a presence line holding both.
  std::optional<std::string> line;
  while ((line = ann.line()) && !(line->find("\"presence\"") != std::string::npos && line->find("\"bob\"") != std::string::npos &&
                                 line->find("\"ann\"") != std::string::npos)) {
  }
  ASSERT_TRUE(line.has_value()) << ann.output();
  two->signal(SIGKILL);
  EXPECT_EQ(ann.wait(), 0) << ann.output() << one.output();  // --then-presence ann: bob left
}

}  // namespace
}  // namespace athanor::web::testing
#endif
