// The toolchain's regression test: the calling patterns Athanor's README teaches, written the way
// users write them (temporaries and capturing lambdas inside co_await expressions), run under
// ASan+UBSan in CI. Each request and capture owns heap memory and a copy of one shared token, so
// a temporary destroyed twice is a double free (ASan aborts) and one never destroyed is a leak
// (the token's use count stays above one; LeakSanitizer reports it too).
//
// The compilers' known bugs, each a test below:
//   * g++ 12: a braced aggregate temporary inside a co_await expression, passed by value or by
//     reference, is destroyed twice; a capturing lambda in the same place likewise.
//   * g++ 15/16 (GCC PR 124584): `auto [a, b] = co_await x;` in a loop skips or doubles the
//     destructor of the hidden object, also when the frame is destroyed while suspended.
//   * clang (llvm-project #59181): `co_await` inside a conditional operator used freed memory.
// The project's compiler (cmake/AthanorCompiler.cmake) must pass all of them.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <athanor/athanor.h>

namespace athanor::toolchain_test {
namespace {

using namespace athanor::literals;
using namespace std::chrono_literals;

// Longer than any small-string buffer, so that every copy owns heap memory.
std::string heap_text(char c) { return std::string(100, c); }

// ---- The minimal reproduction, without Athanor: an awaitable that takes an aggregate
// by reference, awaited with a braced temporary.
struct holder {
  std::shared_ptr<int> s;
};

struct ready_awaitable {
  holder& h;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<>) const noexcept { return false; }  // resume at once
  int await_resume() const { return *h.s; }
};
ready_awaitable by_reference(holder&& h) { return {h}; }

struct eager {
  struct promise_type {
    eager get_return_object() { return {std::coroutine_handle<promise_type>::from_promise(*this)}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() { std::terminate(); }
  };
  std::coroutine_handle<promise_type> h;
  ~eager() { h.destroy(); }
};

eager await_a_braced_holder(std::shared_ptr<int> sp, int& out) {
  out = co_await by_reference(holder{sp});
}

TEST(Toolchain, BracedAggregateTemporaryInsideCoAwaitIsDestroyedOnce) {
  auto token = std::make_shared<int>(7);
  int out = 0;
  { eager e = await_a_braced_holder(token, out); }
  EXPECT_EQ(out, 7);
  EXPECT_EQ(token.use_count(), 1);
}

// ---- The README's patterns on a real runtime.
struct lookup {
  std::string key;
  std::shared_ptr<int> token;
};
struct store {
  std::string key;
  std::string value;
  std::shared_ptr<int> token;
};
struct entry_of {
  std::string key;
};

struct cache : gen_server<cache> {
  std::map<std::string, std::string> entries;
  std::optional<std::string> handle_call(lookup k) {
    auto it = entries.find(k.key);
    if (it == entries.end()) return std::nullopt;
    return it->second;
  }
  std::pair<std::string, std::vector<std::string>> handle_call(entry_of e) {
    return {e.key, {entries[e.key], heap_text('v')}};
  }
  void handle_cast(store s) { entries[s.key] = s.value; }
};

// A runtime per test; `run` spawns a body and waits until every process has ended.
class ReadmePatterns : public ::testing::Test {
 protected:
  void SetUp() override { rt_ = std::make_unique<runtime>(runtime_config{.schedulers = 2}); }
  void TearDown() override { rt_.reset(); }
  template <class F>
  void run(F&& body) {
    spawn(std::forward<F>(body));
    ASSERT_TRUE(rt_->wait_for(30s)) << "processes still alive after 30 s";
  }
  std::unique_ptr<runtime> rt_;
  std::shared_ptr<int> token = std::make_shared<int>(0);
};

TEST_F(ReadmePatterns, CallAndCastWithAggregateRequestsOwningHeapMemory) {
  std::optional<std::string> hit, miss;
  run([&](process&) -> proc {
    start_result r = co_await start_link<cache>(server_options{.name = "cache"_a});
    cast<cache>("cache", store{heap_text('k'), heap_text('v'), token});
    hit = co_await call<cache>("cache", lookup{heap_text('k'), token}, 100ms);
    miss = co_await call<cache>(r.value(), lookup{heap_text('m'), token}, 100ms);
    co_await stop(r.value());
  });
  EXPECT_EQ(hit, heap_text('v'));
  EXPECT_EQ(miss, std::nullopt);
  EXPECT_EQ(token.use_count(), 1);
}

TEST_F(ReadmePatterns, StructuredBindingOfACoAwaitInALoop) {
  std::vector<std::string> keys;
  run([&](process&) -> proc {
    start_result r = co_await start_link<cache>();
    for (char c : {'a', 'b', 'c'}) {
      auto [key, values] = co_await call<cache>(r.value(), entry_of{heap_text(c)});
      co_await this_process().yield();  // a suspension while the binding is alive
      keys.push_back(key);
      EXPECT_EQ(values.size(), 2u);
    }
    co_await stop(r.value());
  });
  EXPECT_EQ(keys, (std::vector<std::string>{heap_text('a'), heap_text('b'), heap_text('c')}));
}

struct bound {};

TEST_F(ReadmePatterns, StructuredBindingAliveWhenTheProcessIsKilledWhileSuspended) {
  // The frame is destroyed while suspended with the bindings alive (GCC PR 124584's other case):
  // their hidden objects must be destroyed exactly once.
  run([&](process& self) -> proc {
    start_result r = co_await start_link<cache>();
    pid server = r.value();
    pid parent = self.self();
    pid victim = spawn([server, parent, t = token](process& me) -> proc {
      for (;;) {
        auto [key, values] = co_await call<cache>(server, entry_of{heap_text('x')});
        auto [tok, more] = std::pair(t, heap_text('y'));
        send(parent, bound{});
        co_await me.receive<int>();  // killed here, the bindings alive
        EXPECT_EQ(key.size() + values.size() + more.size(), 0u) << "never reached";
        (void)tok;
      }
    });
    ref mref = monitor(victim);
    co_await self.receive<bound>();
    exit(victim, atoms::kill);
    down d = co_await self.receive<down>();
    EXPECT_EQ(d.monitor, mref);
    EXPECT_EQ(d.reason, term(atoms::killed));
    co_await stop(server);
  });
  EXPECT_EQ(token.use_count(), 1);
}

TEST_F(ReadmePatterns, CapturingLambdasInReceiveClauses) {
  std::string got;
  pid receiver = spawn([&, t = token](process& self) -> proc {
    got = co_await self.receive(
        on(tuple("hello"_a, _s), [prefix = heap_text('p'), t](std::string_view name) { return prefix.substr(0, 3) + std::string(name); }),
        on([suffix = heap_text('s'), t](std::string& s) { return s + suffix.substr(0, 1); }),
        after(30s, [fallback = heap_text('f'), t] { return fallback; }));
    // A timeout clause that fires, with a capture owning heap memory.
    std::string late = co_await self.receive(on([t](int) { return std::string("int"); }),
                                             after(1ms, [fallback = heap_text('t'), t] { return fallback.substr(0, 2); }));
    got += late;
  });
  send(receiver, tuple("hello"_a, "Alice"));
  ASSERT_TRUE(rt_->wait_for(30s));
  EXPECT_EQ(got, "pppAlicett");
  EXPECT_EQ(token.use_count(), 1);
}

// llvm-project #59181's shape: a co_await inside a conditional operator in a co_return.
struct boxed {
  std::string text;
};
task<boxed> pick(bool fetch, pid server) {
  co_return fetch ? boxed{(co_await call<cache>(server, entry_of{heap_text('q')})).first} : boxed{heap_text('n')};
}

TEST_F(ReadmePatterns, CoAwaitInsideAConditionalOperator) {
  std::string fetched, not_fetched;
  run([&](process&) -> proc {
    start_result r = co_await start_link<cache>();
    fetched = (co_await pick(true, r.value())).text;
    not_fetched = (co_await pick(false, r.value())).text;
    co_await stop(r.value());
  });
  EXPECT_EQ(fetched, heap_text('q'));
  EXPECT_EQ(not_fetched, heap_text('n'));
}

TEST_F(ReadmePatterns, BracedChildListAndCapturingLambdasInOtpCalls) {
  int sum = 0, updated = 0;
  std::vector<int> squares;
  std::string from_task, from_dirty;
  run([&, t = token](process&) -> proc {
    // A braced list of children written inside the co_await (g++ 12 rejected it).
    start_result sup = co_await supervisor::start_link({.strategy = one_for_one, .intensity = 3, .period = 5s},
                                                       {child<cache>("cache_a"), child<cache>("cache_b")});
    EXPECT_TRUE(sup.ok());
    squares = co_await async_stream(std::vector<int>{1, 2, 3}, [t, k = heap_text('k')](int x) { return x * x + int(k.size()) * 0; });
    from_task = co_await await(async([t, s = heap_text('a')] { return s.substr(0, 2); }), 5s);
    from_dirty = co_await dirty_io([t, s = heap_text('d')] { return s.substr(0, 1); });
    agent<int> counter((co_await agent<int>::start_link([t] { return 40; })).value());
    co_await update(counter, [t, by = heap_text('b')](int& n) { n += by.empty() ? 0 : 2; });
    updated = co_await get(counter, [t](const int& n) { return n; });
    co_await stop(counter);
    for (int s : squares) sum += s;
    exit(sup.value(), "shutdown"_a);
  });
  EXPECT_EQ(sum, 14);
  EXPECT_EQ(from_task, "aa");
  EXPECT_EQ(from_dirty, "d");
  EXPECT_EQ(updated, 42);
  EXPECT_EQ(token.use_count(), 1);
}

}  // namespace
}  // namespace athanor::toolchain_test
