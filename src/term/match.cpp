#include "athanor/term/match.h"

#include <string>

#include <fmt/format.h>

namespace athanor {

namespace {

// Long terms are cut in error messages: an unmatched 10 MB message must not make a 10 MB what().
constexpr std::size_t kMaxPrinted = 1000;

std::string printed(const term& t) {
  std::string s = t.to_string();
  if (s.size() > kMaxPrinted) {
    s.resize(kMaxPrinted);
    s += "...";
  }
  return s;
}

}  // namespace

function_clause_error::function_clause_error(term value)
    : std::runtime_error(fmt::format("no function clause matching {}", printed(value))), value_(std::move(value)) {}

namespace detail {

bool match_ctx::bind(std::string_view name, const term& t, std::size_t offset) noexcept {
  for (std::size_t i = 0; i < nnames; ++i) {
    if (names[i].name != name) continue;
    // A repeated variable: the values must be exactly equal (=:=). The rest of a binary is
    // compared by its bytes, with any binary.
    const match_slot& had = names[i].slot;
    if (had.offset == 0 && offset == 0) return *had.value == t;
    if (!had.value->is_binary() || !t.is_binary()) return false;
    return had.value->as_binary().substr(had.offset) == t.as_binary().substr(offset);
  }
  names[nnames++] = named_slot{name, match_slot{&t, offset}};
  return true;
}

term slot_term(const match_slot& s) {
  if (s.offset == 0) return *s.value;
  return term(slot_bytes(s));
}

void throw_unbound(std::string_view name) {
  throw std::out_of_range(fmt::format("athanor::match_result: nothing is bound to \"{}\"", name));
}

void throw_wrong_binding(std::string_view name, const match_slot& slot) {
  throw bad_term_access(
      fmt::format("athanor::match_result::get: \"{}\" is bound to {}, which is not of the requested type", name,
                  printed(slot_term(slot))));
}

void throw_function_clause(const term& value) { throw function_clause_error(value); }

}  // namespace detail
}  // namespace athanor
