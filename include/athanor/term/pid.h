// athanor::pid — the identity of a process, local or remote. A plain value: thread-safe to copy.
//
// A pid packs a node number, a process-table index and a generation (Erlang's
// "serial") into 64 bits. The generation is bumped every time a table slot is
// reused, so a pid of a process that has ended never reaches the process that
// later occupies the same slot (sends to it are silent no-ops, as in Erlang).
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include <fmt/format.h>

namespace athanor {

class pid {
 public:
  static constexpr int kIndexBits = 28;       // up to 268M live processes per node
  static constexpr int kGenerationBits = 20;  // slot reuses before a generation wraps
  static constexpr int kNodeBits = 16;        // node 0 is the local node
  static constexpr std::uint64_t kIndexMask = (1ull << kIndexBits) - 1;
  static constexpr std::uint64_t kGenerationMask = (1ull << kGenerationBits) - 1;
  static constexpr std::uint64_t kNodeMask = (1ull << kNodeBits) - 1;

  // The null pid: refers to no process; sends to it are dropped.
  constexpr pid() = default;
  constexpr pid(std::uint32_t node, std::uint32_t index, std::uint32_t generation)
      : bits_((std::uint64_t(node) & kNodeMask) << (kIndexBits + kGenerationBits) |
              (std::uint64_t(generation) & kGenerationMask) << kIndexBits |
              (std::uint64_t(index) & kIndexMask)) {}

  static constexpr pid from_bits(std::uint64_t bits) { pid p; p.bits_ = bits; return p; }
  constexpr std::uint64_t bits() const { return bits_; }

  constexpr std::uint32_t node() const { return std::uint32_t(bits_ >> (kIndexBits + kGenerationBits) & kNodeMask); }
  constexpr std::uint32_t index() const { return std::uint32_t(bits_ & kIndexMask); }
  constexpr std::uint32_t generation() const { return std::uint32_t(bits_ >> kIndexBits & kGenerationMask); }
  constexpr bool is_local() const { return node() == 0; }
  constexpr explicit operator bool() const { return bits_ != 0; }

  // Erlang's printed form: "<node.index.generation>", e.g. "<0.123.0>".
  std::string to_string() const;

  friend constexpr bool operator==(pid, pid) = default;
  friend constexpr auto operator<=>(pid, pid) = default;

 private:
  std::uint64_t bits_ = 0;
};

// Writes p.to_string() to `out`; returns `out`.
std::ostream& operator<<(std::ostream& out, pid p);

}  // namespace athanor

// Formats a pid as pid::to_string() does: fmt::print("{}", p) prints <0.123.0>.
template <>
struct fmt::formatter<athanor::pid> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(athanor::pid p, FormatContext& ctx) const {
    std::string text = p.to_string();
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), ctx);
  }
};

template <>
struct std::hash<athanor::pid> {
  std::size_t operator()(athanor::pid p) const noexcept { return std::hash<std::uint64_t>{}(p.bits()); }
};
