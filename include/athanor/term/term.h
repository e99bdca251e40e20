// athanor::term — an immutable, dynamically typed Erlang value. Thread-safe for any number of
// concurrent readers and copies; like std::shared_ptr, one term *object* must not be assigned
// while another thread reads that same object.
//
// Exit reasons, registered names and messages between nodes are terms, as in Erlang:
//
//   using namespace athanor::literals;
//   term reason = tuple(atoms::shutdown, "disk full");   // {shutdown,<<"disk full">>}
//   term user = map({{"name"_a, "Alice"}, {"age"_a, 42}});
//   if (const term* age = user.find("age"_a)) fmt::print("{}\n", *age);  // 42
//
// A term is 16 bytes. Integers, floats, atoms, pids and references are stored in
// it; tuples, lists, maps and binaries live in an immutable heap block shared by
// every copy and freed with the last one (an atomic reference count, because terms
// are sent between threads). Nothing a term refers to can change, so sharing needs
// no locks. Freeing never recurses, however deeply a term nests. Comparing, hashing
// and printing loop along list tails (and a tuple's last element, a map's last
// value) but recurse into heads and other elements, so they need stack in
// proportion to that nesting: a decoder of untrusted input should bound it.
//
// Conversions follow Erlang and Elixir: C++ strings become *binaries* (as Elixir
// strings), bool becomes the atom true or false, and a default-constructed term is
// the atom 'undefined' (Erlang has no null; 'undefined' is its conventional
// "no value"). The empty list is term::nil().
//
// Printing (to_string, fmt, <<) uses Erlang syntax, as io:format("~tw") prints a
// term, except that a binary of printable text is written as a string
// (<<"Alice">>, as "~tp" does) rather than as bytes. Map keys print in term order,
// which is Erlang's order for maps of up to 32 keys (larger Erlang maps print in
// hash order).
#pragma once

#include <atomic>
#include <cmath>
#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <iterator>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"

namespace athanor {

// athanor::bad_term_access — thrown when a term is read as a kind it is not (as_int() on an
// atom, head() of []), or a list operation meets an improper list. Thread-safe to copy, like
// every exception. A logic error: the caller should have checked kind() first.
class bad_term_access : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {

// The header of every heap block a term shares. Thread-safe: the count is atomic, and
// everything after the header is immutable once the block is published.
struct term_box {
  std::atomic<std::uint32_t> refs{1};
  std::uint32_t size = 0;  // tuple arity or map entries (a binary keeps its own size_t)
};

struct term_internals;

}  // namespace detail

class term {
 public:
  // What a term is. Declared in Erlang's term order (number < atom < reference < pid <
  // tuple < map < nil < list < binary); funs and ports do not exist in Athanor yet.
  // Inside declarations the accessor kind() hides this type's name, so spell the type
  // athanor::term_kind there; term::kind::atom etc. work everywhere.
  enum class kind : std::uint8_t {
    integer,    // a signed 64-bit integer
    bignum,     // reserved for arbitrary-precision integers; no term has this kind yet
    float_,     // a finite double
    atom,
    reference,
    pid,
    tuple,
    map,        // keys are unique and kept sorted in map key order (see map_entries())
    nil,        // the empty list []
    list,       // a non-empty list cell [Head | Tail]; the tail may be any term (improper list)
    binary,     // a sequence of bytes
  };

  // A forward range over the elements of a proper list (see list_elements()).
  class list_view;

  // The atom 'undefined'.
  term() noexcept : kind_(kind::atom), bits_(atoms::undefined.index()) {}

  // The atom `a`.
  term(atom a) noexcept : kind_(kind::atom), bits_(a.index()) {}

  // The atom true or false, as Erlang booleans are. (A template so that pointers,
  // which convert to bool, do not silently become atoms.)
  template <class T>
    requires std::same_as<T, bool>
  term(T value) noexcept : term(value ? atoms::true_ : atoms::false_) {}

  // An integer. Throws std::out_of_range for an unsigned value above INT64_MAX, which
  // needs a bignum (not implemented yet).
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  term(T value) : kind_(kind::integer) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (value > std::uint64_t(std::numeric_limits<std::int64_t>::max())) throw_integer_too_large(value);
    }
    integer_ = static_cast<std::int64_t>(value);
  }

  // A float. Throws std::invalid_argument for NaN or an infinity, which Erlang floats
  // cannot be (Erlang raises badarith where IEEE arithmetic would make one).
  template <std::floating_point T>
  term(T value) : kind_(kind::float_) {
    float_ = static_cast<double>(value);
    if (!std::isfinite(float_)) throw_not_finite();
  }

  term(pid p) noexcept : kind_(kind::pid), bits_(p.bits()) {}
  term(ref r) noexcept : kind_(kind::reference), aux_(r.node()), bits_(r.id()) {}

  // A binary holding the bytes of the string (as an Elixir string). Throws std::bad_alloc.
  term(std::string_view bytes);
  term(const char* bytes) : term(std::string_view(bytes)) {}
  term(const std::string& bytes) : term(std::string_view(bytes)) {}
  term(std::nullptr_t) = delete;

  // Returns the empty list [].
  static term nil() noexcept {
    term t;
    t.kind_ = kind::nil;
    t.bits_ = 0;
    return t;
  }

  // Returns a binary holding a copy of `bytes`. Throws std::bad_alloc.
  static term binary(std::span<const std::byte> bytes);
  static term binary(std::initializer_list<std::uint8_t> bytes);

  term(const term& other) noexcept : kind_(other.kind_), aux_(other.aux_), bits_(other.bits_) {
    if (holds_box()) box_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  // Leaves `other` as the atom 'undefined'.
  term(term&& other) noexcept : kind_(other.kind_), aux_(other.aux_), bits_(other.bits_) {
    other.kind_ = kind::atom;
    other.aux_ = 0;
    other.bits_ = atoms::undefined.index();
  }
  term& operator=(const term& other) noexcept {
    term copy(other);
    swap(copy);
    return *this;
  }
  term& operator=(term&& other) noexcept {
    term moved(std::move(other));
    swap(moved);
    return *this;
  }
  ~term() {
    if (holds_box() && box_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_box(kind_, box_);
  }

  // Exchanges the two values; never throws.
  void swap(term& other) noexcept {
    std::swap(kind_, other.kind_);
    std::swap(aux_, other.aux_);
    std::swap(bits_, other.bits_);
  }
  friend void swap(term& a, term& b) noexcept { a.swap(b); }

  // ---- What it is. None of these throw.

  enum kind kind() const noexcept { return kind_; }
  bool is_integer() const noexcept { return kind_ == kind::integer; }  // false for bignums, for now
  bool is_float() const noexcept { return kind_ == kind::float_; }
  bool is_number() const noexcept { return kind_ <= kind::float_; }
  bool is_atom() const noexcept { return kind_ == kind::atom; }
  bool is_atom(atom a) const noexcept { return kind_ == kind::atom && bits_ == a.index(); }
  bool is_reference() const noexcept { return kind_ == kind::reference; }
  bool is_pid() const noexcept { return kind_ == kind::pid; }
  bool is_tuple() const noexcept { return kind_ == kind::tuple; }
  bool is_map() const noexcept { return kind_ == kind::map; }
  bool is_nil() const noexcept { return kind_ == kind::nil; }
  bool is_cons() const noexcept { return kind_ == kind::list; }
  // Erlang's is_list/1: the empty list or a list cell (proper or not).
  bool is_list() const noexcept { return kind_ == kind::nil || kind_ == kind::list; }
  bool is_binary() const noexcept { return kind_ == kind::binary; }

  // ---- Reading it. Each returns the value on success and throws bad_term_access if the
  // term is another kind. Returned references and views live as long as this term.

  atom as_atom() const {
    if (!is_atom()) throw_wrong_kind("as_atom", kind::atom);
    return atom_at(bits_);
  }
  std::int64_t as_int() const {
    if (!is_integer()) throw_wrong_kind("as_int", kind::integer);
    return integer_;
  }
  // Floats only: an integer is not silently converted.
  double as_double() const {
    if (!is_float()) throw_wrong_kind("as_double", kind::float_);
    return float_;
  }
  pid as_pid() const {
    if (!is_pid()) throw_wrong_kind("as_pid", kind::pid);
    return pid::from_bits(bits_);
  }
  ref as_ref() const {
    if (!is_reference()) throw_wrong_kind("as_ref", kind::reference);
    return ref(aux_, bits_);
  }

  // A binary's bytes, as text or as bytes.
  std::string_view as_binary() const;
  std::span<const std::byte> as_bytes() const;
  // Erlang's byte_size/1.
  std::size_t byte_size() const { return as_binary().size(); }

  // Erlang's tuple_size/1.
  std::size_t tuple_size() const;
  // The element at 0-based position `i` (Erlang's element/2 counts from 1). Also throws
  // std::out_of_range if i >= tuple_size().
  const term& element(std::size_t i) const;
  std::span<const term> tuple_elements() const;

  // The head and tail of a list cell. The empty list has neither (bad_term_access, as
  // Erlang's hd([]) is badarg).
  const term& head() const;
  const term& tail() const;
  // Erlang's length/1: the number of elements of a proper list ([] has 0). Throws
  // bad_term_access for an improper list.
  std::size_t length() const;
  // The elements of a list, for range-for. [] gives an empty range. Reaching the tail of
  // an improper list throws bad_term_access (after yielding the elements before it).
  list_view list_elements() const;

  // Erlang's map_size/1.
  std::size_t map_size() const;
  // The value stored under `key`, or nullptr. Keys match exactly (=:=), as in Erlang
  // maps: the keys 1 and 1.0 are different.
  const term* find(const term& key) const;
  // The entries, sorted by key in Erlang's map key order: term order, except that all
  // integers come before all floats (#{2 => a, 1.5 => b}).
  std::span<const std::pair<term, term>> map_entries() const;

  // Returns how many terms share this term's heap block, like shared_ptr::use_count, or
  // 0 if it has none (numbers, atoms, pids, references, [] and empty tuples, maps and
  // binaries). For tests and diagnostics: while other threads copy the term the answer
  // may be stale as soon as it is returned.
  std::size_t use_count() const noexcept { return holds_box() ? box_->refs.load(std::memory_order_relaxed) : 0; }

  // ---- Comparing and printing.

  // Exact equality, Erlang's =:= (1 =:= 1.0 is false; so is 0.0 =:= -0.0, as in OTP 27).
  friend bool operator==(const term& a, const term& b) noexcept;
  // Erlang's term order; see compare().
  friend std::strong_ordering operator<=>(const term& a, const term& b) noexcept;
  // Arithmetic equality, Erlang's == : numbers compare by value (1 == 1.0), everywhere
  // inside tuples, lists and map values; map keys still match exactly.
  friend bool equal(const term& a, const term& b) noexcept;

  // Returns the term in Erlang syntax: {ok,[1,2|3]}, #{a => <<"Alice">>}, 'EXIT', 1.0e10.
  // Throws only std::bad_alloc.
  std::string to_string() const;

 private:
  friend struct detail::term_internals;

  static constexpr unsigned kBoxedKinds = 1u << unsigned(kind::tuple) | 1u << unsigned(kind::map) |
                                          1u << unsigned(kind::list) | 1u << unsigned(kind::binary);

  // True if this term owns a reference to a heap block. Empty tuples, maps and
  // binaries have no block (box_ is null), so they cost no allocation.
  bool holds_box() const noexcept { return (kBoxedKinds >> unsigned(kind_) & 1u) && box_ != nullptr; }

  static atom atom_at(std::uint64_t index) noexcept { return atom(std::uint32_t(index)); }
  static void free_box(enum kind k, detail::term_box* box) noexcept;
  [[noreturn]] static void throw_integer_too_large(std::uint64_t value);
  [[noreturn]] static void throw_not_finite();
  [[noreturn]] void throw_wrong_kind(const char* function, enum kind expected) const;

  enum kind kind_;
  std::uint32_t aux_ = 0;  // a reference's node; room for later kinds (e.g. a small binary's length)
  union {
    std::int64_t integer_;
    double float_;
    std::uint64_t bits_;  // atom index, pid bits, reference id
    detail::term_box* box_;
  };
};

static_assert(sizeof(term) == 16, "a term must stay two words");

using term_kind = enum term::kind;

bool equal(const term& a, const term& b) noexcept;

// Returns the kind's name as the error messages spell it: "integer", "float", "list", ...
std::string_view kind_name(term_kind k) noexcept;

// Erlang's total term order, as a strong order (consistent with ==):
//   number < atom < reference < pid < tuple < map < [] < list < binary
// Numbers compare by value (exactly, even beyond 2^53). Atoms compare by name, tuples
// by size then elements, maps by size, then their keys in map key order (all integers
// before all floats: #{2 => a} < #{1.5 => a}), then their values; lists element by
// element (a tail is compared as a term), binaries byte by byte. Terms that Erlang
// calls equal but are not exactly equal (they differ only in 1 vs 1.0 or 0.0 vs -0.0
// somewhere: [1] and [1.0]) are ordered by map key order, so [1] < [1.0]; any pair
// Erlang orders is ordered the same way here.
std::strong_ordering compare(const term& a, const term& b) noexcept;

// A forward range over a proper list's elements. It holds a copy of the list (so
// iterating a temporary, as in `for (auto& e : make_list().list_elements())`, is safe),
// and its iterators stay valid while any copy of the list lives. Not thread-safe to
// share one iterator; separate iterators over one list are fine.
class term::list_view {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = term;
    using difference_type = std::ptrdiff_t;
    using pointer = const term*;
    using reference = const term&;

    iterator() = default;
    reference operator*() const;
    pointer operator->() const { return &**this; }
    // Moves to the next element; throws bad_term_access at an improper tail.
    iterator& operator++();
    iterator operator++(int) {
      iterator before = *this;
      ++*this;
      return before;
    }
    friend bool operator==(const iterator&, const iterator&) = default;

   private:
    friend class list_view;
    explicit iterator(const detail::term_box* cell) : cell_(cell) {}
    const detail::term_box* cell_ = nullptr;  // the current list cell, or null at the end
  };

  iterator begin() const;
  iterator end() const { return iterator(); }

 private:
  friend class term;
  explicit list_view(term list) : list_(std::move(list)) {}
  term list_;  // [] or a list cell
};

inline term::list_view term::list_elements() const {
  if (!is_list()) throw_wrong_kind("list_elements", kind::list);
  return list_view(*this);
}

// ---- Building compound terms. Each throws std::bad_alloc if memory runs out.

namespace detail {
// Returns the tuple of the `size` terms at `elements`, moving them out.
term tuple_from_temporaries(term* elements, std::size_t size);
}  // namespace detail

// The tuple {elements...}.
term tuple(std::span<const term> elements);

// The tuple {args...}; each argument is converted to a term.
template <class... Args>
  requires(std::constructible_from<term, Args> && ...)
term tuple(Args&&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return tuple(std::span<const term>());
  } else {
    term elements[] = {term(std::forward<Args>(args))...};
    return detail::tuple_from_temporaries(elements, sizeof...(Args));
  }
}

// The proper list [elements...], or with `tail` the list [elements... | tail].
term list(std::initializer_list<term> elements, term tail = term::nil());
term list(std::span<const term> elements, term tail = term::nil());

// The list cell [head | tail].
term cons(term head, term tail);

// The map #{key => value, ...}. A key given twice keeps its last value, as in Erlang.
term map(std::initializer_list<std::pair<term, term>> entries);
term map(std::span<const std::pair<term, term>> entries);

// Writes t.to_string() to `out`; returns `out`.
std::ostream& operator<<(std::ostream& out, const term& t);

}  // namespace athanor

// Hashes consistently with == (exact equality): equal terms hash alike. Thread-safe.
template <>
struct std::hash<athanor::term> {
  std::size_t operator()(const athanor::term& t) const noexcept;
};

// Formats a term in Erlang syntax, as term::to_string() does.
template <>
struct fmt::formatter<athanor::term> : fmt::formatter<fmt::string_view> {
  template <class FormatContext>
  auto format(const athanor::term& t, FormatContext& ctx) const {
    std::string text = t.to_string();
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), ctx);
  }
};
