// Failures are never silent, by OTP's rule: the BEAM logs "Error in process <0.X.0> with exit
// value: ..." for a process that ends with an uncaught error, and nothing for one that ends with
// exit(Reason) or is ended by an exit signal (a link, exit(Pid, kill)), so that a supervisor
// taking down a group of linked processes logs one report, not one per process.
//
// A process's report is logged before its DOWN is sent, so a test that has received the DOWN
// can read the captured events at once.
#include <stdexcept>
#include <string>

#include "log_capture.h"
#include "test_util.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct go {};
struct never {};

// Waits for the DOWN of monitor `m`.
task<down> down_of(process& self, ref m) {
  down d = co_await self.receive(on<down>([m](const down& x) { return x.monitor == m; }, [](down& x) { return x; }));
  co_return d;
}

TEST_F(RuntimeTest, OtpRule_AnUncaughtErrorInAPlainProcessLogsErrorInProcessWithItsExitValue) {
  log_capture capture;
  outcome<pid> crashed;
  run([&](process& self) -> proc {
    auto [child, m] = spawn_monitor([](process&) -> proc {
      throw std::out_of_range("index 7");
      co_return;
    });
    co_await down_of(self, m);
    crashed.set(child);
  });
  pid child = crashed.get();
  auto reports = capture.with_domain("process_error");
  ASSERT_EQ(reports.size(), 1u);
  const log_event& e = reports[0];
  EXPECT_EQ(e.level, log_level::error);
  EXPECT_EQ(e.part, "runtime");
  EXPECT_EQ(e.process, child);
  EXPECT_EQ(e.get("pid"), term(child));
  term reason = tuple(atom("exception"), term(std::string_view("index 7")));
  EXPECT_EQ(e.get("reason"), reason);
  EXPECT_EQ(e.get("exception_type"), term(std::string_view("std::out_of_range")));
  EXPECT_EQ(e.text, "Error in process " + child.to_string() + " with exit value: " + reason.to_string());
}

TEST_F(RuntimeTest, OtpRule_AnErrorFromATaskHelperOrOfAnyTypeIsReportedToo) {
  log_capture capture;
  run([&](process& self) -> proc {
    auto helper = []() -> task<int> {
      throw 42;  // not a std::exception
      co_return 0;
    };
    auto [child, m] = spawn_monitor([helper](process&) -> proc { co_await helper(); });
    down d = co_await down_of(self, m);
    EXPECT_EQ(d.reason, tuple(atom("exception"), term(std::string_view("unknown exception"))));
  });
  auto reports = capture.with_domain("process_error");
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].get("exception_type"), term(std::string_view("int")));
}

TEST_F(RuntimeTest, OtpRule_ExitWithAReasonOrANormalEndIsNotReported) {
  log_capture capture;
  run([&](process& self) -> proc {
    auto [a, ma] = spawn_monitor([](process&) -> proc {
      exit("shutting_down"_a);
      co_return;
    });
    auto [b, mb] = spawn_monitor([](process&) -> proc {
      exit(atoms::normal);
      co_return;
    });
    auto [c, mc] = spawn_monitor([](process&) -> proc { co_return; });
    down da = co_await down_of(self, ma);
    co_await down_of(self, mb);
    co_await down_of(self, mc);
    EXPECT_EQ(da.reason, term("shutting_down"_a));
  });
  EXPECT_TRUE(capture.events().empty());
}

TEST_F(RuntimeTest, OtpRule_ProcessesEndedByALinkedCrashOrByKillAreNotReportedOnlyTheCrashIs) {
  log_capture capture;
  run([&](process& self) -> proc {
    // A group of linked processes: one crashes, the link takes the other down with it.
    pid me = self.self();
    auto [leader, ml] = spawn_monitor([me](process& s) -> proc {
      pid worker = spawn_link([](process& w) -> proc {
        co_await w.receive<go>();
        throw std::runtime_error("worker failed");
      });
      send(me, worker);
      co_await s.receive<never>();
    });
    pid worker = co_await self.receive<pid>();
    send(worker, go{});
    down dl = co_await down_of(self, ml);
    EXPECT_EQ(dl.reason, tuple(atom("exception"), term(std::string_view("worker failed"))));

    // exit(Pid, kill) and an exit signal with any other reason: no report either.
    auto [k, mk] = spawn_monitor([](process& s) -> proc { co_await s.receive<never>(); });
    auto [x, mx] = spawn_monitor([](process& s) -> proc { co_await s.receive<never>(); });
    exit(k, atoms::kill);
    exit(x, "stop_now"_a);
    co_await down_of(self, mk);
    co_await down_of(self, mx);
  });
  auto reports = capture.with_domain("process_error");
  ASSERT_EQ(reports.size(), 1u);  // the worker's, not the leader's
  EXPECT_EQ(reports[0].get("reason"), tuple(atom("exception"), term(std::string_view("worker failed"))));
  EXPECT_EQ(capture.events().size(), 1u);
}

TEST_F(RuntimeTest, ErrorReportsFollowTheRuntimePartsLevel) {
  log_capture capture;
  logger::set_level("runtime", log_level::critical);
  run([&](process& self) -> proc {
    auto [child, m] = spawn_monitor([](process&) -> proc {
      throw std::runtime_error("quiet");
      co_return;
    });
    co_await down_of(self, m);
  });
  logger::clear_level("runtime");
  EXPECT_TRUE(capture.events().empty());
}

}  // namespace
}  // namespace athanor::testing
