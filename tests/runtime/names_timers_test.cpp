// Registered names and timers.
#include "test_util.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct stop {};
struct tick { int n; };

TEST_F(RuntimeTest, RegisterWhereisSendUnregister) {
  outcome<int> got;
  pid p = spawn([&](process& self) -> proc {
    int v = co_await self.receive<int>();
    got.set(v);
    co_await self.receive<stop>();
  });
  EXPECT_TRUE(register_name("worker"_a, p));
  EXPECT_EQ(whereis("worker"_a), p);
  EXPECT_TRUE(send("worker"_a, 7));
  EXPECT_EQ(got.get(), 7);
  auto names = registered();
  EXPECT_NE(std::find(names.begin(), names.end(), "worker"_a), names.end());
  EXPECT_TRUE(unregister("worker"_a));
  EXPECT_FALSE(unregister("worker"_a));
  EXPECT_FALSE(whereis("worker"_a));
  EXPECT_FALSE(send("worker"_a, 8));  // no such name: nothing sent
  send(p, stop{});
}

TEST_F(RuntimeTest, ANameIsUniqueAndAProcessHasAtMostOne) {
  pid a = spawn([](process& self) -> proc { co_await self.receive<stop>(); });
  pid b = spawn([](process& self) -> proc { co_await self.receive<stop>(); });
  EXPECT_TRUE(register_name("one"_a, a));
  EXPECT_FALSE(register_name("one"_a, b));  // taken
  EXPECT_FALSE(register_name("two"_a, a));  // a already has a name
  EXPECT_TRUE(register_name("two"_a, b));
  send(a, stop{});
  send(b, stop{});
}

TEST_F(RuntimeTest, ANameIsReleasedWhenItsProcessEnds) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process& s) -> proc { co_await s.receive<stop>(); });
    EXPECT_TRUE(register_name("temp"_a, p));
    send("temp"_a, stop{});
    co_await self.receive<down>();
    EXPECT_FALSE(whereis("temp"_a));
    EXPECT_FALSE(register_name("temp"_a, p));  // dead processes cannot be registered
    EXPECT_TRUE(register_name("temp"_a, self.self()));
  });
}

TEST_F(RuntimeTest, SendAfterDeliversLater) {
  run([](process& self) -> proc {
    auto start = std::chrono::steady_clock::now();
    send_after(30ms, self.self(), tick{1});
    tick t = co_await self.receive<tick>();
    EXPECT_EQ(t.n, 1);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 29ms);
  });
}

TEST_F(RuntimeTest, TimersFireInDeadlineOrder) {
  run([](process& self) -> proc {
    send_after(40ms, self.self(), tick{3});
    send_after(10ms, self.self(), tick{1});
    send_after(25ms, self.self(), tick{2});
    for (int i = 1; i <= 3; ++i) {
      tick t = co_await self.receive<tick>();
      EXPECT_EQ(t.n, i);
    }
  });
}

TEST_F(RuntimeTest, CancelTimerBeforeItFiresStopsTheMessage) {
  run([](process& self) -> proc {
    timer_ref t = send_after(50ms, self.self(), tick{1});
    auto left = read_timer(t);
    EXPECT_TRUE(left.has_value());
    EXPECT_LE(left.value_or(999ms), 50ms);
    EXPECT_TRUE(cancel_timer(t));
    EXPECT_FALSE(cancel_timer(t));  // already cancelled
    EXPECT_FALSE(read_timer(t).has_value());
    auto got = co_await self.receive_for<tick>(100ms);
    EXPECT_FALSE(got.has_value());
  });
}

TEST_F(RuntimeTest, CancelTimerAfterItFiredReturnsFalse) {
  run([](process& self) -> proc {
    timer_ref t = send_after(1ms, self.self(), tick{5});
    tick got = co_await self.receive<tick>();
    EXPECT_EQ(got.n, 5);
    EXPECT_FALSE(cancel_timer(t));
    EXPECT_FALSE(cancel_timer(timer_ref{}));
  });
}

TEST_F(RuntimeTest, SleepSuspendsWithoutTakingMessages) {
  run([](process& self) -> proc {
    send(self.self(), 1);
    auto start = std::chrono::steady_clock::now();
    co_await self.sleep(20ms);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 19ms);
    EXPECT_EQ(self.message_queue_len(), 1u);
    EXPECT_EQ(co_await self.receive<int>(), 1);
  });
}

// Erlang: a timeout or timer fires no earlier than its time. The wheel counts whole
// milliseconds, so this needs the extra tick; without it a sleep of 30 ms could end after 29.3.
TEST_F(RuntimeTest, SleepsTimersAndReceiveTimeoutsNeverEndEarly) {
  run([](process& self) -> proc {
    for (auto d : {1ms, 2ms, 5ms, 13ms, 30ms}) {
      auto start = std::chrono::steady_clock::now();
      co_await self.sleep(d);
      EXPECT_GE(std::chrono::steady_clock::now() - start, d) << "sleep " << d.count();
      start = std::chrono::steady_clock::now();
      auto none = co_await self.receive_for<tick>(d);
      EXPECT_FALSE(none.has_value());
      EXPECT_GE(std::chrono::steady_clock::now() - start, d) << "receive_for " << d.count();
      start = std::chrono::steady_clock::now();
      send_after(d, self.self(), tick{7});
      tick t = co_await self.receive<tick>();
      EXPECT_EQ(t.n, 7);
      EXPECT_GE(std::chrono::steady_clock::now() - start, d) << "send_after " << d.count();
    }
  });
}

TEST_F(RuntimeTest, TimerToAnEndedProcessIsDropped) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    send_after(1ms, p, tick{1});
    co_await self.sleep(10ms);
    EXPECT_FALSE(is_alive(p));
  });
}

TEST_F(RuntimeTest, ManyPendingTimersAllFire) {
  constexpr int kTimers = 20000;
  run([](process& self) -> proc {
    for (int i = 0; i < kTimers; ++i) send_after(std::chrono::milliseconds(1 + i % 50), self.self(), tick{i});
    long sum = 0;
    for (int i = 0; i < kTimers; ++i) sum += (co_await self.receive<tick>()).n;
    EXPECT_EQ(sum, long(kTimers) * (kTimers - 1) / 2);
  });
}

TEST_F(RuntimeTest, ReceiveTimeoutIsCancelledByAMatch) {
  // A receive that matched must not be woken later by its stale timer.
  run([](process& self) -> proc {
    for (int i = 0; i < 50; ++i) {
      send(self.self(), i);
      auto v = co_await self.receive_for<int>(2ms);
      EXPECT_EQ(v.value_or(-1), i);
    }
    co_await self.sleep(5ms);
    auto none = co_await self.receive_for<int>(0ms);
    EXPECT_FALSE(none.has_value());
  });
}

}  // namespace
}  // namespace athanor::testing
