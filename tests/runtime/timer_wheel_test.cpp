#include "runtime/timer_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <vector>

namespace athanor::detail {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

struct test_timer : timer_node {
  int id = 0;
};

std::vector<int> ids_of(const std::vector<timer_node*>& fired) {
  std::vector<int> out;
  for (timer_node* n : fired) out.push_back(static_cast<test_timer*>(n)->id);
  return out;
}

TEST(TimerWheel, NodeIsSmall) { static_assert(sizeof(timer_node) <= 32); }

TEST(TimerWheel, EmptyWheel) {
  timer_wheel w(42);
  EXPECT_EQ(w.now(), 42u);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.next_deadline().has_value());
  auto never = [](timer_node*) { ADD_FAILURE() << "nothing should fire"; };
  EXPECT_EQ(w.advance(41, never), 0u);  // earlier: ignored
  EXPECT_EQ(w.now(), 42u);
  EXPECT_EQ(w.advance(std::uint64_t{1} << 62, never), 0u);  // a huge idle jump is immediate
  EXPECT_EQ(w.now(), std::uint64_t{1} << 62);
  EXPECT_EQ(w.advance(kMax, never), 0u);
  EXPECT_EQ(w.now(), kMax);
}

// One timer, at many distances from many start times, across every level boundary and
// the overflow epoch: it does not fire a millisecond early and fires exactly on time.
TEST(TimerWheel, SingleTimerFiresExactlyAtDeadline) {
  const std::uint64_t starts[] = {0, 5, 63, 64, 1'000'003, (std::uint64_t{1} << 36) - 3,
                                  123'456'789'012'345};
  std::vector<std::uint64_t> offsets = {1, 2, 63, 64, 65, 127, 4095, 4096, 4097, 262'143, 262'144};
  for (unsigned k = 3; k <= 8; ++k) {
    const std::uint64_t span = std::uint64_t{1} << (6 * k);
    offsets.insert(offsets.end(), {span - 1, span, span + 1, span + 777, 3 * span - 5});
  }
  offsets.push_back((std::uint64_t{1} << 40) + 12'345);
  for (std::uint64_t start : starts) {
    for (std::uint64_t off : offsets) {
      SCOPED_TRACE(testing::Message() << "start=" << start << " off=" << off);
      const std::uint64_t d = start + off;
      // Directly: jump to one ms before, then to the deadline.
      {
        timer_wheel w(start);
        timer_node n;
        w.insert(&n, d);
        EXPECT_TRUE(w.pending(&n));
        EXPECT_EQ(w.size(), 1u);
        int fired = 0;
        auto fn = [&](timer_node* f) {
          EXPECT_EQ(f, &n);
          EXPECT_EQ(w.now(), d);
          ++fired;
        };
        if (off > 2) {
          EXPECT_EQ(w.advance(start + off / 2, fn), 0u);
        }
        EXPECT_EQ(w.advance(d - 1, fn), 0u);
        EXPECT_EQ(fired, 0);
        EXPECT_TRUE(w.pending(&n));
        ASSERT_TRUE(w.next_deadline().has_value());
        EXPECT_EQ(*w.next_deadline(), d);  // within 1 ms it is exact
        EXPECT_EQ(w.advance(d, fn), 1u);
        EXPECT_EQ(fired, 1);
        EXPECT_FALSE(w.pending(&n));
        EXPECT_EQ(w.size(), 0u);
        EXPECT_EQ(w.now(), d);
      }
      // Driven by next_deadline(), as the runtime does: never early, few wake-ups.
      {
        timer_wheel w(start);
        timer_node n;
        w.insert(&n, d);
        int wakeups = 0;
        int fired = 0;
        while (auto nd = w.next_deadline()) {
          ASSERT_GT(*nd, w.now());
          ASSERT_LE(*nd, d);
          ASSERT_LE(++wakeups, 8);
          w.advance(*nd, [&](timer_node*) {
            EXPECT_EQ(w.now(), d);
            ++fired;
          });
        }
        EXPECT_EQ(fired, 1);
        EXPECT_EQ(w.now(), d);
      }
    }
  }
}

TEST(TimerWheel, MaximumDeadline) {
  timer_wheel w(7);
  timer_node n;
  w.insert(&n, kMax);
  auto nd = w.next_deadline();
  ASSERT_TRUE(nd.has_value());
  EXPECT_GT(*nd, 7u);
  EXPECT_LE(*nd, kMax);
  std::size_t fired = 0;
  auto fn = [&](timer_node*) { ++fired; };
  EXPECT_EQ(w.advance(kMax - (std::uint64_t{1} << 37), fn), 0u);
  EXPECT_EQ(w.advance(kMax - 1, fn), 0u);
  EXPECT_TRUE(w.pending(&n));
  EXPECT_EQ(w.next_deadline(), kMax);
  EXPECT_EQ(w.advance(kMax, fn), 1u);
  EXPECT_EQ(fired, 1u);
}

TEST(TimerWheel, PastDeadlinesFireAtNextAdvanceInDeadlineOrder) {
  timer_wheel w(1000);
  test_timer t[6];
  for (int i = 0; i < 6; ++i) t[i].id = i;
  w.insert(&t[0], 1000);  // == now
  w.insert(&t[1], 5);
  w.insert(&t[2], 0);
  w.insert(&t[3], 999);
  w.insert(&t[4], 5);      // equal deadline: after t[1]
  w.insert(&t[5], 1001);   // in the future
  EXPECT_EQ(w.size(), 6u);
  EXPECT_EQ(w.next_deadline(), 1000u);  // something is due: the current time
  std::vector<timer_node*> fired;
  auto fn = [&](timer_node* n) { fired.push_back(n); };
  EXPECT_EQ(w.advance(500, fn), 5u);  // an earlier time still fires what is due
  EXPECT_EQ(w.now(), 1000u);
  EXPECT_EQ(ids_of(fired), (std::vector<int>{2, 1, 4, 3, 0}));
  EXPECT_EQ(w.next_deadline(), 1001u);
  fired.clear();
  w.insert(&t[1], 3);
  EXPECT_EQ(w.advance(2000, fn), 2u);  // the past one first, then the future one
  EXPECT_EQ(ids_of(fired), (std::vector<int>{1, 5}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, EqualDeadlinesFireInInsertionOrderAcrossLevels) {
  // Nodes for one deadline inserted from different distances (so first filed at
  // different levels) still fire in insertion order.
  const std::uint64_t d = (std::uint64_t{1} << 37) + 4096 * 3 + 64 * 5 + 7;
  timer_wheel w(0);
  test_timer t[4];
  for (int i = 0; i < 4; ++i) t[i].id = i;
  auto nothing = [](timer_node*) { ADD_FAILURE(); };
  w.insert(&t[0], d);  // overflow
  w.advance(std::uint64_t{1} << 37, nothing);
  w.insert(&t[1], d);  // level 2
  w.advance(d - 64 * 5 - 7 + 3, nothing);
  w.insert(&t[2], d);  // level 1
  w.advance(d - 4, nothing);
  w.insert(&t[3], d);  // level 0
  std::vector<timer_node*> fired;
  EXPECT_EQ(w.advance(d, [&](timer_node* n) { fired.push_back(n); }), 4u);
  EXPECT_EQ(ids_of(fired), (std::vector<int>{0, 1, 2, 3}));
}

TEST(TimerWheel, CancelSemantics) {
  timer_wheel w(0);
  test_timer never_inserted;
  EXPECT_FALSE(w.pending(&never_inserted));
  EXPECT_FALSE(w.cancel(&never_inserted));

  test_timer a, b, c, far;
  a.id = 1, b.id = 2, c.id = 3, far.id = 4;
  w.insert(&a, 10);
  w.insert(&b, 10);
  w.insert(&c, 20);
  w.insert(&far, std::uint64_t{1} << 45);  // overflow list
  EXPECT_EQ(w.size(), 4u);
  EXPECT_TRUE(w.cancel(&far));
  EXPECT_FALSE(w.cancel(&far));
  EXPECT_FALSE(w.pending(&far));
  EXPECT_EQ(far.prev, nullptr);
  EXPECT_EQ(far.next, nullptr);
  EXPECT_EQ(w.size(), 3u);

  // Inside a's callback: cancelling itself fails (already fired), cancelling b
  // (same deadline, about to fire) and c (later) succeeds.
  std::vector<timer_node*> fired;
  EXPECT_EQ(w.advance(30,
                      [&](timer_node* n) {
                        fired.push_back(n);
                        EXPECT_FALSE(w.pending(n));
                        EXPECT_FALSE(w.cancel(n));
                        EXPECT_TRUE(w.cancel(&b));
                        EXPECT_TRUE(w.cancel(&c));
                      }),
            1u);
  EXPECT_EQ(ids_of(fired), (std::vector<int>{1}));
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.cancel(&a));  // fired
  EXPECT_FALSE(w.cancel(&b));  // cancelled
  EXPECT_FALSE(w.next_deadline().has_value());

  // A cancelled node can be reused, and cancelling the only node of a slot clears it.
  w.insert(&a, 40);
  w.insert(&b, 50);
  w.insert(&c, 30 + 64 * 64);
  EXPECT_EQ(w.next_deadline(), 40u);
  EXPECT_TRUE(w.cancel(&a));
  EXPECT_EQ(w.next_deadline(), 50u);
  EXPECT_TRUE(w.cancel(&b));
  EXPECT_EQ(w.next_deadline(), 64u * 64);  // start of c's level-2 slot
  EXPECT_TRUE(w.cancel(&c));
  EXPECT_FALSE(w.next_deadline().has_value());
  w.insert(&a, 45);
  EXPECT_EQ(w.advance(100, [](timer_node*) {}), 1u);
  // Due-list nodes can be cancelled too.
  w.insert(&a, 50);
  EXPECT_TRUE(w.cancel(&a));
  EXPECT_EQ(w.advance(100, [](timer_node*) { ADD_FAILURE(); }), 0u);
}

TEST(TimerWheel, ReinsertFromCallback) {
  timer_wheel w(0);
  test_timer periodic;
  w.insert(&periodic, 7);
  std::vector<std::uint64_t> times;
  auto rearm = [&](timer_node* n) {
    EXPECT_EQ(n, &periodic);
    times.push_back(w.now());
    w.insert(n, n->deadline_ms + 7);  // drift-free: relative to its own deadline
  };
  EXPECT_EQ(w.advance(100, rearm), 14u);  // 7, 14, ..., 98 in one call
  ASSERT_EQ(times.size(), 14u);
  for (std::size_t i = 0; i < times.size(); ++i) EXPECT_EQ(times[i], 7 * (i + 1));
  EXPECT_TRUE(w.pending(&periodic));
  EXPECT_EQ(w.next_deadline(), 105u);
  EXPECT_EQ(w.advance(1'000'000, rearm), 1'000'000u / 7 - 14);  // a long catch-up
  EXPECT_TRUE(w.cancel(&periodic));

  // Re-arming at (or before) the current time fires at the next advance(), not in
  // this one - so it cannot loop - and before anything later in that advance.
  timer_wheel v(0);
  test_timer again, later;
  again.id = 1, later.id = 2;
  v.insert(&again, 10);
  v.insert(&later, 20);
  int calls = 0;
  std::vector<timer_node*> fired;
  auto now_again = [&](timer_node* n) {
    fired.push_back(n);
    if (n == &again && ++calls < 3) v.insert(n, v.now() - (calls == 2 ? 5 : 0));
  };
  EXPECT_EQ(v.advance(15, now_again), 1u);
  EXPECT_TRUE(v.pending(&again));
  EXPECT_EQ(v.next_deadline(), 15u);  // due now (deadline 10 <= 15)
  EXPECT_EQ(v.advance(15, now_again), 1u);
  EXPECT_EQ(again.deadline_ms, 10u);  // re-armed at 15 - 5
  EXPECT_EQ(v.advance(30, now_again), 2u);
  EXPECT_EQ(ids_of(fired), (std::vector<int>{1, 1, 1, 2}));
}

TEST(TimerWheel, ExceptionFromCallbackLeavesTheRestPending) {
  timer_wheel w(0);
  test_timer t[4];
  for (int i = 0; i < 4; ++i) {
    t[i].id = i;
    w.insert(&t[i], i < 3 ? 10 : 11);
  }
  EXPECT_THROW(w.advance(20, [](timer_node*) { throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_FALSE(w.pending(&t[0]));
  EXPECT_EQ(w.size(), 3u);
  EXPECT_EQ(w.now(), 10u);
  EXPECT_EQ(w.next_deadline(), 10u);
  std::vector<timer_node*> fired;
  EXPECT_EQ(w.advance(20, [&](timer_node* n) { fired.push_back(n); }), 3u);
  EXPECT_EQ(ids_of(fired), (std::vector<int>{1, 2, 3}));
}

// Timers beyond the levels' 2^36 ms reach wait in the overflow list; a cancelled one
// must not leave a stale bound behind once time has moved past it.
TEST(TimerWheel, OverflowAfterCancelledFarTimer) {
  constexpr std::uint64_t kEpoch = std::uint64_t{1} << 36;
  timer_wheel w(0);
  timer_node far, farther;
  w.insert(&far, kEpoch + 10);
  EXPECT_EQ(w.next_deadline(), kEpoch + 10);
  EXPECT_TRUE(w.cancel(&far));
  auto never = [](timer_node*) { ADD_FAILURE(); };
  EXPECT_EQ(w.advance(3 * kEpoch + 5, never), 0u);
  w.insert(&farther, 5 * kEpoch + 7);
  ASSERT_TRUE(w.next_deadline().has_value());
  EXPECT_EQ(*w.next_deadline(), 5 * kEpoch + 7);
  EXPECT_EQ(w.advance(4 * kEpoch, never), 0u);
  EXPECT_EQ(w.now(), 4 * kEpoch);
  EXPECT_EQ(w.advance(5 * kEpoch + 6, never), 0u);
  EXPECT_EQ(w.advance(5 * kEpoch + 7, [&](timer_node* n) { EXPECT_EQ(n, &farther); }), 1u);
}

TEST(TimerWheel, LongIdleGapIsOneJump) {
  constexpr std::uint64_t kHour = 3'600'000;
  timer_wheel w(1);
  test_timer t[4];
  const std::uint64_t deadlines[] = {10 * kHour, kHour, 5 * kHour, 10 * kHour + 1};
  for (int i = 0; i < 4; ++i) {
    t[i].id = i;
    w.insert(&t[i], deadlines[i]);
  }
  std::vector<timer_node*> fired;
  EXPECT_EQ(w.advance(10 * kHour, [&](timer_node* n) {
    EXPECT_EQ(w.now(), n->deadline_ms);
    fired.push_back(n);
  }),
            3u);
  EXPECT_EQ(ids_of(fired), (std::vector<int>{1, 2, 0}));
  EXPECT_EQ(w.next_deadline(), 10 * kHour + 1);
}

// Driving the wheel only through next_deadline(): every wake-up is at or before the
// earliest deadline, whatever fires fires exactly at the wake-up time, and the number
// of wake-ups is bounded by the number of levels per timer.
TEST(TimerWheel, NextDeadlineDrivenLoop) {
  std::mt19937_64 rng(7);
  const std::uint64_t start = 987'654'321;
  timer_wheel w(start);
  std::vector<timer_node> nodes(3000);
  std::multimap<std::uint64_t, timer_node*> model;
  for (auto& n : nodes) {
    const std::uint64_t d = start + 1 + rng() % (std::uint64_t{1} << (10 + rng() % 29));
    w.insert(&n, d);
    model.emplace(d, &n);
  }
  std::size_t wakeups = 0;
  while (auto nd = w.next_deadline()) {
    ASSERT_LE(++wakeups, 7 * nodes.size());
    ASSERT_GT(*nd, w.now());
    ASSERT_LE(*nd, model.begin()->first);
    w.advance(*nd, [&](timer_node* n) {
      ASSERT_FALSE(model.empty());
      EXPECT_EQ(model.begin()->second, n);
      EXPECT_EQ(n->deadline_ms, *nd);
      model.erase(model.begin());
    });
  }
  EXPECT_TRUE(model.empty());
  EXPECT_EQ(w.size(), 0u);
}

// Random operations against a reference model: a multimap keeps pending timers
// ordered by deadline, then insertion. Inserts made from a callback with a deadline
// <= the current time are deferred to the next advance(), as documented.
class model_run {
 public:
  model_run(std::uint64_t seed, std::uint64_t start, std::size_t n)
      : w_(start), nodes_(n), it_(n), st_(n, idle), now_(start), rng_(seed) {
    for (std::size_t i = 0; i < n; ++i) nodes_[i].id = static_cast<int>(i);
  }

  void run(int steps) {
    for (int step = 0; step < steps && !testing::Test::HasFailure(); ++step) {
      const unsigned r = rng_() % 100;
      if (r < 45) {
        insert_random();
      } else if (r < 60) {
        const int id = random_id();
        do_cancel(id);
      } else if (r < 98) {
        do_advance(random_advance());
      }
      check();
      if (step % 256 == 0) check_pending();
    }
    // Drain everything.
    while (!m_.empty() && !testing::Test::HasFailure()) do_advance(m_.rbegin()->first);
    EXPECT_EQ(w_.size(), 0u);
    EXPECT_GT(fired_, 0u);
  }

 private:
  enum state : std::uint8_t { idle, in_map, deferred };
  using map = std::multimap<std::uint64_t, int>;

  int random_id() { return static_cast<int>(rng_() % nodes_.size()); }

  std::uint64_t random_deadline() {
    const std::uint64_t room = kMax - now_;
    auto ahead = [&](std::uint64_t range) { return now_ + rng_() % std::min(range, room); };
    switch (rng_() % 10) {
      case 0: return now_ - std::min<std::uint64_t>(now_, rng_() % 50);  // past or now
      case 1: return now_ + 1;
      case 2:
      case 3: return ahead(70);
      case 4: return ahead(5000);
      case 5: return ahead(std::uint64_t{1} << 26);
      case 6: return ahead(std::uint64_t{1} << 38);  // may be in the overflow list
      case 7: return ahead(std::uint64_t{1} << 45);
      default: {  // just on a slot boundary of a random level
        const std::uint64_t width = std::uint64_t{1} << (6 * (rng_() % 7));
        return std::min(kMax - 3, (now_ / width + 1 + rng_() % 3) * width) + rng_() % 3 - 1;
      }
    }
  }

  std::uint64_t random_advance() {
    switch (rng_() % 10) {
      case 0: return now_ - std::min<std::uint64_t>(now_, rng_() % 100);  // earlier: ignored
      case 1:
      case 2: return now_ + rng_() % 4;
      case 3: return now_ + rng_() % 100;
      case 4: return now_ + rng_() % 10'000;
      case 5: return now_ + rng_() % (std::uint64_t{1} << 30);
      case 6: return now_ + rng_() % (std::uint64_t{1} << 40);  // huge jump
      default: {
        auto nd = w_.next_deadline();
        return nd ? *nd : now_ + 1;
      }
    }
  }

  void insert_random() {
    const int id = random_id();
    if (st_[id] != idle) return;
    do_insert(id, random_deadline());
  }

  void do_insert(int id, std::uint64_t d) {
    ASSERT_EQ(st_[id], idle);
    ASSERT_FALSE(w_.pending(&nodes_[id]));
    w_.insert(&nodes_[id], d);
    if (in_advance_ && d <= now_) {
      st_[id] = deferred;
      deferred_.push_back(id);
    } else {
      st_[id] = in_map;
      it_[id] = m_.emplace(d, id);
    }
  }

  void do_cancel(int id) {
    EXPECT_EQ(w_.cancel(&nodes_[id]), st_[id] != idle);
    if (st_[id] == in_map) m_.erase(it_[id]);
    if (st_[id] == deferred) deferred_.erase(std::find(deferred_.begin(), deferred_.end(), id));
    st_[id] = idle;
    EXPECT_FALSE(w_.pending(&nodes_[id]));
  }

  void do_advance(std::uint64_t t) {
    target_ = std::max(t, now_);
    calls_ = 0;
    in_advance_ = true;
    const std::size_t n =
        w_.advance(t, [this](timer_node* f) { on_fire(static_cast<test_timer*>(f)); });
    in_advance_ = false;
    EXPECT_EQ(n, calls_);
    // Everything with a deadline <= target has fired, except deferred re-inserts.
    if (!m_.empty()) {
      EXPECT_GT(m_.begin()->first, target_);
    }
    now_ = target_;
    EXPECT_EQ(w_.now(), now_);
    for (int id : deferred_) {
      st_[id] = in_map;
      it_[id] = m_.emplace(nodes_[id].deadline_ms, id);
    }
    deferred_.clear();
  }

  void on_fire(test_timer* f) {
    ++calls_;
    ++fired_;
    if (m_.empty()) {
      ADD_FAILURE() << "fired " << f->id << " but the model has nothing pending";
      return;
    }
    const auto first = m_.begin();
    if (first->second != f->id) {
      ADD_FAILURE() << "fired " << f->id << " (deadline " << f->deadline_ms << "), expected "
                    << first->second << " (deadline " << first->first << ")";
      return;
    }
    EXPECT_LE(first->first, target_);
    EXPECT_EQ(f->deadline_ms, first->first);
    EXPECT_FALSE(w_.pending(f));
    now_ = std::max(now_, first->first);
    EXPECT_EQ(w_.now(), now_);
    m_.erase(first);
    st_[f->id] = idle;
    switch (rng_() % 10) {
      case 0:
      case 1:
      case 2: do_insert(f->id, random_deadline()); break;  // re-arm the fired one
      case 3: do_cancel(random_id()); break;
      case 4: insert_random(); break;
      case 5: check(); break;
      default: break;
    }
  }

  // size() and the next_deadline() lower-bound property.
  void check() {
    EXPECT_EQ(w_.size(), m_.size() + deferred_.size());
    const auto nd = w_.next_deadline();
    if (m_.empty() && deferred_.empty()) {
      EXPECT_FALSE(nd.has_value());
      return;
    }
    ASSERT_TRUE(nd.has_value());
    std::uint64_t earliest = kMax;
    if (!m_.empty()) earliest = m_.begin()->first;
    for (int id : deferred_) earliest = std::min(earliest, nodes_[id].deadline_ms);
    if (earliest <= now_) {
      EXPECT_EQ(*nd, now_);  // something is due: the current time
      return;
    }
    EXPECT_GT(*nd, now_);
    EXPECT_LE(*nd, earliest);
    // Tightness: within the levels' range it is the start of the earliest timer's
    // slot (exact within the current 64 ms).
    const unsigned level = static_cast<unsigned>(63 - std::countl_zero(earliest ^ now_)) / 6;
    if (level < 6) {
      EXPECT_EQ(*nd, earliest >> (6 * level) << (6 * level)) << "earliest=" << earliest;
    }
  }

  void check_pending() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      ASSERT_EQ(w_.pending(&nodes_[i]), st_[i] != idle) << "node " << i;
    }
  }

  timer_wheel w_;
  std::vector<test_timer> nodes_;
  std::vector<map::iterator> it_;
  std::vector<state> st_;
  map m_;
  std::vector<int> deferred_;
  std::uint64_t now_;
  std::uint64_t target_ = 0;
  bool in_advance_ = false;
  std::size_t calls_ = 0;
  std::size_t fired_ = 0;
  std::mt19937_64 rng_;
};

TEST(TimerWheel, RandomAgainstModel) {
  const std::uint64_t starts[] = {0, 1'000'000'007, (std::uint64_t{1} << 36) - 100,
                                  (std::uint64_t{1} << 48) + 12'345};
  std::uint64_t seed = 1;
  for (std::uint64_t start : starts) {
    for (std::size_t population : {16, 600}) {
      SCOPED_TRACE(testing::Message() << "seed=" << seed << " start=" << start);
      model_run(seed++, start, population).run(15000);
      if (HasFailure()) return;
    }
  }
}

TEST(TimerWheel, MillionPendingTimers) {
  constexpr std::size_t kN = 1'000'000;
  std::mt19937_64 rng(2024);
  std::vector<timer_node> nodes(kN);
  const std::uint64_t start = 5'000;
  timer_wheel w(start);

  // Insert a million far and near timers, then cancel them all in random order.
  std::uint64_t earliest = kMax;
  for (auto& n : nodes) {
    const std::uint64_t d = start + 1 + rng() % (std::uint64_t{1} << (4 + rng() % 37));
    earliest = std::min(earliest, d);
    w.insert(&n, d);
  }
  ASSERT_EQ(w.size(), kN);
  ASSERT_TRUE(w.next_deadline().has_value());
  EXPECT_GT(*w.next_deadline(), start);
  EXPECT_LE(*w.next_deadline(), earliest);
  std::vector<std::uint32_t> order(kN);
  for (std::uint32_t i = 0; i < kN; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (std::uint32_t i : order) {
    if (!w.cancel(&nodes[i])) FAIL() << "cancel of a pending node failed";
  }
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(w.next_deadline().has_value());
  EXPECT_FALSE(w.cancel(&nodes[order[0]]));

  // Insert them again over 10 s, cancel every other one, fire the rest with random steps.
  for (std::size_t i = 0; i < kN; ++i) w.insert(&nodes[i], start + 1 + rng() % 10'000);
  for (std::size_t i = 0; i < kN; i += 2) w.cancel(&nodes[i]);
  EXPECT_EQ(w.size(), kN / 2);
  std::size_t fired = 0;
  bool ok = true;
  std::uint64_t last = start;
  while (w.now() < start + 10'000) {
    const std::uint64_t prev = w.now();
    fired += w.advance(prev + 1 + rng() % 300, [&](timer_node* n) {
      const std::uint64_t d = n->deadline_ms;
      ok = ok && d > prev && d >= last && d == w.now() && (n - nodes.data()) % 2 == 1;
      last = d;
    });
  }
  EXPECT_TRUE(ok);
  EXPECT_EQ(fired, kN / 2);
  EXPECT_EQ(w.size(), 0u);
}

}  // namespace
}  // namespace athanor::detail
