// Pattern matching on terms, as Erlang's and Elixir's `=`, function heads and `case`.
//
//   using namespace athanor::literals;
//   term t = tuple("ok"_a, map({{"name"_a, "Alice"}, {"age"_a, 42}}));
//   if (auto m = match(t, tuple("ok"_a, map_with("name"_a, bind<std::string>("name"))))) {
//     std::string_view name = m.get<std::string_view>("name");      // "Alice"
//   }
//   auto [code, path] = match(req, tuple(_i, prefix("GET ", _s))).captures();  // path views req
//
//   auto area = clauses(                                             // function heads
//       on(tuple("square"_a, _i), [](std::int64_t side) { return side * side; }),
//       on(tuple("rect"_a, _i, _i), [](std::int64_t w, std::int64_t h) { return w * h; }));
//   area(tuple("rect"_a, 2, 3));                                     // 6
//   area("circle"_a);                                                // throws function_clause_error
//
// A pattern is a tree of small value objects built once and matched many times:
//
//   literals      "ok"_a, 42, "text" (a binary), 1.5, any term: match when exactly equal (=:=)
//   _             matches anything, binds nothing
//   _t _i _f _a _s _bytes _bool _pid _ref _tuple _list _map
//                 typed captures: match a term of that kind and pass it, positionally and in
//                 pattern order, to a handler (_t any term as const term&, _i a 64-bit integer
//                 as std::int64_t, _f a float as double, _a an atom, _s a binary as
//                 std::string_view, _bytes a binary as std::span<const std::byte>, _bool the
//                 atom true or false as bool, _pid, _ref, and _tuple/_list/_map as const term&)
//   bind<T>("x")  a named binding, read back with m["x"] or m.get<T>("x"); T (default: any
//                 term) restricts what matches, as the typed captures do. The same name twice
//                 must bind exactly equal (=:=) values, as a repeated Erlang variable.
//   bind("x", p)  matches p and also binds the whole value to "x" (Erlang's `X = {_, _}`)
//   tuple(p...)   a tuple of exactly that size
//   list(p...)    a proper list of exactly those elements; list(p..., rest(q)) matches the
//                 first elements and q against what follows ([A, B | Rest])
//   cons(h, t)    a list cell [H | T]
//   map_with(k, p, ...)  a map that has every key k (an exact term), with values matching p;
//                 other keys are allowed, as in Erlang's #{K := P} and Elixir's %{k: p}
//   prefix("GET ", p)  a binary that starts with those bytes; p (_, _s, _bytes, a literal,
//                 bind("x"), another prefix) matches the remaining bytes, without copying
//   p.when(pred)  p, then a guard: pred gets p's own captures (or the matched term if it does
//                 not take them) and returns whether the match stands
//   lit(x)        x as a pattern, where a pattern object is required (on(lit("ping"_a), ...))
//
// Patterns are value types: copying one copies its literals. Matching is read-only and
// never allocates: bindings are pointers into the matched term, held in fixed-size storage
// sized by the pattern's type. Matching the same pattern object from many threads at once is
// safe; a guard or handler runs on the matching thread.
//
// Handlers and guards (on(), clauses(), when()) receive the pattern's positional captures, in
// order and typed as listed above, if they can be called with them; otherwise the
// match_result (for named bindings); otherwise a compile error. A handler that takes a
// generic `auto` parameter is offered the captures first.
//
// Integer patterns match integers only (1 does not match 1.0), as Erlang's matching uses =:=.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "athanor/term/atom.h"
#include "athanor/term/convert.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

// athanor::function_clause_error — thrown by a clauses() function when no clause matches its
// argument (Erlang's function_clause error). Carries the argument. Thread-safe to copy.
class function_clause_error : public std::runtime_error {
 public:
  // `value` is the unmatched argument; the message prints it in Erlang syntax.
  explicit function_clause_error(term value);
  // The argument that no clause matched.
  const term& value() const noexcept { return value_; }

 private:
  term value_;
};

namespace detail {

// One captured value: the term that matched, or the bytes of a binary from `offset` on (what a
// prefix() pattern leaves). Points into the matched term, so it lives no longer than it.
struct match_slot {
  const term* value = nullptr;
  std::size_t offset = 0;  // > 0 only for the rest of a binary after a prefix
};

// A named binding.
struct named_slot {
  std::string_view name;  // the pattern's name: a string the user wrote, not copied
  match_slot slot;
};

// Where a running match records its bindings: fixed arrays that the pattern's type sized. Not
// thread-safe; one per match in progress.
struct match_ctx {
  match_slot* captures;
  named_slot* names;
  std::size_t ncaptures = 0;
  std::size_t nnames = 0;

  void capture(const term& t, std::size_t offset = 0) noexcept { captures[ncaptures++] = match_slot{&t, offset}; }
  // Binds `name` to the value; returns false if the name is already bound to a value that is
  // not exactly equal (a repeated variable must match the same value).
  bool bind(std::string_view name, const term& t, std::size_t offset) noexcept;
};

// Returns the bytes a slot refers to (its binary from the offset on). The slot must hold a binary.
inline std::string_view slot_bytes(const match_slot& s) { return s.value->as_binary().substr(s.offset); }

// Builds a term for a slot: the term itself, or a new binary for the rest of one.
term slot_term(const match_slot& s);

// Kinds of value a capture accepts. Each says what C++ type it hands over (`type`), whether a
// term qualifies (`accepts`), whether it can also take the rest of a binary (`bytes`), and
// reads the value from a slot (`get`).
struct any_kind {
  using type = const term&;
  static constexpr bool bytes = false;
  static bool accepts(const term&) noexcept { return true; }
  static const term& get(const match_slot& s) noexcept { return *s.value; }
};
template <std::integral T>
struct integer_kind {
  using type = T;
  static constexpr bool bytes = false;
  static bool accepts(const term& t) noexcept {
    if (!t.is_int64()) return false;
    if constexpr (std::is_same_v<T, std::int64_t>) {
      return true;
    } else {
      return std::in_range<T>(t.as_int());
    }
  }
  static T get(const match_slot& s) { return static_cast<T>(s.value->as_int()); }
};
template <std::floating_point T>
struct float_kind {
  using type = T;
  static constexpr bool bytes = false;
  static bool accepts(const term& t) noexcept { return t.is_float(); }
  static T get(const match_slot& s) { return static_cast<T>(s.value->as_double()); }
};
struct atom_kind {
  using type = atom;
  static constexpr bool bytes = false;
  static bool accepts(const term& t) noexcept { return t.is_atom(); }
  static atom get(const match_slot& s) { return s.value->as_atom(); }
};
struct bool_kind {
  using type = bool;
  static constexpr bool bytes = false;
  static bool accepts(const term& t) noexcept { return t.is_atom(atoms::true_) || t.is_atom(atoms::false_); }
  static bool get(const match_slot& s) noexcept { return s.value->is_atom(atoms::true_); }
};
struct pid_kind {
  using type = pid;
  static constexpr bool bytes = false;
  static bool accepts(const term& t) noexcept { return t.is_pid(); }
  static pid get(const match_slot& s) { return s.value->as_pid(); }
};
struct ref_kind {
  using type = ref;
  static constexpr bool bytes = false;
  static bool accepts(const term& t) noexcept { return t.is_reference(); }
  static ref get(const match_slot& s) { return s.value->as_ref(); }
};
struct binary_kind {
  using type = std::string_view;
  static constexpr bool bytes = true;
  static bool accepts(const term& t) noexcept { return t.is_binary(); }
  static std::string_view get(const match_slot& s) { return slot_bytes(s); }
};
struct bytes_kind {
  using type = std::span<const std::byte>;
  static constexpr bool bytes = true;
  static bool accepts(const term& t) noexcept { return t.is_binary(); }
  static std::span<const std::byte> get(const match_slot& s) {
    std::string_view v = slot_bytes(s);
    return {reinterpret_cast<const std::byte*>(v.data()), v.size()};
  }
};
struct string_kind {  // a binary, copied into a std::string when read
  using type = std::string;
  static constexpr bool bytes = true;
  static bool accepts(const term& t) noexcept { return t.is_binary(); }
  static std::string get(const match_slot& s) { return std::string(slot_bytes(s)); }
};
template <bool (term::*Is)() const noexcept>
struct shape_kind {  // a compound term of one kind, passed as the term
  using type = const term&;
  static constexpr bool bytes = false;
  static bool accepts(const term& t) noexcept { return (t.*Is)(); }
  static const term& get(const match_slot& s) noexcept { return *s.value; }
};

// The capture kind that bind<T> and match_result::get<T> use for T.
template <class T>
struct kind_for {};
template <>
struct kind_for<term> { using type = any_kind; };
template <std::integral T>
  requires(!std::is_same_v<T, bool>)
struct kind_for<T> { using type = integer_kind<T>; };
template <std::floating_point T>
struct kind_for<T> { using type = float_kind<T>; };
template <>
struct kind_for<bool> { using type = bool_kind; };
template <>
struct kind_for<atom> { using type = atom_kind; };
template <>
struct kind_for<pid> { using type = pid_kind; };
template <>
struct kind_for<ref> { using type = ref_kind; };
template <>
struct kind_for<std::string_view> { using type = binary_kind; };
template <>
struct kind_for<std::string> { using type = string_kind; };
template <>
struct kind_for<std::span<const std::byte>> { using type = bytes_kind; };

template <class T>
concept has_kind = requires { typename kind_for<T>::type; };

// Concatenates std::tuple type lists.
template <class... L>
struct concat {
  using type = std::tuple<>;
};
template <class... A>
struct concat<std::tuple<A...>> {
  using type = std::tuple<A...>;
};
template <class... A, class... B, class... R>
struct concat<std::tuple<A...>, std::tuple<B...>, R...> : concat<std::tuple<A..., B...>, R...> {};
template <class... L>
using concat_t = typename concat<L...>::type;

// Every pattern type derives from this (through pattern_base), which is what is_pattern tests.
struct pattern_tag {};

template <class P, class G>
struct guarded;

}  // namespace detail

// True for pattern objects (_, _s, tuple(_i, ...), bind("x"), ...), false for plain values
// such as atoms and strings, which are patterns only inside a pattern or through lit().
template <class P>
concept is_pattern = std::derived_from<std::remove_cvref_t<P>, detail::pattern_tag>;

namespace detail {

// The base of every pattern: supplies p.when(guard). Each pattern type P also has
//   static constexpr std::size_t captures, names;   // how many slots a match of P fills
//   using capture_kinds = std::tuple<kinds...>;       // its positional captures, in order
//   bool match(const term& t, match_ctx& cx) const;
// and, if it can match the rest of a binary after a prefix,
//   bool match_bytes(const term& binary, std::size_t offset, match_ctx& cx) const;
template <class D>
struct pattern_base : pattern_tag {
  // Returns this pattern with a guard: after it matches, `guard` is called with its captures
  // (or with the matched term, or for the rest of a binary its bytes) and must return true.
  template <class G>
  guarded<D, std::decay_t<G>> when(G&& guard) const {
    return {{}, static_cast<const D&>(*this), std::forward<G>(guard)};
  }
};

template <class P>
concept byte_pattern = requires(const P& p, const term& t, match_ctx& cx) {
  { p.match_bytes(t, std::size_t{}, cx) } -> std::same_as<bool>;
};

// Calls f with the values of the captures in `slots`, typed by the kinds in `Kinds`.
template <class Kinds>
struct capture_call;
template <class... K>
struct capture_call<std::tuple<K...>> {
  template <class F>
  static constexpr bool invocable = std::is_invocable_v<F&, typename K::type...>;
  template <class F>
  static decltype(auto) call(F& f, const match_slot* slots) {
    return call_at(f, slots, std::index_sequence_for<K...>{});
  }
  template <class F, std::size_t... I>
  static decltype(auto) call_at(F& f, const match_slot* slots, std::index_sequence<I...>) {
    return std::invoke(f, K::get(slots[I])...);
  }
  // Terms are copied (sharing their heap blocks) so that a tuple of captures cannot dangle.
  using values = std::tuple<std::remove_cvref_t<typename K::type>...>;
  static values read(const match_slot* slots) { return read_at(slots, std::index_sequence_for<K...>{}); }
  template <std::size_t... I>
  static values read_at(const match_slot* slots, std::index_sequence<I...>) {
    return values(K::get(slots[I])...);
  }
};

// ---- The patterns.

struct wildcard : pattern_base<wildcard> {
  static constexpr std::size_t captures = 0, names = 0;
  using capture_kinds = std::tuple<>;
  bool match(const term&, match_ctx&) const noexcept { return true; }
  bool match_bytes(const term&, std::size_t, match_ctx&) const noexcept { return true; }
};

template <class K>
struct capture : pattern_base<capture<K>> {
  static constexpr std::size_t captures = 1, names = 0;
  using capture_kinds = std::tuple<K>;
  bool match(const term& t, match_ctx& cx) const noexcept {
    if (!K::accepts(t)) return false;
    cx.capture(t);
    return true;
  }
  bool match_bytes(const term& bin, std::size_t offset, match_ctx& cx) const noexcept
    requires(K::bytes)
  {
    cx.capture(bin, offset);
    return true;
  }
};

struct atom_literal : pattern_base<atom_literal> {
  static constexpr std::size_t captures = 0, names = 0;
  using capture_kinds = std::tuple<>;
  atom value;
  bool match(const term& t, match_ctx&) const noexcept { return t.is_atom(value); }
};

struct integer_literal : pattern_base<integer_literal> {
  static constexpr std::size_t captures = 0, names = 0;
  using capture_kinds = std::tuple<>;
  std::int64_t value;
  bool match(const term& t, match_ctx&) const noexcept { return t.is_int64() && t.as_int() == value; }
};

// Bytes, held as a view (for string literals) or a copy (for std::string).
template <class S>
struct bytes_literal : pattern_base<bytes_literal<S>> {
  static constexpr std::size_t captures = 0, names = 0;
  using capture_kinds = std::tuple<>;
  S value;
  bool match(const term& t, match_ctx&) const { return t.is_binary() && t.as_binary() == std::string_view(value); }
  bool match_bytes(const term& bin, std::size_t offset, match_ctx&) const {
    return bin.as_binary().substr(offset) == std::string_view(value);
  }
};

struct term_literal : pattern_base<term_literal> {
  static constexpr std::size_t captures = 0, names = 0;
  using capture_kinds = std::tuple<>;
  term value;
  bool match(const term& t, match_ctx&) const noexcept { return t == value; }
  bool match_bytes(const term& bin, std::size_t offset, match_ctx&) const {
    return value.is_binary() && bin.as_binary().substr(offset) == value.as_binary();
  }
};

// Accepts only the empty list (the end of a list pattern without rest()).
struct nil_literal : pattern_base<nil_literal> {
  static constexpr std::size_t captures = 0, names = 0;
  using capture_kinds = std::tuple<>;
  bool match(const term& t, match_ctx&) const noexcept { return t.is_nil(); }
};

// What can stand in a pattern: a pattern, or a value that converts to a term (a literal).
template <class X>
concept pattern_arg = is_pattern<X> || std::constructible_from<term, X>;

template <class D>
consteval bool fits_int64() {
  if constexpr (std::is_integral_v<D>) return std::in_range<std::int64_t>(std::numeric_limits<D>::max());
  else return false;
}

// Returns `x` as a pattern: patterns unchanged, other values as literals.
template <class X>
  requires pattern_arg<X>
auto as_pattern(X&& x) {
  using D = std::remove_cvref_t<X>;
  if constexpr (is_pattern<D>) {
    return D(std::forward<X>(x));
  } else if constexpr (std::is_same_v<D, atom>) {
    return atom_literal{{}, x};
  } else if constexpr (std::is_same_v<D, bool>) {
    return atom_literal{{}, x ? atoms::true_ : atoms::false_};
  } else if constexpr (fits_int64<D>()) {
    return integer_literal{{}, std::int64_t(x)};
  } else if constexpr (std::is_same_v<D, std::string>) {
    return bytes_literal<std::string>{{}, std::forward<X>(x)};
  } else if constexpr (std::is_convertible_v<X, std::string_view> && !std::is_same_v<D, term>) {
    return bytes_literal<std::string_view>{{}, std::string_view(x)};
  } else {
    return term_literal{{}, term(std::forward<X>(x))};
  }
}
template <class X>
using pattern_of = decltype(as_pattern(std::declval<X>()));

template <class... Ps>
struct tuple_pattern : pattern_base<tuple_pattern<Ps...>> {
  static constexpr std::size_t captures = (std::size_t{0} + ... + Ps::captures);
  static constexpr std::size_t names = (std::size_t{0} + ... + Ps::names);
  using capture_kinds = concat_t<typename Ps::capture_kinds...>;
  std::tuple<Ps...> parts;
  bool match(const term& t, match_ctx& cx) const {
    if (!t.is_tuple() || t.tuple_size() != sizeof...(Ps)) return false;
    std::span<const term> e = t.tuple_elements();
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (std::get<I>(parts).match(e[I], cx) && ...);
    }(std::index_sequence_for<Ps...>{});
  }
};

// [P1, P2, ... | Tail]: the elements, then Tail against what is left (nil_literal for a
// proper list of exactly those elements).
template <class Tail, class... Ps>
struct list_pattern : pattern_base<list_pattern<Tail, Ps...>> {
  static constexpr std::size_t captures = (Tail::captures + ... + Ps::captures);
  static constexpr std::size_t names = (Tail::names + ... + Ps::names);
  using capture_kinds = concat_t<typename Ps::capture_kinds..., typename Tail::capture_kinds>;
  std::tuple<Ps...> items;
  Tail tail;
  bool match(const term& t, match_ctx& cx) const {
    const term* cur = &t;
    bool ok = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return ([&] {
        if (!cur->is_cons()) return false;
        if (!std::get<I>(items).match(cur->head(), cx)) return false;
        cur = &cur->tail();
        return true;
      }() && ...);
    }(std::index_sequence_for<Ps...>{});
    return ok && tail.match(*cur, cx);
  }
};

template <class... Ps>
struct map_pattern : pattern_base<map_pattern<Ps...>> {
  static constexpr std::size_t captures = (std::size_t{0} + ... + Ps::captures);
  static constexpr std::size_t names = (std::size_t{0} + ... + Ps::names);
  using capture_kinds = concat_t<typename Ps::capture_kinds...>;
  std::array<term, sizeof...(Ps)> keys;
  std::tuple<Ps...> values;
  bool match(const term& t, match_ctx& cx) const {
    if (!t.is_map()) return false;
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return ([&] {
        const term* v = t.find(keys[I]);
        return v != nullptr && std::get<I>(values).match(*v, cx);
      }() && ...);
    }(std::index_sequence_for<Ps...>{});
  }
};

template <class S, class R>
struct prefix_pattern : pattern_base<prefix_pattern<S, R>> {
  static constexpr std::size_t captures = R::captures, names = R::names;
  using capture_kinds = typename R::capture_kinds;
  S bytes;
  R rest;
  bool match(const term& t, match_ctx& cx) const {
    return t.is_binary() && match_bytes(t, 0, cx);
  }
  bool match_bytes(const term& bin, std::size_t offset, match_ctx& cx) const {
    std::string_view have = bin.as_binary().substr(offset);
    std::string_view want(bytes);
    return have.starts_with(want) && rest.match_bytes(bin, offset + want.size(), cx);
  }
};

template <class K, class Sub>
struct named : pattern_base<named<K, Sub>> {
  static constexpr std::size_t captures = Sub::captures, names = Sub::names + 1;
  using capture_kinds = typename Sub::capture_kinds;
  std::string_view name;
  Sub sub;
  bool match(const term& t, match_ctx& cx) const {
    return K::accepts(t) && sub.match(t, cx) && cx.bind(name, t, 0);
  }
  bool match_bytes(const term& bin, std::size_t offset, match_ctx& cx) const
    requires((K::bytes || std::is_same_v<K, any_kind>) && byte_pattern<Sub>)
  {
    return sub.match_bytes(bin, offset, cx) && cx.bind(name, bin, offset);
  }
};

template <class P, class G>
struct guarded : pattern_base<guarded<P, G>> {
  static constexpr std::size_t captures = P::captures, names = P::names;
  using capture_kinds = typename P::capture_kinds;
  P pattern;
  G guard;
  bool match(const term& t, match_ctx& cx) const {
    std::size_t first = cx.ncaptures;
    if (!pattern.match(t, cx)) return false;
    using call = capture_call<capture_kinds>;
    if constexpr (call::template invocable<const G>) {
      return bool(call::call(guard, cx.captures + first));
    } else {
      static_assert(std::is_invocable_v<const G&, const term&>,
                    "a when() guard takes the pattern's captures, or the matched term");
      return bool(std::invoke(guard, t));
    }
  }
  bool match_bytes(const term& bin, std::size_t offset, match_ctx& cx) const
    requires byte_pattern<P>
  {
    std::size_t first = cx.ncaptures;
    if (!pattern.match_bytes(bin, offset, cx)) return false;
    using call = capture_call<capture_kinds>;
    if constexpr (call::template invocable<const G>) {
      return bool(call::call(guard, cx.captures + first));
    } else {
      static_assert(std::is_invocable_v<const G&, std::string_view>,
                    "a when() guard inside prefix() takes the captures, or the bytes as std::string_view");
      return bool(std::invoke(guard, bin.as_binary().substr(offset)));
    }
  }
};

// rest(p): the tail of a list pattern. Not a pattern by itself.
template <class P>
struct rest_of {
  P pattern;
};
template <class X>
struct is_rest : std::false_type {};
template <class P>
struct is_rest<rest_of<P>> : std::true_type {};

template <class X>
concept list_arg = pattern_arg<X> || is_rest<std::remove_cvref_t<X>>::value;

// Builds list_pattern<Tail, ...> from the first elements of `items` (a tuple of references).
template <class Tail, class Tuple, std::size_t... I>
auto make_list_pattern(Tail tail, Tuple&& items, std::index_sequence<I...>) {
  using T = std::remove_reference_t<Tuple>;
  using L = list_pattern<Tail, pattern_of<std::tuple_element_t<I, T>>...>;
  return L{{}, {as_pattern(std::get<I>(std::move(items)))...}, std::move(tail)};
}

// Builds map_pattern from (key, pattern, key, pattern...) in `args` (a tuple of references).
template <class Tuple, std::size_t... I>
auto make_map_pattern(Tuple&& args, std::index_sequence<I...>) {
  using T = std::remove_reference_t<Tuple>;
  using M = map_pattern<pattern_of<std::tuple_element_t<2 * I + 1, T>>...>;
  return M{{}, {term(std::get<2 * I>(std::move(args)))...}, {as_pattern(std::get<2 * I + 1>(std::move(args)))...}};
}

// The storage for one match of P: its positional captures and named bindings.
template <class P>
struct match_store {
  std::array<match_slot, P::captures> captures{};
  std::array<named_slot, P::names> names{};
  std::size_t nnames = 0;

  // Matches t against p, filling this store; returns whether it matched.
  bool run(const P& p, const term& t) {
    match_ctx cx{captures.data(), names.data()};
    bool ok = p.match(t, cx);
    nnames = cx.nnames;
    return ok;
  }
  // Points every slot that refers to `from` itself at `to` (after copying the matched term).
  void rebase(const term* from, const term* to) noexcept {
    for (auto& c : captures)
      if (c.value == from) c.value = to;
    for (std::size_t i = 0; i < nnames; ++i)
      if (names[i].slot.value == from) names[i].slot.value = to;
  }
  const match_slot* find(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < nnames; ++i)
      if (names[i].name == name) return &names[i].slot;
    return nullptr;
  }
};

[[noreturn]] void throw_unbound(std::string_view name);
[[noreturn]] void throw_wrong_binding(std::string_view name, const match_slot& slot);
[[noreturn]] void throw_function_clause(const term& value);

struct adopt_t {};

}  // namespace detail

// The outcome of match(): false if the term did not match; otherwise its bindings, by name
// and by position. It holds a copy of the matched term (sharing its heap block, so no
// allocation), so it stays valid however long it is kept. Not thread-safe to share while
// being assigned; reading it from several threads is fine.
template <class P>
class match_result {
 public:
  // The positional captures' C++ types, in pattern order.
  using values = typename detail::capture_call<typename P::capture_kinds>::values;

  // Matches `t` against `p`. Use match() instead.
  match_result(const term& t, const P& p) : value_(t) { matched_ = store_.run(p, value_); }
  // Adopts the bindings of a match already made against `t` (for receive and clauses).
  match_result(detail::adopt_t, const term& t, const detail::match_store<P>& s) : value_(t), store_(s), matched_(true) {
    store_.rebase(&t, &value_);
  }
  match_result(const match_result& other) : value_(other.value_), store_(other.store_), matched_(other.matched_) {
    store_.rebase(&other.value_, &value_);
  }
  match_result& operator=(const match_result&) = delete;

  // True if the term matched.
  explicit operator bool() const noexcept { return matched_; }

  // The term that was matched.
  const term& value() const noexcept { return value_; }

  // True if the match bound `name`.
  bool has(std::string_view name) const noexcept { return store_.find(name) != nullptr; }

  // The term bound to `name` (for the rest of a binary after a prefix, a new binary). Throws
  // std::out_of_range if nothing is bound to that name (or the match failed).
  term operator[](std::string_view name) const {
    const detail::match_slot* s = store_.find(name);
    if (!s) detail::throw_unbound(name);
    return detail::slot_term(*s);
  }

  // The value bound to `name`, as T: term, an integer type (range-checked), double, bool,
  // atom, pid, ref, std::string_view (valid while this result lives), std::string or
  // std::span<const std::byte>. Throws std::out_of_range if `name` is unbound, and
  // bad_term_access if the bound value is not a T.
  template <class T>
    requires detail::has_kind<T>
  T get(std::string_view name) const {
    using K = typename detail::kind_for<T>::type;
    const detail::match_slot* s = store_.find(name);
    if (!s) detail::throw_unbound(name);
    if constexpr (std::is_same_v<T, term>) {
      return detail::slot_term(*s);
    } else {
      bool ok = s->offset > 0 ? K::bytes : K::accepts(*s->value);
      if (!ok) detail::throw_wrong_binding(name, *s);
      return K::get(*s);
    }
  }

  // The value bound to `name` converted with from_term<T> (athanor/term/convert.h), for the
  // other types: std::vector<int>, a struct declared with ATHANOR_TERM_STRUCT... Throws
  // std::out_of_range if `name` is unbound and term_conversion_error if it does not convert.
  template <class T>
    requires(!detail::has_kind<T> && term_readable<T>)
  T get(std::string_view name) const {
    const detail::match_slot* s = store_.find(name);
    if (!s) detail::throw_unbound(name);
    return from_term<T>(detail::slot_term(*s));
  }

  // The I-th positional capture, typed by its placeholder (_s: std::string_view, _t: term...).
  template <std::size_t I>
  std::tuple_element_t<I, values> get() const {
    using K = std::tuple_element_t<I, typename P::capture_kinds>;
    return K::get(store_.captures[I]);
  }

  // Every positional capture, as a tuple (for structured bindings). Terms are copies; views
  // (_s, _bytes) point into the matched term's bytes, valid while this result or another copy
  // of the matched term lives.
  values captures() const { return detail::capture_call<typename P::capture_kinds>::read(store_.captures.data()); }

 private:
  term value_;
  detail::match_store<P> store_;
  bool matched_ = false;
};

// Matches `t` against `pattern` (a pattern object, or a literal value). Returns a result that
// is false on mismatch; never throws except what a guard throws; never allocates.
template <class P>
  requires detail::pattern_arg<P>
auto match(const term& t, P&& pattern) {
  using Pat = detail::pattern_of<P>;
  if constexpr (std::is_same_v<std::remove_cvref_t<P>, Pat>) {
    return match_result<Pat>(t, pattern);
  } else {
    return match_result<Pat>(t, detail::as_pattern(std::forward<P>(pattern)));
  }
}

// Returns true if `t` matches `pattern`, discarding the bindings.
template <class P>
  requires detail::pattern_arg<P>
bool matches(const term& t, P&& pattern) {
  return bool(match(t, std::forward<P>(pattern)));
}

// ---- Building patterns. Each returns a pattern object; none allocates except to copy a
// std::string or term literal.

inline namespace patterns {
inline constexpr detail::wildcard _{};
inline constexpr detail::capture<detail::any_kind> _t{};
inline constexpr detail::capture<detail::integer_kind<std::int64_t>> _i{};
inline constexpr detail::capture<detail::float_kind<double>> _f{};
inline constexpr detail::capture<detail::atom_kind> _a{};
inline constexpr detail::capture<detail::binary_kind> _s{};
inline constexpr detail::capture<detail::bytes_kind> _bytes{};
inline constexpr detail::capture<detail::bool_kind> _bool{};
inline constexpr detail::capture<detail::pid_kind> _pid{};
inline constexpr detail::capture<detail::ref_kind> _ref{};
inline constexpr detail::capture<detail::shape_kind<&term::is_tuple>> _tuple{};
inline constexpr detail::capture<detail::shape_kind<&term::is_list>> _list{};
inline constexpr detail::capture<detail::shape_kind<&term::is_map>> _map{};
}  // namespace patterns

// `x` as a pattern object: needed only where a pattern is required at the top (on(), clauses()).
template <class X>
  requires detail::pattern_arg<X>
auto lit(X&& x) { return detail::as_pattern(std::forward<X>(x)); }

// A named binding: matches a value of type T (any term by default) and binds it to `name`.
// `name` is not copied: pass a string literal or another string that outlives the match.
template <class T = term>
  requires detail::has_kind<T>
auto bind(std::string_view name) {
  return detail::named<typename detail::kind_for<T>::type, detail::wildcard>{{}, name, {}};
}
// Matches `pattern` and binds the whole value to `name` (Erlang's `Name = Pattern`).
template <class P>
  requires detail::pattern_arg<P>
auto bind(std::string_view name, P&& pattern) {
  return detail::named<detail::any_kind, detail::pattern_of<P>>{{}, name, detail::as_pattern(std::forward<P>(pattern))};
}

// {p...}: a tuple of exactly these elements. (With only plain values, tuple() builds a term,
// which is also a valid pattern.)
template <class... Xs>
  requires((detail::pattern_arg<Xs> && ...) && (is_pattern<Xs> || ...))
auto tuple(Xs&&... xs) {
  return detail::tuple_pattern<detail::pattern_of<Xs>...>{{}, {detail::as_pattern(std::forward<Xs>(xs))...}};
}

// rest(p) as the last argument of list(): matches the rest of the list against p.
template <class P = detail::wildcard>
  requires detail::pattern_arg<P>
auto rest(P&& pattern = {}) {
  return detail::rest_of<detail::pattern_of<P>>{detail::as_pattern(std::forward<P>(pattern))};
}

// [p...] (exactly these elements) or, with rest(q) last, [p... | q].
template <class... Xs>
  requires(sizeof...(Xs) > 0 && (detail::list_arg<Xs> && ...) &&
           ((is_pattern<Xs> || detail::is_rest<std::remove_cvref_t<Xs>>::value) || ...))
auto list(Xs&&... xs) {
  constexpr std::size_t n = sizeof...(Xs);
  constexpr std::size_t rests = (std::size_t{detail::is_rest<std::remove_cvref_t<Xs>>::value} + ...);
  using last = std::remove_cvref_t<std::tuple_element_t<n - 1, std::tuple<Xs...>>>;
  static_assert(rests == 0 || (rests == 1 && detail::is_rest<last>::value), "rest() must be the last element of list()");
  std::tuple<Xs&&...> args(std::forward<Xs>(xs)...);
  if constexpr (detail::is_rest<last>::value) {
    return detail::make_list_pattern(std::get<n - 1>(std::move(args)).pattern, std::move(args),
                                     std::make_index_sequence<n - 1>{});
  } else {
    return detail::make_list_pattern(detail::nil_literal{}, std::move(args), std::make_index_sequence<n>{});
  }
}

// [head | tail]: a list cell.
template <class H, class T>
  requires(detail::pattern_arg<H> && detail::pattern_arg<T> && (is_pattern<H> || is_pattern<T>))
auto cons(H&& head, T&& tail) {
  return detail::list_pattern<detail::pattern_of<T>, detail::pattern_of<H>>{
      {}, {detail::as_pattern(std::forward<H>(head))}, detail::as_pattern(std::forward<T>(tail))};
}

// map_with(k1, p1, k2, p2, ...): a map with at least these keys (exact terms, usually atoms),
// whose values match the patterns. Other keys may be present.
template <class... Xs>
  requires(sizeof...(Xs) % 2 == 0 && sizeof...(Xs) > 0)
auto map_with(Xs&&... kv) {
  return detail::make_map_pattern(std::tuple<Xs&&...>(std::forward<Xs>(kv)...), std::make_index_sequence<sizeof...(Xs) / 2>{});
}

// A binary that starts with `bytes`; `rest` matches the bytes after them (without copying).
template <class S, class R = detail::wildcard>
  requires(std::is_convertible_v<S, std::string_view> && detail::pattern_arg<R>)
auto prefix(S&& bytes, R&& rest = {}) {
  using RP = detail::pattern_of<R>;
  static_assert(detail::byte_pattern<RP>,
                "prefix(): the rest must be _, _s, _bytes, a binary literal, bind(\"x\") or another prefix()");
  using SS = std::conditional_t<std::is_same_v<std::remove_cvref_t<S>, std::string>, std::string, std::string_view>;
  return detail::prefix_pattern<SS, RP>{{}, SS(std::forward<S>(bytes)), detail::as_pattern(std::forward<R>(rest))};
}

// ---- Clauses: on(pattern, handler), used by clauses() and by process::receive.

namespace detail {

struct no_term_guard {};

// Calls `f` with the captures of a match of P against t, or with the match_result.
template <class P, class F>
decltype(auto) call_with_match(F& f, const term& t, const match_store<P>& s) {
  using call = capture_call<typename P::capture_kinds>;
  if constexpr (call::template invocable<F>) {
    return call::call(f, s.captures.data());
  } else {
    static_assert(std::is_invocable_v<F&, const match_result<P>&>,
                  "a pattern handler or guard takes the pattern's captures (in order, typed: _s is "
                  "std::string_view, _i std::int64_t, _t const term&, ...) or a const match_result<P>&");
    return std::invoke(f, match_result<P>(adopt_t{}, t, s));
  }
}

// One clause: a pattern, an optional guard, a handler.
template <class P, class G, class F>
struct pattern_clause {
  using is_term_clause = void;  // how process::receive recognises pattern clauses
  using message_type = term;
  using store_type = match_store<P>;
  using result_type = decltype(call_with_match<P>(std::declval<F&>(), std::declval<const term&>(),
                                                  std::declval<const store_type&>()));
  P pattern;
  G guard;
  F handler;
  store_type store;  // the bindings of the last successful test(t)

  // Returns true if t matches the pattern and passes the guard, recording the bindings in `s`.
  bool test(const term& t, store_type& s) const {
    if (!s.run(pattern, t)) return false;
    if constexpr (std::is_same_v<G, no_term_guard>) {
      return true;
    } else {
      return bool(call_with_match<P>(guard, t, s));
    }
  }
  bool test(const term& t) { return test(t, store); }
  // Runs the handler on the bindings `s` that test(t, s) recorded.
  decltype(auto) run(const term& t, const store_type& s) { return call_with_match<P>(handler, t, s); }
  decltype(auto) run(const term& t, const store_type& s) const { return call_with_match<P>(handler, t, s); }
  decltype(auto) run(const term& t) { return run(t, store); }
};

template <class C>
concept term_clause = requires { typename C::is_term_clause; };

}  // namespace detail

// A clause for clauses() and process::receive: when a term matches `pattern`, `handler` runs
// with the captures (or the match_result). For receive, the clause takes messages sent as
// `term`. Returns the clause object.
template <class P, class F>
  requires is_pattern<P>
auto on(P pattern, F handler) {
  return detail::pattern_clause<std::remove_cvref_t<P>, detail::no_term_guard, F>{std::move(pattern), {}, std::move(handler), {}};
}
// Same, with a guard that receives what the handler would and returns whether the clause applies.
template <class P, class G, class F>
  requires is_pattern<P>
auto on(P pattern, G guard, F handler) {
  return detail::pattern_clause<std::remove_cvref_t<P>, G, F>{std::move(pattern), std::move(guard), std::move(handler), {}};
}

// A function of one term defined by clauses, as an Erlang function's heads: calling it runs
// the first clause whose pattern (and guard) matches. Thread-safe to call concurrently if the
// handlers are; the handlers are called as const.
template <class... C>
class clauses_fn {
 public:
  using result_type = std::common_type_t<typename C::result_type...>;

  explicit clauses_fn(C... c) : clauses_(std::move(c)...) {}

  // Returns what the first matching clause's handler returns; throws function_clause_error
  // (carrying t) if none matches, and what the handler throws.
  result_type operator()(const term& t) const { return call<0>(t); }

 private:
  template <std::size_t I>
  result_type call(const term& t) const {
    if constexpr (I == sizeof...(C)) {
      detail::throw_function_clause(t);
    } else {
      const auto& c = std::get<I>(clauses_);
      typename std::tuple_element_t<I, std::tuple<C...>>::store_type s;
      if (c.test(t, s)) return static_cast<result_type>(c.run(t, s));
      return call<I + 1>(t);
    }
  }
  std::tuple<C...> clauses_;
};

// Returns a function of a term made of on(pattern, handler) clauses, tried in order.
template <class... C>
  requires(sizeof...(C) > 0 && (detail::term_clause<C> && ...))
auto clauses(C... c) {
  return clauses_fn<C...>(std::move(c)...);
}

}  // namespace athanor
