// Private to the term part: what the ETF codec, the parser and the integer functions need of a
// term's representation beyond the public API. Thread-safe as the terms passed in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "athanor/term/term.h"

namespace athanor::detail {

// A bignum's value: sign and magnitude as 64-bit limbs, least significant first (the last
// limb is not 0). Valid while the term lives.
struct bignum_view {
  bool negative = false;
  std::span<const std::uint64_t> limbs;
};

// Returns the integer -1^negative * sum(limbs[i] * 2^(64 i)): an in-place integer if it fits
// 64 bits, else a bignum. High zero limbs are ignored. Throws std::bad_alloc.
term make_integer(bool negative, std::span<const std::uint64_t> limbs);

// Returns the map of `entries` (any order; a repeated key keeps its last value), moving the
// terms out of them and skipping the sort when they are already in map key order (as ETF
// from Athanor or from small Erlang maps is). Leaves `entries` in an unspecified state.
// Throws std::length_error, std::bad_alloc.
term map_from_temporaries(std::vector<std::pair<term, term>>& entries);

// Returns a bignum's sign and limbs. The term must be a bignum.
bignum_view bignum_of(const term& t) noexcept;

// Returns a local fun (NEW_FUN_EXT) described by `info`, keeping `encoding` (the whole
// NEW_FUN_EXT, tag included) to write back verbatim. Throws std::bad_alloc.
term make_local_fun(const fun_info& info, std::span<const std::byte> encoding);

// Returns a local fun's NEW_FUN_EXT bytes (tag included); empty for an exported fun.
std::span<const std::byte> fun_encoding(const term& t) noexcept;

}  // namespace athanor::detail
