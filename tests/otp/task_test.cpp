// Tasks: one test per rule of Elixir's Task documentation (async/await, yield, shutdown,
// async_stream).
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "../runtime/test_util.h"
#include "athanor/otp/task.h"
#include "log_capture.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct go {};
struct never {};

TEST_F(RuntimeTest, TaskAwait_ReturnsTheValueOfAFunctionACoroutineOrVoid) {
  run([](process&) -> proc {
    async_task<int> a = async([] { return 6 * 7; });
    int v = co_await await(a);
    EXPECT_EQ(v, 42);
    async_task<std::string> b = async([]() -> task<std::string> {
      co_await this_process().yield();
      co_return std::string("from a coroutine");
    });
    std::string s = co_await await(b);
    EXPECT_EQ(s, "from a coroutine");
    auto ran = std::make_shared<std::atomic<bool>>(false);
    async_task<void> c = async([ran] { ran->store(true); });
    co_await await(c);
    EXPECT_TRUE(ran->load());
  });
}

TEST_F(RuntimeTest, TaskAsync_LinksTheTaskToTheCallerAndAwaitLeavesNoMessageBehind) {
  run([](process& self) -> proc {
    async_task<int> t = async([] { return 1; });
    auto info = co_await process_info_async(self.self());
    bool linked = info && std::find(info->links.begin(), info->links.end(), t.pid()) != info->links.end();
    // The task may already have ended (and the link gone); if it is alive it must be linked.
    EXPECT_TRUE(linked || !is_alive(t.pid()));
    int v = co_await await(t);
    EXPECT_EQ(v, 1);
    EXPECT_EQ(self.message_queue_len(), 0u);  // no reply or DOWN left over
  });
}

TEST_F(RuntimeTest, TaskAwait_ExitsTheCallerOnTimeout_AndTheLinkEndsTheTask) {
  run([](process& self) -> proc {
    pid me = self.self();
    auto [caller, m] = spawn_monitor([me](process&) -> proc {
      async_task<int> t = async([]() -> task<int> {
        co_await this_process().receive<never>();
        co_return 0;
      });
      send(me, t.pid());
      co_await await(t, 10ms);
    });
    pid task_pid = co_await self.receive<pid>();
    ref tm = monitor(task_pid);
    auto caller_down = on<down>([m](const down& x) { return x.monitor == m; }, [](down& x) { return x; });
    down d = co_await self.receive(std::move(caller_down));
    EXPECT_EQ(d.from, caller);
    // {timeout, {'Elixir.Task', await, [Task, 10]}}
    EXPECT_TRUE(d.reason.is_tuple());
    if (d.reason.is_tuple()) {
      EXPECT_EQ(d.reason.element(0), term("timeout"_a));
      EXPECT_EQ(d.reason.element(1).element(0), term("Elixir.Task"_a));
      EXPECT_EQ(d.reason.element(1).element(1), term("await"_a));
      EXPECT_EQ(d.reason.element(1).element(2).length(), 2u);
    }
    auto task_down = on<down>([tm](const down& x) { return x.monitor == tm; }, [](down& x) { return x; });
    down td = co_await self.receive(std::move(task_down));
    EXPECT_FALSE(is_alive(task_pid));
    (void)td;
  });
}

TEST_F(RuntimeTest, TaskAwait_TimeoutIsACatchableExitAndTheLateReplyNeverArrives) {
  run([](process& self) -> proc {
    async_task<int> t = async([]() -> task<int> {
      co_await this_process().receive<go>();
      co_return 5;
    });
    term why;
    term reason;
    try {
      co_await await(t, 5ms);
    } catch (const task_exit_error& e) {
      why = e.why;
      reason = e.reason;
    }
    EXPECT_EQ(why, term("timeout"_a));
    EXPECT_EQ(reason, tuple("timeout"_a, tuple("Elixir.Task"_a, "await"_a, list({t.to_term(), term(5)}))));
    // Let the task finish; its reply goes to a deactivated alias and is dropped.
    ref m = monitor(t.pid());
    send(t.pid(), go{});
    co_await self.receive<down>();
    (void)m;
    EXPECT_EQ(self.message_queue_len(), 0u);
  });
}

TEST_F(RuntimeTest, TaskCrash_EndsTheLinkedCallerWithTheSameReason) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    auto [caller, m] = spawn_monitor([](process&) -> proc {
      async_task<int> t = async([]() -> int { throw std::runtime_error("task failed"); });
      co_await await(t);
    });
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.from, caller);
    EXPECT_EQ(d.reason, tuple("exception"_a, "task failed"));
  });
}

TEST_F(RuntimeTest, TaskAwait_InATrappingCallerRaisesTheTasksExitReason) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    self.trap_exit(true);
    async_task<int> t = async([]() -> int { throw std::runtime_error("bad"); });
    term why;
    try {
      co_await await(t);
    } catch (const task_exit_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, tuple("exception"_a, "bad"));
    exit_signal x = co_await self.receive<exit_signal>();  // the link's signal, as a message
    EXPECT_EQ(x.from, t.pid());
  });
}

TEST_F(RuntimeTest, TaskAwait_ByAProcessOtherThanTheOwnerIsAnArgumentError) {
  run([](process& self) -> proc {
    async_task<int> t = async([]() -> task<int> {
      co_await this_process().receive<go>();
      co_return 1;
    });
    pid me = self.self();
    spawn([t, me](process&) -> proc {
      bool threw = false;
      try {
        co_await await(t, 10ms);
      } catch (const std::invalid_argument&) {
        threw = true;
      }
      send(me, threw);
    });
    bool threw = co_await self.receive<bool>();
    EXPECT_TRUE(threw);
    send(t.pid(), go{});
    int v = co_await await(t);
    EXPECT_EQ(v, 1);
  });
}

TEST_F(RuntimeTest, TaskYield_ReturnsNothingOnTimeoutAndTheTaskMayBeAwaitedAgain) {
  run([](process&) -> proc {
    async_task<int> t = async([]() -> task<int> {
      co_await this_process().receive<go>();
      co_return 9;
    });
    std::optional<task_result<int>> none = co_await await_for(t, 0ms);
    EXPECT_FALSE(none.has_value());
    send(t.pid(), go{});
    std::optional<task_result<int>> got = co_await await_for(t, infinity);
    EXPECT_TRUE(got && got->ok());
    if (got && got->ok()) {
      EXPECT_EQ(got->value(), 9);
    }
  });
}

TEST_F(RuntimeTest, TaskYield_ReturnsExitWithTheReasonWhenTheTaskDied) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    self.trap_exit(true);
    async_task<int> t = async([]() -> int { exit("gave_up"_a); });
    std::optional<task_result<int>> got = co_await await_for(t, infinity);
    EXPECT_TRUE(got && !got->ok());
    if (got) {
      EXPECT_EQ(got->exit_reason(), term("gave_up"_a));
      EXPECT_THROW(got->value(), task_exit_error);
    }
  });
}

TEST_F(RuntimeTest, TaskShutdown_StopsARunningTaskAndReturnsNothing) {
  run([](process& self) -> proc {
    async_task<int> t = async([]() -> task<int> {
      co_await this_process().receive<never>();
      co_return 0;
    });
    std::optional<task_result<int>> r = co_await shutdown(t);
    EXPECT_FALSE(r.has_value());
    EXPECT_FALSE(is_alive(t.pid()));
    EXPECT_EQ(self.message_queue_len(), 0u);  // the task was unlinked first: the caller lives on
  });
}

TEST_F(RuntimeTest, TaskShutdown_ReturnsTheReplyIfItArrivedBeforeTheShutdown) {
  run([](process& self) -> proc {
    async_task<int> t = async([] { return 77; });
    ref m = monitor(t.pid());
    auto mine = on<down>([m](const down& d) { return d.monitor == m; }, [](down& d) { return d.reason; });
    term ended = co_await self.receive(std::move(mine));  // the task has ended: its reply is in the mailbox
    EXPECT_EQ(ended, term("normal"_a));
    std::optional<task_result<int>> r = co_await shutdown(t);
    EXPECT_TRUE(r && r->ok());
    if (r && r->ok()) {
      EXPECT_EQ(r->value(), 77);
    }
  });
}

TEST_F(RuntimeTest, TaskShutdown_KillsATaskThatIgnoresShutdownAfterTheTimeout_OrAtOnceWithBrutalKill) {
  run([](process& self) -> proc {
    pid me = self.self();
    auto trapping = [me]() -> task<int> {
      this_process().trap_exit(true);
      send(me, go{});  // trapping now: the shutdown signal will not end it
      co_await this_process().receive<never>();
      co_return 0;
    };
    async_task<int> a = async(trapping);
    co_await self.receive<go>();
    std::optional<task_result<int>> ra = co_await shutdown(a, shutdown_policy::after(20ms));
    EXPECT_FALSE(ra.has_value());
    EXPECT_FALSE(is_alive(a.pid()));
    async_task<int> b = async(trapping);
    co_await self.receive<go>();
    std::optional<task_result<int>> rb = co_await shutdown(b, shutdown_policy::brutal_kill());
    EXPECT_FALSE(rb.has_value());
    EXPECT_FALSE(is_alive(b.pid()));
  });
}

TEST_F(RuntimeTest, TaskShutdown_OfATaskThatCrashedReturnsItsExitReason) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    self.trap_exit(true);
    async_task<int> t = async([]() -> int { exit("broken"_a); });
    exit_signal x = co_await self.receive<exit_signal>();
    EXPECT_EQ(x.reason, term("broken"_a));
    std::optional<task_result<int>> r = co_await shutdown(t);
    EXPECT_TRUE(r && !r->ok());
    if (r) {
      EXPECT_EQ(r->exit_reason(), term("broken"_a));
    }
  });
}

// Waits for the end of process `p` (monitoring it now), so that a test does not race with it.
task<term> wait_until_ended(process& self, pid p) {
  ref m = monitor(p);
  term reason = co_await self.receive(on<down>([m](const down& d) { return d.monitor == m; }, [](down& d) { return d.reason; }));
  co_return reason;
}

// Elixir's Task.shutdown/2: "If the task's monitor has already been demonitored or received and
// there is not a response waiting in the message queue this function will return {:exit, :noproc}
// as the result or exit reason can not be determined." (It used to wait for that DOWN forever.)
TEST_F(RuntimeTest, TaskShutdown_AfterAwaitReturnsExitNoprocInsteadOfHanging) {
  run([](process& self) -> proc {
    for (shutdown_policy how : {shutdown_policy::after(5s), shutdown_policy::brutal_kill(), shutdown_policy::infinity()}) {
      async_task<int> t = async([] { return 5; });
      int v = co_await await(t);
      EXPECT_EQ(v, 5);
      co_await wait_until_ended(self, t.pid());
      std::optional<task_result<int>> r = co_await shutdown(t, how);
      EXPECT_TRUE(r && !r->ok());
      if (r) {
        EXPECT_EQ(r->exit_reason(), term(atoms::noproc));
      }
      EXPECT_EQ(self.message_queue_len(), 0u);  // no DOWN of the shutdown's own monitor left behind
    }
  });
}

TEST_F(RuntimeTest, TaskShutdown_AfterAwaitForTookTheValueOrTheExitReturnsExitNoproc) {
  run([](process& self) -> proc {
    async_task<int> t = async([] { return 6; });
    std::optional<task_result<int>> got = co_await await_for(t, infinity);
    EXPECT_TRUE(got && got->ok());
    co_await wait_until_ended(self, t.pid());
    std::optional<task_result<int>> r = co_await shutdown(t);
    EXPECT_TRUE(r && !r->ok());
    if (r) {
      EXPECT_EQ(r->exit_reason(), term(atoms::noproc));
    }

    self.trap_exit(true);
    async_task<int> u = async([]() -> int { exit("gave_up"_a); });
    std::optional<task_result<int>> ended = co_await await_for(u, infinity);  // takes the task's DOWN
    EXPECT_TRUE(ended && !ended->ok());
    std::optional<task_result<int>> ru = co_await shutdown(u);
    EXPECT_TRUE(ru && !ru->ok());
    if (ru) {
      EXPECT_EQ(ru->exit_reason(), term(atoms::noproc));
    }
  });
}

TEST_F(RuntimeTest, TaskShutdown_OfARunningTaskLeavesNeitherMonitorsDownBehind) {
  run([](process& self) -> proc {
    async_task<int> t = async([]() -> task<int> {
      co_await this_process().receive<never>();
      co_return 0;
    });
    std::optional<task_result<int>> r = co_await shutdown(t, shutdown_policy::brutal_kill());
    EXPECT_FALSE(r.has_value());
    auto info = co_await process_info_async(self.self());
    EXPECT_TRUE(info && info->monitors.empty());
    EXPECT_EQ(self.message_queue_len(), 0u);
  });
}

TEST_F(RuntimeTest, TaskToTermIsElixirsTaskStruct) {
  run([](process& self) -> proc {
    async_task<int> t = async([] { return 0; });
    term s = t.to_term();
    EXPECT_EQ(*s.find(term("__struct__"_a)), term("Elixir.Task"_a));
    EXPECT_EQ(*s.find(term("owner"_a)), term(self.self()));
    EXPECT_EQ(*s.find(term("pid"_a)), term(t.pid()));
    EXPECT_EQ(*s.find(term("ref"_a)), term(t.ref()));
    co_await await(t);
  });
}

TEST_F(RuntimeTest, AsyncStream_ReturnsResultsInInputOrder) {
  run([](process& self) -> proc {
    std::vector<int> in;
    for (int i = 0; i < 200; ++i) in.push_back(i);
    std::vector<int> out = co_await async_stream(in, [](int x) -> task<int> {
      if (x % 3 == 0) co_await this_process().yield();  // finish out of order
      co_return x * x;
    });
    EXPECT_EQ(out.size(), in.size());
    for (int i = 0; i < 200 && std::size_t(i) < out.size(); ++i) EXPECT_EQ(out[std::size_t(i)], i * i);
    EXPECT_EQ(self.message_queue_len(), 0u);
  });
}

TEST_F(RuntimeTest, AsyncStream_RunsAtMostMaxConcurrencyTasksAtOnce) {
  run([](process&) -> proc {
    auto running = std::make_shared<std::atomic<int>>(0);
    auto peak = std::make_shared<std::atomic<int>>(0);
    std::vector<int> in(60, 1);
    std::vector<int> out = co_await async_stream(
        in,
        [running, peak](int x) -> task<int> {
          int now = running->fetch_add(1) + 1;
          int seen = peak->load();
          while (now > seen && !peak->compare_exchange_weak(seen, now)) {
          }
          co_await this_process().sleep(1ms);
          running->fetch_sub(1);
          co_return x;
        },
        stream_options{.max_concurrency = 4});
    EXPECT_EQ(out.size(), 60u);
    EXPECT_LE(peak->load(), 4);
    EXPECT_GE(peak->load(), 1);
  });
}

TEST_F(RuntimeTest, AsyncStream_UnorderedReturnsEveryResultInCompletionOrder) {
  run([](process&) -> proc {
    std::vector<int> in{5, 1, 4, 2, 3};
    std::vector<int> out = co_await async_stream(in, [](int x) { return x * 10; }, stream_options{.ordered = false});
    std::sort(out.begin(), out.end());
    EXPECT_EQ(out, (std::vector<int>{10, 20, 30, 40, 50}));
  });
}

TEST_F(RuntimeTest, AsyncStream_ExitsTheCallerWhenATaskTimesOutAndKillsTheRest) {
  // The tasks never end by themselves: run() finishing (every process gone) shows they were killed.
  run([](process& self) -> proc {
    self.trap_exit(true);  // so that an exit signal from a killed task would show as a message
    std::vector<int> in{1, 2, 3, 4, 5};
    term why;
    try {
      co_await async_stream(
          in,
          [](int) -> task<int> {
            co_await this_process().receive<never>();
            co_return 0;
          },
          stream_options{.max_concurrency = 3, .timeout = 10ms});
    } catch (const task_exit_error& e) {
      why = e.reason;
    }
    EXPECT_EQ(why, tuple("timeout"_a, tuple("Elixir.Task.Supervised"_a, "stream"_a, list({term(10)}))));
    EXPECT_EQ(self.message_queue_len(), 0u);  // unlinked before being killed: no exit signal
  });
}

TEST_F(RuntimeTest, AsyncStream_ATaskCrashInATrappingCallerRaisesItsReason) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    self.trap_exit(true);
    std::vector<int> in{1, 2, 3, 4};
    term why;
    try {
      co_await async_stream(in, [](int x) -> int {
        if (x == 3) throw std::runtime_error("three");
        return x;
      });
    } catch (const task_exit_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, tuple("exception"_a, "three"));
  });
}

TEST_F(RuntimeTest, TaskSupervisorAsyncNolink_ACrashGivesTheAwaitingCallerAnErrorInsteadOfKillingIt) {
  run([](process& self) -> proc {
    logs_silenced quiet;  // the supervisor reports the crash
    pid sup = (co_await task_supervisor::start_link()).value();
    async_task<int> t = co_await task_supervisor::async_nolink(sup, []() -> int { throw std::runtime_error("nolink crash"); });
    term why;
    try {
      co_await await(t);
    } catch (const task_exit_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, tuple("exception"_a, "nolink crash"));
    EXPECT_FALSE(self.trapping_exits());  // not trapping, and still alive: the task was not linked to us
    EXPECT_EQ(self.message_queue_len(), 0u);
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, TaskSupervisorAsyncNolink_ReturnsTheValueAndTheTaskIsAChildOfTheSupervisor) {
  run([](process& self) -> proc {
    pid sup = (co_await task_supervisor::start_link()).value();
    async_task<int> t = co_await task_supervisor::async_nolink(sup, []() -> task<int> {
      co_await this_process().receive<go>();
      co_return 3;
    });
    std::vector<pid> kids = co_await task_supervisor::children(sup);
    EXPECT_EQ(kids, std::vector<pid>{t.pid()});
    auto info = co_await process_info_async(t.pid());
    EXPECT_TRUE(info && std::find(info->links.begin(), info->links.end(), self.self()) == info->links.end());
    send(t.pid(), go{});
    int v = co_await await(t);
    EXPECT_EQ(v, 3);
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, TaskSupervisorStartChild_RunsTheFunctionAndATemporaryTaskIsNotRestarted) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    pid sup = (co_await task_supervisor::start_link()).value();
    pid me = self.self();
    auto report = [me] { send(me, std::string("ran")); };
    start_result r = co_await task_supervisor::start_child(sup, std::move(report));
    EXPECT_TRUE(r.ok());
    std::string got = co_await self.receive<std::string>();
    EXPECT_EQ(got, "ran");
    ref m = monitor(r.pid());  // it may have ended already (noproc): either way it is gone
    co_await self.receive<down>();
    (void)m;
    start_result c = co_await task_supervisor::start_child(sup, [] { exit(atom("crashed")); });
    ref cm = monitor(c.pid());
    co_await self.receive<down>();
    (void)cm;
    // Our `down` and the supervisor's exit signal come from the dying task independently (as in
    // Erlang, signals from one sender to two receivers are not ordered between them), so the
    // supervisor may answer before it has seen the exit: ask until it has (a restart would show
    // as a new child that stays).
    std::vector<pid> kids = co_await task_supervisor::children(sup);
    for (int i = 0; i < 10'000 && !kids.empty(); ++i) {
      co_await self.yield();
      kids = co_await task_supervisor::children(sup);
    }
    EXPECT_TRUE(kids.empty());
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, TaskSupervisorAsyncNolink_RaisesWhenTheSupervisorIsFull) {
  run([](process&) -> proc {
    pid sup = (co_await task_supervisor::start_link({.max_children = 1})).value();
    async_task<int> t = co_await task_supervisor::async_nolink(sup, []() -> task<int> {
      co_await this_process().receive<never>();
      co_return 0;
    });
    term why;
    try {
      co_await task_supervisor::async_nolink(sup, [] { return 1; });
    } catch (const start_error& e) {
      why = e.reason;
    }
    EXPECT_EQ(why, term("max_children"_a));
    std::optional<task_result<int>> r = co_await shutdown(t, shutdown_policy::brutal_kill());
    EXPECT_FALSE(r.has_value());
    co_await stop(sup, "shutdown"_a);
  });
}

TEST_F(RuntimeTest, TaskSupervisor_StoppingTheSupervisorStopsItsTasks) {
  run([](process& self) -> proc {
    pid sup = (co_await task_supervisor::start_link()).value();
    async_task<int> t = co_await task_supervisor::async_nolink(sup, []() -> task<int> {
      co_await this_process().receive<never>();
      co_return 0;
    });
    co_await stop(sup, "shutdown"_a);
    std::optional<task_result<int>> r = co_await await_for(t, infinity);
    EXPECT_TRUE(r && !r->ok());
    if (r) {
      EXPECT_EQ(r->exit_reason(), term("shutdown"_a));
    }
    EXPECT_EQ(self.message_queue_len(), 0u);
  });
}

TEST_F(RuntimeTest, TaskSupervisorSpec_StartsATaskSupervisorUnderAnotherSupervisor) {
  run([](process&) -> proc {
    pid top = (co_await dynamic_supervisor::start_link()).value();
    start_result r = co_await dynamic_supervisor::start_child(top, task_supervisor::spec("tasks"_a, {.name = "nested_tasks"_a}));
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(whereis("nested_tasks"_a), r.pid());
    async_task<int> t = co_await task_supervisor::async_nolink("nested_tasks", [] { return 11; });
    int v = co_await await(t);
    EXPECT_EQ(v, 11);
    dynamic_supervisor::counts c = co_await dynamic_supervisor::count_children(top);
    EXPECT_EQ(c.supervisors, 1u);
    co_await stop(top, "shutdown"_a);
    EXPECT_FALSE(is_alive(r.pid()));
  });
}

}  // namespace
}  // namespace athanor::testing
