// Hog detection: sysmon's decisions (hog_detector, queue_watch, decide_relief in
// runtime/internal.h) replayed with made-up clocks, and the checkpoints that keep a loop of sends
// or spawns from being a hog. No test here sleeps or measures time: every look sysmon would take
// is spelt out, with the wall and CPU times it would read.
#include "runtime/internal.h"
#include "test_util.h"

namespace athanor::testing {
namespace {

using detail::decide_relief;
using detail::hog_detector;
using detail::queue_watch;
using detail::relief_action;
using detail::slot_sample;

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kThreshold = 10 * kMs;  // runtime_config::hog_threshold's default
constexpr std::int64_t kPoll = 2 * kMs;        // sysmon's period

// One look at a slot: its thread inside process code in dispatch `dispatches`, `wall` and `cpu`
// in ms since the test's start.
slot_sample look(double wall, double cpu, std::uint64_t dispatches, bool queued = false, std::uint64_t taken = 0) {
  slot_sample s;
  s.wall_ns = std::int64_t(wall * double(kMs));
  s.cpu_ns = cpu < 0 ? -1 : std::int64_t(cpu * double(kMs));
  s.dispatches = dispatches;
  s.in_process = true;
  s.queued = queued;
  s.taken = taken;
  return s;
}

TEST(HogDetection, ADispatchThatHasUsedTheThresholdOfCpuIsAHog) {
  hog_detector d;
  EXPECT_FALSE(d.observe(look(0, 100, 7), kThreshold));  // first look at dispatch 7
  for (int t = 2; t < 10; t += 2) EXPECT_FALSE(d.observe(look(t, 100 + t, 7), kThreshold)) << t;
  EXPECT_TRUE(d.observe(look(10, 110, 7), kThreshold));
  EXPECT_TRUE(d.hogged());
}

TEST(HogDetection, APreemptedThreadIsNotAHog) {
  // Stuck in one dispatch for 50 ms of wall time, but the OS ran the thread for 1 ms of it (more
  // runnable threads than cores): the process is not hogging anything.
  hog_detector d;
  EXPECT_FALSE(d.observe(look(0, 100, 3), kThreshold));
  for (int t = 2; t <= 50; t += 2) EXPECT_FALSE(d.observe(look(t, 100 + t / 50.0, 3), kThreshold)) << t;
  EXPECT_FALSE(d.hogged());
}

TEST(HogDetection, AThreadPreemptedThenBusyIsAHogOnceItHasUsedTheThreshold) {
  hog_detector d;
  EXPECT_FALSE(d.observe(look(0, 0, 1), kThreshold));
  EXPECT_FALSE(d.observe(look(30, 5, 1), kThreshold));   // 30 ms of wall, 5 of CPU
  EXPECT_FALSE(d.observe(look(34, 9.9, 1), kThreshold));  // not yet: 9.9 ms of CPU
  EXPECT_TRUE(d.observe(look(36, 10, 1), kThreshold));
}

TEST(HogDetection, CpuTimeCountsFromTheFirstLookAtTheDispatch) {
  // The thread had used 500 ms of CPU in earlier dispatches: none of it counts.
  hog_detector d;
  EXPECT_FALSE(d.observe(look(0, 500, 41), kThreshold));
  EXPECT_FALSE(d.observe(look(2, 502, 41), kThreshold));
  EXPECT_FALSE(d.observe(look(8, 508, 41), kThreshold));
  EXPECT_TRUE(d.observe(look(10, 510, 41), kThreshold));
}

TEST(HogDetection, ASlotThatKeepsDispatchingIsNotAHog) {
  // Fully busy on the CPU for a second, but a new dispatch at every look: a process that
  // suspends (or yields at a checkpoint) lets the others run.
  hog_detector d;
  for (std::uint64_t i = 0; i < 500; ++i) EXPECT_FALSE(d.observe(look(2.0 * double(i), 2.0 * double(i), i), kThreshold)) << i;
}

TEST(HogDetection, AThreadOutsideProcessCodeIsNotAHog) {
  // A worker busy in the scheduler itself (firing timers, polling) with the same dispatch count.
  hog_detector d;
  for (int t = 0; t <= 50; t += 2) {
    slot_sample s = look(t, t, 9, true);
    s.in_process = false;
    EXPECT_FALSE(d.observe(s, kThreshold)) << t;
  }
}

TEST(HogDetection, AHogEndsWithItsDispatch) {
  hog_detector d;
  d.observe(look(0, 0, 5), kThreshold);
  EXPECT_TRUE(d.observe(look(12, 12, 5), kThreshold));
  EXPECT_FALSE(d.observe(look(14, 14, 6), kThreshold));  // it suspended; dispatch 6 just began
  EXPECT_FALSE(d.hogged());
  EXPECT_FALSE(d.observe(look(16, 16, 6), kThreshold));
}

TEST(HogDetection, WithoutACpuClockWallTimeDecides) {
  hog_detector d;
  EXPECT_FALSE(d.observe(look(0, -1, 2), kThreshold));
  EXPECT_FALSE(d.observe(look(8, -1, 2), kThreshold));
  EXPECT_TRUE(d.observe(look(10, -1, 2), kThreshold));
}

TEST(HogRelief, AHogWithNothingQueuedStrandsNothing) {
  // fan_out's driver zeroing its vector: a hog, but no process waits behind it.
  hog_detector d;
  for (int t = 0; t <= 40; t += 2) d.observe(look(t, t, 1), kThreshold);
  EXPECT_TRUE(d.hogged());
  EXPECT_EQ(d.stranded_ns(40 * kMs), 0);
  EXPECT_EQ(decide_relief(d.stranded_ns(40 * kMs), kThreshold, true, 0, 0), relief_action::none);
}

TEST(HogRelief, WorkBeingTakenFromAHoggedSlotIsNotStranded) {
  // A loop of spawns or sends without a checkpoint fills its slot's ring; another worker steals
  // half of it, or the ring spills half to the global queue, between every two looks: the
  // processes run, no thread is needed.
  hog_detector d;
  std::uint64_t taken = 0;
  for (int t = 0; t <= 100; t += 2) {
    d.observe(look(t, t, 1, true, taken), kThreshold);
    ++taken;
  }
  EXPECT_TRUE(d.hogged());
  EXPECT_LT(d.stranded_ns(100 * kMs), kThreshold);
  EXPECT_EQ(decide_relief(d.stranded_ns(100 * kMs), kThreshold, true, 0, 0), relief_action::none);
}

TEST(HogRelief, WorkNobodyTakesGetsAReliefThreadWhenEveryWorkerIsHogged) {
  // One scheduler (or all of them) stuck in hogs: only a new thread can run the queue.
  hog_detector d;
  d.observe(look(0, 0, 1, true), kThreshold);
  for (int t = 2; t < 10; t += 2) EXPECT_FALSE(d.observe(look(t, t, 1, true), kThreshold));
  EXPECT_TRUE(d.observe(look(10, 10, 1, true), kThreshold));
  EXPECT_EQ(decide_relief(d.stranded_ns(10 * kMs), kThreshold, true, 0, 0), relief_action::start_relief);
  // Started: the count begins again, so the next relief needs another threshold of stranding.
  d.restart_stranded(10 * kMs);
  d.observe(look(12, 12, 1, true), kThreshold);
  EXPECT_EQ(decide_relief(d.stranded_ns(12 * kMs), kThreshold, true, 0, 0), relief_action::none);
}

TEST(HogRelief, AHoggedSlotsQueueGoesToAWorkerThatIsNotHogged) {
  // The other worker is busy with its own ring (it never steals) or asleep: either way it takes
  // from the global queue, so the stranded queue moves there and no thread is started.
  EXPECT_EQ(decide_relief(kThreshold - 1, kThreshold, true, 1, 0), relief_action::none);
  EXPECT_EQ(decide_relief(kThreshold, kThreshold, true, 1, 0), relief_action::share_queue);
  EXPECT_EQ(decide_relief(kThreshold, kThreshold, true, 1, 1), relief_action::share_queue);
  EXPECT_EQ(decide_relief(100 * kThreshold, kThreshold, true, 3, 0), relief_action::share_queue);
}

TEST(HogRelief, TheGlobalQueueStrandedBehindAPreemptedWorkerStartsNoThread) {
  // Nobody popped the global queue for a threshold though a worker is not hogged: it is asleep
  // (wake it) or the OS did not run it (a thread more would not run either).
  EXPECT_EQ(decide_relief(kThreshold, kThreshold, false, 1, 1), relief_action::wake_worker);
  EXPECT_EQ(decide_relief(kThreshold, kThreshold, false, 1, 0), relief_action::none);
  EXPECT_EQ(decide_relief(50 * kThreshold, kThreshold, false, 1, 0), relief_action::none);
  // Every worker hogged: the global queue needs a new thread as much as a slot's queue does.
  EXPECT_EQ(decide_relief(kThreshold, kThreshold, false, 0, 0), relief_action::start_relief);
}

TEST(HogRelief, TheQueueOfAPreemptedSlotIsNotStranded) {
  // Its processes wait, but a relief thread would only be one more thread fighting for the cores.
  hog_detector d;
  for (int t = 0; t <= 60; t += 2) d.observe(look(t, 1, 4, true), kThreshold);
  EXPECT_FALSE(d.hogged());
  EXPECT_EQ(d.stranded_ns(60 * kMs), 0);
}

TEST(HogRelief, StrandedTimeCountsFromTheLastLookThatFoundTheQueueEmpty) {
  hog_detector d;
  for (int t = 0; t <= 20; t += 2) d.observe(look(t, t, 1, false), kThreshold);  // hogged, queue empty
  EXPECT_TRUE(d.hogged());
  d.observe(look(22, 22, 1, true), kThreshold);  // the hog spawned something
  EXPECT_EQ(d.stranded_ns(22 * kMs), 2 * kMs);
  d.observe(look(30, 30, 1, true), kThreshold);
  EXPECT_EQ(d.stranded_ns(30 * kMs), 10 * kMs);
}

TEST(HogRelief, TheGlobalQueueIsStrandedOnlyWhileNobodyPopsIt) {
  queue_watch g;
  std::uint64_t taken = 0;
  for (int t = 0; t <= 40; t += 2) g.observe(t * kMs, true, ++taken);  // served at every look
  EXPECT_EQ(g.stranded_ns(40 * kMs), 0);
  for (int t = 42; t <= 52; t += 2) g.observe(t * kMs, true, taken);  // nobody pops it
  EXPECT_EQ(g.stranded_ns(52 * kMs), 12 * kMs);
  g.observe(54 * kMs, false, taken);  // emptied
  EXPECT_EQ(g.stranded_ns(54 * kMs), 0);
  queue_watch fresh;
  EXPECT_EQ(fresh.stranded_ns(kPoll), 0);  // never looked at
}

// ---- checkpoints: a loop of sends or spawns yields by reductions ----------------------------
// send() and spawn() charge a reduction but cannot suspend (they are plain calls in a stackless
// coroutine); `co_await self.consume(1)` in the loop lets the process be switched out when its
// budget is used, so its slot keeps dispatching and sysmon never sees a hog. On one scheduler
// the other processes can run during the loop only if it does.

struct item {};
struct done_sending {};

// One scheduler and no sysmon relief (a threshold of an hour): the loop's process can let the
// others run only by yielding, however slow the build (TSan) or the machine.
class HogCheckpointTest : public SingleSchedulerTest {
 protected:
  runtime_config config() override {
    runtime_config c = SingleSchedulerTest::config();
    c.hog_threshold = std::chrono::hours(1);
    return c;
  }
};

TEST_F(HogCheckpointTest, ASendLoopWithACheckpointLetsTheReceiverRunDuringTheLoop) {
  constexpr long kMessages = 100'000;
  std::atomic<long> received{0};
  std::atomic<long> received_during_loop{0};
  run([&](process& self) -> proc {
    pid sink = spawn([&](process& s) -> proc {
      for (;;) {
        auto m = co_await s.receive<item, done_sending>();
        if (m.index() == 1) co_return;
        received.fetch_add(1, std::memory_order_relaxed);
      }
    });
    for (long i = 0; i < kMessages; ++i) {
      send(sink, item{});
      co_await self.consume(1);
    }
    received_during_loop = received.load();
    send(sink, done_sending{});
  });
  EXPECT_GT(received_during_loop.load(), 0);
  EXPECT_EQ(received.load(), kMessages);
}

TEST_F(HogCheckpointTest, ASpawnLoopWithACheckpointLetsTheChildrenRunDuringTheLoop) {
  constexpr long kChildren = 20'000;
  std::atomic<long> ran{0};
  std::atomic<long> ran_during_loop{0};
  run([&](process& self) -> proc {
    for (long i = 0; i < kChildren; ++i) {
      spawn([&](process&) -> proc {
        ran.fetch_add(1, std::memory_order_relaxed);
        co_return;
      });
      co_await self.consume(1);
    }
    ran_during_loop = ran.load();
  });
  EXPECT_GT(ran_during_loop.load(), 0);
  EXPECT_EQ(ran.load(), kChildren);
}

TEST_F(HogCheckpointTest, ALoopWithoutACheckpointHoldsItsThreadWhateverItsReductions) {
  // The other side of the two tests above, and why the checkpoint is needed: the budget goes far
  // below zero, but nothing else runs on the only scheduler until the loop ends.
  constexpr long kMessages = 20'000;
  std::atomic<long> received{0};
  std::atomic<long> received_during_loop{-1};
  run([&](process& self) -> proc {
    pid sink = spawn([&](process& s) -> proc {
      for (;;) {
        auto m = co_await s.receive<item, done_sending>();
        if (m.index() == 1) co_return;
        received.fetch_add(1, std::memory_order_relaxed);
      }
    });
    std::uint64_t before = self.reductions();
    for (long i = 0; i < kMessages; ++i) send(sink, item{});
    EXPECT_GE(self.reductions() - before, std::uint64_t(kMessages));
    received_during_loop = received.load();
    send(sink, done_sending{});
    co_return;
  });
  EXPECT_EQ(received_during_loop.load(), 0);
  EXPECT_EQ(received.load(), kMessages);
}

// ---- a hog on one of two schedulers: the work behind it moves, no thread is started ----------

class HogSharingTest : public RuntimeTest {};  // two schedulers

TEST_F(HogSharingTest, AProcessQueuedBehindAHogRunsOnTheOtherSchedulerWithoutAReliefThread) {
  // The child waits in the hog's runnext, which no idle worker looks at until the slot is
  // hogged; then sysmon moves it to the global queue and wakes the other worker, which is not
  // hogged: a relief thread would be a third thread on two schedulers for nothing. (The other
  // worker never runs long enough to be hogged, so this holds however slow the machine.)
  std::atomic<bool> child_ran{false};
  std::atomic<bool> gave_up{false};
  run([&](process&) -> proc {
    spawn([&](process&) -> proc {
      child_ran.store(true, std::memory_order_release);
      co_return;
    });
    auto start = std::chrono::steady_clock::now();
    while (!child_ran.load(std::memory_order_acquire)) {  // never suspends
      if (std::chrono::steady_clock::now() - start > 20s) {
        gave_up = true;
        break;
      }
    }
    co_return;
  });
  EXPECT_TRUE(child_ran.load());
  EXPECT_FALSE(gave_up.load());
  EXPECT_EQ(system_info().relief_threads, 0u);
}

}  // namespace
}  // namespace athanor::testing
