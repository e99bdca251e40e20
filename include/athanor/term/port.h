// athanor::port_id — the identity of an Erlang port (a node number and a port number). A plain
// value: thread-safe to copy and compare.
//
// Athanor runs no ports itself; port_id exists so that ports arriving from a real Erlang node
// (in an exit reason, a message, a process_info answer) decode, compare, print and re-encode
// as they do there. Node 0 is this node, as in pid and ref.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>

namespace athanor {

class port_id {
 public:
  constexpr port_id() noexcept = default;
  constexpr port_id(std::uint32_t node, std::uint64_t number) noexcept : node_(node), number_(number) {}

  constexpr std::uint32_t node() const noexcept { return node_; }
  constexpr std::uint64_t number() const noexcept { return number_; }

  // Returns Erlang's printed form "#Port<Node.Number>", e.g. "#Port<0.5>".
  std::string to_string() const;

  friend constexpr bool operator==(port_id, port_id) noexcept = default;
  // Node first, then number.
  friend constexpr std::strong_ordering operator<=>(port_id, port_id) noexcept = default;

 private:
  std::uint32_t node_ = 0;
  std::uint64_t number_ = 0;
};

}  // namespace athanor

template <>
struct std::hash<athanor::port_id> {
  std::size_t operator()(athanor::port_id p) const noexcept {
    return std::hash<std::uint64_t>{}(p.number() ^ (std::uint64_t(p.node()) * 0x9E3779B97F4A7C15ull));
  }
};
