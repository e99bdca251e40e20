#include "athanor/runtime/pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <vector>
#include <atomic>
#include <mutex>
#include <new>

namespace athanor::detail {

namespace {

constexpr std::size_t kClasses = kPoolMaxSize / kPoolGranule;
constexpr std::size_t kChunkBytes = 2u << 20;  // one huge page
[[maybe_unused]] constexpr int kLocalMax = 512;                 // blocks a thread caches per class
[[maybe_unused]] constexpr int kBatch = 256;                    // blocks moved between a thread and the depot

// Bytes in use, counted per thread without atomic read-modify-writes (a block is often freed
// on another thread than the one that allocated it, so one thread's figure may be negative);
// system_info() adds them up. Counters of exited threads are folded into g_retired.
struct usage_counter {
  std::atomic<std::int64_t> bytes{0};
  void add(std::int64_t d) noexcept { bytes.store(bytes.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
};
std::mutex g_usage_mu;
std::vector<usage_counter*> g_usage;
std::atomic<std::int64_t> g_retired{0};

struct usage_registration {
  usage_counter counter;
  usage_registration() {
    std::lock_guard lock(g_usage_mu);
    g_usage.push_back(&counter);
  }
  ~usage_registration() {
    std::lock_guard lock(g_usage_mu);
    g_retired.fetch_add(counter.bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
    g_usage.erase(std::find(g_usage.begin(), g_usage.end(), &counter));
  }
};
thread_local usage_registration t_usage;

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
  // Aligned to 2 MiB so that transparent huge pages can back it: one fault per 2 MiB instead of
  // one per 4 KiB (faults are what spawning a million processes mostly costs on a VM).
  constexpr std::size_t kHuge = 2u << 20;
  bytes = (bytes + kHuge - 1) & ~(kHuge - 1);
  void* raw = ::mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  auto aligned = (start + kHuge - 1) & ~std::uintptr_t(kHuge - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  std::size_t tail = (start + bytes + kHuge) - (aligned + bytes);
  if (tail) ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  ::madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // harmless if THP is off
  return reinterpret_cast<void*>(aligned);
}

void release_address_space(void* p, std::size_t bytes) noexcept {
  constexpr std::size_t kHuge = 2u << 20;
  ::munmap(p, (bytes + kHuge - 1) & ~(kHuge - 1));
}

std::int64_t pool_bytes_in_use() noexcept {
  std::lock_guard lock(g_usage_mu);
  std::int64_t total = g_retired.load(std::memory_order_relaxed);
  for (usage_counter* c : g_usage) total += c->bytes.load(std::memory_order_relaxed);
  return total;
}

#ifdef ATHANOR_SANITIZED

void* pool_alloc(std::size_t size) {
  t_usage.counter.add(std::int64_t(size));
  return ::operator new(size);
}
void pool_free(void* p, std::size_t size) noexcept {
  t_usage.counter.add(-std::int64_t(size));
  ::operator delete(p);
}

#else

void* pool_alloc(std::size_t size) {
  t_usage.counter.add(std::int64_t(size));
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
  t_usage.counter.add(-std::int64_t(size));
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
