// Receive with pattern clauses (athanor/term/match.h) over messages sent as terms.
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "test_util.h"

#include "../support/counting_new.h"  // this binary's operator new counts (t_counting, t_allocations)

using athanor::testing_support::t_allocations;
using athanor::testing_support::t_counting;

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct stop {};

TEST_F(RuntimeTest, PatternClauseReceivesATermWithTypedCaptures) {
  outcome<std::string> got;
  pid p = spawn([&](process& self) -> proc {
    std::string r = co_await self.receive(
        on(tuple("hello"_a, _s), [](std::string_view name) { return "Hello, " + std::string(name) + "!"; }));
    got.set(r);
  });
  send(p, tuple("hello"_a, "Alice"));
  EXPECT_EQ(got.get(), "Hello, Alice!");
}

TEST_F(RuntimeTest, PatternsOwningHeapLiteralsInTheAwaitingExpression) {
  // Literals that own heap memory (a std::string, a list term) live in the clause temporaries of
  // the co_await expression across the suspension; ASan checks they are neither leaked nor
  // freed twice.
  outcome<std::string> got;
  pid p = spawn([&](process& self) -> proc {
    std::string r = co_await self.receive(
        on(tuple(std::string(40, 'k'), list({1, 2, 3}), _s), [](std::string_view v) { return std::string(v); }),
        after(10s, [] { return std::string("timeout"); }));
    got.set(r);
  });
  send(p, tuple(std::string(40, 'k'), list({1, 2}), "wrong"));
  send(p, tuple(std::string(40, 'k'), list({1, 2, 3}), "right"));
  EXPECT_EQ(got.get(), "right");
}

TEST_F(RuntimeTest, NonMatchingTermsStayQueuedInOrder) {
  outcome<std::vector<term>> got;
  pid p = spawn([&](process& self) -> proc {
    co_await self.receive<stop>();
    std::vector<term> seen;
    std::int64_t a = co_await self.receive(on(tuple("a"_a, _i), [](std::int64_t x) { return x; }));
    seen.push_back(term(a));
    for (int i = 0; i < 2; ++i) {
      term any = co_await self.receive(on(_t, [](const term& t) { return t; }));
      seen.push_back(any);
    }
    got.set(seen);
  });
  send(p, tuple("b"_a, 1));
  send(p, tuple("a"_a, 2));
  send(p, tuple("b"_a, 3));
  send(p, stop{});
  EXPECT_EQ(got.get(), (std::vector<term>{term(2), tuple("b"_a, 1), tuple("b"_a, 3)}));
}

TEST_F(RuntimeTest, PatternAndTypedClausesMixInOneReceive) {
  outcome<std::vector<std::string>> got;
  pid p = spawn([&](process& self) -> proc {
    co_await self.receive<stop>();
    std::vector<std::string> seen;
    for (int i = 0; i < 4; ++i) {
      std::string r = co_await self.receive(
          on<int>([](int x) { return x > 10; }, [](int x) { return "big int " + std::to_string(x); }),
          on(tuple("EXIT"_a, _pid, _t), [](pid, const term& reason) { return "exit " + reason.to_string(); }),
          on(tuple("n"_a, _i), [](std::int64_t n) { return n > 0; },
             [](std::int64_t n) { return "positive " + std::to_string(n); }),
          on([](std::string& s) { return "string " + s; }));
      seen.push_back(r);
    }
    std::string rest = co_await self.receive(on(_t, [](const term& t) { return t.to_string(); }),
                                             on([](int x) { return "small int " + std::to_string(x); }));
    seen.push_back(rest);
    got.set(seen);
  });
  send(p, 5);                                   // matches no clause of the loop
  send(p, tuple("n"_a, -1));                    // fails its guard
  send(p, tuple("n"_a, 7));
  send(p, 20);
  send(p, tuple("EXIT"_a, pid::from_bits(0), "normal"_a));
  send(p, std::string("s"));
  send(p, stop{});
  EXPECT_EQ(got.get(), (std::vector<std::string>{"positive 7", "big int 20", "exit normal", "string s", "small int 5"}));
}

TEST_F(RuntimeTest, PatternHandlerMayTakeTheMatchForNamedBindings) {
  outcome<std::string> got;
  pid p = spawn([&](process& self) -> proc {
    std::string r = co_await self.receive(
        on(tuple("ok"_a, map_with("name"_a, bind<std::string>("name"))),
           [](const auto& m) { return m.template get<std::string>("name"); }));
    got.set(r);
  });
  send(p, tuple("ok"_a, map({{"name"_a, "Alice"}, {"age"_a, 42}})));
  EXPECT_EQ(got.get(), "Alice");
}

TEST_F(RuntimeTest, AfterRunsWhenNoTermMatches) {
  outcome<std::string> got;
  pid p = spawn([&](process& self) -> proc {
    std::string r = co_await self.receive(on(tuple("hello"_a, _s), [](std::string_view) { return std::string("hello"); }),
                                          after(20ms, [] { return std::string("timeout"); }));
    got.set(r);
    co_await self.receive<stop>();
  });
  send(p, tuple("goodbye"_a, "Alice"));  // does not match: stays queued
  EXPECT_EQ(got.get(), "timeout");
  send(p, stop{});
}

TEST_F(RuntimeTest, ExitSignalsAsTermsFromALinkedProcess) {
  // A process that traps exits receives them as exit_signal; a pattern clause handles the
  // term-shaped {'EXIT', Pid, Reason} that code sends by hand, in the same receive.
  outcome<std::string> got;
  pid p = spawn([&](process& self) -> proc {
    self.trap_exit(true);
    pid child = spawn_link([](process&) -> proc { co_return; });
    std::string r = co_await self.receive(on([child](exit_signal& e) { return std::string(e.from == child ? "exit_signal from child" : "other"); }),
                                          on(tuple("EXIT"_a, _pid, _t), [](pid, const term&) { return std::string("term"); }));
    got.set(r);
  });
  EXPECT_EQ(got.get(), "exit_signal from child");
  (void)p;
}

TEST_F(RuntimeTest, TypedTermClauseWithExplicitTypeAndGuardStillWorks) {
  // on<term>(guard, handler) is the typed clause, not a pattern: the guard gets the message.
  auto guard = [](const term& t) { return t.is_int64(); };
  auto handler = [](term& t) { return t.as_int(); };
  static_assert(std::is_same_v<decltype(on<term>(guard, handler)), detail::on_clause<term, decltype(guard), decltype(handler)>>);
  static_assert(std::is_same_v<decltype(on<int>(guard, handler)), detail::on_clause<int, decltype(guard), decltype(handler)>>);
  outcome<std::int64_t> got;
  pid p = spawn([&](process& self) -> proc {
    co_await self.receive<stop>();
    std::int64_t r = co_await self.receive(on<term>(guard, handler), on(tuple("x"_a, _i), [](std::int64_t x) { return -x; }));
    got.set(r);
  });
  send(p, term("not an int"));
  send(p, term(9));
  send(p, stop{});
  EXPECT_EQ(got.get(), 9);
}

class ReceiveMatchAllocationTest : public SingleSchedulerTest {};

TEST_F(ReceiveMatchAllocationTest, MatchingAReceiveClauseDoesNotAllocate) {
#ifdef ATHANOR_NO_COUNTING_NEW
  GTEST_SKIP() << "operator new cannot be replaced under clang's TSan";
#endif
  outcome<std::pair<long, std::int64_t>> got;
  run([&](process& self) -> proc {
    send(self.self(), tuple("ignored"_a, 0));
    send(self.self(), tuple("sum"_a, 40, 2));
    // Both messages are in the mailbox before counting starts; one scheduler, so this process
    // stays on this thread. The receive scans past the first message and matches the second.
    t_allocations = 0;
    t_counting = true;
    std::int64_t sum = co_await self.receive(
        on(tuple("sum"_a, _i, _i), [](std::int64_t a, std::int64_t b) { return a + b; }),
        on(tuple("never"_a, bind<std::string_view>("x")), [](const auto&) { return std::int64_t(-1); }));
    t_counting = false;
    long allocations = t_allocations;
    // The counter sees allocations made in this process: building a term allocates.
    t_allocations = 0;
    t_counting = true;
    term built = list({1, 2});
    t_counting = false;
    if (t_allocations == 0) allocations = -1;
    term left = co_await self.receive(on(_t, [](const term& t) { return t; }));
    got.set({allocations, sum + left.element(1).as_int()});
  });
  auto [allocations, sum] = got.get();
  EXPECT_EQ(sum, 42);
  EXPECT_EQ(allocations, 0);
}

}  // namespace
}  // namespace athanor::testing
