#include "athanor/runtime/pool.h"

#include <sys/mman.h>

#include <array>
#include <atomic>
#include <mutex>
#include <new>

namespace athanor::detail {

namespace {

constexpr std::size_t kClasses = kPoolMaxSize / kPoolGranule;
constexpr std::size_t kChunkBytes = 2u << 20;  // one huge page
constexpr int kLocalMax = 512;                 // blocks a thread caches per class
constexpr int kBatch = 256;                    // blocks moved between a thread and the depot

std::atomic<std::int64_t> g_in_use{0};

struct free_block { free_block* next; };

// A batch of free blocks handed between a thread cache and the depot.
struct batch { free_block* head; int count; batch* next_batch; };

struct depot_class {
  std::mutex mu;
  free_block* batches = nullptr;  // list of batch heads, linked through the batch's first block + 1 word
  std::size_t batch_count = 0;
};

// The depot keeps whole batches: the first block of a batch stores the link to
// the next batch in its second word, so no separate allocation is needed.
struct depot {
  std::array<depot_class, kClasses> classes;

  bool take(std::size_t c, free_block*& head, int& count) {
    auto& dc = classes[c];
    std::lock_guard lock(dc.mu);
    if (!dc.batches) return false;
    free_block* b = dc.batches;
    dc.batches = reinterpret_cast<free_block*>(reinterpret_cast<void**>(b)[1]);
    --dc.batch_count;
    head = b;
    count = kBatch;
    return true;
  }
  void give(std::size_t c, free_block* head) {
    auto& dc = classes[c];
    std::lock_guard lock(dc.mu);
    reinterpret_cast<void**>(head)[1] = dc.batches;
    dc.batches = head;
    ++dc.batch_count;
  }
};

depot& the_depot() { static depot d; return d; }

std::mutex g_chunk_mu;

char* new_chunk() {
  std::lock_guard lock(g_chunk_mu);
  return static_cast<char*>(reserve_address_space(kChunkBytes));
}

struct thread_cache {
  std::array<free_block*, kClasses> head{};
  std::array<int, kClasses> count{};
  char* bump = nullptr;
  char* bump_end = nullptr;

  ~thread_cache() {
    // Hand everything back so other threads can reuse it.
    for (std::size_t c = 0; c < kClasses; ++c) flush(c, count[c]);
  }

  void flush(std::size_t c, int n) {
    while (n >= kBatch) {
      free_block* first = head[c];
      free_block* last = first;
      for (int i = 1; i < kBatch; ++i) last = last->next;
      head[c] = last->next;
      last->next = nullptr;
      count[c] -= kBatch;
      n -= kBatch;
      the_depot().give(c, first);
    }
  }

  void* carve(std::size_t bytes) {
    if (bump + bytes > bump_end) {
      bump = new_chunk();
      bump_end = bump + kChunkBytes;
    }
    void* p = bump;
    bump += bytes;
    return p;
  }
};

thread_local thread_cache t_cache;

}  // namespace

void* reserve_address_space(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, bytes, MADV_HUGEPAGE);  // fewer faults for dense data; harmless if THP is off
  return p;
}

std::int64_t pool_bytes_in_use() noexcept { return g_in_use.load(std::memory_order_relaxed); }

#ifdef ATHANOR_SANITIZED

void* pool_alloc(std::size_t size) {
  g_in_use.fetch_add(std::int64_t(size), std::memory_order_relaxed);
  return ::operator new(size);
}
void pool_free(void* p, std::size_t size) noexcept {
  g_in_use.fetch_sub(std::int64_t(size), std::memory_order_relaxed);
  ::operator delete(p);
}

#else

void* pool_alloc(std::size_t size) {
  g_in_use.fetch_add(std::int64_t(size), std::memory_order_relaxed);
  if (size > kPoolMaxSize) return ::operator new(size);
  std::size_t c = (size + kPoolGranule - 1) / kPoolGranule - (size ? 1 : 0);
  auto& tc = t_cache;
  if (free_block* b = tc.head[c]) {
    tc.head[c] = b->next;
    --tc.count[c];
    return b;
  }
  free_block* head;
  int n;
  if (the_depot().take(c, head, n)) {
    tc.head[c] = head->next;
    tc.count[c] = n - 1;
    return head;
  }
  return tc.carve((c + 1) * kPoolGranule);
}

void pool_free(void* p, std::size_t size) noexcept {
  g_in_use.fetch_sub(std::int64_t(size), std::memory_order_relaxed);
  if (size > kPoolMaxSize) { ::operator delete(p); return; }
  std::size_t c = (size + kPoolGranule - 1) / kPoolGranule - (size ? 1 : 0);
  auto& tc = t_cache;
  auto* b = static_cast<free_block*>(p);
  b->next = tc.head[c];
  tc.head[c] = b;
  if (++tc.count[c] > kLocalMax) tc.flush(c, kBatch);
}

#endif

}  // namespace athanor::detail
