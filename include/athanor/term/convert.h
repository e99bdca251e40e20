// Conversion between C++ values and terms: to_term(x) and from_term<T>(t).
//
//   using namespace athanor::literals;
//   struct user { std::string name; int age; std::optional<std::string> email; };
//   ATHANOR_TERM_STRUCT(user, name, age, email)      // at namespace scope, next to user
//
//   term t = to_term(std::vector<user>{{"Alice", 42, std::nullopt}});
//   // [#{age => 42,email => nil,name => <<"Alice">>}]
//   auto users = from_term<std::vector<user>>(t);
//   from_term<std::vector<user>>(list({map({{"name"_a, 42}})}));
//   // throws term_conversion_error: "at [0].name: expected binary, got 42"
//
// The mapping follows Elixir, so that what a C++ process sends reads naturally in Erlang and
// Elixir and back:
//
//   C++                                   term
//   integers (range-checked on the way    integer
//     back), bool                         the atom true or false
//   float, double                         float (an integer term also converts to a double)
//   std::string, std::string_view,        binary (std::string_view from_term views the term's
//     const char*                           bytes: only from an lvalue term that outlives it)
//   atom, pid, ref, term                  themselves
//   std::vector, std::list, std::deque    proper list
//   std::map, std::unordered_map          map (keys and values converted)
//   std::pair, std::tuple                 tuple of that size
//   std::optional<T>                      T's term, or the atom nil for nullopt (Elixir's nil;
//                                           'undefined' is not accepted back)
//   std::variant<T...>                    the alternative's term; back: the first alternative
//                                           that converts, in order
//   ATHANOR_TERM_STRUCT types             a map with atom keys, one per field; back: every
//                                           field's key must be present, other keys are ignored
//   ATHANOR_ELIXIR_STRUCT types           the same map plus __struct__ => its Elixir module;
//                                           back: __struct__ may be absent, else must match
//   types with `term to_term() const`     that term (to_term only)
//
// Structs become plain maps with atom keys by default: that is what Erlang code and Elixir's
// %{name: name} patterns read, and a struct tag would name an Elixir module the C++ side may not
// have. A type that names its module is tagged, as Elixir represents %MyApp.User{} (a map with
// every field and __struct__ => 'Elixir.MyApp.User'), so that Elixir code matching
// %MyApp.User{name: name} accepts what C++ sends:
//
//   ATHANOR_ELIXIR_STRUCT(user, "MyApp.User", name, age, email)   // instead of ATHANOR_TERM_STRUCT
//
//   to_term(user{"Alice", 42, std::nullopt})
//   // #{'__struct__' => 'Elixir.MyApp.User',age => 42,email => nil,name => <<"Alice">>}
//
// The module is written as Elixir code writes it; "Elixir." is prepended unless it is already
// there. from_term accepts the map with or without __struct__ (Erlang code may build the plain
// map), but a __struct__ naming another module is refused: "at .__struct__: expected
// 'Elixir.MyApp.User', got 'Elixir.MyApp.Admin'". ATHANOR_TERM_STRUCT types ignore __struct__
// like any other extra key.
//
// Other types convert through a specialization of athanor::term_traits<T> with
//   static term to(const T&);                              // for to_term
//   static T from(const term&, const term_path& at);       // for from_term; fail with
//                                                          //   term_path::fail
// Thread-safe: conversion shares no state (beyond the atom table).
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

// athanor::term_conversion_error — thrown by from_term when a term does not have the shape the
// C++ type needs. what() says where, what was expected and what was found:
// "at [2].name: expected binary, got 42". Thread-safe to copy, like every exception.
class term_conversion_error : public std::runtime_error {
 public:
  term_conversion_error(std::string path, std::string expected, term got);
  // Where in the term: "" for the term itself, else steps such as "[2].name" (list or tuple
  // element 2, then field name) or "[<<"k">>]" (the value under map key <<"k">>).
  const std::string& path() const noexcept { return path_; }
  // What the C++ type needed, e.g. "binary" or "integer in 0..255".
  const std::string& expected() const noexcept { return expected_; }
  // The term found there.
  const term& got() const noexcept { return got_; }

 private:
  std::string path_;
  std::string expected_;
  term got_;
};

// A position inside a term being converted, kept on the stack as a chain of steps and printed
// only when a conversion fails. Not thread-safe; lives for one from_term call.
class term_path {
 public:
  // The top: the term from_term was called with.
  term_path() noexcept = default;

  // The steps below this one: element i of a list or tuple, struct field `name` (a string
  // that outlives the step), the value under map key `key`.
  term_path index(std::size_t i) const noexcept { return term_path(this, step::index, i, {}, nullptr); }
  term_path field(std::string_view name) const noexcept { return term_path(this, step::field, 0, name, nullptr); }
  term_path key(const term& k) const noexcept { return term_path(this, step::key, 0, {}, &k); }

  // Returns the path as term_conversion_error::path() spells it.
  std::string to_string() const;

  // Throws term_conversion_error for `got` found here when `expected` was needed.
  [[noreturn]] void fail(std::string_view expected, const term& got) const;

 private:
  enum class step : std::uint8_t { top, index, field, key };
  term_path(const term_path* parent, step s, std::size_t i, std::string_view name, const term* key) noexcept
      : parent_(parent), step_(s), index_(i), name_(name), key_(key) {}

  const term_path* parent_ = nullptr;
  step step_ = step::top;
  std::size_t index_ = 0;
  std::string_view name_;
  const term* key_ = nullptr;
};

// Specialize for a type to make it convertible (see the top of this file).
template <class T>
struct term_traits;

// True if T converts to a term; term_readable<T>, if it converts back.
template <class T>
concept term_writable = requires(const T& v) {
  { term_traits<std::remove_cvref_t<T>>::to(v) } -> std::same_as<term>;
};
template <class T>
concept term_readable = requires(const term& t, const term_path& at) {
  { term_traits<T>::from(t, at) } -> std::same_as<T>;
};

// Returns x as a term. Throws std::bad_alloc, and what term's constructors throw (a NaN).
template <class T>
  requires term_writable<T>
term to_term(const T& x) {
  return term_traits<std::remove_cvref_t<T>>::to(x);
}
// String literals and C strings become binaries.
inline term to_term(const char* s) { return term(s); }

// Returns t as a T. Throws term_conversion_error when t does not have T's shape, std::bad_alloc.
template <class T>
  requires term_readable<T>
T from_term(const term& t) {
  return term_traits<T>::from(t, term_path());
}
// The same, as a step of a larger conversion (for term_traits specializations): errors name
// the position `at`.
template <class T>
  requires term_readable<T>
T from_term(const term& t, const term_path& at) {
  return term_traits<T>::from(t, at);
}
// A view into a temporary term would dangle.
template <class T>
  requires std::same_as<T, std::string_view>
T from_term(const term&& t) = delete;

// Returns t as a T, or nullopt when t does not have T's shape. Throws std::bad_alloc.
template <class T>
  requires term_readable<T>
std::optional<T> try_from_term(const term& t) {
  try {
    return term_traits<T>::from(t, term_path());
  } catch (const term_conversion_error&) {
    return std::nullopt;
  }
}

namespace detail {
// For from_term<std::uint64_t> of values above INT64_MAX (bignums): true and the value if t
// is an integer in 0..UINT64_MAX.
bool integer_to_u64(const term& t, std::uint64_t& out);
std::string integer_range(std::int64_t lo, std::uint64_t hi);
}  // namespace detail

// ---- The conversions.

template <>
struct term_traits<term> {
  static term to(const term& t) { return t; }
  static term from(const term& t, const term_path&) { return t; }
};

template <std::integral T>
  requires(!std::same_as<T, bool>)
struct term_traits<T> {
  static term to(T v) { return term(v); }
  static T from(const term& t, const term_path& at) {
    if (t.is_int64() && std::in_range<T>(t.as_int())) return static_cast<T>(t.as_int());
    if constexpr (std::is_unsigned_v<T> && sizeof(T) == sizeof(std::uint64_t)) {
      std::uint64_t big;
      if (detail::integer_to_u64(t, big)) return static_cast<T>(big);
    }
    at.fail(detail::integer_range(std::numeric_limits<T>::min(), std::numeric_limits<T>::max()), t);
  }
};

template <std::floating_point T>
struct term_traits<T> {
  static term to(T v) { return term(v); }
  static T from(const term& t, const term_path& at) {
    if (t.is_float()) return static_cast<T>(t.as_double());
    if (t.is_int64()) return static_cast<T>(t.as_int());
    at.fail("float", t);
  }
};

template <>
struct term_traits<bool> {
  static term to(bool v) { return term(v); }
  static bool from(const term& t, const term_path& at) {
    if (t.is_atom(atoms::true_)) return true;
    if (t.is_atom(atoms::false_)) return false;
    at.fail("true or false", t);
  }
};

template <>
struct term_traits<atom> {
  static term to(atom a) { return term(a); }
  static atom from(const term& t, const term_path& at) {
    if (!t.is_atom()) at.fail("atom", t);
    return t.as_atom();
  }
};

template <>
struct term_traits<pid> {
  static term to(pid p) { return term(p); }
  static pid from(const term& t, const term_path& at) {
    if (!t.is_pid()) at.fail("pid", t);
    return t.as_pid();
  }
};

template <>
struct term_traits<ref> {
  static term to(const ref& r) { return term(r); }
  static ref from(const term& t, const term_path& at) {
    if (!t.is_reference()) at.fail("reference", t);
    return t.as_ref();
  }
};

template <>
struct term_traits<std::string> {
  static term to(const std::string& s) { return term(s); }
  static std::string from(const term& t, const term_path& at) {
    if (!t.is_binary()) at.fail("binary", t);
    return std::string(t.as_binary());
  }
};

template <>
struct term_traits<std::string_view> {
  static term to(std::string_view s) { return term(s); }
  // The view points into t's bytes: valid while t (or a copy of it) lives.
  static std::string_view from(const term& t, const term_path& at) {
    if (!t.is_binary()) at.fail("binary", t);
    return t.as_binary();
  }
};

template <std::size_t N>
struct term_traits<char[N]> {
  static term to(const char (&s)[N]) { return term(std::string_view(s)); }
};

namespace detail {
template <class C>
struct list_traits {
  using value_type = typename C::value_type;
  static term to(const C& c) {
    std::vector<term> elements;
    elements.reserve(c.size());
    for (const auto& v : c) elements.push_back(to_term(v));
    return list(std::span<const term>(elements));
  }
  static C from(const term& t, const term_path& at) {
    if (!t.is_list()) at.fail("list", t);
    C out;
    std::size_t i = 0;
    const term* cur = &t;
    for (; cur->is_cons(); cur = &cur->tail(), ++i) out.push_back(from_term<value_type>(cur->head(), at.index(i)));
    if (!cur->is_nil()) at.fail("proper list", t);
    return out;
  }
};

template <class M>
struct map_traits {
  using key_type = typename M::key_type;
  using mapped_type = typename M::mapped_type;
  static term to(const M& m) {
    std::vector<std::pair<term, term>> entries;
    entries.reserve(m.size());
    for (const auto& [k, v] : m) entries.emplace_back(to_term(k), to_term(v));
    return map(std::span<const std::pair<term, term>>(entries));
  }
  static M from(const term& t, const term_path& at) {
    if (!t.is_map()) at.fail("map", t);
    M out;
    for (const auto& [k, v] : t.map_entries()) {
      term_path here = at.key(k);
      out.emplace(from_term<key_type>(k, here), from_term<mapped_type>(v, here));
    }
    return out;
  }
};

template <class Tup>
struct tuple_traits {
  static constexpr std::size_t n = std::tuple_size_v<Tup>;
  static term to(const Tup& x) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      std::array<term, n> elements{to_term(std::get<I>(x))...};
      return tuple(std::span<const term>(elements));
    }(std::make_index_sequence<n>{});
  }
  static Tup from(const term& t, const term_path& at) {
    if (!t.is_tuple() || t.tuple_size() != n) at.fail("tuple of size " + std::to_string(n), t);
    std::span<const term> e = t.tuple_elements();
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return Tup(from_term<std::tuple_element_t<I, Tup>>(e[I], at.index(I))...);
    }(std::make_index_sequence<n>{});
  }
};
}  // namespace detail

template <class T, class A>
struct term_traits<std::vector<T, A>> : detail::list_traits<std::vector<T, A>> {};
template <class T, class A>
struct term_traits<std::list<T, A>> : detail::list_traits<std::list<T, A>> {};
template <class T, class A>
struct term_traits<std::deque<T, A>> : detail::list_traits<std::deque<T, A>> {};
template <class K, class V, class C, class A>
struct term_traits<std::map<K, V, C, A>> : detail::map_traits<std::map<K, V, C, A>> {};
template <class K, class V, class H, class E, class A>
struct term_traits<std::unordered_map<K, V, H, E, A>> : detail::map_traits<std::unordered_map<K, V, H, E, A>> {};
template <class... T>
struct term_traits<std::tuple<T...>> : detail::tuple_traits<std::tuple<T...>> {};
template <class A, class B>
struct term_traits<std::pair<A, B>> : detail::tuple_traits<std::pair<A, B>> {};

template <class T>
struct term_traits<std::optional<T>> {
  static term to(const std::optional<T>& v) { return v ? to_term(*v) : term(atoms::nil); }
  static std::optional<T> from(const term& t, const term_path& at) {
    if (t.is_atom(atoms::nil)) return std::nullopt;
    return from_term<T>(t, at);
  }
};

template <class... T>
struct term_traits<std::variant<T...>> {
  static term to(const std::variant<T...>& v) {
    return std::visit([](const auto& x) { return to_term(x); }, v);
  }
  static std::variant<T...> from(const term& t, const term_path& at) {
    std::optional<std::variant<T...>> out;
    // The first alternative that converts wins.
    (void)((out = attempt<T>(t, at), out.has_value()) || ...);
    if (!out) at.fail("a value for one of the variant's alternatives", t);
    return std::move(*out);
  }

 private:
  template <class A>
  static std::optional<std::variant<T...>> attempt(const term& t, const term_path& at) {
    try {
      return std::variant<T...>(std::in_place_type<A>, from_term<A>(t, at));
    } catch (const term_conversion_error&) {
      return std::nullopt;
    }
  }
};

// Types with a `term to_term() const` member (pids of servers, tasks...) convert to that term.
template <class T>
  requires requires(const T& v) {
    { v.to_term() } -> std::same_as<term>;
  }
struct term_traits<T> {
  static term to(const T& v) { return v.to_term(); }
};

// ---- Structs: ATHANOR_TERM_STRUCT(type, field...) lists every field of `type`, in
// declaration order (a missing or extra field is a compile error: the fields are read with a
// structured binding). Write it at namespace scope in the namespace of `type`. The type needs
// a default constructor for from_term. ATHANOR_ELIXIR_STRUCT(type, "Module", field...) does the
// same and also names the Elixir module that tags the map.

namespace detail {
template <class Tie>
struct struct_fields {
  std::string_view type_name;
  std::string_view names;  // "name, age": the macro's field list as written
  Tie tie;                 // (T&) -> std::tuple<field&...>
};

// Splits the macro's field list into atoms, once per type.
std::vector<atom> field_atoms(std::string_view names);

// The atom naming Elixir module `name`: 'Elixir.' prepended unless `name` already starts with it.
atom elixir_module_atom(std::string_view name);

// The key that tags a map as an Elixir struct.
atom struct_key();

template <class T>
concept reflected_struct = requires(const T* p) { athanor_term_fields(p); };

// Types declared with ATHANOR_ELIXIR_STRUCT: their maps carry __struct__.
template <class T>
concept elixir_struct = requires(const T* p) {
  { athanor_elixir_module(p) } -> std::convertible_to<std::string_view>;
};
}  // namespace detail

template <class T>
  requires detail::reflected_struct<T>
struct term_traits<T> {
  static term to(const T& v) {
    auto refs = fields().tie(v);
    const std::vector<atom>& k = keys();
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      if constexpr (detail::elixir_struct<T>) {
        std::array<std::pair<term, term>, sizeof...(I) + 1> entries{
            std::pair<term, term>(detail::struct_key(), elixir_module()), std::pair<term, term>(k[I], to_term(std::get<I>(refs)))...};
        return map(std::span<const std::pair<term, term>>(entries));
      } else {
        std::array<std::pair<term, term>, sizeof...(I)> entries{std::pair<term, term>(k[I], to_term(std::get<I>(refs)))...};
        return map(std::span<const std::pair<term, term>>(entries));
      }
    }(std::make_index_sequence<std::tuple_size_v<decltype(refs)>>{});
  }
  static T from(const term& t, const term_path& at) {
    if (!t.is_map()) at.fail("map (" + std::string(fields().type_name) + ")", t);
    if constexpr (detail::elixir_struct<T>) {
      // Absent is fine (Erlang code builds the plain map); another module is another type.
      const term* tag = t.find(detail::struct_key());
      if (tag && !tag->is_atom(elixir_module())) at.field("__struct__").fail(elixir_module().to_string(), *tag);
    }
    T out{};
    auto refs = fields().tie(out);
    const std::vector<atom>& k = keys();
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      ((std::get<I>(refs) = read<std::remove_cvref_t<std::tuple_element_t<I, decltype(refs)>>>(t, k[I], at)), ...);
    }(std::make_index_sequence<std::tuple_size_v<decltype(refs)>>{});
    return out;
  }

 private:
  static auto fields() { return athanor_term_fields(static_cast<const T*>(nullptr)); }
  static const std::vector<atom>& keys() {
    static const std::vector<atom> k = detail::field_atoms(fields().names);
    return k;
  }
  static atom elixir_module()
    requires detail::elixir_struct<T>
  {
    static const atom m = detail::elixir_module_atom(athanor_elixir_module(static_cast<const T*>(nullptr)));
    return m;
  }
  template <class F>
  static F read(const term& t, atom key, const term_path& at) {
    term_path here = at.field(key.name());
    const term* v = t.find(key);
    if (!v) here.fail("a map with key " + key.to_string(), t);
    return from_term<F>(*v, here);
  }
};

}  // namespace athanor

// Makes `Type` convertible as a map with an atom key per field (see above). Every field, in
// declaration order.
#define ATHANOR_TERM_STRUCT(Type, ...)                                              \
  [[maybe_unused]] inline auto athanor_term_fields(const Type*) {                  \
    return ::athanor::detail::struct_fields{#Type, #__VA_ARGS__, [](auto& athanor_s) { \
                                              auto& [__VA_ARGS__] = athanor_s;      \
                                              return std::tie(__VA_ARGS__);         \
                                            }};                                     \
  }

// Makes `Type` convertible as the Elixir struct %Module{} (see the top of this file): the map of
// ATHANOR_TERM_STRUCT plus __struct__ => 'Elixir.Module'. `Module` is a string literal such as
// "MyApp.User"; every field, in declaration order.
#define ATHANOR_ELIXIR_STRUCT(Type, Module, ...)                                          \
  ATHANOR_TERM_STRUCT(Type, __VA_ARGS__)                                                 \
  [[maybe_unused]] inline constexpr std::string_view athanor_elixir_module(const Type*) { \
    return Module;                                                                        \
  }
