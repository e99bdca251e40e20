// runtime_config::mapped_allocation_bytes: large blocks are mapped on their own, so freeing one
// gives its memory back to the operating system (glibc's moving threshold would keep it).
#include <malloc.h>

#include <cstdlib>

#include "test_util.h"

namespace athanor::testing {
namespace {

std::size_t mapped_bytes() { return mallinfo2().hblkhd; }

// malloc(n) and touch it; returns whether the block was mapped on its own.
bool allocation_is_mapped(std::size_t n) {
  const std::size_t before = mapped_bytes();
  void* volatile p = std::malloc(n);
  static_cast<char*>(p)[0] = 1;
  const bool mapped = mapped_bytes() >= before + n;
  std::free(p);
  return mapped;
}

TEST(MappedAllocation, LargeBlocksStayMappedAfterALargerOneWasFreed) {
#ifdef ATHANOR_SANITIZED
  GTEST_SKIP() << "sanitizers replace malloc: measured in the plain build";
#endif
  runtime rt(runtime_config{.schedulers = 1, .mapped_allocation_bytes = 256 * 1024});
  // Freeing a 16 MiB block raises glibc's own threshold to 16 MiB (it moves up to 32 MiB at most).
  void* volatile big = std::malloc(16u << 20);
  std::free(big);
  EXPECT_TRUE(allocation_is_mapped(8u << 20)) << "an 8 MiB block went to the heap, where freeing keeps it";
  EXPECT_TRUE(allocation_is_mapped(1u << 20));
}

}  // namespace
}  // namespace athanor::testing
