// supervisor: one test per rule of OTP's supervisor documentation (strategies, restart types,
// restart intensity and escalation, shutdown, the child management functions).
#include <mutex>
#include <string>
#include <vector>

#include "../runtime/test_util.h"
#include "athanor/otp/supervisor.h"
#include "log_capture.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

// A shared, thread-safe event log.
struct journal {
  std::mutex mu;
  std::vector<std::string> lines;
  void add(std::string s) {
    std::lock_guard l(mu);
    lines.push_back(std::move(s));
  }
  std::vector<std::string> take() {
    std::lock_guard l(mu);
    return std::exchange(lines, {});
  }
};

struct ping {};
struct crash {};

// A worker that records its start and its terminate (it traps exits, so terminate runs on shutdown).
struct probe : gen_server<probe> {
  std::shared_ptr<journal> j;
  std::string id;
  probe(std::shared_ptr<journal> jj, std::string i) : j(std::move(jj)), id(std::move(i)) {}
  void init() {
    this_process().trap_exit(true);
    j->add("start " + id);
  }
  std::string handle_call(ping) { return id; }
  void handle_cast(crash) { exit(atom("crashed")); }
  void terminate(term reason) { j->add("stop " + id + " " + reason.to_string()); }
};

child_spec probe_child(std::shared_ptr<journal> j, const std::string& id, restart_type r = restart_type::permanent) {
  child_spec c = child<probe>(atom(id), j, id);
  c.restart = r;
  return c;
}

// Waits until `name` is registered to a pid other than `old` (a restart), bounded.
task<pid> restarted(process& self, atom name, pid old) {
  for (int i = 0; i < 5000; ++i) {
    pid p = whereis(name);
    if (p && p != old) co_return p;
    co_await self.sleep(1ms);
  }
  co_return pid();
}

TEST_F(RuntimeTest, ChildrenStartInOrderAndStopInReverseOrder) {
  run([](process&) -> proc {
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids1{probe_child(j, "a"), probe_child(j, "b"), probe_child(j, "c")};
    pid sup = (co_await supervisor::start(supervisor_flags{}, std::move(kids1))).value();
    EXPECT_EQ(j->take(), (std::vector<std::string>{"start a", "start b", "start c"}));
    co_await stop(sup, "shutdown"_a);
    EXPECT_EQ(j->take(), (std::vector<std::string>{"stop c shutdown", "stop b shutdown", "stop a shutdown"}));
  });
}

TEST_F(RuntimeTest, OneForOneRestartsOnlyTheChildThatEnded) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids2{probe_child(j, "a1"), probe_child(j, "b1"), probe_child(j, "c1")};
    pid sup = (co_await supervisor::start({.strategy = one_for_one, .intensity = 5}, std::move(kids2)))
                  .value();
    j->take();
    pid b = whereis("b1"_a);
    cast<probe>(b, crash{});
    pid b2 = co_await restarted(self, "b1"_a, b);
    EXPECT_TRUE(b2);
    EXPECT_EQ(j->take(), (std::vector<std::string>{"stop b1 crashed", "start b1"}));
    std::string who = co_await call<probe>("b1", ping{});
    EXPECT_EQ(who, "b1");
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, OneForAllStopsTheOthersInReverseThenRestartsAllInOrder) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids3{probe_child(j, "a2"), probe_child(j, "b2"), probe_child(j, "c2")};
    pid sup = (co_await supervisor::start({.strategy = one_for_all, .intensity = 5}, std::move(kids3)))
                  .value();
    j->take();
    pid a = whereis("a2"_a), b = whereis("b2"_a), c = whereis("c2"_a);
    cast<probe>(b, crash{});
    co_await restarted(self, "a2"_a, a);
    co_await restarted(self, "c2"_a, c);
    pid b2 = co_await restarted(self, "b2"_a, b);
    EXPECT_TRUE(b2);
    // Wait for the third start to be journaled (c2 registers before its start line is visible).
    std::vector<std::string> lines = j->take();
    EXPECT_EQ(lines, (std::vector<std::string>{"stop b2 crashed", "stop c2 shutdown", "stop a2 shutdown", "start a2",
                                               "start b2", "start c2"}));
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, RestForOneRestartsTheChildAndTheOnesStartedAfterIt) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids4{probe_child(j, "a3"), probe_child(j, "b3"), probe_child(j, "c3")};
    pid sup = (co_await supervisor::start({.strategy = rest_for_one, .intensity = 5}, std::move(kids4)))
                  .value();
    j->take();
    pid a = whereis("a3"_a), b = whereis("b3"_a), c = whereis("c3"_a);
    cast<probe>(b, crash{});
    co_await restarted(self, "b3"_a, b);
    co_await restarted(self, "c3"_a, c);
    EXPECT_EQ(whereis("a3"_a), a);  // started before b3: untouched
    std::vector<std::string> after_settle;
    std::vector<std::string> which;
    auto kids = co_await supervisor::which_children(sup);
    for (auto& k : kids) which.push_back(k.id.to_string() + (k.restarts ? "*" : ""));
    EXPECT_EQ(which, (std::vector<std::string>{"a3", "b3*", "c3*"}));
    EXPECT_EQ(j->take(), (std::vector<std::string>{"stop b3 crashed", "stop c3 shutdown", "start b3", "start c3"}));
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, RestartTypes_PermanentAlways_TransientOnlyAbnormal_TemporaryNever) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids5{probe_child(j, "perm", restart_type::permanent),
                                                               probe_child(j, "trans", restart_type::transient),
                                                               probe_child(j, "temp", restart_type::temporary)};
    pid sup = (co_await supervisor::start({.intensity = 10}, std::move(kids5)))
                  .value();
    // transient + normal exit: not restarted, spec kept.
    pid t = whereis("trans"_a);
    co_await stop(t, "normal"_a);
    // permanent + normal exit: restarted.
    pid p = whereis("perm"_a);
    co_await stop(p, "normal"_a);
    pid p2 = co_await restarted(self, "perm"_a, p);
    EXPECT_TRUE(p2);
    // temporary + abnormal exit: not restarted and the spec is dropped.
    pid tmp = whereis("temp"_a);
    ref m = monitor(tmp);
    cast<probe>(tmp, crash{});
    co_await self.receive<down>();
    (void)m;
    child_counts n = co_await supervisor::count_children(sup);
    EXPECT_EQ(n.specs, 2u);   // perm, trans
    EXPECT_EQ(n.active, 1u);  // perm
    EXPECT_EQ(n.workers, 2u);
    // transient + abnormal exit: restarted.
    start_result r = co_await supervisor::restart_child(sup, "trans"_a);
    EXPECT_TRUE(r.ok());
    cast<probe>(r.pid(), crash{});
    pid t3 = co_await restarted(self, "trans"_a, r.pid());
    EXPECT_TRUE(t3);
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, TooManyRestartsMakeTheSupervisorExitWithShutdown) {
  run([](process& self) -> proc {
    log_capture logs;
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids6{probe_child(j, "fragile")};
    pid sup = (co_await supervisor::start({.intensity = 2, .period = 60s}, std::move(kids6))).value();
    ref sm = monitor(sup);
    // Three crashes within the period: the third exceeds intensity 2.
    for (int i = 0; i < 3; ++i) {
      pid c = whereis("fragile"_a);
      cast<probe>(c, crash{});
      if (i < 2) co_await restarted(self, "fragile"_a, c);
    }
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.monitor, sm);
    EXPECT_EQ(d.reason, term("shutdown"_a));
    bool gave_up = false;
    for (auto& e : logs.with_domain("supervisor_report"))
      if (e.get("reason") == term("reached_max_restart_intensity"_a)) gave_up = true;
    EXPECT_TRUE(gave_up);
  });
}

TEST_F(RuntimeTest, IntensityCountsOnlyRestartsWithinThePeriod) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids7{probe_child(j, "spaced")};
    pid sup = (co_await supervisor::start({.intensity = 1, .period = 20ms}, std::move(kids7))).value();
    for (int i = 0; i < 3; ++i) {
      pid c = whereis("spaced"_a);
      cast<probe>(c, crash{});
      pid next = co_await restarted(self, "spaced"_a, c);
      EXPECT_TRUE(next);
      co_await self.sleep(40ms);  // let the previous restart leave the window
    }
    EXPECT_TRUE(is_alive(sup));
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, EscalationClimbsTheTreeUntilASupervisorAbsorbsIt) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    auto j = std::make_shared<journal>();
    // top (intensity 5) -> mid (intensity 0) -> leaf. A leaf crash makes mid give up; top restarts mid.
    std::vector<child_spec> kids8{supervisor::spec("mid"_a, {.intensity = 0}, {probe_child(j, "leaf")}, "mid_sup"_a)};
    pid top = (co_await supervisor::start({.intensity = 5}, std::move(kids8)))
                  .value();
    pid mid = whereis("mid_sup"_a);
    pid leaf = whereis("leaf"_a);
    cast<probe>(leaf, crash{});
    pid mid2 = co_await restarted(self, "mid_sup"_a, mid);
    EXPECT_TRUE(mid2);
    pid leaf2 = co_await restarted(self, "leaf"_a, leaf);
    EXPECT_TRUE(leaf2);
    std::vector<child_info> kids = co_await supervisor::which_children(top);
    EXPECT_EQ(kids.size(), 1u);
    if (!kids.empty()) {
      EXPECT_EQ(kids[0].type, child_type::supervisor);
      EXPECT_EQ(kids[0].restarts, 1u);
    }
    std::string tree = co_await supervisor::describe_tree(top);
    EXPECT_NE(tree.find("+ mid"), std::string::npos) << tree;
    EXPECT_NE(tree.find("  - leaf"), std::string::npos) << tree;
    co_await stop(top, "shutdown"_a);
  });
}

// A worker that ignores shutdown (traps exits, never ends on its own).
proc stubborn(process& self) {
  self.trap_exit(true);
  for (;;) co_await self.receive<ping>();
}

TEST_F(RuntimeTest, ShutdownTimeoutKillsAChildThatDoesNotStop_BrutalKillKillsAtOnce) {
  run([](process&) -> proc {
    log_capture logs;
    child_spec slow = process_child("stubborn"_a, stubborn);
    slow.shutdown = shutdown_policy::after(20ms);
    child_spec brutal = process_child("brutal"_a, stubborn);
    brutal.shutdown = shutdown_policy::brutal_kill();
    std::vector<child_spec> kids9{slow, brutal};
    pid sup = (co_await supervisor::start(supervisor_flags{}, std::move(kids9))).value();
    auto kids = co_await supervisor::which_children(sup);
    pid slow_pid = kids.at(0).process;
    pid brutal_pid = kids.at(1).process;
    term r1 = co_await supervisor::terminate_child(sup, "brutal"_a);
    EXPECT_EQ(r1, term("ok"_a));
    EXPECT_FALSE(is_alive(brutal_pid));
    term r2 = co_await supervisor::terminate_child(sup, "stubborn"_a);
    EXPECT_EQ(r2, term("ok"_a));
    EXPECT_FALSE(is_alive(slow_pid));
    // Killing after the timeout is reported as a shutdown_error with reason killed.
    bool reported = false;
    for (auto& e : logs.with_domain("supervisor_report"))
      if (e.get("errorContext") == term("shutdown_error"_a) && e.get("reason") == term("killed"_a)) reported = true;
    EXPECT_TRUE(reported);
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, ChildManagement_StartTerminateRestartDeleteWhichCount) {
  run([](process&) -> proc {
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids10{probe_child(j, "m1")};
    pid sup = (co_await supervisor::start(supervisor_flags{}, std::move(kids10))).value();
    start_result s = co_await supervisor::start_child(sup, probe_child(j, "m2"));
    EXPECT_TRUE(s.ok());
    start_result dup = co_await supervisor::start_child(sup, probe_child(j, "m2"));
    EXPECT_EQ(dup.error(), tuple("already_started"_a, s.pid()));
    term t = co_await supervisor::terminate_child(sup, "m2"_a);
    EXPECT_EQ(t, term("ok"_a));
    start_result present = co_await supervisor::start_child(sup, probe_child(j, "m2"));
    EXPECT_EQ(present.error(), term("already_present"_a));
    term missing = co_await supervisor::terminate_child(sup, "nope"_a);
    EXPECT_EQ(missing, tuple("error"_a, "not_found"_a));
    term running = co_await supervisor::delete_child(sup, "m1"_a);
    EXPECT_EQ(running, tuple("error"_a, "running"_a));
    start_result rr = co_await supervisor::restart_child(sup, "m1"_a);
    EXPECT_EQ(rr.error(), term("running"_a));
    start_result r2 = co_await supervisor::restart_child(sup, "m2"_a);
    EXPECT_TRUE(r2.ok());
    co_await supervisor::terminate_child(sup, "m2"_a);
    term del = co_await supervisor::delete_child(sup, "m2"_a);
    EXPECT_EQ(del, term("ok"_a));
    start_result gone = co_await supervisor::restart_child(sup, "m2"_a);
    EXPECT_EQ(gone.error(), term("not_found"_a));
    child_counts n = co_await supervisor::count_children(sup);
    EXPECT_EQ(n.specs, 1u);
    EXPECT_EQ(n.active, 1u);
    std::vector<child_info> kids = co_await supervisor::which_children(sup);
    EXPECT_EQ(kids.size(), 1u);
    if (!kids.empty()) {
      EXPECT_EQ(kids[0].id, term("m1"_a));
    }
    co_await stop(sup, "shutdown"_a);
  });
}

struct refuses : gen_server<refuses> {
  init_result init() { return init_result::stop("no_database"_a); }
};

TEST_F(RuntimeTest, InitFailsWithFailedToStartChildAndStopsTheStartedOnes) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    self.trap_exit(true);
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids11{probe_child(j, "f1"), child<refuses>("f2")};
    start_result r = co_await supervisor::start_link(supervisor_flags{}, std::move(kids11));
    EXPECT_EQ(r.to_term(), tuple("error"_a, tuple("shutdown"_a, tuple("failed_to_start_child"_a, "f2"_a, "no_database"_a))));
    EXPECT_EQ(j->take(), (std::vector<std::string>{"start f1", "stop f1 shutdown"}));
  });
}

TEST_F(RuntimeTest, ChildCrashIsReportedAsChildTerminated) {
  run([](process& self) -> proc {
    log_capture logs;
    auto j = std::make_shared<journal>();
    std::vector<child_spec> kids12{probe_child(j, "reported")};
    pid sup = (co_await supervisor::start({.intensity = 3}, std::move(kids12))).value();
    pid c = whereis("reported"_a);
    cast<probe>(c, crash{});
    co_await restarted(self, "reported"_a, c);
    std::vector<log_event> reports;
    for (auto& e : logs.with_domain("supervisor_report"))
      if (e.get("errorContext") == term("child_terminated"_a)) reports.push_back(e);
    EXPECT_EQ(reports.size(), 1u);
    if (!reports.empty()) {
      EXPECT_EQ(reports[0].get("reason"), term("crashed"_a));
    }
    co_await stop(sup, "shutdown"_a);
  });
}

struct go_crash {};

// OTP's rule, as a supervisor sees it: when one worker of a one_for_all group crashes, the one
// uncaught error is logged; the workers the supervisor then stops (exit signal `shutdown`) are
// not, so restarting a group does not flood the log.
TEST_F(RuntimeTest, OneForAllRestartLogsTheCrashingPlainProcessOnlyNotTheOnesItStops) {
  run([](process& self) -> proc {
    log_capture logs;
    auto waits = [](process& s) -> proc { co_await s.receive<go_crash>(); };
    auto crashes = [](process& s) -> proc {
      co_await s.receive<go_crash>();
      throw std::runtime_error("worker crashed");
    };
    std::vector<child_spec> children{process_child("a"_a, waits), process_child("b"_a, crashes), process_child("c"_a, waits)};
    pid sup = (co_await supervisor::start_link({.strategy = one_for_all, .intensity = 3, .period = std::chrono::seconds(5)},
                                               std::move(children)))
                  .value();
    std::vector<child_info> before = co_await supervisor::which_children(sup);
    EXPECT_EQ(before.size(), 3u);
    std::vector<ref> monitors;
    pid crasher;
    for (auto& c : before) {
      monitors.push_back(monitor(c.process));
      if (c.id == term("b"_a)) crasher = c.process;
    }
    send(crasher, go_crash{});
    for (auto& m : monitors) co_await self.receive(on<down>([m](const down& d) { return d.monitor == m; }, [](down&) {}));
    auto reports = logs.with_domain("process_error");
    EXPECT_EQ(reports.size(), 1u);
    if (!reports.empty()) {
      EXPECT_EQ(reports[0].process, crasher);
    }
  });
}

}  // namespace
}  // namespace athanor::testing

