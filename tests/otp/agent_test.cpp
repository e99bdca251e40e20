// agent<State>: one test per rule of Elixir's Agent documentation.
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../runtime/test_util.h"
#include "athanor/otp/agent.h"
#include "log_capture.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

TEST_F(RuntimeTest, AgentStartLink_RunsTheInitialStateFunctionInTheAgentProcess) {
  run([](process& self) -> proc {
    pid caller = self.self();
    auto initial = [caller] { return std::make_pair(caller, athanor::self()); };
    start_result r = co_await agent<std::pair<pid, pid>>::start_link(std::move(initial));
    EXPECT_TRUE(r.ok());
    agent<std::pair<pid, pid>> a(r.value());
    std::pair<pid, pid> seen = co_await get(a, [](const std::pair<pid, pid>& s) { return s; });
    EXPECT_EQ(seen.first, caller);
    EXPECT_EQ(seen.second, r.pid());  // the function ran in the agent, not in the caller
    auto info = co_await process_info_async(r.pid());
    EXPECT_TRUE(info && std::find(info->links.begin(), info->links.end(), caller) != info->links.end());
    co_await stop(a);
  });
}

TEST_F(RuntimeTest, AgentGet_ReturnsTheFunctionOfTheStateAndLeavesItUnchanged) {
  run([](process&) -> proc {
    agent<std::vector<int>> a((co_await agent<std::vector<int>>::start_link([] { return std::vector<int>{1, 2, 3}; })).value());
    std::size_t n = co_await get(a, [](const std::vector<int>& v) { return v.size(); });
    EXPECT_EQ(n, 3u);
    std::vector<int> all = co_await get(a, [](const std::vector<int>& v) { return v; });
    EXPECT_EQ(all, (std::vector<int>{1, 2, 3}));
    co_await stop(a);
  });
}

TEST_F(RuntimeTest, AgentUpdate_ReplacesTheStateWithTheFunctionsResultOrMutatesItInPlace) {
  run([](process&) -> proc {
    agent<int> a((co_await agent<int>::start_link([] { return 1; })).value());
    co_await update(a, [](int n) { return n + 10; });   // Elixir's fn state -> new state
    co_await update(a, [](int& n) { n *= 2; });         // in place
    int v = co_await get(a, [](const int& n) { return n; });
    EXPECT_EQ(v, 22);
    co_await stop(a);
  });
}

TEST_F(RuntimeTest, AgentGetAndUpdate_ReturnsTheFirstElementAndStoresTheSecond) {
  run([](process&) -> proc {
    agent<int> a((co_await agent<int>::start_link([] { return 5; })).value());
    std::string old = co_await get_and_update(a, [](int n) { return std::make_pair(std::to_string(n), n + 1); });
    EXPECT_EQ(old, "5");
    int before = co_await get_and_update(a, [](int& n) { return n++; });  // in place
    EXPECT_EQ(before, 6);
    int now = co_await get(a, [](const int& n) { return n; });
    EXPECT_EQ(now, 7);
    co_await stop(a);
  });
}

TEST_F(RuntimeTest, AgentCast_ReturnsAtOnceAndIsAppliedBeforeALaterGetFromTheSameClient) {
  run([](process&) -> proc {
    agent<std::map<std::string, int>> a(
        (co_await agent<std::map<std::string, int>>::start_link([] { return std::map<std::string, int>{}; })).value());
    for (int i = 0; i < 100; ++i) cast(a, [i](std::map<std::string, int>& m) { m["k" + std::to_string(i % 10)] += 1; });
    int k3 = co_await get(a, [](const std::map<std::string, int>& m) { return m.at("k3"); });
    EXPECT_EQ(k3, 10);
    co_await stop(a);
  });
}

TEST_F(RuntimeTest, AgentStop_EndsTheAgentAndLaterCallsRaiseNoproc) {
  run([](process&) -> proc {
    start_result r = co_await agent<int>::start_link([] { return 0; }, agent_options{.name = "agent_stop_test"_a});
    agent<int> by_name("agent_stop_test"_a);
    int v = co_await get(by_name, [](const int& n) { return n; });
    EXPECT_EQ(v, 0);
    co_await stop(by_name);
    EXPECT_FALSE(is_alive(r.pid()));
    term why;
    try {
      co_await get(by_name, [](const int& n) { return n; });
    } catch (const call_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, term("noproc"_a));
  });
}

TEST_F(RuntimeTest, AgentFunctionThatThrowsCrashesTheAgentAndTheCallerGetsTheReason) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    self.trap_exit(true);
    agent<int> a((co_await agent<int>::start_link([] { return 0; })).value());
    term why;
    try {
      co_await get(a, [](const int&) -> int { throw std::runtime_error("agent fn failed"); });
    } catch (const call_error& e) {
      why = e.why;
    }
    EXPECT_EQ(why, tuple("exception"_a, "agent fn failed"));
    exit_signal x = co_await self.receive<exit_signal>();
    EXPECT_EQ(x.reason, tuple("exception"_a, "agent fn failed"));
  });
}

TEST_F(RuntimeTest, AgentStartLink_ReturnsAnErrorWhenTheInitialStateFunctionThrows) {
  run([](process& self) -> proc {
    logs_silenced quiet;
    self.trap_exit(true);
    start_result r = co_await agent<int>::start_link([]() -> int { throw std::runtime_error("no state"); });
    EXPECT_EQ(r.to_term(), tuple("error"_a, tuple("exception"_a, "no state")));
  });
}

TEST_F(RuntimeTest, AgentStart_StartsAnAgentThatIsNotLinkedToTheCaller) {
  run([](process& self) -> proc {
    start_result r = co_await agent<int>::start([] { return 1; });
    EXPECT_TRUE(r.ok());
    auto info = co_await process_info_async(r.pid());
    EXPECT_TRUE(info && std::find(info->links.begin(), info->links.end(), self.self()) == info->links.end());
    co_await stop(agent<int>(r.pid()));
  });
}

}  // namespace
}  // namespace athanor::testing
