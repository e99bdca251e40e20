// The large-block cache (athanor/term/memory.h).
//
// Design. A block is one anonymous mapping whose first 64 bytes hold its mapped size; callers
// get the rest. Freed blocks wait in a small list (at most 8, 64 MiB) with the time they were
// freed; an allocation takes the smallest waiting block that is large enough and not more than
// twice too large (a 1 MiB message keeps reusing the block of the last one), else maps a new
// one. Blocks that waited 2 s are unmapped by the next call, or by the runtime's trim every
// second, so an idle process gives its memory back. Rejected: leaving it to malloc (glibc either
// maps and unmaps every large block, paying the page faults each time, or keeps them in its heap
// for good once its threshold has risen, which is what runtime_config::mapped_allocation_bytes
// stops); a size-class free list per thread (decoded messages are freed on other threads than
// they were made on, and a handful of blocks is all a stream of large messages needs).
#include "term/block_pool.h"

#include <sys/mman.h>

#include <array>
#include <mutex>
#include <new>

#include "athanor/term/memory.h"

namespace athanor {
namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t kHeader = 64;  // the mapped size, and the alignment callers get
constexpr std::size_t kGranule = std::size_t(64) << 10;
constexpr std::size_t kMaxCached = 8;

struct cached_block {
  char* base = nullptr;
  std::size_t size = 0;
  clock::time_point freed{};
};

struct block_cache {
  std::mutex mu;
  std::array<cached_block, kMaxCached> blocks{};
  std::size_t count = 0, bytes = 0;
  std::uint64_t mapped = 0, reused = 0;

  // Unmaps the blocks freed before `before` (under mu).
  void drop_older_than(clock::time_point before) noexcept {
    for (std::size_t i = 0; i < count;) {
      if (blocks[i].freed <= before) {
        ::munmap(blocks[i].base, blocks[i].size);
        bytes -= blocks[i].size;
        blocks[i] = blocks[--count];
      } else {
        ++i;
      }
    }
  }
};

block_cache& cache() {
  static block_cache* c = new block_cache;  // never destroyed: blocks may be freed during exit
  return *c;
}

constexpr std::chrono::seconds kKeep{2};

}  // namespace

void* detail::pooled_allocate(std::size_t bytes) {
  const std::size_t need = (bytes + kHeader + kGranule - 1) / kGranule * kGranule;
  block_cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    c.drop_older_than(clock::now() - kKeep);
    std::size_t best = c.count;
    for (std::size_t i = 0; i < c.count; ++i) {
      const std::size_t s = c.blocks[i].size;
      if (s >= need && s <= 2 * need && (best == c.count || s < c.blocks[best].size)) best = i;
    }
    if (best != c.count) {
      char* base = c.blocks[best].base;
      c.bytes -= c.blocks[best].size;
      c.blocks[best] = c.blocks[--c.count];
      ++c.reused;
      return base + kHeader;
    }
    ++c.mapped;
  }
  void* m = ::mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  *static_cast<std::size_t*>(m) = need;
  return static_cast<char*>(m) + kHeader;
}

void detail::pooled_free(void* p) noexcept {
  char* base = static_cast<char*>(p) - kHeader;
  const std::size_t size = *reinterpret_cast<std::size_t*>(base);
  block_cache& c = cache();
  {
    std::lock_guard lock(c.mu);
    const auto now = clock::now();
    c.drop_older_than(now - kKeep);
    if (c.count < kMaxCached && c.bytes + size <= term_memory_cache_limit) {
      c.blocks[c.count++] = cached_block{base, size, now};
      c.bytes += size;
      return;
    }
  }
  ::munmap(base, size);
}

term_memory_stats term_memory() noexcept {
  block_cache& c = cache();
  std::lock_guard lock(c.mu);
  return term_memory_stats{.cached_blocks = c.count, .cached_bytes = c.bytes, .mapped = c.mapped, .reused = c.reused};
}

void release_term_memory(std::chrono::milliseconds unused_for) noexcept {
  block_cache& c = cache();
  std::lock_guard lock(c.mu);
  c.drop_older_than(clock::now() - unused_for);
}

}  // namespace athanor
