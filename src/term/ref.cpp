#include "athanor/term/ref.h"

#include <atomic>
#include <iterator>
#include <ostream>
#include <stdexcept>

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

ref ref::from_words(std::uint32_t node, std::span<const std::uint32_t> words) {
  if (words.empty() || words.size() > kMaxWords) {
    throw std::invalid_argument(fmt::format("athanor::ref: a reference has 1 to {} ID words, not {}", kMaxWords,
                                            words.size()));
  }
  ref r;
  r.node_ = node;
  r.count_ = std::uint32_t(words.size());
  for (std::size_t i = 0; i < words.size(); ++i) r.words_[i] = words[i];
  return r;
}

std::string ref::to_string() const {
  std::string out = fmt::format("#Ref<{}", node_);
  for (std::size_t i = count_; i-- > 0;) fmt::format_to(std::back_inserter(out), ".{}", words_[i]);
  out += '>';
  return out;
}

std::ostream& operator<<(std::ostream& out, const ref& r) { return out << r.to_string(); }

}  // namespace athanor
