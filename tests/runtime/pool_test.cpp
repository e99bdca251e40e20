// The size-class pool: alignment, reuse, cross-thread frees, accounting.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "athanor/runtime/pool.h"

namespace athanor::detail {
namespace {

TEST(Pool, BlocksAreAlignedWritableAndDistinct) {
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (std::size_t size : {1u, 15u, 16u, 17u, 100u, 512u, 1024u, 1025u, 5000u}) {
    void* p = pool_alloc(size);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u) << size;
    std::memset(p, 0xAB, size);
    blocks.emplace_back(p, size);
  }
  for (std::size_t i = 0; i < blocks.size(); ++i)
    for (std::size_t j = i + 1; j < blocks.size(); ++j) EXPECT_NE(blocks[i].first, blocks[j].first);
  for (auto [p, size] : blocks) pool_free(p, size);
}

TEST(Pool, AccountsBytesInUse) {
  std::int64_t before = pool_bytes_in_use();
  void* p = pool_alloc(200);
  EXPECT_EQ(pool_bytes_in_use() - before, 200);
  pool_free(p, 200);
  EXPECT_EQ(pool_bytes_in_use(), before);
}

TEST(Pool, BlocksFreedOnAnotherThreadAreReusable) {
  constexpr int kBlocks = 20000;
  std::vector<void*> blocks(kBlocks);
  for (auto& b : blocks) b = pool_alloc(48);
  std::thread([&] {
    for (void* b : blocks) pool_free(b, 48);
  }).join();  // the freeing thread exits: its cache goes back to the shared depot
  std::vector<void*> again(kBlocks);
  for (auto& b : again) {
    b = pool_alloc(48);
    std::memset(b, 1, 48);
  }
  for (void* b : again) pool_free(b, 48);
}

TEST(Pool, ReserveAddressSpaceIsLazyAndAligned) {
  std::size_t size = std::size_t(1) << 30;  // 1 GiB of address space, touched only where written
  char* p = static_cast<char*>(reserve_address_space(size));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % (2u << 20), 0u);
  p[0] = 1;
  p[size - 1] = 2;
  EXPECT_EQ(p[0] + p[size - 1], 3);
  release_address_space(p, size);
}

}  // namespace
}  // namespace athanor::detail
