// Introspection (process_info, system_info) and limits (memory per process, process count).
#include <algorithm>
#include <vector>

#include "test_util.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct stop {};
struct blob { std::array<char, 4000> bytes{}; };

TEST_F(RuntimeTest, ProcessInfoReportsQueueLinksMonitorsNameAndMemory) {
  outcome<bool> checked;
  run([&](process& self) -> proc {
    pid me = self.self();
    pid target = spawn([me](process& s) -> proc {
      send(me, stop{});
      co_await s.receive<stop>();
    });
    co_await self.receive<stop>();  // it is running and about to wait
    link(target);
    ref m = monitor(target);
    (void)m;
    EXPECT_TRUE(register_name("inspected"_a, target));
    send(target, 1);
    send(target, 2);
    auto info = co_await process_info_async(target);
    EXPECT_TRUE(info.has_value());
    if (info) {
      EXPECT_EQ(info->id, target);
      EXPECT_EQ(info->message_queue_len, 2u);
      // Waiting in receive, or (if the request overtook it) about to: never running or exiting.
      EXPECT_TRUE(info->status == process_info_t::status_t::waiting ||
                  info->status == process_info_t::status_t::runnable);
      EXPECT_EQ(info->links, std::vector<pid>{me});
      EXPECT_EQ(info->monitored_by, std::vector<pid>{me});
      EXPECT_EQ(info->registered_name, std::optional<atom>("inspected"_a));
      EXPECT_GT(info->memory_bytes, 100u);
      EXPECT_FALSE(info->trap_exit);
    }
    auto mine = process_info(me);  // a process may ask about itself synchronously
    EXPECT_TRUE(mine.has_value());
    if (mine) {
      EXPECT_EQ(mine->links, std::vector<pid>{target});
      EXPECT_EQ(mine->monitors, std::vector<pid>{target});
      EXPECT_EQ(mine->status, process_info_t::status_t::running);
      EXPECT_GT(mine->reductions, 0u);
    }
    unlink(target);
    send(target, stop{});
    co_await self.receive<down>();
    auto gone = co_await process_info_async(target);
    EXPECT_FALSE(gone.has_value());
    checked.set(true);
  });
  EXPECT_TRUE(checked.get());
}

TEST_F(RuntimeTest, ProcessInfoFromAnotherThread) {
  outcome<bool> ready;
  pid p = spawn([&](process& s) -> proc {
    s.trap_exit(true);
    ready.set(true);
    co_await s.receive<stop>();
  });
  ASSERT_TRUE(ready.get());
  send(p, 5);
  auto info = process_info(p);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->message_queue_len, 1u);
  EXPECT_TRUE(info->trap_exit);
  send(p, stop{});
  EXPECT_TRUE(rt_->wait_for(10s));
  EXPECT_FALSE(process_info(p).has_value());
}

TEST_F(RuntimeTest, MemoryGrowsWithQueuedMessages) {
  pid p = spawn([](process& s) -> proc { co_await s.receive<stop>(); });
  auto before = process_info(p);
  for (int i = 0; i < 10; ++i) send(p, blob{});
  auto after = process_info(p);
  ASSERT_TRUE(before && after);
  EXPECT_GE(after->memory_bytes, before->memory_bytes + 10 * sizeof(blob));
  send(p, stop{});
}

TEST_F(RuntimeTest, SystemInfoCountsProcessesAndSchedulers) {
  pid p = spawn([](process& s) -> proc { co_await s.receive<stop>(); });
  system_info_t info = system_info();
  EXPECT_EQ(info.process_count, 1u);
  EXPECT_EQ(process_count(), 1u);
  EXPECT_EQ(info.schedulers, 2u);
  EXPECT_GE(info.scheduler.size(), 2u);
  EXPECT_GT(info.memory_total_bytes, 0);
  EXPECT_GT(info.memory_processes_bytes, 0);
  for (auto& s : info.scheduler) {
    EXPECT_GE(s.utilization, 0.0);
    EXPECT_LE(s.utilization, 1.0);
  }
  send(p, stop{});
  EXPECT_TRUE(rt_->wait_for(10s));
  EXPECT_EQ(system_info().process_count, 0u);
}

TEST_F(SingleSchedulerTest, SystemInfoCountsTheRunQueue) {
  outcome<std::size_t> queued;
  run([&](process& self) -> proc {
    for (int i = 0; i < 10; ++i) spawn([](process&) -> proc { co_return; });
    // One scheduler, and this process is running: all ten wait in its queue.
    queued.set(system_info().run_queue);
    co_await self.yield();
  });
  EXPECT_EQ(queued.get(), 10u);
  EXPECT_EQ(system_info().run_queue, 0u);
  EXPECT_EQ(system_info().pending_timers, 0u);
}

TEST_F(RuntimeTest, AProcessOverItsMemoryLimitIsKilledWithAClearReason) {
  outcome<term> reason;
  run([&](process& self) -> proc {
    spawn_options o;
    o.max_heap_bytes = 64 * 1024;
    pid hoarder = spawn(o, [](process& s) -> proc { co_await s.receive<stop>(); });
    ref m = monitor(hoarder);
    for (int i = 0; i < 40; ++i) send(hoarder, blob{});  // ~160 KB queued, never taken
    down d = co_await self.receive(on<down>([m](const down& x) { return x.monitor == m; }, [](down& x) { return x; }));
    reason.set(d.reason);
  });
  term r = reason.get();
  ASSERT_TRUE(r.is_tuple());
  EXPECT_EQ(r.element(0), term("max_heap_size"_a));
  EXPECT_GT(r.element(1).as_int(), 64 * 1024);
  EXPECT_EQ(r.element(2).as_int(), 64 * 1024);
}

TEST_F(RuntimeTest, MemoryCountsWhatMessagesOwnOnTheHeap) {
  pid p = spawn([](process& s) -> proc { co_await s.receive<stop>(); });
  auto before = process_info(p);
  send(p, std::string(10000, 'x'));
  send(p, std::vector<int>(1000, 1));
  send(p, share(std::vector<int>(100000, 1)));  // shared: not charged to the receiver
  auto after = process_info(p);
  ASSERT_TRUE(before && after);
  std::size_t grew = after->memory_bytes - before->memory_bytes;
  EXPECT_GE(grew, 10000u + 4000u);
  EXPECT_LT(grew, 10000u + 4000u + 100000u);
  EXPECT_EQ(owned_bytes(std::string("short")), 0u);
  EXPECT_GE(owned_bytes(std::vector<std::string>{std::string(100, 'a')}), 100u);
  send(p, stop{});
}

class LimitedRuntimeTest : public RuntimeTest {
 protected:
  runtime_config config() override {
    runtime_config c;
    c.schedulers = 2;
    c.max_processes = 100;
    return c;
  }
};

TEST_F(LimitedRuntimeTest, SpawnBeyondTheProcessLimitFailsClearly) {
  std::vector<pid> pids;
  for (int i = 0; i < 100; ++i) pids.push_back(spawn([](process& s) -> proc { co_await s.receive<stop>(); }));
  try {
    spawn([](process&) -> proc { co_return; });
    ADD_FAILURE() << "spawn beyond the limit succeeded";
  } catch (const system_limit_error& e) {
    EXPECT_NE(std::string(e.what()).find("process limit"), std::string::npos);
  }
  for (pid p : pids) send(p, stop{});
  EXPECT_TRUE(rt_->wait_for(10s));
  // Slots are reusable once processes end.
  pid again = spawn([](process&) -> proc { co_return; });
  EXPECT_TRUE(again);
}

TEST(RuntimeLifecycle, OnlyOneRuntimeAtATimeAndNoneAfterwards) {
  {
    runtime rt;
    EXPECT_THROW(runtime{}, std::logic_error);
    EXPECT_GE(rt.config().schedulers, 1u);
  }
  EXPECT_THROW(spawn([](process&) -> proc { co_return; }), std::logic_error);
  EXPECT_EQ(process_count(), 0u);
}

TEST(RuntimeLifecycle, WaitReturnsWhenTheLastProcessEnds) {
  runtime rt;
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i)
    spawn([&ran](process& s) -> proc {
      co_await s.sleep(std::chrono::milliseconds(1));
      ran.fetch_add(1);
    });
  rt.wait();
  EXPECT_EQ(ran.load(), 50);
  EXPECT_EQ(process_count(), 0u);
}

TEST(RuntimeLifecycle, DestroyingTheRuntimeKillsWhatIsLeft) {
  std::atomic<int> destroyed{0};
  struct on_destroy {
    std::atomic<int>* n;
    ~on_destroy() { n->fetch_add(1); }
  };
  std::atomic<int> started{0};
  {
    runtime rt;
    for (int i = 0; i < 100; ++i)
      spawn([&destroyed, &started](process& s) -> proc {
        on_destroy d{&destroyed};
        started.fetch_add(1);
        co_await s.receive<stop>();
      });
    while (started.load() < 100) std::this_thread::yield();  // every body is inside its receive
  }
  EXPECT_EQ(destroyed.load(), 100);
}

// Erlang's processes/0: a snapshot of the process table, from a process or from any thread.
TEST_F(RuntimeTest, ProcessesListsEveryLiveProcessAndNoEndedOne) {
  outcome<std::vector<pid>> alive;
  pid lister = spawn([&](process& self) -> proc {
    std::vector<pid> waiting;
    for (int i = 0; i < 300; ++i)  // more than one chunk of the process table
      waiting.push_back(spawn([](process& s) -> proc { co_await s.receive<stop>(); }));
    std::vector<pid> all = processes();
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all.size(), process_count());
    EXPECT_TRUE(std::binary_search(all.begin(), all.end(), self.self()));
    for (pid p : waiting) EXPECT_TRUE(std::binary_search(all.begin(), all.end(), p)) << p.to_string();
    std::vector<pid> expected = waiting;
    expected.push_back(self.self());
    alive.set(expected);
    co_await self.receive<stop>();  // the test thread looks from outside meanwhile

    for (pid p : waiting) monitor(p);
    for (pid p : waiting) send(p, stop{});
    for (int i = 0; i < 300; ++i) co_await self.receive<down>();
    // Slots are reused with a new generation: the list names the new process, never the old pids.
    pid fresh = spawn([](process& s) -> proc { co_await s.receive<stop>(); });
    std::vector<pid> after = processes();
    EXPECT_EQ(after.size(), 2u);
    EXPECT_NE(std::find(after.begin(), after.end(), fresh), after.end());
    EXPECT_NE(std::find(after.begin(), after.end(), self.self()), after.end());
    for (pid p : waiting) EXPECT_EQ(std::find(after.begin(), after.end(), p), after.end());
    send(fresh, stop{});
  });
  std::vector<pid> expected = alive.get();
  std::vector<pid> outside = processes();  // from a thread that is not a scheduler
  std::sort(expected.begin(), expected.end());
  std::sort(outside.begin(), outside.end());
  EXPECT_EQ(outside, expected);  // every one of them is waiting: nothing else is alive
  send(lister, stop{});
  ASSERT_TRUE(rt_->wait_for(30s));
}

TEST(ProcessesWithoutARuntime, IsEmpty) { EXPECT_TRUE(processes().empty()); }

}  // namespace
}  // namespace athanor::testing
