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
// A term is 16 bytes. Integers that fit 64 bits, floats, atoms, pids, ports and
// references of this node are stored in it; tuples, lists, maps, binaries, integers
// beyond 64 bits (bignums), funs and wider references live in an immutable heap block
// shared by every copy and freed with the last one (an atomic reference count, because
// terms are sent between threads). A binary's bytes are shared the same way, so copying
// a large binary, or taking a part of one (sub_binary()), never copies its bytes. Nothing
// a term refers to can change, so sharing needs no locks. A term decoded from ETF is built
// in one block whose parts share a single count (see etf.h). Freeing never recurses,
// however deeply a term nests. Comparing, hashing
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
// (<<"Alice">>, as "~tp" does) rather than as bytes; to_string_w() prints exactly as
// "~w" does. athanor::parse_term (athanor/term/parse.h) reads either form back. Map keys print in term order,
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
#include "athanor/term/port.h"
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

// Drops one reference to `box`; returns true if it was the last (the caller frees the block).
// A count of 1 is ours alone: no other reference exists to copy from, so no thread can raise it,
// and the block is dead without an atomic read-modify-write. Freshly built and decoded terms
// are all like that, which makes freeing them about a third cheaper.
inline bool drop_reference(term_box* box) noexcept {
  return box->refs.load(std::memory_order_acquire) == 1 || box->refs.fetch_sub(1, std::memory_order_acq_rel) == 1;
}

// A box inside a shared block (see detail::shared_block in src/term/internal.h: the ETF decoder
// puts a whole message in one allocation) keeps no count of its own: its `refs` field holds its
// distance from the block's header in 8-byte units, and references to it count in the header.
inline term_box* shared_block_of(term_box* member) noexcept {
  return reinterpret_cast<term_box*>(reinterpret_cast<char*>(member) -
                                     std::size_t(member->refs.load(std::memory_order_relaxed)) * 8);
}

}  // namespace detail

// What a fun is, as far as Athanor can tell: funs arrive from Erlang nodes (EXPORT_EXT,
// NEW_FUN_EXT) and are kept as opaque values that compare, print and re-encode as in
// Erlang, but cannot be called. A plain value.
struct fun_info {
  bool exported = false;      // fun Module:Function/Arity; otherwise a local fun (a closure)
  atom module;
  atom function;              // exported funs only ('undefined' for local funs)
  std::uint32_t arity = 0;
  std::int64_t old_index = 0;  // local funs only: what #Fun<Module.OldIndex.OldUniq> prints
  std::int64_t old_uniq = 0;
  std::uint32_t free_count = 0;  // local funs only: captured variables (kept encoded)
};

class term {
 public:
  // What a term is. Declared in Erlang's term order (number < atom < reference < fun <
  // port < pid < tuple < map < nil < list < bitstring). As in Erlang an integer is one
  // type whatever its size: `integer` and `bignum` are two representations of it (a value
  // is a bignum exactly when it does not fit 64 bits), and is_integer() is true for both.
  // Likewise `binary` and `bitstring` are both bitstrings, and is_bitstring() is true for
  // both. Inside declarations the accessor kind() hides this type's name, so spell the
  // type athanor::term_kind there; term::kind::atom etc. work everywhere.
  enum class kind : std::uint8_t {
    integer,    // an integer that fits a signed 64-bit integer
    bignum,     // an integer that does not (arbitrary precision)
    float_,     // a finite double
    atom,
    reference,
    fun,        // an opaque fun from an Erlang node (see fun_info)
    port,       // an Erlang port's identity (port_id)
    pid,
    tuple,
    map,        // keys are unique and kept sorted in map key order (see map_entries())
    nil,        // the empty list []
    list,       // a non-empty list cell [Head | Tail]; the tail may be any term (improper list)
    binary,     // a sequence of bytes
    bitstring,  // a sequence of bits whose length is not a multiple of 8
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

  // An integer. An unsigned value above INT64_MAX becomes a bignum (which may throw
  // std::bad_alloc); every other value is stored in place.
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  term(T value) : kind_(kind::integer) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (value > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
        integer_ = 0;
        *this = from_large_unsigned(value);
        return;
      }
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
  term(port_id p) noexcept : kind_(kind::port), aux_(p.node()), bits_(p.number()) {}
  // A reference. A compact one (see ref::is_compact(), every local one) is stored in
  // place; others take a heap block and may throw std::bad_alloc.
  term(const ref& r) : kind_(kind::reference) {
    if (r.is_compact()) {
      aux_ = r.node();
      bits_ = r.id();
    } else {
      bits_ = 0;
      *this = from_wide_ref(r);
    }
  }

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
  // Returns the bitstring of the first `bit_count` bits of `bytes` (each byte's most
  // significant bit first, as Erlang's <<5, 1:3>>); the unused low bits of the last byte
  // are cleared. A bit count that is a multiple of 8 gives a binary. Throws
  // std::invalid_argument if `bytes` is not exactly ceil(bit_count / 8) long, and
  // std::bad_alloc.
  static term bitstring(std::span<const std::byte> bytes, std::size_t bit_count);
  // Returns the exported fun `fun Module:Function/Arity`. Throws std::invalid_argument for an
  // arity above 255 (Erlang's limit), std::bad_alloc.
  static term export_fun(atom module, atom function, std::uint32_t arity);

  term(const term& other) noexcept
      : kind_(other.kind_), boxed_(other.boxed_), aux_(other.aux_), bits_(other.bits_) {
    if (holds_box()) counted_block()->refs.fetch_add(1, std::memory_order_relaxed);
  }
  // Leaves `other` as the atom 'undefined'.
  term(term&& other) noexcept : kind_(other.kind_), boxed_(other.boxed_), aux_(other.aux_), bits_(other.bits_) {
    other.kind_ = kind::atom;
    other.boxed_ = 0;
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
    if (holds_box()) {
      detail::term_box* counted = counted_block();
      if (detail::drop_reference(counted)) free_block(kind_, boxed_, counted);
    }
  }

  // Exchanges the two values; never throws.
  void swap(term& other) noexcept {
    std::swap(kind_, other.kind_);
    std::swap(boxed_, other.boxed_);
    std::swap(aux_, other.aux_);
    std::swap(bits_, other.bits_);
  }
  friend void swap(term& a, term& b) noexcept { a.swap(b); }

  // ---- What it is. None of these throw.

  enum kind kind() const noexcept { return kind_; }
  // Erlang's is_integer/1: true for every integer, whatever its size.
  bool is_integer() const noexcept { return kind_ <= kind::bignum; }
  // True for an integer that fits 64 signed bits (as_int() will not throw).
  bool is_int64() const noexcept { return kind_ == kind::integer; }
  bool is_bignum() const noexcept { return kind_ == kind::bignum; }
  bool is_float() const noexcept { return kind_ == kind::float_; }
  bool is_number() const noexcept { return kind_ <= kind::float_; }
  bool is_atom() const noexcept { return kind_ == kind::atom; }
  bool is_atom(atom a) const noexcept { return kind_ == kind::atom && bits_ == a.index(); }
  bool is_reference() const noexcept { return kind_ == kind::reference; }
  bool is_fun() const noexcept { return kind_ == kind::fun; }
  bool is_port() const noexcept { return kind_ == kind::port; }
  bool is_pid() const noexcept { return kind_ == kind::pid; }
  bool is_tuple() const noexcept { return kind_ == kind::tuple; }
  bool is_map() const noexcept { return kind_ == kind::map; }
  bool is_nil() const noexcept { return kind_ == kind::nil; }
  bool is_cons() const noexcept { return kind_ == kind::list; }
  // Erlang's is_list/1: the empty list or a list cell (proper or not).
  bool is_list() const noexcept { return kind_ == kind::nil || kind_ == kind::list; }
  // Erlang's is_binary/1: a whole number of bytes.
  bool is_binary() const noexcept { return kind_ == kind::binary; }
  // Erlang's is_bitstring/1: any binary or bitstring.
  bool is_bitstring() const noexcept { return kind_ >= kind::binary; }

  // ---- Reading it. Each returns the value on success and throws bad_term_access if the
  // term is another kind. Returned references and views live as long as this term.

  atom as_atom() const {
    if (!is_atom()) throw_wrong_kind("as_atom", kind::atom);
    return atom_at(bits_);
  }
  // An integer that fits 64 bits; a bignum throws std::out_of_range (see is_int64(); the
  // functions in athanor/term/integer.h handle every integer).
  std::int64_t as_int() const {
    if (kind_ != kind::integer) throw_not_int64();
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
    if (boxed_) return boxed_ref();
    return ref(aux_, bits_);
  }
  port_id as_port() const {
    if (!is_port()) throw_wrong_kind("as_port", kind::port);
    return port_id(aux_, bits_);
  }
  // What a fun is (see fun_info).
  fun_info as_fun() const;

  // A binary's bytes, as text or as bytes. (A bitstring throws bad_term_access: use
  // bitstring_bytes().)
  std::string_view as_binary() const;
  std::span<const std::byte> as_bytes() const;
  // A binary's or bitstring's bytes, the last one partly used by a bitstring (its unused low
  // bits are 0).
  std::span<const std::byte> bitstring_bytes() const;
  // Erlang's byte_size/1 (a bitstring's partial last byte counts) and bit_size/1, for
  // binaries and bitstrings.
  std::size_t byte_size() const { return bitstring_bytes().size(); }
  std::size_t bit_size() const;
  // Erlang's binary_part/3: the `size` bytes of a binary from `offset`, sharing this
  // binary's bytes (no copy; the bytes live as long as any binary that uses them). Throws
  // bad_term_access if this is not a binary, std::out_of_range if the part is outside it.
  term sub_binary(std::size_t offset, std::size_t size) const;

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
  // 0 if it has none (64-bit integers, floats, atoms, pids, ports, compact references, []
  // and empty tuples, maps and binaries). A sub-binary has its own block. For tests and
  // diagnostics: while other threads copy the term the answer may be stale as soon as it
  // is returned.
  // A term decoded from ETF shares one block with every part of the same message, so its
  // parts all report the block's count.
  std::size_t use_count() const noexcept {
    return holds_box() ? counted_block()->refs.load(std::memory_order_relaxed) : 0;
  }

  // Returns a deep copy of this term that shares no heap block with any other term: all of
  // it in one new block. For keeping a small part of a large decoded message (whose parts
  // share the message's one block, see etf.h) without keeping the message alive; otherwise
  // a copy (the copy constructor) is what you want. Never recurses. Throws std::bad_alloc.
  term unshared() const;

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
  // Returns the term exactly as Erlang's io:format("~w", [T]) prints it: binaries as bytes
  // (<<65,108>>), atoms outside Latin-1 with \x{...} escapes. Throws only std::bad_alloc.
  std::string to_string_w() const;

 private:
  friend struct detail::term_internals;

  // True if this term owns a reference to a heap block. Empty tuples, maps and
  // binaries have no block (box_ is null), so they cost no allocation.
  bool holds_box() const noexcept { return boxed_ != 0; }
  // The block whose count this term's reference is in: its own box, or the shared block
  // its box lies in.
  detail::term_box* counted_block() const noexcept { return boxed_ == 1 ? box_ : detail::shared_block_of(box_); }

  static atom atom_at(std::uint64_t index) noexcept { return atom(std::uint32_t(index)); }
  // Frees `counted` (see counted_block()), whose last reference is gone.
  static void free_block(enum kind k, std::uint8_t boxed, detail::term_box* counted) noexcept;
  static term from_large_unsigned(std::uint64_t value);
  static term from_wide_ref(const ref& r);
  ref boxed_ref() const noexcept;
  [[noreturn]] void throw_not_int64() const;
  [[noreturn]] static void throw_not_finite();
  [[noreturn]] void throw_wrong_kind(const char* function, enum kind expected) const;

  enum kind kind_;
  // 0: box_ is not used. 1: box_ is a heap block this term holds a reference to. 2: box_
  // lies inside a shared block, and this term holds a reference to that block.
  std::uint8_t boxed_ = 0;
  std::uint32_t aux_ = 0;   // a reference's or port's node; a bitstring's bits in its last byte
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
//   number < atom < reference < fun < port < pid < tuple < map < [] < list < bitstring
// Numbers compare by value (exactly, even beyond 2^53 and for bignums against floats).
// Funs: local funs before exported ones; exported ones by module, function, arity; local
// ones by module, old index, old uniq, then their encoding. Atoms compare by name, tuples
// by size then elements, maps by size, then their keys in map key order (all integers
// before all floats: #{2 => a} < #{1.5 => a}), then their values; lists element by
// element (a tail is compared as a term), bitstrings bit by bit. Terms that Erlang
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
