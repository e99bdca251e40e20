// The large-block cache of decoded terms (athanor/term/memory.h): a large decoded message's block
// is reused by the next one instead of being mapped afresh, and released on request.
#include "athanor/term/memory.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "athanor/term/etf.h"
#include "athanor/term/term.h"

namespace athanor {
namespace {

std::vector<std::byte> large_message(std::size_t n, char fill) {
  std::string bytes(n, fill);
  return etf::encode(tuple(atom("data"), term::binary(std::as_bytes(std::span(bytes)))));
}

TEST(TermMemory, ALargeDecodedMessagesBlockIsReusedByTheNextAndReleasedOnRequest) {
  release_term_memory();
  const std::vector<std::byte> wire = large_message(1u << 20, 'a');
  const term_memory_stats start = term_memory();
  EXPECT_EQ(start.cached_blocks, 0u);
  {
    term first = etf::decode(wire);
    EXPECT_EQ(first.element(1).as_binary().size(), 1u << 20);
  }
  const term_memory_stats after_first = term_memory();
  EXPECT_EQ(after_first.mapped, start.mapped + 1);
  EXPECT_EQ(after_first.cached_blocks, 1u);  // freed: kept for the next one
  EXPECT_GE(after_first.cached_bytes, std::size_t(1) << 20);
  {
    term second = etf::decode(wire);
    EXPECT_EQ(second.element(1).as_binary()[0], 'a');
    EXPECT_EQ(term_memory().cached_blocks, 0u);  // in use again
  }
  const term_memory_stats after_second = term_memory();
  EXPECT_EQ(after_second.mapped, after_first.mapped);
  EXPECT_EQ(after_second.reused, after_first.reused + 1);
  release_term_memory();
  EXPECT_EQ(term_memory().cached_blocks, 0u);
  EXPECT_EQ(term_memory().cached_bytes, 0u);
}

// A part kept alive keeps the whole message's block; the block comes back when the part goes.
TEST(TermMemory, APartOutlivingItsMessageKeepsTheBlockUntilItGoes) {
  release_term_memory();
  term part;
  {
    term whole = etf::decode(large_message(512u << 10, 'b'));
    part = whole.element(1);
  }
  EXPECT_EQ(term_memory().cached_blocks, 0u);
  EXPECT_EQ(part.as_binary().size(), 512u << 10);
  EXPECT_EQ(part.as_binary()[1000], 'b');
  part = term();
  EXPECT_EQ(term_memory().cached_blocks, 1u);
  release_term_memory();
}

TEST(TermMemory, SmallMessagesAndBlocksTooLargeForTheCacheAreNotKept) {
  release_term_memory();
  const term_memory_stats start = term_memory();
  { term small = etf::decode(large_message(100u << 10, 'c')); }
  EXPECT_EQ(term_memory().mapped, start.mapped);  // under 256 KiB: operator new's
  { term huge = etf::decode(large_message(80u << 20, 'd')); }
  EXPECT_EQ(term_memory().mapped, start.mapped + 1);
  EXPECT_EQ(term_memory().cached_blocks, 0u);  // over the cache's 64 MiB: unmapped at once
}

}  // namespace
}  // namespace athanor
