// application: starting and stopping a tree as a unit, as OTP's application master does, and
// run()'s exit code; one test sends a real SIGTERM to a child OS process.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../runtime/test_util.h"
#include "athanor/otp/application.h"
#include "athanor/otp/dynamic_supervisor.h"
#include "log_capture.h"

extern char** environ;

namespace athanor::testing {
namespace {

using namespace athanor::literals;

// What the workers did, in order; read by the test thread after run() returns.
struct notes {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(std::string s) {
    std::lock_guard lock(mu);
    lines.push_back(std::move(s));
  }
  bool has(const std::string& s) {
    std::lock_guard lock(mu);
    return std::find(lines.begin(), lines.end(), s) != lines.end();
  }
};

struct noted : gen_server<noted> {
  std::shared_ptr<notes> log;
  std::string id;
  noted(std::shared_ptr<notes> l, std::string i) : log(std::move(l)), id(std::move(i)) {}
  void init() { log->add("init " + id); }
  void terminate(term reason) { log->add("terminate " + id + " " + reason.to_string()); }
};

child_spec noted_child(std::shared_ptr<notes> log, std::string id) {
  child_spec c;
  c.id = term(atom(id));
  c.start = [log, id]() -> task<start_result> { return start_link<noted>(server_options{.trap_exit = true}, log, id); };
  return c;
}

// A two-level tree: top -> {inner -> {a}, b}.
task<start_result> start_tree(std::shared_ptr<notes> log) {
  start_result top = co_await dynamic_supervisor::start_link();
  if (!top.ok()) co_return top;
  start_result inner = co_await dynamic_supervisor::start_child(top.pid(), dynamic_supervisor::spec("inner"_a));
  co_await dynamic_supervisor::start_child(inner.pid(), noted_child(log, "a"));
  co_await dynamic_supervisor::start_child(top.pid(), noted_child(log, "b"));
  co_return top;
}

bool logged(const log_capture& logs, log_level level, const std::string& text) {
  for (auto& e : logs.events())
    if (e.level == level && e.text.find(text) != std::string::npos) return true;
  return false;
}

TEST_F(RuntimeTest, Application_StopBeforeRunStopsTheTreeRightAfterItStarted_EveryTerminateRunsAndRunReturnsZero) {
  log_capture logs(log_level::info);
  auto log = std::make_shared<notes>();
  application app({.name = "demo", .start = [log] { return start_tree(log); }});
  app.stop();
  int rc = app.run();
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(log->has("init a"));
  EXPECT_TRUE(log->has("terminate a shutdown"));  // trapping gen_servers run terminate
  EXPECT_TRUE(log->has("terminate b shutdown"));
  EXPECT_TRUE(logged(logs, log_level::notice, "application demo stopped"));
}

TEST_F(RuntimeTest, Application_StopFromAnotherThreadWhileRunningStopsTheTree) {
  log_capture logs(log_level::info);
  auto log = std::make_shared<notes>();
  auto started = std::make_shared<std::promise<void>>();
  application app({.name = "demo", .start = [log, started]() -> task<start_result> {
                     start_result r = co_await start_tree(log);
                     started->set_value();
                     co_return r;
                   }});
  std::thread stopper([&] {
    started->get_future().wait();
    app.stop();
  });
  int rc = app.run();
  stopper.join();
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(log->has("terminate a shutdown"));
  EXPECT_TRUE(log->has("terminate b shutdown"));
}

TEST_F(RuntimeTest, Application_RunReturnsOneWhenTheTreeCannotStart) {
  log_capture logs;
  application app({.name = "broken", .start = []() -> task<start_result> { co_return start_result::error("no_config"_a); }});
  int rc = app.run();
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(logged(logs, log_level::error, "application broken could not start: no_config"));
}

// A top "supervisor" that ends by itself right after starting, with the reason it was given.
struct short_lived : gen_server<short_lived> {
  term reason;
  explicit short_lived(term r) : reason(std::move(r)) {}
  void init() { continue_with(0); }
  void handle_continue(int) { stop(reason); }
};

TEST_F(RuntimeTest, Application_RunReturnsOneWhenTheTopEndsAbnormallyByItself_ZeroWhenNormally) {
  log_capture logs;
  application bad({.name = "fragile", .start = [] { return start_link<short_lived>(term("gave_up"_a)); }});
  EXPECT_EQ(bad.run(), 1);
  EXPECT_TRUE(logged(logs, log_level::error, "application fragile exited: gave_up"));
  application good({.name = "oneshot", .start = [] { return start_link<short_lived>(term("normal"_a)); }});
  EXPECT_EQ(good.run(), 0);
  EXPECT_TRUE(logged(logs, log_level::notice, "application oneshot stopped"));
}

TEST_F(RuntimeTest, Application_RunTwiceIsALogicError) {
  logs_silenced quiet;
  application app({.name = "once", .start = []() -> task<start_result> { co_return start_result::error("nope"_a); }});
  EXPECT_EQ(app.run(), 1);
  EXPECT_THROW(app.run(), std::logic_error);
}

TEST(ApplicationBlockSignals, BlocksSigtermAndSigintInTheCallingThreadAndThreadsItStartsLater) {
  std::promise<bool> seen;
  std::thread t([&] {
    application::block_signals();
    std::thread inner([&] {
      sigset_t now;
      pthread_sigmask(SIG_BLOCK, nullptr, &now);
      seen.set_value(sigismember(&now, SIGTERM) == 1 && sigismember(&now, SIGINT) == 1);
    });
    inner.join();
  });
  t.join();
  EXPECT_TRUE(seen.get_future().get());
}

// ---- a real SIGTERM ----------------------------------------------------------------------------
// The parent test runs this test binary again with a filter selecting ApplicationSignalChild and
// the write end of a pipe in ATHANOR_APP_SIGNAL_FD. The child runs an application whose worker
// writes "started" from init and "terminated" from terminate; the parent sends SIGTERM once it
// reads "started", then checks the exit code and that terminate ran. A fresh process (not a
// bare fork of this multi-threaded one) is what run() expects: no threads before it.

void write_line(int fd, const std::string& s) {
  std::string line = s + "\n";
  ssize_t n = ::write(fd, line.data(), line.size());
  (void)n;
}

struct signal_worker : gen_server<signal_worker> {
  int fd;
  explicit signal_worker(int f) : fd(f) {}
  void init() { write_line(fd, "started"); }
  void terminate(term reason) { write_line(fd, "terminated " + reason.to_string()); }
};

TEST(ApplicationSignalChild, RunsUntilSigterm) {
  const char* fd_text = std::getenv("ATHANOR_APP_SIGNAL_FD");
  if (!fd_text) GTEST_SKIP() << "runs only as the child of Application_SigtermStopsTheTreeAndRunReturnsZero";
  int fd = std::atoi(fd_text);
  application app({.name = "signalled", .start = [fd]() -> task<start_result> {
                     start_result top = co_await dynamic_supervisor::start_link();
                     child_spec w;
                     w.id = term("worker"_a);
                     w.start = [fd]() -> task<start_result> { return start_link<signal_worker>(server_options{.trap_exit = true}, fd); };
                     co_await dynamic_supervisor::start_child(top.pid(), w);
                     co_return top;
                   },
                   .runtime = runtime_config{.schedulers = 2}});
  int rc = app.run();
  write_line(fd, "rc " + std::to_string(rc));
  std::_Exit(rc);
}

TEST(ApplicationSignal, SigtermStopsTheTreeAndRunReturnsZero) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  ::fcntl(p[0], F_SETFD, FD_CLOEXEC);  // the child keeps only the write end
  std::string fd_env = "ATHANOR_APP_SIGNAL_FD=" + std::to_string(p[1]);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  env_store.push_back(fd_env);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=ApplicationSignalChild.RunsUntilSigterm";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  pid_t child;
  ASSERT_EQ(::posix_spawn(&child, exe.c_str(), nullptr, nullptr, argv, envp.data()), 0);
  ::close(p[1]);

  std::string out;
  bool signalled = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    if (!signalled && out.find("started\n") != std::string::npos) {
      ::kill(child, SIGTERM);
      signalled = true;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd pfd{p[0], POLLIN, 0};
    if (::poll(&pfd, 1, int(left)) <= 0) break;
    char buf[256];
    ssize_t n = ::read(p[0], buf, sizeof buf);
    if (n <= 0) break;  // EOF: the child has exited
    out.append(buf, std::size_t(n));
  }
  ::close(p[0]);
  if (!signalled || out.find("rc ") == std::string::npos) ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(signalled) << out;
  EXPECT_TRUE(WIFEXITED(status)) << "status " << status << ", output: " << out;
  EXPECT_EQ(WEXITSTATUS(status), 0) << out;
  EXPECT_NE(out.find("terminated shutdown\n"), std::string::npos) << out;
  EXPECT_NE(out.find("rc 0\n"), std::string::npos) << out;
}

}  // namespace
}  // namespace athanor::testing
