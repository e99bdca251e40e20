// Pipes: `x | f | g` as Elixir's `x |> f |> g`, for left-to-right data flow.
//
//   using namespace athanor::pipes;
//   auto lengths = "hello world" | upcase | split(" ") | map(length);   // std::vector{5, 5}
//   std::string csv = std::vector<int>{1, 2, 3} | map([](int x) { return x * 10; }) | join(",");
//   int total = std::vector<int>{1, 2, 3} | filter([](int x) { return x > 1; }) | sum;   // 5
//
// `x | f` is plain function application: it returns f(x), evaluated left to right, nothing
// lazy, nothing stored. Any callable works on the right (a lambda, a function object, or a
// function pointer when x is of class type: C++ never calls an overloaded operator when both
// operands are built-in types such as int and a pointer); the adapters below are small
// callables made for it. An adapter that
// produces a sequence returns a std::vector (and split returns owning std::strings), so a
// pipe never holds a view into a temporary from an earlier step.
//
// The operators live in athanor::pipes and apply only where that namespace is opted into
// (`using namespace athanor::pipes;`, in a function or a .cpp file). They never replace
// another operator|: the generic `x | f` stands aside whenever x | f already means something
// (integers and flag enums, std::ranges adaptors such as std::views::filter, a library's own
// pipes), so it cannot change the meaning of existing code. Thread-safe: adapters are
// immutable values.
//
// Adapters: upcase, downcase, trim (ASCII letters and spaces; bytes beyond ASCII pass
// through unchanged), split(sep), join(sep), map(fn), filter(pred), length, sum. A term list
// works as a sequence for map, filter, length and sum.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <iterator>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "athanor/term/term.h"

namespace athanor {

namespace pipe_detail {
// True when `x | f` already has a meaning without athanor::pipes: a built-in (both operands
// arithmetic, or an enumeration: flag enums), a library's operator| found by argument-dependent
// lookup (std::ranges adaptors), or a member operator|. The operator is looked up by name, not
// as `x | f`: clang finds the pipes operator itself through an operator expression here, and its
// constraint would then depend on itself.
template <class T, class F>
concept has_other_pipe =
    (std::is_arithmetic_v<std::remove_cvref_t<T>> && std::is_arithmetic_v<std::remove_cvref_t<F>>) ||
    std::is_enum_v<std::remove_cvref_t<T>> || std::is_enum_v<std::remove_cvref_t<F>> ||
    requires(T&& x, F&& f) { operator|(std::forward<T>(x), std::forward<F>(f)); } ||
    requires(T&& x, F&& f) { std::forward<T>(x).operator|(std::forward<F>(f)); };

struct stage_tag {};
}  // namespace pipe_detail

namespace pipes {

// The base of the adapters: `x | adapter` calls adapter(x). (A hidden friend, so it is found
// only for the adapters themselves.)
template <class D>
struct stage : pipe_detail::stage_tag {
  template <class T>
    requires std::invocable<const D&, T>
  friend auto operator|(T&& x, const D& s) {
    return s(std::forward<T>(x));
  }
};

// `x | f`: returns f(x), for any callable f that takes x, unless `x | f` already has another meaning.
template <class T, class F>
  requires(!std::derived_from<std::remove_cvref_t<F>, pipe_detail::stage_tag> && std::invocable<F, T> &&
           !pipe_detail::has_other_pipe<T, F>)
auto operator|(T&& x, F&& f) -> std::invoke_result_t<F, T> {
  return std::invoke(std::forward<F>(f), std::forward<T>(x));
}

namespace detail {
// A sequence's elements: a term list's, or a range's own.
template <class R>
decltype(auto) elements(R&& r) {
  if constexpr (std::is_same_v<std::remove_cvref_t<R>, term>) {
    return r.list_elements();
  } else {
    return std::forward<R>(r);
  }
}
template <class R>
concept sequence = std::same_as<std::remove_cvref_t<R>, term> || std::ranges::input_range<R>;
template <class R>
using element_t = std::ranges::range_value_t<std::remove_cvref_t<decltype(elements(std::declval<R>()))>>;
}  // namespace detail

// Returns the text with ASCII letters in upper case (Elixir's String.upcase/1 for ASCII).
struct upcase_t : stage<upcase_t> {
  std::string operator()(std::string_view text) const;
};
inline constexpr upcase_t upcase{};

// Returns the text with ASCII letters in lower case.
struct downcase_t : stage<downcase_t> {
  std::string operator()(std::string_view text) const;
};
inline constexpr downcase_t downcase{};

// Returns the text without leading and trailing ASCII whitespace.
struct trim_t : stage<trim_t> {
  std::string operator()(std::string_view text) const;
};
inline constexpr trim_t trim{};

// Returns the parts of the text between occurrences of `sep` (String.split/2): "a,b,,c" with ","
// gives "a", "b", "", "c"; an empty text gives one empty part. An empty separator splits into
// single bytes.
struct split_t : stage<split_t> {
  std::string sep;
  std::vector<std::string> operator()(std::string_view text) const;
};
inline split_t split(std::string_view sep) { return split_t{{}, std::string(sep)}; }

// Returns the elements joined with `sep` between them (Enum.join/2); elements that are not
// text are formatted with fmt ("{}").
struct join_t : stage<join_t> {
  std::string sep;
  template <class R>
    requires detail::sequence<R>
  std::string operator()(R&& r) const {
    std::string out;
    bool first = true;
    for (auto&& e : detail::elements(std::forward<R>(r))) {
      if (!first) out += sep;
      first = false;
      if constexpr (std::is_convertible_v<decltype(e), std::string_view>) out += std::string_view(e);
      else fmt::format_to(std::back_inserter(out), "{}", e);
    }
    return out;
  }
};
inline join_t join(std::string_view sep) { return join_t{{}, std::string(sep)}; }

// Returns a vector of fn applied to each element, in order (Enum.map/2).
template <class F>
struct map_t : stage<map_t<F>> {
  F fn;
  template <class R>
    requires detail::sequence<R> && std::invocable<const F&, detail::element_t<R>&>
  auto operator()(R&& r) const {
    std::vector<std::decay_t<std::invoke_result_t<const F&, detail::element_t<R>&>>> out;
    for (auto&& e : detail::elements(std::forward<R>(r))) out.push_back(std::invoke(fn, e));
    return out;
  }
};
template <class F>
map_t<std::decay_t<F>> map(F&& fn) {
  return {{}, std::forward<F>(fn)};
}

// Returns a vector of the elements for which pred is true, in order (Enum.filter/2).
template <class F>
struct filter_t : stage<filter_t<F>> {
  F pred;
  template <class R>
    requires detail::sequence<R>
  auto operator()(R&& r) const {
    std::vector<detail::element_t<R>> out;
    for (auto&& e : detail::elements(std::forward<R>(r)))
      if (std::invoke(pred, e)) out.push_back(e);
    return out;
  }
};
template <class F>
filter_t<std::decay_t<F>> filter(F&& pred) {
  return {{}, std::forward<F>(pred)};
}

// Returns the number of elements (a string's bytes; a term list's length, as length/1).
struct length_t : stage<length_t> {
  template <class T>
    requires std::same_as<T, term>
  std::size_t operator()(const T& t) const {
    return t.length();
  }
  template <class R>
    requires std::ranges::sized_range<R> && (!std::is_array_v<std::remove_cvref_t<R>>)
  std::size_t operator()(const R& r) const {
    return std::size_t(std::ranges::size(r));
  }
  std::size_t operator()(std::string_view s) const { return s.size(); }
};
inline constexpr length_t length{};

// Returns the sum of the elements (Enum.sum/1), starting from a value-initialized element; for
// a term list, the sum of its integers as std::int64_t.
struct sum_t : stage<sum_t> {
  template <class T>
    requires std::same_as<T, term>
  std::int64_t operator()(const T& t) const {
    std::int64_t total = 0;
    for (const term& e : t.list_elements()) total += e.as_int();
    return total;
  }
  template <class R>
    requires std::ranges::input_range<R> && (!std::same_as<std::remove_cvref_t<R>, term>)
  auto operator()(R&& r) const {
    std::ranges::range_value_t<R> total{};
    for (auto&& e : r) total += e;
    return total;
  }
};
inline constexpr sum_t sum{};

}  // namespace pipes
}  // namespace athanor
