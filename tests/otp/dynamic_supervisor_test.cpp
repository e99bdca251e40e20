// dynamic_supervisor: one test per rule of Elixir's DynamicSupervisor (and OTP's supervisor
// rules it shares: restart types, intensity, shutdown policies, reports).
#include <algorithm>
#include <atomic>
#include <memory>
#include <vector>

#include "../runtime/test_util.h"
#include "athanor/otp/dynamic_supervisor.h"
#include "log_capture.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct ping {};
struct quit {
  term reason;
};
struct never {};

// A worker that counts its terminate calls (they run when it traps exits and is stopped).
struct idle : gen_server<idle> {
  std::shared_ptr<std::atomic<int>> terminated;
  explicit idle(std::shared_ptr<std::atomic<int>> t) : terminated(std::move(t)) {}
  int handle_call(ping) { return 1; }
  void handle_cast(quit q) { stop(q.reason); }
  void terminate(term) {
    if (terminated) terminated->fetch_add(1);
  }
};

child_spec idle_child(restart_type restart = permanent, std::shared_ptr<std::atomic<int>> counter = nullptr, bool trap = false,
                      shutdown_policy shutdown = shutdown_policy::after(std::chrono::seconds(5))) {
  child_spec c;
  c.id = term("idle"_a);
  c.restart = restart;
  c.shutdown = shutdown;
  c.start = [counter, trap]() -> task<start_result> {
    server_options o;
    o.trap_exit = trap;
    return start_link<idle>(o, counter);
  };
  return c;
}

// A plain process that traps exits and never ends by itself (only `kill` stops it).
child_spec stubborn_child(shutdown_policy shutdown) {
  child_spec c;
  c.id = term("stubborn"_a);
  c.shutdown = shutdown;
  c.start = []() -> task<start_result> {
    // Trapping from its first instant: set in the spawn, not by its body, which may not have run
    // yet when the supervisor sends it `shutdown`.
    co_return start_result::ok(spawn(spawn_options{.link = true, .trap_exit = true},
                                     [](process& self) -> proc { co_await self.receive<never>(); }));
  };
  return c;
}

// Waits (bounded: 10 s) until the supervisor's children differ from `old` and returns them. A
// restart has no event a test can wait on, so this polls, each poll a round trip through the
// supervisor's mailbox; after the first polls it sleeps between them, so that the polling pair
// does not keep the scheduler from the child whose exit it waits for.
task<std::vector<pid>> children_after(pid sup, std::vector<pid> old) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
    std::vector<dynamic_supervisor::child_info> now = co_await dynamic_supervisor::which_children(sup);
    std::vector<pid> pids;
    for (auto& c : now) pids.push_back(c.process);
    std::sort(pids.begin(), pids.end());
    if (pids != old) co_return pids;
    if (i < 100) {
      co_await this_process().yield();
    } else {
      co_await this_process().sleep(std::chrono::milliseconds(1));
    }
  }
  co_return old;
}

std::vector<pid> sorted(std::vector<dynamic_supervisor::child_info> v) {
  std::vector<pid> out;
  for (auto& c : v) out.push_back(c.process);
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(RuntimeTest, DynamicSupervisor_StartsChildrenOnDemandLinkedToItAndCountsThem) {
  run([](process&) -> proc {
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    std::vector<pid> started;
    for (int i = 0; i < 3; ++i) {
      start_result r = co_await dynamic_supervisor::start_child(sup, idle_child());
      EXPECT_TRUE(r.ok());
      started.push_back(r.pid());
    }
    std::sort(started.begin(), started.end());
    std::vector<dynamic_supervisor::child_info> which = co_await dynamic_supervisor::which_children(sup);
    EXPECT_EQ(sorted(which), started);
    dynamic_supervisor::counts c = co_await dynamic_supervisor::count_children(sup);
    EXPECT_EQ(c.specs, 3u);
    EXPECT_EQ(c.active, 3u);
    EXPECT_EQ(c.workers, 3u);
    EXPECT_EQ(c.supervisors, 0u);
    auto info = co_await process_info_async(started[0]);
    EXPECT_TRUE(info && std::find(info->links.begin(), info->links.end(), sup) != info->links.end());
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_ReturnsErrorMaxChildrenWhenFull) {
  run([](process&) -> proc {
    pid sup = (co_await dynamic_supervisor::start_link({.max_children = 2})).value();
    start_result a = co_await dynamic_supervisor::start_child(sup, idle_child());
    start_result b = co_await dynamic_supervisor::start_child(sup, idle_child());
    start_result c = co_await dynamic_supervisor::start_child(sup, idle_child());
    EXPECT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(c.to_term(), tuple("error"_a, "max_children"_a));
    term t = co_await dynamic_supervisor::terminate_child(sup, a.pid());
    EXPECT_EQ(t, term("ok"_a));
    start_result d = co_await dynamic_supervisor::start_child(sup, idle_child());
    EXPECT_TRUE(d.ok());
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_TerminateChildStopsItWithoutRestartAndUnknownPidsAreNotFound) {
  run([](process&) -> proc {
    auto terminated = std::make_shared<std::atomic<int>>(0);
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    pid w = (co_await dynamic_supervisor::start_child(sup, idle_child(permanent, terminated, true))).value();
    term t = co_await dynamic_supervisor::terminate_child(sup, w);
    EXPECT_EQ(t, term("ok"_a));
    EXPECT_FALSE(is_alive(w));
    EXPECT_EQ(terminated->load(), 1);  // it traps exits: exit(Child, shutdown) ran its terminate
    dynamic_supervisor::counts c = co_await dynamic_supervisor::count_children(sup);
    EXPECT_EQ(c.active, 0u);  // permanent, yet not restarted: terminate_child forgets it
    term again = co_await dynamic_supervisor::terminate_child(sup, w);
    EXPECT_EQ(again, tuple("error"_a, "not_found"_a));
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_RestartsAPermanentChildUnderANewPid) {
  run([](process&) -> proc {
    logs_silenced quiet;
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    pid w = (co_await dynamic_supervisor::start_child(sup, idle_child(permanent))).value();
    exit(w, "crash"_a);
    std::vector<pid> now = co_await children_after(sup, std::vector<pid>(1, w));
    EXPECT_EQ(now.size(), 1u);
    EXPECT_TRUE(now.size() == 1 && now[0] != w && is_alive(now[0]));
    // A permanent child is restarted even after a normal exit.
    cast<idle>(now[0], quit{"normal"_a});
    std::vector<pid> again = co_await children_after(sup, now);
    EXPECT_EQ(again.size(), 1u);
    EXPECT_TRUE(again.size() == 1 && again[0] != now[0]);
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_TransientChildIsRestartedOnlyAfterAnAbnormalExit) {
  run([](process&) -> proc {
    logs_silenced quiet;
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    pid a = (co_await dynamic_supervisor::start_child(sup, idle_child(transient))).value();
    cast<idle>(a, quit{"boom"_a});
    std::vector<pid> now = co_await children_after(sup, std::vector<pid>(1, a));
    EXPECT_EQ(now.size(), 1u);
    pid b = now.empty() ? pid() : now[0];
    EXPECT_NE(b, a);
    cast<idle>(b, quit{tuple("shutdown"_a, "done"_a)});  // a normal end for a transient child
    std::vector<pid> after_normal = co_await children_after(sup, now);
    EXPECT_TRUE(after_normal.empty());
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_TemporaryChildIsNeverRestarted) {
  run([](process&) -> proc {
    logs_silenced quiet;
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    pid a = (co_await dynamic_supervisor::start_child(sup, idle_child(temporary))).value();
    cast<idle>(a, quit{"boom"_a});
    std::vector<pid> now = co_await children_after(sup, std::vector<pid>(1, a));
    EXPECT_TRUE(now.empty());
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_ExitsWithShutdownAfterTooManyRestartsAndLogsAReport) {
  run([](process& self) -> proc {
    log_capture logs(log_level::info);
    self.trap_exit(true);
    pid sup = (co_await dynamic_supervisor::start_link({.intensity = 2, .period = std::chrono::seconds(60)})).value();
    auto terminated = std::make_shared<std::atomic<int>>(0);
    pid w = (co_await dynamic_supervisor::start_child(sup, idle_child(permanent))).value();
    pid other = (co_await dynamic_supervisor::start_child(sup, idle_child(permanent, terminated, true))).value();
    std::vector<pid> current = {w, other};
    std::sort(current.begin(), current.end());
    for (int i = 0; i < 2; ++i) {  // two restarts are allowed
      exit(w, "crash"_a);
      std::vector<pid> now = co_await children_after(sup, current);
      EXPECT_EQ(now.size(), 2u);
      for (pid p : now)
        if (p != other) w = p;
      current = now;
    }
    exit(w, "crash"_a);  // the third within the period: the supervisor gives up
    exit_signal x = co_await self.receive<exit_signal>();
    EXPECT_EQ(x.from, sup);
    EXPECT_EQ(x.reason, term("shutdown"_a));
    EXPECT_FALSE(is_alive(other));
    EXPECT_EQ(terminated->load(), 1);  // the surviving child was shut down first
    bool gave_up = false;
    int terminated_reports = 0;
    for (auto& e : logs.with_domain("supervisor_report")) {
      EXPECT_EQ(e.level, log_level::error);
      if (e.get("errorContext") == term("shutdown"_a) && e.get("reason") == term("reached_max_restart_intensity"_a)) gave_up = true;
      if (e.get("errorContext") == term("child_terminated"_a)) ++terminated_reports;
    }
    EXPECT_TRUE(gave_up);
    EXPECT_EQ(terminated_reports, 3);
    EXPECT_EQ(logs.with_domain("progress").size(), 4u);  // two starts, two restarts
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_StopsEveryChildWhenItStops_RunningTheirTerminate) {
  run([](process&) -> proc {
    auto terminated = std::make_shared<std::atomic<int>>(0);
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    std::vector<pid> kids;
    for (int i = 0; i < 50; ++i) {
      pid p = (co_await dynamic_supervisor::start_child(sup, idle_child(permanent, terminated, true))).value();
      kids.push_back(p);
    }
    for (int i = 0; i < 10; ++i) {
      pid p = (co_await dynamic_supervisor::start_child(sup, idle_child(permanent, terminated, true, shutdown_policy::brutal_kill())))
                  .value();
      kids.push_back(p);
    }
    co_await stop(sup, "shutdown"_a);
    EXPECT_EQ(terminated->load(), 50);  // brutal_kill skips terminate
    for (pid p : kids) EXPECT_FALSE(is_alive(p));
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_KillsAChildThatIgnoresShutdownAfterItsTimeoutAndReportsIt) {
  run([](process&) -> proc {
    log_capture logs;
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    pid s = (co_await dynamic_supervisor::start_child(sup, stubborn_child(shutdown_policy::after(20ms)))).value();
    term t = co_await dynamic_supervisor::terminate_child(sup, s);
    EXPECT_EQ(t, term("ok"_a));
    EXPECT_FALSE(is_alive(s));
    auto reports = logs.with_domain("supervisor_report");
    EXPECT_EQ(reports.size(), 1u);
    if (reports.size() == 1) {
      EXPECT_EQ(reports[0].get("errorContext"), term("shutdown_error"_a));
      EXPECT_EQ(reports[0].get("reason"), term("killed"_a));
    }
    // The same when the supervisor itself stops.
    pid s2 = (co_await dynamic_supervisor::start_child(sup, stubborn_child(shutdown_policy::after(20ms)))).value();
    co_await stop(sup, "shutdown"_a);
    EXPECT_FALSE(is_alive(s2));
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_InfinityShutdownWaitsForTheChildToEnd) {
  run([](process&) -> proc {
    log_capture logs;
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    child_spec slow;
    slow.id = term("slow"_a);
    slow.shutdown = shutdown_policy::infinity();
    slow.start = []() -> task<start_result> {
      co_return start_result::ok(spawn(spawn_options{.link = true, .trap_exit = true}, [](process& self) -> proc {
        exit_signal x = co_await self.receive<exit_signal>();
        co_await self.yield();  // some clean-up work
        exit(x.reason);
      }));
    };
    pid s = (co_await dynamic_supervisor::start_child(sup, slow)).value();
    term t = co_await dynamic_supervisor::terminate_child(sup, s);
    EXPECT_EQ(t, term("ok"_a));
    EXPECT_FALSE(is_alive(s));
    EXPECT_TRUE(logs.with_domain("supervisor_report").empty());  // it ended with `shutdown`, as asked
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_EndsWithItsParentAndStopsItsChildren) {
  run([](process& self) -> proc {
    auto terminated = std::make_shared<std::atomic<int>>(0);
    pid me = self.self();
    auto [parent, pm] = spawn_monitor([me, terminated](process& p) -> proc {
      pid sup = (co_await dynamic_supervisor::start_link()).value();
      pid w = (co_await dynamic_supervisor::start_child(sup, idle_child(permanent, terminated, true))).value();
      send(me, std::make_pair(sup, w));
      co_await p.receive<never>();
    });
    std::pair<pid, pid> got = co_await self.receive<std::pair<pid, pid>>();
    ref sm = monitor(got.first);
    exit(parent, "parent_gone"_a);
    auto sup_down = on<down>([sm](const down& d) { return d.monitor == sm; }, [](down& d) { return d.reason; });
    term why = co_await self.receive(std::move(sup_down));
    EXPECT_EQ(why, term("parent_gone"_a));
    EXPECT_FALSE(is_alive(got.second));
    EXPECT_EQ(terminated->load(), 1);
    co_await self.receive<down>();  // the parent's
    (void)pm;
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_StartChildReturnsTheStartsErrorOrIgnoreAndKeepsNothing) {
  run([](process&) -> proc {
    logs_silenced quiet;
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    child_spec failing;
    failing.start = []() -> task<start_result> { co_return start_result::error("no_resources"_a); };
    child_spec throwing;
    throwing.start = []() -> task<start_result> {
      throw std::runtime_error("start blew up");
      co_return start_result::ignore();
    };
    child_spec ignoring;
    ignoring.start = []() -> task<start_result> { co_return start_result::ignore(); };
    start_result a = co_await dynamic_supervisor::start_child(sup, failing);
    EXPECT_EQ(a.to_term(), tuple("error"_a, "no_resources"_a));
    start_result b = co_await dynamic_supervisor::start_child(sup, throwing);
    EXPECT_EQ(b.to_term(), tuple("error"_a, tuple("exception"_a, "start blew up")));
    start_result c = co_await dynamic_supervisor::start_child(sup, ignoring);
    EXPECT_TRUE(c.ignored());
    dynamic_supervisor::counts n = co_await dynamic_supervisor::count_children(sup);
    EXPECT_EQ(n.specs, 0u);
    EXPECT_TRUE(is_alive(sup));
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_ReportsAnAbnormalChildExitAsChildTerminated) {
  run([](process&) -> proc {
    log_capture logs;
    pid sup = (co_await dynamic_supervisor::start_link({.name = "dyn_reports"_a})).value();
    pid a = (co_await dynamic_supervisor::start_child("dyn_reports", idle_child(temporary))).value();
    cast<idle>(a, quit{"broken"_a});
    co_await children_after(sup, std::vector<pid>(1, a));
    auto reports = logs.with_domain("supervisor_report");
    EXPECT_EQ(reports.size(), 1u);
    if (reports.size() == 1) {
      EXPECT_EQ(reports[0].level, log_level::error);
      EXPECT_EQ(reports[0].get("supervisor"), term("dyn_reports"_a));
      EXPECT_EQ(reports[0].get("errorContext"), term("child_terminated"_a));
      EXPECT_EQ(reports[0].get("reason"), term("broken"_a));
    }
    co_await stop("dyn_reports", "shutdown"_a);
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_NestsAsASupervisorChildAndCountsIt) {
  run([](process&) -> proc {
    pid top = (co_await dynamic_supervisor::start_link()).value();
    pid inner = (co_await dynamic_supervisor::start_child(top, dynamic_supervisor::spec("inner"_a))).value();
    pid w = (co_await dynamic_supervisor::start_child(inner, idle_child())).value();
    dynamic_supervisor::counts c = co_await dynamic_supervisor::count_children(top);
    EXPECT_EQ(c.supervisors, 1u);
    EXPECT_EQ(c.workers, 0u);
    co_await stop(top, "shutdown"_a);
    EXPECT_FALSE(is_alive(inner));
    EXPECT_FALSE(is_alive(w));
  });
}

TEST_F(RuntimeTest, DynamicSupervisor_HandlesThousandsOfChildren) {
  run([](process&) -> proc {
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    std::vector<pid> kids;
    for (int i = 0; i < 3000; ++i) {
      pid p = (co_await dynamic_supervisor::start_child(sup, stubborn_child(shutdown_policy::brutal_kill()))).value();
      kids.push_back(p);
    }
    for (std::size_t i = 0; i < kids.size(); i += 2) {
      term t = co_await dynamic_supervisor::terminate_child(sup, kids[i]);
      EXPECT_EQ(t, term("ok"_a));
    }
    dynamic_supervisor::counts c = co_await dynamic_supervisor::count_children(sup);
    EXPECT_EQ(c.active, 1500u);
    co_await stop(sup, "shutdown"_a);
    for (pid p : kids) EXPECT_FALSE(is_alive(p));
  });
}

}  // namespace
}  // namespace athanor::testing
