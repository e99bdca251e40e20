// The local run queue by itself, under contention: every entry is taken exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "runtime/run_queue.h"

namespace athanor::detail {
namespace {

// Fake process pointers: distinct addresses we never dereference.
process* fake(std::size_t i) { return reinterpret_cast<process*>((i + 1) * 16); }
std::size_t index_of(process* p) { return reinterpret_cast<std::uintptr_t>(p) / 16 - 1; }

TEST(RunRing, IsFifoForTheOwner) {
  run_ring r;
  for (std::size_t i = 0; i < 10; ++i) EXPECT_TRUE(r.push(fake(i)));
  EXPECT_EQ(r.size(), 10u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(r.pop(), fake(i));
  EXPECT_EQ(r.pop(), nullptr);
  EXPECT_TRUE(r.empty());
}

TEST(RunRing, RefusesPushWhenFullAndGivesUpHalf) {
  run_ring r;
  for (std::size_t i = 0; i < run_ring::kSize; ++i) EXPECT_TRUE(r.push(fake(i)));
  EXPECT_FALSE(r.push(fake(999)));
  process* out[run_ring::kSize / 2];
  std::uint32_t n = r.take_half(out);
  EXPECT_EQ(n, run_ring::kSize / 2);
  for (std::uint32_t i = 0; i < n; ++i) EXPECT_EQ(out[i], fake(i));  // the oldest half
  EXPECT_EQ(r.size(), run_ring::kSize / 2);
  EXPECT_EQ(r.pop(), fake(n));
}

TEST(RunRing, StealTakesAboutHalfAndReturnsOneToRun) {
  run_ring victim, thief;
  for (std::size_t i = 0; i < 10; ++i) victim.push(fake(i));
  process* first = victim.steal_into(thief);
  EXPECT_EQ(first, fake(0));
  EXPECT_EQ(thief.size(), 4u);  // 5 stolen: one returned, four queued
  EXPECT_EQ(victim.size(), 5u);
  EXPECT_EQ(thief.pop(), fake(1));
  run_ring empty, other;
  EXPECT_EQ(empty.steal_into(other), nullptr);
}

TEST(RunRing, ConcurrentOwnerAndThievesTakeEachEntryExactlyOnce) {
  constexpr std::size_t kItems = 400000;
  run_ring ring;
  std::vector<std::atomic<int>> taken(kItems);
  std::atomic<bool> done{false};
  std::atomic<std::size_t> count{0};
  auto take = [&](process* p) {
    taken[index_of(p)].fetch_add(1, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
  };
  std::vector<std::thread> thieves;
  for (int t = 0; t < 2; ++t) {
    thieves.emplace_back([&] {
      run_ring mine;
      while (!done.load(std::memory_order_acquire) || !ring.empty()) {
        if (process* p = ring.steal_into(mine)) {
          take(p);
          while (process* q = mine.pop()) take(q);
        }
      }
    });
  }
  // The owner pushes everything, popping now and then, spilling when full.
  process* spill[run_ring::kSize / 2];
  for (std::size_t i = 0; i < kItems; ++i) {
    while (!ring.push(fake(i))) {
      std::uint32_t n = ring.take_half(spill);
      for (std::uint32_t k = 0; k < n; ++k) take(spill[k]);
    }
    if (i % 7 == 0) {
      if (process* p = ring.pop()) take(p);
    }
  }
  while (process* p = ring.pop()) take(p);
  done.store(true, std::memory_order_release);
  for (auto& t : thieves) t.join();
  EXPECT_EQ(count.load(), kItems);
  std::size_t wrong = 0;
  for (auto& t : taken) wrong += t.load() != 1;
  EXPECT_EQ(wrong, 0u);
}

}  // namespace
}  // namespace athanor::detail
