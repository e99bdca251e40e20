// athanor::ref — an Erlang reference: a value that no other make_ref() call returns. A plain value:
// thread-safe to copy and compare.
//
// References tag monitors, timers and call replies so that a reply can be matched
// to its request. A reference is a node number (0 = this node, as in pid) and up to
// five 32-bit ID words, as the wire carries them. Local references (make_ref()) use a
// 64-bit id split into the BEAM's three words; a real Erlang node's references have 82
// significant bits (W0 18 bits, W1 and W2 32), and a few kinds carry 4 or 5 words.
// make_ref() ids are unique within the OS process; the distribution layer makes them
// unique in a cluster by pairing them with the node.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <span>
#include <string>

#include <fmt/format.h>

namespace athanor {

class ref {
 public:
  // Most 32-bit words an Erlang reference carries on the wire (NEWER_REFERENCE_EXT allows 5).
  static constexpr std::size_t kMaxWords = 5;

  // The null reference (node 0, id 0): make_ref() never returns it.
  constexpr ref() noexcept = default;
  // A reference with the given parts, e.g. one decoded from another node: three words,
  // W0 = id & 0x3FFFF (18 bits), W1 = the next 32 bits, W2 = id >> 50, as the BEAM splits
  // the id of a local reference.
  constexpr ref(std::uint32_t node, std::uint64_t id) noexcept
      : node_(node),
        count_(3),
        words_{std::uint32_t(id & kW0Mask), std::uint32_t(id >> kW0Bits), std::uint32_t(id >> (kW0Bits + 32)), 0, 0} {}

  // Returns the reference of `node` with the wire's ID words (W0 first, 1 to kMaxWords of
  // them), as a real Erlang node writes them: 82 significant bits in three words for an
  // ordinary reference, more for others. Throws std::invalid_argument for 0 or more than
  // kMaxWords words.
  static ref from_words(std::uint32_t node, std::span<const std::uint32_t> words);

  // The node that made it (0 = this one), and whether it was made here.
  constexpr std::uint32_t node() const noexcept { return node_; }
  constexpr bool is_local() const noexcept { return node_ == 0; }
  // The low 64 bits of the id: W0 | W1 << 18 | W2 << 50. For references of the (node, id)
  // constructor and make_ref(), that is all of it (see is_compact()).
  constexpr std::uint64_t id() const noexcept {
    return std::uint64_t(words_[0] & kW0Mask) | std::uint64_t(words_[1]) << kW0Bits |
           std::uint64_t(words_[2]) << (kW0Bits + 32);
  }
  // The ID words as the wire carries them, W0 first (word_count() of them).
  constexpr std::span<const std::uint32_t> words() const noexcept { return {words_, count_}; }
  constexpr std::size_t word_count() const noexcept { return count_; }
  // True if (node(), id()) describes the reference completely: three words, W0 < 2^18 and
  // W2 < 2^14. A term stores such a reference in place; others take a heap block.
  constexpr bool is_compact() const noexcept {
    return count_ == 3 && words_[0] <= kW0Mask && words_[2] >> (64 - kW0Bits - 32) == 0;
  }

  // Returns Erlang's printed form "#Ref<Node.W2.W1.W0>" (with more words, the highest
  // first), so the first reference prints as "#Ref<0.0.0.1>".
  std::string to_string() const;

  // Equal if the node and every word are (a missing word counts as 0, as in the BEAM).
  friend constexpr bool operator==(const ref& a, const ref& b) noexcept {
    if (a.node_ != b.node_) return false;
    for (std::size_t i = 0; i < kMaxWords; ++i) {
      if (a.words_[i] != b.words_[i]) return false;
    }
    return true;
  }
  // Node first, then the words from the highest down, as the BEAM orders references.
  friend constexpr std::strong_ordering operator<=>(const ref& a, const ref& b) noexcept {
    if (a.node_ != b.node_) return a.node_ <=> b.node_;
    for (std::size_t i = kMaxWords; i-- > 0;) {
      if (a.words_[i] != b.words_[i]) return a.words_[i] <=> b.words_[i];
    }
    return std::strong_ordering::equal;
  }

 private:
  static constexpr unsigned kW0Bits = 18;
  static constexpr std::uint32_t kW0Mask = (1u << kW0Bits) - 1;

  std::uint32_t node_ = 0;
  std::uint32_t count_ = 3;                 // words on the wire; unused ones are 0
  std::uint32_t words_[kMaxWords] = {};     // W0 first
};

// Returns a new local reference, different from every other one made in this OS process.
// Thread-safe and lock-free: each thread takes ids from a shared atomic counter in blocks,
// so refs from one thread increase but refs from different threads interleave.
ref make_ref() noexcept;

// Writes r.to_string() to `out`; returns `out`.
std::ostream& operator<<(std::ostream& out, const ref& r);

}  // namespace athanor

template <>
struct std::hash<athanor::ref> {
  std::size_t operator()(const athanor::ref& r) const noexcept {
    // Ids are dense, so the node and the words above the id are mixed in with a multiply
    // rather than added. Words beyond the 64-bit id are rare (remote references).
    std::uint64_t high = 0;
    const auto w = r.words();
    for (std::size_t i = 2; i < w.size(); ++i) high = high * 0x100000001B3ull + (i == 2 ? w[i] >> 14 : w[i]);
    return std::hash<std::uint64_t>{}(r.id() ^ ((std::uint64_t(r.node()) + high * 0xC2B2AE3D27D4EB4Full) *
                                                0x9E3779B97F4A7C15ull));
  }
};

// Formats a reference as ref::to_string() does.
template <>
struct fmt::formatter<athanor::ref> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const athanor::ref& r, FormatContext& ctx) const {
    std::string text = r.to_string();
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), ctx);
  }
};
