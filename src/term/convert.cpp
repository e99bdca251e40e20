#include "athanor/term/convert.h"

#include <charconv>
#include <string>

#include <fmt/format.h>

#include "athanor/term/integer.h"

namespace athanor {

namespace {

// A value in an error message is cut short: the term that failed may be a whole decoded message.
constexpr std::size_t kMaxPrinted = 200;

std::string printed(const term& t) {
  std::string s = t.to_string();
  if (s.size() > kMaxPrinted) {
    s.resize(kMaxPrinted);
    s += "...";
  }
  return s;
}

std::string message(const std::string& path, const std::string& expected, const term& got) {
  if (path.empty()) return fmt::format("expected {}, got {}", expected, printed(got));
  return fmt::format("at {}: expected {}, got {}", path, expected, printed(got));
}

}  // namespace

term_conversion_error::term_conversion_error(std::string path, std::string expected, term got)
    : std::runtime_error(message(path, expected, got)),
      path_(std::move(path)),
      expected_(std::move(expected)),
      got_(std::move(got)) {}

std::string term_path::to_string() const {
  // The chain runs from the innermost step up: collect, then print from the top down.
  std::vector<const term_path*> steps;
  for (const term_path* p = this; p && p->step_ != step::top; p = p->parent_) steps.push_back(p);
  std::string out;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const term_path& p = **it;
    switch (p.step_) {
      case step::index: out += fmt::format("[{}]", p.index_); break;
      case step::field: out += fmt::format(".{}", p.name_); break;
      case step::key: out += fmt::format("[{}]", printed(*p.key_)); break;
      case step::top: break;
    }
  }
  return out;
}

void term_path::fail(std::string_view expected, const term& got) const {
  throw term_conversion_error(to_string(), std::string(expected), got);
}

namespace detail {

bool integer_to_u64(const term& t, std::uint64_t& out) {
  if (t.is_int64()) {
    if (t.as_int() < 0) return false;
    out = std::uint64_t(t.as_int());
    return true;
  }
  if (!t.is_integer()) return false;
  // A bignum: its decimal digits parse as a uint64 exactly when it is in range.
  std::string digits = integer_to_string(t);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
  return ec == std::errc() && end == digits.data() + digits.size();
}

std::string integer_range(std::int64_t lo, std::uint64_t hi) { return fmt::format("integer in {}..{}", lo, hi); }

std::vector<atom> field_atoms(std::string_view names) {
  std::vector<atom> out;
  std::size_t start = 0;
  while (start <= names.size()) {
    std::size_t comma = names.find(',', start);
    if (comma == std::string_view::npos) comma = names.size();
    std::string_view name = names.substr(start, comma - start);
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t' || name.front() == '\n')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t' || name.back() == '\n')) name.remove_suffix(1);
    if (!name.empty()) out.emplace_back(name);
    start = comma + 1;
  }
  return out;
}

atom elixir_module_atom(std::string_view name) {
  // Elixir's MyApp.User is the atom 'Elixir.MyApp.User'; a name already written that way is kept.
  constexpr std::string_view prefix = "Elixir.";
  if (name.starts_with(prefix)) return atom(name);
  return atom(fmt::format("{}{}", prefix, name));
}

atom struct_key() {
  static const atom key("__struct__");
  return key;
}

}  // namespace detail
}  // namespace athanor
