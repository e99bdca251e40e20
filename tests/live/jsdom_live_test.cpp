// athanor-live's /counter driven by the official clients without a browser (js/jsdom_live.js):
// the page's HTML in a jsdom window, phoenix_live_view's LiveSocket (its cjs bundle) over
// phoenix's Socket (its cjs bundle), created as /assets/athanor_live.js creates it, on each
// transport a page may run: the npm `ws` WebSocket, jsdom's own WebSocket and phoenix's LongPoll.
// Fast protocol-level checks of what chromium_live_test.cpp shows in a real browser: the join and
// its reply, each click's push and diff, the DOM patched, and a rejoin after the connection drops.
#ifdef ATHANOR_LIVE_BIN
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "../support/child_process.h"
#include "live_js.h"

namespace athanor::live::testing {
namespace {

using child = ::athanor::testing_support::child;
using namespace std::chrono_literals;

// The driver's own bound on a run, and this test's, a little longer, for when the driver hangs.
constexpr int kDriverTimeoutMs = 20000;
constexpr auto kTestDeadline = 30s;


bool have_tool(const std::string& tool) { return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0; }


class JsdomLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_tool("node") || !have_tool("npm")) GTEST_SKIP() << "node/npm are not installed (scripts/install-deps.sh --test installs them)";
    if (!ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/live/js (offline without node_modules?)";
    // athanor-live makes its secret key base under HOME: a temporary one.
    home_ = ::testing::TempDir() + "/jsdom_live_home_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    std::filesystem::create_directories(home_);
    env_ = {"HOME=" + home_};
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(home_, ec);
  }

  // Runs the driver with `transport` against a fresh athanor-live; returns its exit status (-1 when
  // killed at the deadline) and leaves its output and the server's in `out`.
  int drive(const std::string& transport, std::string& out) {
    child server({ATHANOR_LIVE_BIN, "--port", "0"}, env_);
    std::optional<std::string> url = server.line(10s);
    if (!url || url->rfind("http://", 0) != 0) {
      out = "athanor-live did not serve:\n" + server.output();
      return -2;
    }
    child driver({"node", js_dir() + "/jsdom_live.js", *url, "--transport", transport, "--timeout", std::to_string(kDriverTimeoutMs)},
                 env_);
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
    const int status = driver.wait(5s);
    out = driver.output();
    server.signal(SIGTERM);
    server.wait(10s);
    if (status != 0 || !ended) out += "\n-- athanor-live:\n" + server.output();
    return ended ? status : -1;
  }

  static void expect_lines(const std::string& out, std::initializer_list<const char*> lines) {
    for (const char* line : lines) EXPECT_NE(out.find(line), std::string::npos) << "missing \"" << line << "\" in:\n" << out;
  }
  // What every WebSocket run prints, whichever WebSocket class carried it.
  static void expect_websocket_run(const std::string& out) {
    expect_lines(out, {"connected: lv:phx-", " phx-connected, #count 0, title \"Count: 0\"", "/live/websocket vsn=2.0.0\n",
                       "join: reply ok with refs [\"4\",\"4\"], rendered {\"0\":\"0\",\"s\":[2 statics],\"t\":\"Count: 0\"}, "
                       "liveview_version 1.2.12",
                       "clicked: inc inc inc dec -> #count 1 2 3 2, title \"Count: 2\", each push answered with the diff",
                       "reconnected: a new connection, the view rejoined (_mounts 1) to a fresh mount (#count 0), then inc -> 1",
                       "\nok\n"});
    EXPECT_EQ(out.find("window: "), std::string::npos) << "the window logged:\n" << out;
  }

  std::string home_;
  std::vector<std::string> env_;
  static inline int counter_ = 0;
};

TEST_F(JsdomLiveTest, CounterOverTheNpmWsWebSocket) {
  std::string out;
  ASSERT_EQ(drive("ws", out), 0) << out;
  expect_lines(out, {"transport: ws (npm ws) ws://"});
  expect_websocket_run(out);
}

TEST_F(JsdomLiveTest, CounterOverJsdomsOwnWebSocket) {
  std::string out;
  ASSERT_EQ(drive("jsdom", out), 0) << out;
  expect_lines(out, {"transport: jsdom (jsdom's window.WebSocket) ws://"});
  expect_websocket_run(out);
}

TEST_F(JsdomLiveTest, CounterOverLongPoll) {
  std::string out;
  ASSERT_EQ(drive("longpoll", out), 0) << out;
  expect_lines(out, {"connected: lv:phx-", "transport: longpoll (phoenix LongPoll) http://", "/live/longpoll vsn=2.0.0\n",
                     "clicked: inc inc inc dec -> #count 1 2 3 2, title \"Count: 2\"",
                     "reconnected: a new connection, the view rejoined to a fresh mount (#count 0), then inc -> 1", "\nok\n"});
  EXPECT_EQ(out.find("window: "), std::string::npos) << "the window logged:\n" << out;
}

}  // namespace
}  // namespace athanor::live::testing
#endif
