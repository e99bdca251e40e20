// athanor-live's /counter in a real browser: Debian's Chromium, driven through the DevTools
// protocol by npm's playwright-core (js/chromium_live.js). The page's own scripts — the official
// phoenix and phoenix_live_view clients the tool serves — connect its LiveSocket over the
// browser's WebSocket, and the test clicks as a person would: the count follows without the page
// loading again, each page keeps its own count, and after the server is stopped and started again
// on the same port (same HOME, so the same secret key base) the page reconnects and rejoins by
// itself, to a freshly mounted counter. What view_test.cpp's Node clients cannot show: that the
// browser, the DOM patching and the server agree end to end.
#ifdef ATHANOR_LIVE_BIN
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../support/child_process.h"

namespace athanor::live::testing {
namespace {

using child = ::athanor::testing_support::child;
using namespace std::chrono_literals;

constexpr const char* kChromium = "/usr/bin/chromium";
// The driver's own bound on a run (launch included), and this test's, a little longer, for when
// the driver itself hangs.
constexpr int kDriverTimeoutMs = 45000;
constexpr auto kTestDeadline = 55s;

std::string js_dir() { return (std::filesystem::path(__FILE__).parent_path() / "js").string(); }

bool have_tool(const std::string& tool) { return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0; }

// tests/live/js/node_modules holds every package of package.json (playwright-core for this test,
// jsdom/phoenix/ws for jsdom_live_test.cpp, phoenix_live_view for rendered_test.cpp), else runs
// `npm ci` there. ctest runs test processes in parallel and `npm ci` first deletes node_modules:
// one at a time under a lock, and only if no other process has installed them meanwhile.
bool ensure_node_modules() {
  static int state = -1;
  if (state >= 0) return state == 1;
  const std::string dir = js_dir();
  std::string test;
  for (const char* package : {"phoenix_live_view", "playwright-core", "jsdom", "phoenix", "ws"}) {
    test += std::string(test.empty() ? "" : " -a ") + "-f node_modules/" + package + "/package.json";
  }
  const std::string cmd = "cd '" + dir + "' && (test " + test + " || flock .npm-ci.lock sh -c 'test " + test +
                          " || npm ci --no-audit --no-fund --loglevel=error') >/dev/null 2>&1";
  state = std::system(cmd.c_str()) == 0 ? 1 : 0;
  return state == 1;
}

class ChromiumLiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kChromium)) {
      GTEST_SKIP() << kChromium << " is not installed (scripts/install-deps.sh --test installs Debian's chromium)";
    }
    if (!have_tool("node") || !have_tool("npm")) GTEST_SKIP() << "node/npm are not installed (scripts/install-deps.sh --test installs them)";
    if (!ensure_node_modules()) GTEST_SKIP() << "npm ci failed in tests/live/js (offline without node_modules?)";
    // Chromium and athanor-live write under HOME (profile leftovers, crash reports, the secret key
    // base ~/.athanor_secret_key_base): a temporary one, kept across the server's restart.
    home_ = ::testing::TempDir() + "/chromium_live_home_" + std::to_string(::getpid()) + "_" + std::to_string(++counter_);
    std::filesystem::create_directories(home_);
    env_ = {"HOME=" + home_};
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(home_, ec);
  }

  // Starts athanor-live on `port` (0: any) and returns its URL line (http://HOST:PORT/), empty if
  // it did not serve; a port still held by the previous server is tried again a few times.
  std::string start_server(std::uint16_t port) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      server_ = std::make_unique<child>(std::vector<std::string>{ATHANOR_LIVE_BIN, "--port", std::to_string(port)}, env_);
      std::optional<std::string> url = server_->line(10s);
      if (url && url->rfind("http://", 0) == 0) return *url;
      server_->signal(SIGKILL);
      server_->wait(5s);
      server_log_ += server_->output();
      if (port == 0) break;
      // The port may be briefly unavailable after the previous server's exit: a pause between
      // tries of a bind (not a synchronisation with the page).
      std::this_thread::sleep_for(250ms);
      ++bind_retries_;
    }
    ADD_FAILURE() << "athanor-live --port " << port << " did not serve:\n" << server_log_;
    return {};
  }

  // Stops the server with SIGTERM and waits (bounded) for it to exit; returns its exit status
  // (-1: killed, or ended by a signal).
  int stop_server() {
    server_->signal(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool ended = false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      if (!server_->line(left)) {
        ended = std::chrono::steady_clock::now() < deadline;  // end of output, not the deadline
        break;
      }
    }
    if (!ended) server_->signal(SIGKILL);
    const int status = server_->wait(5s);
    server_log_ += server_->output();
    return ended ? status : -1;
  }

  // Runs the driver's `scenario` against `url` to its end, or kills it at the deadline; each line
  // it prints is handed to `on_line` as it comes. Returns its exit status (-1 when killed) and
  // leaves its output in `out`.
  int drive(const std::string& scenario, const std::string& url, std::string& out,
            const std::function<void(const std::string&, child&)>& on_line = {}) {
    child driver({"node", js_dir() + "/chromium_live.js", url, "--scenario", scenario, "--chromium", kChromium, "--timeout",
                  std::to_string(kDriverTimeoutMs)},
                 env_);
    const auto deadline = std::chrono::steady_clock::now() + kTestDeadline;
    bool ended = false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      std::optional<std::string> l = driver.line(left);
      if (!l) {
        ended = std::chrono::steady_clock::now() < deadline;  // end of output, not the deadline
        break;
      }
      if (on_line) on_line(*l, driver);
    }
    if (!ended) driver.signal(SIGKILL);
    const int status = driver.wait(5s);
    out = driver.output();
    return ended ? status : -1;
  }

  // Every line in `lines` is in the driver's output, and no page threw an uncaught exception.
  static void expect_lines(const std::string& out, std::initializer_list<const char*> lines) {
    for (const char* line : lines) EXPECT_NE(out.find(line), std::string::npos) << "missing \"" << line << "\" in:\n" << out;
    EXPECT_EQ(out.find(": page error: "), std::string::npos) << out;
  }
  std::string diagnostics(const std::string& out) const {
    return out + "\n-- athanor-live:\n" + server_log_ + (server_ ? server_->output() : std::string());
  }

  std::string home_;
  std::vector<std::string> env_;
  std::unique_ptr<child> server_;
  std::string server_log_;  // the output of the servers already ended
  int bind_retries_ = 0;
  static inline int counter_ = 0;
};

// One page: it connects over a WebSocket at /live/websocket, the count follows the clicks and the
// title follows the count, and the page never loads again.
TEST_F(ChromiumLiveTest, CounterFollowsClicksOverAWebSocketWithoutReloading) {
  const std::string url = start_server(0);
  ASSERT_FALSE(url.empty());
  std::string out;
  const int status = drive("counter", url, out);
  ASSERT_EQ(status, 0) << diagnostics(out);
  expect_lines(out, {"connected: phx-connected, #count 0, title \"Count: 0\"",
                     "clicked: inc inc inc dec -> #count 1 2 3 2, title \"Count: 2\", same page (no reload)",
                     "joined once: lv:phx-", "\nok\n"});
  // The browser's own WebSocket to the tool's socket, protocol 2.0.0.
  const std::string ws = "transport: websocket ws" + url.substr(4) + "live/websocket?";
  const auto at = out.find(ws);
  ASSERT_NE(at, std::string::npos) << out;
  const std::string line = out.substr(at, out.find('\n', at) - at);
  EXPECT_TRUE(line.ends_with("&vsn=2.0.0")) << line;
}

// Two pages of one browser, each with its own count.
TEST_F(ChromiumLiveTest, TwoPagesKeepSeparateCounts) {
  const std::string url = start_server(0);
  ASSERT_FALSE(url.empty());
  std::string out;
  const int status = drive("two-pages", url, out);
  ASSERT_EQ(status, 0) << diagnostics(out);
  expect_lines(out, {"connected: two pages, containers phx-",
                     "separate: a counts 1 2 3 2 while b stays 0 then counts -1; neither reloaded", "\nok\n"});
}

// The server goes away (SIGTERM) and comes back on the same port with the same secret: the page
// notices, reconnects and rejoins by itself without loading again, gets a new mount (count 0),
// and counts again.
TEST_F(ChromiumLiveTest, PageRejoinsAFreshMountAfterTheServerRestartsWithoutReloading) {
  const std::string url = start_server(0);
  ASSERT_FALSE(url.empty());
  const std::uint16_t port = std::uint16_t(std::stoi(url.substr(url.rfind(':') + 1)));
  int stop_status = -2;
  std::string restarted_url;
  std::string out;
  const int status = drive("restart", url, out, [&](const std::string& line, child& driver) {
    if (line == "restart: now") {
      // The old server is gone, to the last process, before the page is asked about it.
      stop_status = stop_server();
      driver.signal(SIGUSR2);
    } else if (line.rfind("restart: disconnected", 0) == 0) {
      restarted_url = start_server(port);
      if (restarted_url.empty()) driver.signal(SIGKILL);
    }
  });
  EXPECT_EQ(stop_status, 0) << "athanor-live after SIGTERM:\n" << server_log_;
  EXPECT_EQ(restarted_url, url) << diagnostics(out);
  ASSERT_EQ(status, 0) << diagnostics(out);
  expect_lines(out, {"clicked: #count 2 before the restart", "restart: disconnected (close codes [1001",
                     "rejoined: same page (no reload), phx-connected, #count 0 (a new mount), phx_join _mounts 1",
                     "clicked: #count 1 2 1 after the restart, same page", "\nok\n"});
  // The secret key base the server made in this HOME, read again by the restarted server.
  EXPECT_TRUE(std::filesystem::exists(home_ + "/.athanor_secret_key_base"));
  if (bind_retries_ > 0) std::printf("note: the port took %d retries to bind again after the restart\n", bind_retries_);
}

}  // namespace
}  // namespace athanor::live::testing
#endif
