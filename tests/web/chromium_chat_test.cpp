// athanor-chat's own page in a real browser: Debian's Chromium, driven through the DevTools
// protocol by npm's playwright-core (js/chromium_chat.js), with two pages chatting as two people
// would, on one node and across a two-node cluster. This is what the Node tests of chat_test.cpp
// cannot show: that the page's script, the official client in a browser's WebSocket, and the
// server's framing and Presence agree end to end.
#ifdef ATHANOR_CHAT_BIN
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "../support/child_process.h"
#include "../support/free_port.h"
#include "web_test_util.h"

namespace athanor::web::testing {
namespace {

using child = ::athanor::testing_support::child;

constexpr const char* kChromium = "/usr/bin/chromium";
// The driver's own bound on a run (launch included), and this test's, a little longer, for when
// the driver itself hangs.
constexpr int kDriverTimeoutMs = 45000;
constexpr auto kTestDeadline = std::chrono::seconds(55);

class ChromiumChatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kChromium)) {
      GTEST_SKIP() << kChromium << " is not installed (scripts/install-deps.sh --test installs Debian's chromium)";
    }
    if (!have_tool("node") || !have_tool("npm")) GTEST_SKIP() << "node/npm are not installed (scripts/install-deps.sh --test installs them)";
    if (!ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/web/js (offline without node_modules?)";
    // Chromium and the nodes write under HOME (profile leftovers, crash reports, the cookie): a
    // temporary one, and an EPMD port of these nodes' own.
    home_ = ::testing::TempDir() + "/chromium_chat_home_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    std::filesystem::create_directories(home_);
    env_ = {"HOME=" + home_, "ERL_EPMD_PORT=" + std::to_string(::athanor::testing_support::free_port())};
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(home_, ec);
  }
  // The page URL (http://HOST:PORT/) athanor-chat prints first once it serves.
  static std::string page_url(child& chat) {
    std::optional<std::string> url = chat.line();
    EXPECT_TRUE(url && url->rfind("http://", 0) == 0) << chat.output();
    return url && url->rfind("http://", 0) == 0 ? *url : std::string();
  }
  // Runs the driver on `urls` to its end, or kills it at the deadline; returns its exit status
  // (-1 when killed) and leaves its output in `out`.
  int drive(const std::vector<std::string>& urls, std::string& out) {
    std::vector<std::string> argv{"node", js_dir() + "/chromium_chat.js"};
    argv.insert(argv.end(), urls.begin(), urls.end());
    for (const char* a : {"--room", "kitchen", "--chromium", kChromium, "--timeout"}) argv.emplace_back(a);
    argv.push_back(std::to_string(kDriverTimeoutMs));
    child driver(argv, env_);
    const auto deadline = std::chrono::steady_clock::now() + kTestDeadline;
    bool ended = false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      if (!driver.line(left)) {
        ended = std::chrono::steady_clock::now() < deadline;  // end of output, not the deadline
        break;
      }
    }
    if (!ended) driver.signal(SIGKILL);
    const int status = driver.wait(std::chrono::seconds(5));
    out = driver.output();
    return ended ? status : -1;
  }
  // The driver's lines that every passing run prints, whichever nodes the pages are on.
  static void expect_the_whole_conversation(const std::string& out) {
    for (const char* line : {"transport: ann websocket ws://", "transport: bob websocket ws://",
                             "presence: ann and bob on both pages", "message: ann \"hello from ann\" on both pages",
                             "message: bob \"hi ann\" on both pages", "presence: ann alone once bob's page closed", "\nok\n"}) {
      EXPECT_NE(out.find(line), std::string::npos) << "missing \"" << line << "\" in:\n" << out;
    }
  }
  std::string home_;
  std::vector<std::string> env_;
  static inline int counter_ = 0;
};

TEST_F(ChromiumChatTest, TwoPagesChatAndSeeEachOtherInPresence) {
  child chat({ATHANOR_CHAT_BIN, "--port", "0"}, env_);
  const std::string url = page_url(chat);
  ASSERT_FALSE(url.empty());
  std::string out;
  const int status = drive({url}, out);
  ASSERT_EQ(status, 0) << out;
  expect_the_whole_conversation(out);
  // The page's socket is at /socket, over the browser's own WebSocket (not long-polling).
  EXPECT_NE(out.find("ws" + url.substr(4) + "socket/websocket?vsn=2.0.0"), std::string::npos) << out;
}

// The cluster, seen from browsers: ann's page is served by node a and bob's by node b; messages
// and presences cross between them, and bob's leaving reaches node a.
TEST_F(ChromiumChatTest, PagesOnTwoClusteredNodesChatAndSeeEachOtherInPresence) {
  child one({ATHANOR_CHAT_BIN, "--port", "0", "--sname", "chromium_a", "--cookie", "chromium-test"}, env_);
  const std::string url_a = page_url(one);
  ASSERT_FALSE(url_a.empty());
  ASSERT_TRUE(one.line().has_value()) << one.output();  // its node name
  child two({ATHANOR_CHAT_BIN, "--port", "0", "--sname", "chromium_b", "--cookie", "chromium-test", "--join", "chromium_a"},
            env_);
  const std::string url_b = page_url(two);
  ASSERT_FALSE(url_b.empty());
  ASSERT_TRUE(two.line().has_value()) << two.output();
  // The nodes may still be connecting as the pages join: the driver waits until each page's list
  // holds both names, which is only true once presences have crossed, before anyone speaks.
  std::string out;
  const int status = drive({url_a, url_b}, out);
  ASSERT_EQ(status, 0) << out << one.output() << two.output();
  expect_the_whole_conversation(out);
  EXPECT_NE(out.find("joined: ann on " + url_a + ", bob on " + url_b), std::string::npos) << out;
}

}  // namespace
}  // namespace athanor::web::testing
#endif
