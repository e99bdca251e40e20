// athanor-live's pages in a real browser: Debian's Chromium, driven through the DevTools protocol
// by npm's playwright-core (js/chromium_live.js). The page's own scripts — the official phoenix
// and phoenix_live_view clients the tool serves — connect its LiveSocket over the browser's
// WebSocket, and the test clicks and types as a person would. /counter: the count follows without
// the page loading again, each page keeps its own count, and after the server is stopped and
// started again on the same port (same HOME, so the same secret key base) the page reconnects and
// rejoins by itself, to a freshly mounted counter. /form: errors show as the user types (only for
// the fields touched) and on submit, and when the view's process dies the client rejoins and its
// form recovery gives the new process what was typed. /chat: two people in two browser contexts,
// and a LiveView page on athanor-live talking with athanor-chat's own page on another node of a
// cluster (issue 15's "Tests in a real browser"). What view_test.cpp's Node clients cannot show:
// that the browser, the DOM patching and the server agree end to end.
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
#include "live_js.h"
#include "../support/free_port.h"

namespace athanor::live::testing {
namespace {

using child = ::athanor::testing_support::child;
using namespace std::chrono_literals;

constexpr const char* kChromium = "/usr/bin/chromium";
// The driver's own bound on a run (launch included), and this test's, a little longer, for when
// the driver itself hangs.
constexpr int kDriverTimeoutMs = 45000;
constexpr auto kTestDeadline = 55s;


// athanor-chat, for the cluster test: ATHANOR_CHAT_BIN if the build gives it to this test, else
// where the build puts it next to athanor-live (tools/athanor-live/athanor-live ->
// tools/athanor-chat/athanor-chat).
std::string chat_bin() {
#ifdef ATHANOR_CHAT_BIN
  return ATHANOR_CHAT_BIN;
#else
  return (std::filesystem::path(ATHANOR_LIVE_BIN).parent_path().parent_path() / "athanor-chat" / "athanor-chat").string();
#endif
}

bool have_tool(const std::string& tool) { return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0; }


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

  // Stops `c` with SIGTERM and waits (bounded) for it to exit, reading the rest of its output;
  // returns its exit status (-1: killed, or ended by a signal).
  static int stop(child& c) {
    c.signal(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool ended = false;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      if (!c.line(left)) {
        ended = std::chrono::steady_clock::now() < deadline;  // end of output, not the deadline
        break;
      }
    }
    if (!ended) c.signal(SIGKILL);
    const int status = c.wait(5s);
    return ended ? status : -1;
  }
  // Stops the server (stop()), keeping its whole output in server_log_.
  int stop_server() {
    const int status = stop(*server_);
    server_log_ += server_->output();
    server_.reset();
    return status;
  }

  // Runs the driver's `scenario` against `url` (with the driver options `extra`) to its end, or
  // kills it at the deadline; each line it prints is handed to `on_line` as it comes. Returns its
  // exit status (-1 when killed) and leaves its output in `out`.
  int drive(const std::string& scenario, const std::string& url, std::string& out,
            const std::function<void(const std::string&, child&)>& on_line = {}, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv{"node", js_dir() + "/chromium_live.js", url, "--scenario", scenario, "--chromium", kChromium,
                                  "--timeout", std::to_string(kDriverTimeoutMs)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    child driver(argv, env_);
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
  // Prints the driver's "timings (ms): ..." line (where a slow run spent its time; shown by
  // ctest --output-on-failure and -V).
  static void print_timings(const std::string& out) {
    const auto at = out.find("timings (ms): ");
    if (at != std::string::npos) std::printf("driver %s\n", out.substr(at, out.find('\n', at) - at).c_str());
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

// /form as a person fills it in: a 1-letter name shows its error while the untouched email shows
// none; fixing the name clears it; a bad email and a short password show theirs, and submitting
// them is refused with both shown; a valid submit welcomes the user. One socket, one join, no
// reload. The server stops cleanly afterwards.
TEST_F(ChromiumLiveTest, FormShowsErrorsAsTheUserTypesAndOnSubmitWithoutReloading) {
  const std::string url = start_server(0);
  ASSERT_FALSE(url.empty());
  std::string out;
  const int status = drive("form", url, out);
  print_timings(out);
  const int stop_status = stop_server();
  ASSERT_EQ(status, 0) << diagnostics(out);
  expect_lines(out, {"connected: /form phx-connected, title \"Sign up\", every field and error empty",
                     "short name: #name-error \"must have at least 2 characters\", #email-error empty (the untouched email went "
                     "as user[_unused_email])",
                     "name fixed: \"Ann\" clears #name-error",
                     "as typed: #email-error \"must have an @ sign\", #password-error \"must have at least 8 characters\"",
                     "refused submit: phx-submit \"save\" sent every field as used; #email-error and #password-error shown, "
                     "#name-error and #result empty",
                     "valid submit: #result \"Welcome, Ann!\", no error shown, same page (no reload)", "joined once: lv:phx-",
                     "\nok\n"});
  EXPECT_EQ(stop_status, 0) << "athanor-live after SIGTERM:\n" << server_log_;
}

// /form's view process dies (the page's own client pushes "crash", which throws in handle_event):
// the server sends phx_error, the container goes phx-error, the client rejoins on the same socket
// (_mounts 1, a fresh mount) and recovers the form — a phx-change with what was typed, which the
// new process renders back — so the inputs keep their text, no error shows, and the form submits;
// the page never loads again. The server logs the crash and keeps serving (it stops cleanly).
TEST_F(ChromiumLiveTest, FormKeepsWhatWasTypedWhenTheViewsProcessCrashesAndRejoins) {
  const std::string url = start_server(0);
  ASSERT_FALSE(url.empty());
  std::string out;
  const int status = drive("form-recovery", url, out);
  print_timings(out);
  const int stop_status = stop_server();
  ASSERT_EQ(status, 0) << diagnostics(out);
  expect_lines(out, {"typed: name \"Ann\", email \"ann@example.com\", rendered back by the server, no error",
                     "crashed: pushed \"crash\"", "the server sent phx_error", "the container went phx-error",
                     "rejoined: phx_join lv:phx-", " on the same socket, a fresh mount (name and email rendered empty)",
                     "recovered: phx-change \"validate\" sent user[name]=Ann, user[email]=ann@example.com (_target user[name], the "
                     "password still unused); the server rendered them back without errors; the inputs hold \"Ann\" and "
                     "\"ann@example.com\", no error, same page (no reload)",
                     "submitted: #result \"Welcome, Ann!\" from the new process, same page", "\nok\n"});
  EXPECT_EQ(stop_status, 0) << "athanor-live after SIGTERM:\n" << server_log_;
  // The view's exception, in the server's log: the crash was the view's, not the connection's.
  EXPECT_NE(server_log_.find("crash requested"), std::string::npos) << server_log_;
}

// /chat with two people in two browser contexts (separate cookies and storage, as two users):
// both join room "kitchen"; ann's message and bob's answer show on both pages, in order, once each.
TEST_F(ChromiumLiveTest, ChatPagesInTwoContextsSeeEachOthersMessages) {
  const std::string url = start_server(0);
  ASSERT_FALSE(url.empty());
  std::string out;
  const int status = drive("chat", url, out);
  print_timings(out);
  const int stop_status = stop_server();
  ASSERT_EQ(status, 0) << diagnostics(out);
  expect_lines(out, {"joined: two contexts, #status \"In room kitchen as ann\" and \"In room kitchen as bob\"",
                     "message: ann \"hello from ann\" on both pages", "message: bob \"hi ann\" on both pages",
                     "transcript: both pages show ann's message then bob's, once each; neither reloaded", "\nok\n"});
  EXPECT_EQ(stop_status, 0) << "athanor-live after SIGTERM:\n" << server_log_;
}

// The two binaries clustered: athanor-chat runs node chat_a, athanor-live runs node live_b and
// joins it (same cookie, this test's HOME and EPMD port). ann on live_b's LiveView /chat and bob
// on chat_a's own page, both in room "lobby", talk both ways: the LiveView's broadcast reaches a
// channel client on the other node, and the channel's broadcast reaches the LiveView's process.
//
// Ordering, not a wait: athanor-live connects to chat_a as it starts (chat_a printed its node name,
// so it is registered and listening), before it prints its URL; the pages join more than a browser
// launch later, and ann speaks only once both have joined.
TEST_F(ChromiumLiveTest, LiveViewChatAndAthanorChatTalkAcrossClusteredNodes) {
  const std::string chat = chat_bin();
  if (!std::filesystem::exists(chat)) GTEST_SKIP() << chat << " is not built (cmake --build ... --target athanor-chat)";
  env_.push_back("ERL_EPMD_PORT=" + std::to_string(::athanor::testing_support::free_port()));
  child a({chat, "--port", "0", "--sname", "chat_a", "--cookie", "chromium-live-test"}, env_);
  const std::optional<std::string> url_a = a.line(10s);
  const std::optional<std::string> node_a = url_a ? a.line(10s) : std::nullopt;
  ASSERT_TRUE(url_a && url_a->rfind("http://", 0) == 0 && node_a) << "athanor-chat did not start:\n" << a.output();
  server_ = std::make_unique<child>(
      std::vector<std::string>{ATHANOR_LIVE_BIN, "--port", "0", "--sname", "live_b", "--cookie", "chromium-live-test", "--join", *node_a},
      env_);
  const std::optional<std::string> url_b = server_->line(10s);
  const std::optional<std::string> node_b = url_b ? server_->line(10s) : std::nullopt;
  ASSERT_TRUE(url_b && url_b->rfind("http://", 0) == 0 && node_b) << "athanor-live did not start:\n" << server_->output();
  std::string out;
  const int status = drive("chat-cluster", *url_b, out, {}, {"--chat-url", *url_a});
  print_timings(out);
  const int stop_status = stop_server();
  const int a_status = stop(a);
  ASSERT_EQ(status, 0) << diagnostics(out) << "\n-- athanor-chat:\n" << a.output();
  const std::string joined = "joined: ann on the LiveView page " + *url_b + "chat (#status \"In room lobby as ann\"), bob on athanor-chat's page " +
                             *url_a + " (#status \"In room lobby as bob\")";
  expect_lines(out, {joined.c_str(), "transport: bob websocket ws://", "message: ann (LiveView) \"hello from the live view\" on both pages",
                     "message: bob (athanor-chat) \"hello from athanor-chat\" on both pages",
                     "transcript: both pages show ann's message then bob's, once each; neither reloaded", "\nok\n"});
  EXPECT_EQ(stop_status, 0) << "athanor-live after SIGTERM:\n" << server_log_;
  EXPECT_EQ(a_status, 0) << "athanor-chat after SIGTERM:\n" << a.output();
}

}  // namespace
}  // namespace athanor::live::testing
#endif
