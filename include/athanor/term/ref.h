// athanor::ref — an Erlang reference: a value that no other make_ref() call returns. A plain value:
// thread-safe to copy and compare.
//
// References tag monitors, timers and call replies so that a reply can be matched
// to its request. A reference is a node number (0 = this node, as in pid) and a
// 64-bit id. make_ref() ids are unique within the OS process; the distribution
// layer makes them unique in a cluster by pairing them with the node.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include <fmt/format.h>

namespace athanor {

class ref {
 public:
  // The null reference (node 0, id 0): make_ref() never returns it.
  constexpr ref() noexcept = default;
  // A reference with the given parts, e.g. one decoded from another node.
  constexpr ref(std::uint32_t node, std::uint64_t id) noexcept : node_(node), id_(id) {}

  // The node that made it (0 = this one), its id there, and whether it was made here.
  constexpr std::uint32_t node() const noexcept { return node_; }
  constexpr std::uint64_t id() const noexcept { return id_; }
  constexpr bool is_local() const noexcept { return node_ == 0; }

  // Returns Erlang's printed form "#Ref<Node.W2.W1.W0>". Like the BEAM, the id is
  // split into an 18-bit low word W0 and 32-bit words above it (W2 gets the top 14
  // bits), so the first reference prints as "#Ref<0.0.0.1>".
  std::string to_string() const;

  friend constexpr bool operator==(const ref&, const ref&) noexcept = default;
  // Node first, then id: the BEAM orders references by node, then from the high word down.
  friend constexpr std::strong_ordering operator<=>(const ref&, const ref&) noexcept = default;

 private:
  std::uint32_t node_ = 0;
  std::uint64_t id_ = 0;
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
    // Ids are dense, so the node is mixed in with a multiply rather than added.
    return std::hash<std::uint64_t>{}(r.id() ^ (std::uint64_t(r.node()) * 0x9E3779B97F4A7C15ull));
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
