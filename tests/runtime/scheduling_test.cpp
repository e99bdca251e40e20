// Scheduling: fairness (reductions, consume, yield), CPU hogs and relief, dirty pools, wake-ups.
#include "test_util.h"

namespace athanor::testing {
namespace {

struct stop {};
struct ping { pid from; int n; };
struct pong { int n; };

TEST_F(SingleSchedulerTest, ConsumeCheckpointLetsOtherProcessesRun) {
  std::atomic<bool> other_ran{false};
  std::atomic<long> iterations{0};
  run([&](process& self) -> proc {
    spawn([&](process&) -> proc {
      other_ran = true;
      co_return;
    });
    // One scheduler: the spawned process can only run if this loop yields at a checkpoint.
    long i = 0;
    while (!other_ran.load() && i < 100'000'000) {
      ++i;
      co_await self.consume(1);
    }
    iterations = i;
  });
  EXPECT_TRUE(other_ran.load());
  EXPECT_LT(iterations.load(), 100'000'000);
}

TEST_F(SingleSchedulerTest, APairWakingEachOtherCannotStarveTheQueue) {
  // Two processes that wake each other run back to back (runnext), but share one time slice:
  // a third process must get its turn on the only scheduler.
  std::atomic<bool> third_ran{false};
  std::atomic<long> rounds{0};
  run([&](process& self) -> proc {
    pid me = self.self();
    pid partner = spawn([](process& s) -> proc {
      for (;;) {
        auto m = co_await s.receive<ping, stop>();
        if (m.index() == 1) co_return;
        send(std::get<0>(m).from, pong{0});
      }
    });
    spawn([&](process&) -> proc {
      third_ran = true;
      co_return;
    });
    long i = 0;
    for (; !third_ran.load() && i < 50'000'000; ++i) {
      send(partner, ping{me, 0});
      co_await self.receive<pong>();
    }
    rounds = i;
    send(partner, stop{});
  });
  EXPECT_TRUE(third_ran.load());
  EXPECT_LT(rounds.load(), 50'000'000);
}

TEST_F(SingleSchedulerTest, AHogThatNeverSuspendsGetsRelief) {
  // The hog holds the only scheduler thread and never suspends; sysmon must start a relief
  // worker that runs the other process.
  std::atomic<bool> released{false};
  std::atomic<bool> gave_up{false};
  spawn([&](process&) -> proc {
    auto start = std::chrono::steady_clock::now();
    while (!released.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() - start > 20s) {
        gave_up = true;
        break;
      }
    }
    co_return;
  });
  spawn([&](process&) -> proc {
    released.store(true, std::memory_order_release);
    co_return;
  });
  EXPECT_TRUE(rt_->wait_for(30s));
  EXPECT_TRUE(released.load());
  EXPECT_FALSE(gave_up.load());
  EXPECT_GE(system_info().relief_threads, 1u);
}

TEST_F(RuntimeTest, PingPongAcrossSchedulersLosesNoWakeUp) {
  constexpr int kRounds = 100000;
  outcome<int> got;
  pid ponger = spawn([](process& self) -> proc {
    for (;;) {
      auto msg = co_await self.receive(on([](ping& p) { return p; }), on([](stop&) { return ping{pid(), -1}; }));
      if (msg.n < 0) co_return;
      send(msg.from, pong{msg.n});
    }
  });
  spawn([&, ponger](process& self) -> proc {
    int last = -1;
    for (int i = 0; i < kRounds; ++i) {
      send(ponger, ping{self.self(), i});
      pong p = co_await self.receive<pong>();
      last = p.n;
      if (i % 1000 == 0) co_await self.yield();  // shuffle the processes between schedulers
    }
    send(ponger, stop{});
    got.set(last);
  });
  EXPECT_EQ(got.get(), kRounds - 1);
}

TEST_F(RuntimeTest, ManySendersOneReceiverCountsExactly) {
  constexpr int kSenders = 50, kEach = 2000;
  outcome<long> got;
  pid sink = spawn([&](process& self) -> proc {
    long sum = 0;
    for (int i = 0; i < kSenders * kEach; ++i) sum += co_await self.receive<int>();
    got.set(sum);
  });
  for (int s = 0; s < kSenders; ++s)
    spawn([sink](process&) -> proc {
      for (int i = 0; i < kEach; ++i) send(sink, 1);
      co_return;
    });
  EXPECT_EQ(got.get(), long(kSenders) * kEach);
}

TEST_F(RuntimeTest, DirtyCpuAndIoReturnValuesAndExceptions) {
  outcome<int> got;
  run([&](process&) -> proc {
    int v = co_await dirty_cpu([] { return 6 * 7; });
    std::string s = co_await dirty_io([] { return std::string("io"); });
    bool threw = false;
    try {
      co_await dirty_cpu([]() -> int { throw std::runtime_error("dirty"); });
    } catch (const std::runtime_error& e) {
      threw = std::string(e.what()) == "dirty";
    }
    co_await dirty_io([] {});
    got.set(threw ? v + int(s.size()) : -1);
  });
  EXPECT_EQ(got.get(), 44);
}

TEST_F(RuntimeTest, AKilledProcessInADirtyCallEndsWhenTheCallReturns) {
  std::atomic<bool> job_finished{false};
  std::atomic<bool> release{false};
  run([&](process& self) -> proc {
    pid me = self.self();
    auto [p, m] = spawn_monitor([&, me](process&) -> proc {
      int local = 0;
      co_await dirty_io([&] {
        send(me, stop{});
        while (!release.load()) std::this_thread::yield();
        local = 1;  // writes into the frame: it must still exist
        job_finished = true;
      });
      (void)local;
    });
    co_await self.receive<stop>();
    exit(p, atoms::kill);
    auto early = co_await self.receive_for<down>(20ms);
    EXPECT_FALSE(early.has_value());  // cannot end while the dirty job runs
    release = true;
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.reason, term(atoms::killed));
  });
  EXPECT_TRUE(job_finished.load());
}

TEST_F(RuntimeTest, SpawnFromAnotherThreadWhileBusy) {
  std::atomic<int> done{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) spawn([&](process&) -> proc {
          done.fetch_add(1);
          co_return;
        });
    });
  for (auto& t : ts) t.join();
  EXPECT_TRUE(rt_->wait_for(30s));
  EXPECT_EQ(done.load(), 8000);
}

}  // namespace
}  // namespace athanor::testing
