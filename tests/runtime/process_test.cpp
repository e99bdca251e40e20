// Processes: spawn, send, receive, pids, exceptions, exit/1 (Erlang reference manual, "Processes").
#include <string>
#include <vector>

#include "test_util.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct hello { std::string name; };
struct stop {};

TEST_F(RuntimeTest, SeedExampleReceivesTheGreeting) {
  outcome<std::string> got;
  pid p = spawn([&](process& self) -> proc {
    auto [name] = co_await self.receive<hello>();
    got.set(name);
  });
  send(p, hello{"Alice"});
  EXPECT_EQ(got.get(), "Alice");
  EXPECT_TRUE(rt_->wait_for(10s));
}

TEST_F(RuntimeTest, ClosureCapturesLiveAsLongAsTheProcess) {
  // Pitfall: a coroutine lambda's captures live in the closure, not the frame.
  outcome<std::size_t> got;
  auto big = std::make_shared<std::vector<int>>(1000, 7);
  std::string owned(200, 'x');
  pid p = spawn([big, owned, &got](process& self) -> proc {
    co_await self.receive<stop>();
    got.set(big->size() + owned.size());
  });
  big.reset();
  send(p, stop{});
  EXPECT_EQ(got.get(), 1200u);
}

TEST_F(RuntimeTest, PidsPrintAsErlangDoesAndCarryIndexAndGeneration) {
  pid p(0, 123, 4);
  EXPECT_EQ(p.to_string(), "<0.123.4>");
  EXPECT_EQ(p.index(), 123u);
  EXPECT_EQ(p.generation(), 4u);
  EXPECT_EQ(p.node(), 0u);
  EXPECT_TRUE(p.is_local());
  EXPECT_FALSE(pid());
  pid q = spawn([](process& self) -> proc { co_await self.receive<stop>(); });
  EXPECT_TRUE(q);
  EXPECT_NE(q.index(), 0u);
  EXPECT_EQ(q.to_string(), "<0." + std::to_string(q.index()) + "." + std::to_string(q.generation()) + ">");
  send(q, stop{});
}

TEST_F(SingleSchedulerTest, StalePidNeverReachesTheProcessReusingItsSlot) {
  outcome<bool> done;
  run([&](process& self) -> proc {
    // With one scheduler a freed slot is reused by the next spawn on the same thread.
    auto [first, mref] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    pid second;
    for (int i = 0; i < 1000 && second.index() != first.index(); ++i) {
      second = spawn([](process& s) -> proc { co_await s.receive<stop>(); });
      if (second.index() != first.index()) send(second, stop{});
    }
    EXPECT_EQ(second.index(), first.index());
    EXPECT_NE(second.generation(), first.generation());
    EXPECT_FALSE(is_alive(first));
    EXPECT_TRUE(is_alive(second));
    send(first, hello{"for the old one"});  // must be dropped
    auto info = co_await process_info_async(second);
    EXPECT_TRUE(info.has_value());
    EXPECT_EQ(info ? info->message_queue_len : 99u, 0u);
    send(second, stop{});
    done.set(true);
  });
  EXPECT_TRUE(done.get());
}

TEST_F(RuntimeTest, SendingToAnEndedOrNullPidIsASilentNoOp) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    send(p, hello{"nobody"});
    send(pid(), hello{"nobody"});
    send(pid(0, 77777, 3), hello{"never spawned"});
    EXPECT_FALSE(is_alive(p));
  });
}

TEST_F(RuntimeTest, ReceiveOfSeveralTypesReturnsAVariant) {
  outcome<int> got;
  pid p = spawn([&](process& self) -> proc {
    std::variant<int, std::string> v = co_await self.receive<int, std::string>();
    std::variant<int, std::string> w = co_await self.receive<int, std::string>();
    got.set(std::get<int>(v) + int(std::get<std::string>(w).size()));
  });
  send(p, 40);
  send(p, std::string("ab"));
  EXPECT_EQ(got.get(), 42);
}

TEST_F(RuntimeTest, SelectiveReceiveTakesTheFirstMatchAndKeepsTheRestInOrder) {
  outcome<std::vector<std::string>> got;
  pid p = spawn([&](process& self) -> proc {
    co_await self.receive<stop>();  // everything else waits in the queue meanwhile
    std::vector<std::string> order;
    for (int i = 0; i < 3; ++i) order.push_back(std::to_string(co_await self.receive<int>()));
    for (int i = 0; i < 2; ++i) order.push_back(co_await self.receive<std::string>());
    got.set(order);
  });
  send(p, 1);
  send(p, std::string("a"));
  send(p, 2);
  send(p, std::string("b"));
  send(p, 3);
  send(p, stop{});
  EXPECT_EQ(got.get(), (std::vector<std::string>{"1", "2", "3", "a", "b"}));
}

TEST_F(RuntimeTest, ClausesWithGuardsAreTriedInOrderPerMessage) {
  outcome<std::vector<int>> got;
  pid p = spawn([&](process& self) -> proc {
    co_await self.receive<stop>();
    std::vector<int> seen;
    // Erlang: for each message in arrival order, try every clause; the first message that
    // matches any clause is taken.
    for (int i = 0; i < 3; ++i) {
      int v = co_await self.receive(on<int>([](int x) { return x > 10; }, [](int x) { return x; }),
                                    on([](std::string& s) { return -int(s.size()); }));
      seen.push_back(v);
    }
    int small = co_await self.receive(on([](int x) { return x; }));
    seen.push_back(small);
    got.set(seen);
  });
  send(p, 5);
  send(p, 20);
  send(p, std::string("abc"));
  send(p, 30);
  send(p, stop{});
  EXPECT_EQ(got.get(), (std::vector<int>{20, -3, 30, 5}));
}

TEST_F(RuntimeTest, AfterRunsWhenNothingMatchesInTime) {
  outcome<std::string> got;
  pid p = spawn([&](process& self) -> proc {
    std::string r = co_await self.receive(on([](int) { return std::string("int"); }),
                                          after(20ms, [] { return std::string("timeout"); }));
    got.set(r);
    co_await self.receive<stop>();
  });
  send(p, std::string("not an int"));  // does not match: stays in the queue
  EXPECT_EQ(got.get(), "timeout");
  send(p, stop{});
}

TEST_F(RuntimeTest, AfterZeroPollsTheMailbox) {
  outcome<std::pair<bool, bool>> got;
  pid p = spawn([&](process& self) -> proc {
    co_await self.receive<stop>();
    bool first = co_await self.receive(on([](int) { return true; }), after(0ms, [] { return false; }));
    bool second = co_await self.receive(on([](int) { return true; }), after(0ms, [] { return false; }));
    got.set({first, second});
  });
  send(p, 1);
  send(p, stop{});
  EXPECT_EQ(got.get(), std::make_pair(true, false));
}

TEST_F(RuntimeTest, PollingReceivesSurviveTheEndOfTimeSlices) {
  // More polls than one slice's reductions: the receive that yields for fairness must still
  // time out when it runs again.
  outcome<int> timeouts;
  run([&](process& self) -> proc {
    int n = 0;
    for (int i = 0; i < 20000; ++i) n += co_await self.receive(on([](int) { return 0; }), after(0ms, [] { return 1; }));
    timeouts.set(n);
  });
  EXPECT_EQ(timeouts.get(), 20000);
}

TEST_F(RuntimeTest, ReceiveForReturnsTheMessageOrNullopt) {
  outcome<std::pair<int, bool>> got;
  pid p = spawn([&](process& self) -> proc {
    std::optional<int> a = co_await self.receive_for<int>(5s);
    std::optional<int> b = co_await self.receive_for<int>(10ms);
    got.set({a.value_or(-1), b.has_value()});
  });
  send(p, 9);
  EXPECT_EQ(got.get(), std::make_pair(9, false));
}

TEST_F(RuntimeTest, MessagesFromOneSenderArriveInSendOrder) {
  constexpr int kSenders = 4, kEach = 20000;
  outcome<bool> ok;
  pid receiver = spawn([&](process& self) -> proc {
    std::vector<int> next(kSenders, 0);
    bool in_order = true;
    for (int i = 0; i < kSenders * kEach; ++i) {
      auto [who, seq] = co_await self.receive<std::pair<int, int>>();
      in_order &= seq == next[who];
      next[who] = seq + 1;
    }
    ok.set(in_order);
  });
  for (int s = 0; s < kSenders; ++s) {
    spawn([receiver, s](process& self) -> proc {
      for (int i = 0; i < kEach; ++i) {
        send(receiver, std::make_pair(s, i));
        if (i % 100 == 0) co_await self.yield();
      }
    });
  }
  EXPECT_TRUE(ok.get());
}

TEST_F(RuntimeTest, MoveOnlyMessagesAreMovedIntoTheReceiver) {
  outcome<int> got;
  auto box = std::make_unique<int>(41);
  int* address = box.get();
  pid p = spawn([&, address](process& self) -> proc {
    std::unique_ptr<int> v = co_await self.receive<std::unique_ptr<int>>();
    got.set(v.get() == address ? *v + 1 : -1);  // the same object: moved, never copied
  });
  send(p, std::move(box));
  EXPECT_EQ(box, nullptr);
  EXPECT_EQ(got.get(), 42);
}

TEST_F(RuntimeTest, SharedPayloadsAreSentByReferenceNotCopied) {
  auto data = share(std::vector<int>(100000, 1));
  const std::vector<int>* original = data.get();
  outcome<int> same;
  std::atomic<int> count{0};
  for (int i = 0; i < 3; ++i) {
    pid p = spawn([&, original](process& self) -> proc {
      shared<std::vector<int>> got = co_await self.receive<shared<std::vector<int>>>();
      if (got.get() == original && got->size() == 100000) {
        if (++count == 3) same.set(3);
      }
    });
    send(p, data);
  }
  EXPECT_EQ(same.get(), 3);
}

TEST_F(RuntimeTest, UncaughtExceptionEndsOnlyThatProcessWithItsMessage) {
  outcome<term> reason;
  run([&](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process&) -> proc {
      throw std::runtime_error("boom");
      co_return;
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, p);
    EXPECT_EQ(d.monitor, m);
    reason.set(d.reason);
  });
  EXPECT_EQ(reason.get(), tuple("exception"_a, "boom"));
}

TEST_F(RuntimeTest, ExitOneEndsTheCallerWithTheReason) {
  outcome<term> reason;
  run([&](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process&) -> proc {
      exit(tuple("shutdown"_a, "bye"));
      co_return;
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, p);
    EXPECT_EQ(d.monitor, m);
    reason.set(d.reason);
  });
  EXPECT_EQ(reason.get(), tuple("shutdown"_a, "bye"));
}

TEST_F(RuntimeTest, SelfIsThePidOfTheRunningProcessAndNullOutside) {
  EXPECT_FALSE(self());
  outcome<bool> ok;
  pid p = spawn([&](process& me) -> proc {
    ok.set(self() == me.self() && this_process().self() == me.self());
    co_return;
  });
  EXPECT_TRUE(ok.get());
  EXPECT_TRUE(p);
  EXPECT_THROW(this_process(), std::logic_error);
}

struct guard_flag {
  std::atomic<bool>* flag;
  ~guard_flag() { flag->store(true); }
};

TEST_F(RuntimeTest, KillingAWaitingProcessRunsItsDestructors) {
  std::atomic<bool> destroyed{false};
  run([&](process& self) -> proc {
    pid me = self.self();
    auto [p, m] = spawn_monitor([&destroyed, me](process& s) -> proc {
      guard_flag g{&destroyed};
      send(me, 0);
      co_await s.receive<stop>();
    });
    co_await self.receive<int>();  // the guard exists now
    exit(p, atoms::kill);
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.reason, term(atoms::killed));
  });
  EXPECT_TRUE(destroyed.load());
}

task<int> add_later(process& self, int base) {
  int more = co_await self.receive<int>();
  co_return base + more;
}

task<void> fail_inside(process& self) {
  co_await self.yield();
  throw std::runtime_error("nested");
}

TEST_F(RuntimeTest, NestedTasksSuspendAndPropagateExceptions) {
  outcome<int> sum;
  outcome<term> reason;
  run([&](process& self) -> proc {
    pid p = spawn_monitor([&](process& child) -> proc {
      int v = co_await add_later(child, 40);
      sum.set(v);
      co_await fail_inside(child);
    }).first;
    send(p, 2);
    down d = co_await self.receive<down>();
    reason.set(d.reason);
  });
  EXPECT_EQ(sum.get(), 42);
  EXPECT_EQ(reason.get(), tuple("exception"_a, "nested"));
}

TEST_F(RuntimeTest, YieldLetsOthersRunFirst) {
  outcome<std::vector<int>> got;
  auto order = std::make_shared<std::vector<int>>();
  rt_.reset();
  runtime_config c;
  c.schedulers = 1;
  rt_ = std::make_unique<runtime>(c);
  run([order](process& self) -> proc {
    spawn([order](process&) -> proc {
      order->push_back(2);
      co_return;
    });
    order->push_back(1);
    co_await self.yield();
    order->push_back(3);
  });
  EXPECT_EQ(*order, (std::vector<int>{1, 2, 3}));
}

}  // namespace
}  // namespace athanor::testing
