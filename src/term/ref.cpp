#include "athanor/term/ref.h"

#include <atomic>
#include <ostream>

#include <fmt/format.h>

namespace athanor {

namespace {

// Ids are handed to threads in blocks so that making a reference is usually a
// thread-local increment: the runtime makes one per monitor and per call, from
// every scheduler thread, and a single shared counter would bounce between cores.
constexpr std::uint64_t kIdsPerBlock = 1024;
std::atomic<std::uint64_t> g_ids_handed_out{0};

}  // namespace

ref make_ref() noexcept {
  thread_local std::uint64_t next = 0;
  thread_local std::uint64_t end = 0;
  if (next == end) {
    // Id 0 is never issued: it is the null reference.
    next = g_ids_handed_out.fetch_add(kIdsPerBlock, std::memory_order_relaxed) + 1;
    end = next + kIdsPerBlock;
  }
  return ref(0, next++);
}

std::string ref::to_string() const {
  const std::uint64_t low = id_ & ((1u << 18) - 1);
  const std::uint64_t middle = (id_ >> 18) & 0xFFFFFFFFu;
  const std::uint64_t high = id_ >> 50;
  return fmt::format("#Ref<{}.{}.{}.{}>", node_, high, middle, low);
}

std::ostream& operator<<(std::ostream& out, const ref& r) { return out << r.to_string(); }

}  // namespace athanor
