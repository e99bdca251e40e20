#include "athanor/term/ref.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <latch>
#include <sstream>
#include <thread>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

namespace athanor {
namespace {

TEST(Ref, DefaultIsTheNullRef) {
  constexpr ref null;
  static_assert(null.node() == 0 && null.id() == 0);
  EXPECT_TRUE(null.is_local());
}

TEST(Ref, ConstructorKeepsParts) {
  constexpr ref r(7, 123456789012345ull);
  static_assert(r.node() == 7);
  static_assert(r.id() == 123456789012345ull);
  EXPECT_FALSE(r.is_local());
  EXPECT_TRUE(ref(0, 5).is_local());
}

TEST(Ref, MakeRefIsLocalAndNeverNull) {
  for (int i = 0; i < 3000; ++i) {  // crosses several per-thread id blocks
    const ref r = make_ref();
    ASSERT_TRUE(r.is_local());
    ASSERT_NE(r, ref());
  }
}

TEST(Ref, MakeRefIsUniqueAndIncreasingWithinAThread) {
  ref previous = make_ref();
  for (int i = 0; i < 100000; ++i) {
    const ref next = make_ref();
    ASSERT_LT(previous, next);
    previous = next;
  }
}

TEST(Ref, MakeRefIsUniqueAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::vector<ref>> made(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) made[t].push_back(make_ref());
    });
  }
  for (auto& thread : threads) thread.join();
  std::vector<ref> all;
  for (const auto& refs : made) all.insert(all.end(), refs.begin(), refs.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_EQ(all.size(), std::size_t(kThreads * kPerThread));
}

// The BEAM prints #Ref<Node.W2.W1.W0> with W0 the low 18 bits of the counter.
TEST(Ref, ToStringSplitsTheIdLikeTheBeam) {
  EXPECT_EQ(ref(0, 1).to_string(), "#Ref<0.0.0.1>");
  EXPECT_EQ(ref(0, (1ull << 18) - 1).to_string(), "#Ref<0.0.0.262143>");
  EXPECT_EQ(ref(0, 1ull << 18).to_string(), "#Ref<0.0.1.0>");
  EXPECT_EQ(ref(0, 1ull << 50).to_string(), "#Ref<0.1.0.0>");
  EXPECT_EQ(ref(3, UINT64_MAX).to_string(), "#Ref<3.16383.4294967295.262143>");
}

TEST(Ref, MadeRefsPrintInErlangForm) {
  // Same shape as erl's make_ref() output, e.g. #Ref<0.1200778675.2225864705.203276>:
  // node 0, then three decimal numbers.
  const ref r = make_ref();
  const std::string text = r.to_string();
  ASSERT_TRUE(text.starts_with("#Ref<0.") && text.ends_with(">")) << text;
  const std::uint64_t id = r.id();
  EXPECT_EQ(text, fmt::format("#Ref<0.{}.{}.{}>", id >> 50, (id >> 18) & 0xFFFFFFFF, id & 0x3FFFF));
}

TEST(Ref, OrdersByNodeThenId) {
  EXPECT_LT(ref(0, 2), ref(0, 3));
  EXPECT_LT(ref(0, UINT64_MAX), ref(1, 0));
  EXPECT_EQ(ref(1, 5), ref(1, 5));
  EXPECT_NE(ref(1, 5), ref(2, 5));
  EXPECT_EQ(ref(1, 5) <=> ref(1, 5), std::strong_ordering::equal);
}

TEST(Ref, HashMatchesEquality) {
  std::hash<ref> hash;
  EXPECT_EQ(hash(ref(2, 9)), hash(ref(2, 9)));
  std::unordered_set<ref> set;
  for (int i = 0; i < 10000; ++i) set.insert(make_ref());
  set.insert(ref(1, 1));
  set.insert(ref(2, 1));
  EXPECT_EQ(set.size(), 10002u);
  EXPECT_TRUE(set.contains(ref(2, 1)));
}

TEST(Ref, StreamAndFmtPrintTheErlangForm) {
  std::ostringstream out;
  out << ref(0, 2);
  EXPECT_EQ(out.str(), "#Ref<0.0.0.2>");
  EXPECT_EQ(fmt::format("{}", ref(1, 3)), "#Ref<1.0.0.3>");
}

}  // namespace
}  // namespace athanor
