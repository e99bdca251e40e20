// Private to the term part: what the ETF codec, the parser and the integer functions need of a
// term's representation beyond the public API. Thread-safe as the terms passed in.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <span>
#include <utility>
#include <vector>

#include "athanor/term/ref.h"
#include "athanor/term/term.h"

#include "term/block_pool.h"

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

// The heap blocks behind boxed terms, after their term_box header (see the comment on
// term_internals below for what each kind keeps). A tuple is the header and `size` terms, a map the
// header and `size` key/value pairs.
struct cons_box : term_box {
  cons_box(term h, term t) noexcept : head(std::move(h)), tail(std::move(t)) {}
  term head;
  term tail;
};
struct binary_box : term_box {
  std::size_t byte_count;
  const char* data;
  term_box* owner;  // a sub-binary's: the block holding its bytes (counted); null in one that holds them
};
struct bignum_box : term_box {
  std::uint64_t negative;
};
struct fun_box : term_box {
  fun_info info;
};
struct ref_box : term_box {
  ref value;
};

// One allocation holding every box of a term built in one go: the ETF decoder's output.
// The boxes keep no counts of their own; a term pointing at any of them holds a reference
// to the block (term::boxed_ == 2, see shared_block_of in term.h). So a decoded message
// costs one malloc and one free whatever its shape, and no walk over its parts to free it;
// in exchange, a part kept alive keeps the whole message's memory. The boxes hold nothing
// outside the block (every child is in it or needs no block), which is what lets one free
// release it all. Not thread-safe: one builder per decode; the terms it made are as
// thread-safe as any once the builder is done.
//
// The builders write a new term into an uninitialised `slot` (inside the block, or the
// root term the caller keeps) and return where its contents go, also uninitialised: fill
// every one before the block is committed. The caller sizes the block first (the *_bytes
// functions); building more than it holds is a logic_error, never an overflow.
// Frees the memory of a block whose last reference is gone: operator new's, or a large shared
// block's back to the cache it came from (its header is marked kPooledBlockMark).
inline void free_block_memory(term_box* block) noexcept {
  if (block->size == kPooledBlockMark) pooled_free(block);
  else ::operator delete(block);
}

// Rounds a box's size up to the 8-byte alignment the next box needs.
constexpr std::size_t round_to_words(std::size_t n) noexcept { return (n + 7) & ~std::size_t(7); }

class shared_block {
 public:
  static constexpr std::size_t tuple_bytes(std::size_t arity) noexcept { return sizeof(term_box) + arity * sizeof(term); }
  static constexpr std::size_t cons_bytes = sizeof(cons_box);
  static constexpr std::size_t map_bytes(std::size_t entries) noexcept {
    return sizeof(term_box) + entries * sizeof(std::pair<term, term>);
  }
  static constexpr std::size_t binary_bytes(std::size_t size) noexcept { return round_to_words(sizeof(binary_box) + size); }
  static constexpr std::size_t bignum_bytes(std::size_t limbs) noexcept {
    return sizeof(bignum_box) + limbs * sizeof(std::uint64_t);
  }
  static constexpr std::size_t ref_bytes = round_to_words(sizeof(ref_box));
  static constexpr std::size_t fun_bytes(std::size_t encoding) noexcept { return round_to_words(sizeof(fun_box) + encoding); }

  // Allocates `capacity` bytes for boxes (nothing if 0). Throws std::length_error beyond
  // 32 GiB (a box's distance from the header must fit its 32-bit field), std::bad_alloc.
  explicit shared_block(std::size_t capacity);
  // Frees the block unless commit() handed it to the root.
  ~shared_block();
  shared_block(const shared_block&) = delete;
  shared_block& operator=(const shared_block&) = delete;

  // A tuple of `arity` (> 0) elements; returns them.
  term* tuple(term* slot, std::size_t arity);
  // A list of `cells` (> 0) cells, each cell's tail the next cell; returns the first head.
  // The next head is next_head(head); the last cell's tail, tail_of(its head).
  term* list(term* slot, std::size_t cells);
  static term* next_head(term* head) noexcept {
    return reinterpret_cast<term*>(reinterpret_cast<char*>(head) + sizeof(cons_box));
  }
  static term* tail_of(term* head) noexcept { return head + 1; }
  // A map of `entries` (> 0); returns them. Fill them, then call sort_map_entries().
  std::pair<term, term>* map(term* slot, std::size_t entries);
  // A binary (bits_in_last_byte 0) or a bitstring of `size` bytes (> 0) copied from `data`.
  void bits(term* slot, const std::byte* data, std::size_t size, unsigned bits_in_last_byte);
  // An integer: in place if it fits 64 bits (no room used), else a bignum (bignum_bytes).
  void integer(term* slot, bool negative, std::span<const std::uint64_t> limbs);
  // A reference: in place if compact (no room used), else boxed (ref_bytes).
  void reference(term* slot, const ref& r);
  // A fun (see make_local_fun; an exported fun has no encoding).
  void fun(term* slot, const fun_info& info, std::span<const std::byte> encoding);

  // The root term is complete: it now holds the block's only reference (and frees it when
  // the last copy of any part goes). Nothing may be built afterwards.
  void commit() noexcept;

 private:
  void* take(std::size_t bytes);
  // Makes the header of a box at `at` inside the block (its `refs`: its distance from base_).
  term_box* member_at(char* at) noexcept;
  term adopt(term_kind k, term_box* box) noexcept;

  char* base_ = nullptr;
  char* next_ = nullptr;
  char* end_ = nullptr;
};

// Everything that needs a term's representation: static functions only, as thread-safe as
// the terms passed in. Each heap block is a term_box header followed by its contents:
//   tuple:  header (size = arity), then `size` terms
//   list:   header, head, tail
//   map:    header (size = entries), then `size` key/value pairs sorted by key
//   binary: header (size = 0), byte count and data pointer, then the bytes; a sub-binary
//           (size = 1) has no bytes of its own and holds a reference to the block that does
//           (bitstrings are the same, with the bits used in the last byte in term::aux_)
//   bignum: header (size = limbs), the sign, then the limbs (least significant first)
//   fun:    header (size = encoded bytes), a fun_info, then a local fun's NEW_FUN_EXT bytes
//   ref:    header, an athanor::ref (references that are not compact)
struct term_internals {
  using entry = std::pair<term, term>;

  using cons_box = detail::cons_box;
  using binary_box = detail::binary_box;
  using bignum_box = detail::bignum_box;
  using fun_box = detail::fun_box;
  using ref_box = detail::ref_box;
  static_assert(sizeof(term_box) % alignof(term) == 0 && sizeof(term_box) % alignof(entry) == 0);

  static term* elements(term_box* box) noexcept { return reinterpret_cast<term*>(box + 1); }
  static entry* entries(term_box* box) noexcept { return reinterpret_cast<entry*>(box + 1); }
  static cons_box* cell(const term& t) noexcept { return static_cast<cons_box*>(t.box_); }
  static char* bytes(binary_box* box) noexcept { return reinterpret_cast<char*>(box + 1); }
  static std::uint64_t* limbs(bignum_box* box) noexcept { return reinterpret_cast<std::uint64_t*>(box + 1); }

  static term_kind kind(const term& t) noexcept { return t.kind_; }
  static term_box* box(const term& t) noexcept { return t.box_; }
  static std::int64_t integer(const term& t) noexcept { return t.integer_; }
  static double floating(const term& t) noexcept { return t.float_; }
  static std::uint64_t bits(const term& t) noexcept { return t.bits_; }
  static std::uint32_t aux(const term& t) noexcept { return t.aux_; }
  static atom atom_of(const term& t) noexcept { return term::atom_at(t.bits_); }
  static ref ref_of(const term& t) noexcept {
    return t.boxed_ ? static_cast<ref_box*>(t.box_)->value : ref(t.aux_, t.bits_);
  }

  // Returns a term of kind `k` owning the (new) block `box`, which may be null for an empty one.
  static term adopt(term_kind k, term_box* box, std::uint32_t aux = 0) noexcept {
    term t;
    t.kind_ = k;
    t.boxed_ = box != nullptr;
    t.aux_ = aux;
    t.box_ = box;
    return t;
  }
  // The same for a box inside a shared block, whose `refs` already holds its distance from it.
  static term adopt_shared(term_kind k, term_box* box, std::uint32_t aux = 0) noexcept {
    term t = adopt(k, box, aux);
    t.boxed_ = 2;
    return t;
  }

  // Returns a block with room for a header of type Box plus `extra` bytes; throws std::bad_alloc.
  template <class Box>
  static void* allocate(std::size_t extra) {
    return ::operator new(sizeof(Box) + extra);
  }

  // Returns a tuple whose elements are made by make(slot, i), which must construct a term
  // in `slot` and not throw. Throws std::length_error or std::bad_alloc.
  template <class Make>
  static term make_tuple(std::size_t size, Make make) {
    if (size == 0) return adopt(term_kind::tuple, nullptr);
    if (size > 0xFFFFFF) throw std::length_error("athanor::tuple: more than 16777215 elements (Erlang's limit)");
    auto* box = ::new (allocate<term_box>(size * sizeof(term))) term_box;
    box->size = std::uint32_t(size);
    term* out = elements(box);
    for (std::size_t i = 0; i < size; ++i) make(out + i, i);
    return adopt(term_kind::tuple, box);
  }

  // Returns a binary holding a copy of `size` bytes at `data`; throws std::bad_alloc.
  static term make_binary(const void* data, std::size_t size) {
    if (size == 0) return adopt(term_kind::binary, nullptr);
    auto* box = ::new (allocate<binary_box>(size)) binary_box;
    box->byte_count = size;
    box->data = bytes(box);
    box->owner = nullptr;
    std::memcpy(bytes(box), data, size);
    return adopt(term_kind::binary, box);
  }

  // Returns the bitstring of `bit_count` bits whose bytes are at `data` (ceil(bit_count / 8)
  // of them), clearing the unused low bits of the last byte.
  static term make_bitstring(const void* data, std::size_t bit_count) {
    const std::size_t size = (bit_count + 7) / 8;
    term t = make_binary(data, size);
    const unsigned used = unsigned(bit_count % 8);
    if (used != 0) {
      auto* box = static_cast<binary_box*>(t.box_);
      bytes(box)[size - 1] = char(static_cast<unsigned char>(bytes(box)[size - 1]) & (0xFF00u >> used));
      t.kind_ = term_kind::bitstring;
      t.aux_ = used;
    }
    return t;
  }

  // Returns the part of binary `t` of `size` bytes from `offset` (which fit), sharing its bytes.
  static term make_sub_binary(const term& t, std::size_t offset, std::size_t size) {
    if (size == 0) return adopt(term_kind::binary, nullptr);
    auto* whole = static_cast<binary_box*>(t.box_);
    if (offset == 0 && size == whole->byte_count) return t;
    // The bytes' holder: the whole's own holder if it is a part too, else the whole's
    // block (the whole itself, or the shared block it lies in).
    term_box* owner = whole->owner != nullptr ? whole->owner : t.counted_block();
    auto* box = ::new (allocate<binary_box>(0)) binary_box;
    box->size = 1;
    box->byte_count = size;
    box->data = whole->data + offset;
    box->owner = owner;
    owner->refs.fetch_add(1, std::memory_order_relaxed);
    return adopt(term_kind::binary, box);
  }

  static term make_integer(bool negative, std::span<const std::uint64_t> digits) {
    return build_integer(negative, digits, [](std::size_t bytes) {
      return adopt(term_kind::bignum, ::new (::operator new(bytes)) bignum_box);
    });
  }
  // The integer -1^negative * digits: in place if it fits 64 bits, else a bignum in the block
  // that box(bytes) returns, as a term of a constructed header of that many bytes.
  template <class Box>
  static term build_integer(bool negative, std::span<const std::uint64_t> digits, Box box) {
    std::size_t n = digits.size();
    while (n > 0 && digits[n - 1] == 0) --n;
    if (n == 0) return term(0);
    if (n == 1) {
      constexpr std::uint64_t kMax = std::uint64_t(std::numeric_limits<std::int64_t>::max());
      if (!negative && digits[0] <= kMax) return term(std::int64_t(digits[0]));
      if (negative && digits[0] <= kMax + 1) return term(std::int64_t(std::uint64_t(0) - digits[0]));
    }
    if (n > 0xFFFFFFFFu) throw std::length_error("athanor::term: integer too large");
    term t = box(sizeof(bignum_box) + n * sizeof(std::uint64_t));
    auto* b = static_cast<bignum_box*>(t.box_);
    b->size = std::uint32_t(n);
    b->negative = negative;
    std::memcpy(limbs(b), digits.data(), n * sizeof(std::uint64_t));
    return t;
  }

  static detail::bignum_view bignum_of(const term& t) noexcept {
    auto* box = static_cast<bignum_box*>(t.box_);
    return {box->negative != 0, {limbs(box), box->size}};
  }

  static term make_fun(const fun_info& info, std::span<const std::byte> encoding) {
    if (encoding.size() > 0xFFFFFFFFu) throw std::length_error("athanor::term: fun too large");
    auto* box = ::new (allocate<fun_box>(encoding.size())) fun_box;
    box->size = std::uint32_t(encoding.size());
    box->info = info;
    if (!encoding.empty()) std::memcpy(static_cast<void*>(box + 1), encoding.data(), encoding.size());
    return adopt(term_kind::fun, box);
  }
  static const fun_info& fun_of(const term& t) noexcept { return static_cast<fun_box*>(t.box_)->info; }
  static std::span<const std::byte> fun_bytes(const term& t) noexcept {
    auto* box = static_cast<fun_box*>(t.box_);
    return {reinterpret_cast<const std::byte*>(box + 1), box->size};
  }

  static term make_wide_ref(const ref& r) {
    auto* box = ::new (allocate<ref_box>(0)) ref_box;
    box->value = r;
    term t = adopt(term_kind::reference, box);
    return t;
  }

  // Returns a map of the entries in `sorted` (unique keys, in map key order), moving them.
  static term make_map(std::vector<entry>& sorted) {
    if (sorted.empty()) return adopt(term_kind::map, nullptr);
    if (sorted.size() > 0x7FFFFFFF) throw std::length_error("athanor::map: more than 2^31 - 1 entries");
    auto* box = ::new (allocate<term_box>(sorted.size() * sizeof(entry))) term_box;
    box->size = std::uint32_t(sorted.size());
    entry* out = entries(box);
    for (std::size_t i = 0; i < sorted.size(); ++i) ::new (out + i) entry(std::move(sorted[i]));
    return adopt(term_kind::map, box);
  }

  // A binary's or bitstring's bytes.
  static std::string_view binary_view(const term& t) noexcept {
    auto* box = static_cast<binary_box*>(t.box_);
    if (box == nullptr) return {};
    return {box->data, box->byte_count};
  }
  static std::size_t bit_count(const term& t) noexcept {
    const std::size_t bytes = binary_view(t).size();
    return t.kind_ == term_kind::bitstring ? (bytes - 1) * 8 + t.aux_ : bytes * 8;
  }
  static std::span<const term> tuple_view(const term& t) noexcept {
    if (t.box_ == nullptr) return {};
    return {elements(t.box_), t.box_->size};
  }
  static std::span<const entry> map_view(const term& t) noexcept {
    if (t.box_ == nullptr) return {};
    return {entries(t.box_), t.box_->size};
  }

  // A dead block's children, as one array of term slots: a tuple's elements, a map's
  // keys and values alternately, a list cell's head and tail.
  static std::size_t child_count(term_kind k, term_box* box) noexcept {
    switch (k) {
      case term_kind::tuple: return box->size;
      case term_kind::map: return std::size_t(box->size) * 2;
      case term_kind::list: return 2;
      default: return 0;
    }
  }
  static term& child(term_kind k, term_box* box, std::size_t i) noexcept {
    switch (k) {
      case term_kind::tuple: return elements(box)[i];
      case term_kind::map: return i % 2 == 0 ? entries(box)[i / 2].first : entries(box)[i / 2].second;
      default: return i == 0 ? static_cast<cons_box*>(box)->head : static_cast<cons_box*>(box)->tail;
    }
  }

  // Releases what a dead leaf block holds besides terms: a sub-binary's reference to the
  // block with its bytes (which holds nothing itself, so this never goes deeper).
  static void release_leaf(term_kind k, term_box* box) noexcept {
    if (k != term_kind::binary && k != term_kind::bitstring) return;
    term_box* owner = static_cast<binary_box*>(box)->owner;
    if (owner != nullptr && drop_reference(owner)) free_block_memory(owner);
  }

  // Frees `box`, whose last reference is gone, and every block only it kept alive.
  //
  // Without recursion or allocation, so that no nesting (a million-long list, or a list
  // nested a million deep in its heads, as a decoded message might be) can overflow the
  // stack, and freeing never throws. It walks the dead blocks depth first and keeps the
  // way back in the blocks themselves (Deutsch-Schorr-Waite pointer reversal): on going
  // down through child slot i, it stores i in the block's reference count (unused once
  // the block is dead) and the way further up in slot i. The slots' destructors never
  // run: the walk releases the reference each slot held as it passes it.
  static void free_box(term_kind k, term_box* box) noexcept {
    term_box* current = box;
    term_kind current_kind = k;
    term_box* up = nullptr;  // the dead block `current` was reached from, if any
    term_kind up_kind = term_kind::nil;
    std::size_t i = 0;  // the next child slot of `current` to release
    for (;;) {
      bool went_down = false;
      const std::size_t n = child_count(current_kind, current);
      for (; i < n; ++i) {
        term& slot = child(current_kind, current, i);
        if (!slot.holds_box()) continue;
        if (slot.boxed_ == 2) {  // a part of a shared block, which holds nothing outside itself
          term_box* shared = detail::shared_block_of(slot.box_);
          if (drop_reference(shared)) free_block_memory(shared);
          continue;
        }
        if (!drop_reference(slot.box_)) continue;
        // That was the child's last reference: free it (and its children) first.
        term_box* down = slot.box_;
        const term_kind down_kind = slot.kind_;
        current->refs.store(std::uint32_t(i), std::memory_order_relaxed);
        slot.box_ = up;
        slot.kind_ = up_kind;
        up = current;
        up_kind = current_kind;
        current = down;
        current_kind = down_kind;
        i = 0;
        went_down = true;
        break;
      }
      if (went_down) continue;
      release_leaf(current_kind, current);
      ::operator delete(current);
      if (up == nullptr) return;
      // Back up to the parent, taking the way further up out of the slot we came through.
      current = up;
      current_kind = up_kind;
      i = current->refs.load(std::memory_order_relaxed);
      const term& slot = child(current_kind, current, i);
      up = slot.box_;
      up_kind = slot.kind_;
      ++i;
    }
  }
};

// Sorts the `n` entries of a map that shared_block::map() made into map key order, unless
// they are in it already (as ETF from Athanor or from small Erlang maps is). Returns false
// if two keys are equal (then the order is unspecified).
bool sort_map_entries(std::pair<term, term>* entries, std::size_t n);

// Returns a local fun (NEW_FUN_EXT) described by `info`, keeping `encoding` (the whole
// NEW_FUN_EXT, tag included) to write back verbatim. Throws std::bad_alloc.
term make_local_fun(const fun_info& info, std::span<const std::byte> encoding);

// Returns a local fun's NEW_FUN_EXT bytes (tag included); empty for an exported fun.
std::span<const std::byte> fun_encoding(const term& t) noexcept;

}  // namespace athanor::detail
