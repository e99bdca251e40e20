// Links, monitors and exit signals: one test per rule of the Erlang reference manual's
// "Processes" chapter (sections Links, Error Handling / Exit Signals, Monitors) and erlang:exit/2.
#include "test_util.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct stop {};
struct go {};

// A process that waits forever (until killed).
task<> idle(process& self) {
  for (;;) co_await self.receive<stop>();
}

TEST_F(RuntimeTest, LinksAreBidirectional_AbnormalExitPropagatesBothWays) {
  run([](process& self) -> proc {
    self.trap_exit(true);
    // watcher <- monitors a, a links b; b dies abnormally; a must die with the same reason.
    pid b = spawn([](process& s) -> proc {
      co_await s.receive<go>();
      exit("crashed"_a);
    });
    auto [a, m] = spawn_monitor([b](process& s) -> proc {
      link(b);
      co_await s.receive<stop>();
    });
    co_await self.sleep(5ms);  // let a establish the link (the link order itself is tested below)
    send(b, go{});
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, a);
    EXPECT_EQ(d.reason, term("crashed"_a));
  });
}

TEST_F(RuntimeTest, SpawnLinkedChildCrashKillsTheParent) {
  run([](process& self) -> proc {
    auto [parent, m] = spawn_monitor([](process& s) -> proc {
      pid child = spawn_link([](process& c) -> proc {
        co_await c.receive<go>();
        throw std::runtime_error("child failed");
      });
      send(child, go{});
      co_await s.receive<stop>();
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, parent);
    EXPECT_EQ(d.reason, tuple("exception"_a, "child failed"));
  });
}

TEST_F(RuntimeTest, NormalExitSignalDoesNotEndANonTrappingProcess) {
  run([](process& self) -> proc {
    auto [a, m] = spawn_monitor([](process& s) -> proc {
      spawn_link([](process&) -> proc { co_return; });  // ends with normal
      co_await s.receive<stop>();
    });
    co_await self.sleep(20ms);
    EXPECT_TRUE(is_alive(a));
    exit(a, atoms::normal);  // exit/2 with normal from another process: ignored too
    co_await self.sleep(10ms);
    EXPECT_TRUE(is_alive(a));
    send(a, stop{});
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.reason, term(atoms::normal));
  });
}

TEST_F(RuntimeTest, TrapExitTurnsExitSignalsIntoMessages_IncludingNormal) {
  run([](process& self) -> proc {
    self.trap_exit(true);
    pid c1 = spawn_link([](process&) -> proc { co_return; });
    exit_signal e1 = co_await self.receive<exit_signal>();
    EXPECT_EQ(e1.from, c1);
    EXPECT_EQ(e1.reason, term(atoms::normal));
    pid c2 = spawn_link([](process&) -> proc {
      exit("oops"_a);
      co_return;
    });
    exit_signal e2 = co_await self.receive<exit_signal>();
    EXPECT_EQ(e2.from, c2);
    EXPECT_EQ(e2.reason, term("oops"_a));
  });
}

TEST_F(RuntimeTest, SpawnOptionTrapExitStartsTrappingAndTrapExitReturnsThePreviousValue) {
  outcome<std::vector<bool>> got;
  run([&](process& self) -> proc {
    spawn_options o;
    o.trap_exit = true;
    pid me = self.self();
    pid p = spawn(o, [&, me](process& s) -> proc {
      std::vector<bool> v{s.trapping_exits()};
      v.push_back(s.trap_exit(false));  // returns the previous value
      v.push_back(s.trapping_exits());
      v.push_back(s.trap_exit(true));
      send(me, stop{});
      exit_signal e = co_await s.receive<exit_signal>();
      v.push_back(e.reason == term("bye"_a));
      got.set(v);
    });
    co_await self.receive<stop>();
    exit(p, "bye"_a);
  });
  EXPECT_EQ(got.get(), (std::vector<bool>{true, true, false, false, true}));
}

TEST_F(RuntimeTest, KillCannotBeTrappedAndBecomesKilled) {
  run([](process& self) -> proc {
    self.trap_exit(true);
    pid victim = spawn_link([](process& s) -> proc {
      s.trap_exit(true);
      co_await idle(s);
    });
    exit(victim, atoms::kill);
    exit_signal e = co_await self.receive<exit_signal>();
    EXPECT_EQ(e.from, victim);
    EXPECT_EQ(e.reason, term(atoms::killed));  // linked processes see `killed`, not `kill`
  });
}

TEST_F(RuntimeTest, KilledPropagatesAlongLinksAsAnOrdinaryReason) {
  run([](process& self) -> proc {
    // chain: watcher monitors b; b linked to a; a is killed -> b gets `killed` (trappable) and dies.
    pid a = spawn([](process& s) -> proc { co_await idle(s); });
    auto [b, m] = spawn_monitor([a](process& s) -> proc {
      link(a);
      co_await idle(s);
    });
    co_await self.sleep(5ms);
    exit(a, atoms::kill);
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, b);
    EXPECT_EQ(d.reason, term(atoms::killed));
  });
}

TEST_F(RuntimeTest, ExitTwoWithAbnormalReasonEndsANonTrappingTarget) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process& s) -> proc { co_await idle(s); });
    exit(p, "go_away"_a);
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.reason, term("go_away"_a));
  });
}

TEST_F(RuntimeTest, ExitTwoToATrappingProcessIsDeliveredAsAMessage) {
  outcome<exit_signal> got;
  run([&](process& self) -> proc {
    pid me = self.self();
    pid p = spawn([&](process& s) -> proc {
      s.trap_exit(true);
      send(me, go{});
      got.set(co_await s.receive<exit_signal>());
    });
    co_await self.receive<go>();
    exit(p, "please"_a);
  });
  exit_signal e = got.get();
  EXPECT_EQ(e.reason, term("please"_a));
}

TEST_F(RuntimeTest, ExitSelfNormalEndsTheCaller) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process& s) -> proc {
      exit(s.self(), atoms::normal);
      co_await idle(s);
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, p);
    EXPECT_EQ(d.reason, term(atoms::normal));
  });
}

TEST_F(RuntimeTest, LinkingToANonexistentProcessGivesNoproc) {
  run([](process& self) -> proc {
    auto [dead, m] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    self.trap_exit(true);
    link(dead);
    exit_signal e = co_await self.receive<exit_signal>();
    EXPECT_EQ(e.from, dead);
    EXPECT_EQ(e.reason, term(atoms::noproc));
    // Without trapping, the caller ends with noproc.
    auto [p, m2] = spawn_monitor([dead](process& s) -> proc {
      link(dead);
      co_await idle(s);
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, p);
    EXPECT_EQ(d.reason, term(atoms::noproc));
  });
}

// OTP 25's erlang:link/1: "If the calling process is not trapping exits, and checking PidOrPort
// is cheap (that is, if PidOrPort is local), link/1 fails with reason noproc." The caller gets an
// error it may catch, not an exit signal that kills it; no link is left behind.
TEST_F(RuntimeTest, Otp25_LinkToANonexistentProcessRaisesNoprocInACallerNotTrappingExits) {
  run([](process& self) -> proc {
    auto [dead, m] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    pid me = self.self();
    auto [p, m2] = spawn_monitor([dead, me](process& s) -> proc {
      bool raised = false;
      try {
        link(dead);
      } catch (const error_exception& e) {
        raised = e.reason == term(atoms::noproc);
      }
      send(me, raised);
      auto info = process_info(s.self());
      send(me, info && info->links.empty());
      send(me, s.message_queue_len());
      co_return;
    });
    EXPECT_TRUE(co_await self.receive<bool>());              // raised noproc
    EXPECT_TRUE(co_await self.receive<bool>());              // not linked
    EXPECT_EQ(co_await self.receive<std::size_t>(), 0u);     // no {'EXIT', Dead, noproc} either
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, p);
    EXPECT_EQ(d.reason, term(atoms::normal));                // it went on and ended normally
  });
}

TEST_F(RuntimeTest, Otp25_LinkToANonexistentProcessGivesATrappingCallerAnExitMessageInstead) {
  run([](process& self) -> proc {
    auto [dead, m] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    self.trap_exit(true);
    EXPECT_NO_THROW(link(dead));
    exit_signal e = co_await self.receive<exit_signal>();
    EXPECT_EQ(e.from, dead);
    EXPECT_EQ(e.reason, term(atoms::noproc));
  });
}

TEST_F(RuntimeTest, UnlinkStopsExitSignalsFromThatLink) {
  run([](process& self) -> proc {
    self.trap_exit(true);
    pid child = spawn_link([](process& s) -> proc {
      co_await s.receive<go>();
      exit("bad"_a);
    });
    unlink(child);
    auto m = monitor(child);
    send(child, go{});
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.monitor, m);
    EXPECT_EQ(d.reason, term("bad"_a));
    auto none = co_await self.receive_for<exit_signal>(20ms);
    EXPECT_FALSE(none.has_value());
  });
}

TEST_F(RuntimeTest, MonitorDeliversOneDownWithTheReason) {
  run([](process& self) -> proc {
    pid p = spawn([](process& s) -> proc {
      co_await s.receive<go>();
      exit("done"_a);
    });
    ref m1 = monitor(p);
    ref m2 = monitor(p);  // each monitor is separate
    EXPECT_NE(m1, m2);
    send(p, go{});
    down d1 = co_await self.receive<down>();
    down d2 = co_await self.receive<down>();
    EXPECT_EQ(d1.reason, term("done"_a));
    EXPECT_EQ(d2.reason, term("done"_a));
    EXPECT_TRUE((d1.monitor == m1 && d2.monitor == m2) || (d1.monitor == m2 && d2.monitor == m1));
    auto extra = co_await self.receive_for<down>(20ms);
    EXPECT_FALSE(extra.has_value());
  });
}

TEST_F(RuntimeTest, MonitoringANonexistentProcessGivesNoproc) {
  run([](process& self) -> proc {
    auto [dead, m0] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    ref m = monitor(dead);
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.monitor, m);
    EXPECT_EQ(d.from, dead);
    EXPECT_EQ(d.reason, term(atoms::noproc));
  });
}

TEST_F(RuntimeTest, MonitorsAreNotLinks_TheWatcherSurvives) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process&) -> proc {
      exit("abnormal"_a);
      co_return;
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, p);
    EXPECT_EQ(d.monitor, m);
    EXPECT_EQ(d.reason, term("abnormal"_a));
    EXPECT_TRUE(is_alive(self.self()));
  });
}

TEST_F(RuntimeTest, DemonitorStopsTheDown) {
  run([](process& self) -> proc {
    pid p = spawn([](process& s) -> proc { co_await s.receive<go>(); });
    ref m = monitor(p);
    EXPECT_TRUE(demonitor(m));
    EXPECT_FALSE(demonitor(m));  // no longer active
    send(p, go{});
    auto d = co_await self.receive_for<down>(30ms);
    EXPECT_FALSE(d.has_value());
  });
}

TEST_F(RuntimeTest, DemonitorWithFlushRemovesADownAlreadyDelivered) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process&) -> proc { co_return; });
    ref other = monitor(p);  // will be `noproc` or the reason; keep it as a marker
    down first = co_await self.receive<down>();  // one of the two DOWNs is now taken
    ref remaining = first.monitor == m ? other : m;
    co_await self.sleep(10ms);                    // the other DOWN has arrived too
    demonitor(remaining, true);                   // fired already, possibly not yet taken ...
    auto d = co_await self.receive_for<down>(10ms);
    EXPECT_FALSE(d.has_value());                  // ... and flush removed its message
  });
}

TEST_F(RuntimeTest, SpawnMonitorCannotMissAnImmediateExit) {
  run([](process& self) -> proc {
    for (int i = 0; i < 100; ++i) {
      auto [p, m] = spawn_monitor([](process&) -> proc { co_return; });
      down d = co_await self.receive<down>();
      EXPECT_EQ(d.monitor, m);
      EXPECT_EQ(d.from, p);
      EXPECT_EQ(d.reason, term(atoms::normal));  // not noproc: the monitor was set before it ran
    }
  });
}

TEST_F(RuntimeTest, ExitSignalsAndMessagesFromOneSenderStayInOrder) {
  outcome<std::vector<int>> got;
  run([&](process& self) -> proc {
    pid me = self.self();
    pid receiver = spawn([&](process& s) -> proc {
      s.trap_exit(true);
      send(me, go{});
      std::vector<int> seen;
      for (int i = 0; i < 3; ++i) {
        int v = co_await s.receive(on([](int x) { return x; }), on([](exit_signal&) { return -1; }));
        seen.push_back(v);
      }
      got.set(seen);
    });
    co_await self.receive<go>();
    send(receiver, 1);
    exit(receiver, "signal"_a);
    send(receiver, 2);
  });
  EXPECT_EQ(got.get(), (std::vector<int>{1, -1, 2}));
}

TEST_F(RuntimeTest, LinksAndMonitorsFromOutsideAProcessAreRejected) {
  EXPECT_THROW(link(pid()), std::logic_error);
  EXPECT_THROW(monitor(pid()), std::logic_error);
  EXPECT_THROW(demonitor(ref()), std::logic_error);
  EXPECT_THROW(unlink(pid()), std::logic_error);
}

}  // namespace
}  // namespace athanor::testing
