#include "athanor/term/atom.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <ostream>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace athanor {

std::int32_t detail::next_code_point(std::string_view text, std::size_t& pos) noexcept {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  if (pos >= text.size()) return -1;
  const unsigned char lead = byte(pos);
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  int length;
  std::int32_t code;
  std::int32_t smallest;  // below this the encoding is overlong
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code = lead & 0x1F, smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code = lead & 0x0F, smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code = lead & 0x07, smallest = 0x10000;
  } else {
    return -1;  // a continuation byte or 0xF8..0xFF cannot start a code point
  }
  if (text.size() - pos < std::size_t(length)) return -1;
  for (int i = 1; i < length; ++i) {
    const unsigned char next = byte(pos + i);
    if ((next & 0xC0) != 0x80) return -1;
    code = (code << 6) | (next & 0x3F);
  }
  if (code < smallest || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return -1;
  pos += length;
  return code;
}

namespace {

// Returns normally if `name` may be an atom's name; throws std::invalid_argument otherwise.
void check_name(std::string_view name) {
  if (name.size() > atom::kMaxNameBytes) {
    throw std::invalid_argument(fmt::format("athanor::atom: a name may have at most {} bytes; got {} bytes",
                                            atom::kMaxNameBytes, name.size()));
  }
  std::size_t ascii = 0;  // ASCII is valid UTF-8 as it stands; most names are all ASCII
  while (ascii < name.size() && static_cast<unsigned char>(name[ascii]) < 0x80) ++ascii;
  for (std::size_t pos = ascii; pos < name.size();) {
    if (detail::next_code_point(name, pos) < 0) {
      throw std::invalid_argument(
          fmt::format("athanor::atom: a name must be valid UTF-8; byte {} of the name is not", pos));
    }
  }
}

// The intern table. Thread-safe: lookups are lock-free, creation takes `mutex_`.
//
// Two structures, both append-only so that a reader never sees memory freed under it:
//  * names: a two-level array, index -> pointer to [length byte][name bytes]. The top
//    level is fixed (kMaxAtoms / kChunkSize pointers), chunks are allocated as needed
//    and never move, so an index stays valid without locks.
//  * slots: an open-addressed hash table (linear probing) of 32-bit atomic slots,
//    each 0 (empty) or (11-bit hash tag << 21 | index + 1). The tag lets a probe skip
//    most non-matching names without touching their bytes. When it passes half full a
//    larger copy is published; old copies are kept (never freed), so a reader still
//    probing one is safe, and at worst misses an atom created after it started, which
//    the creating path then finds again under the lock.
class atom_table {
 public:
  atom_table() {
    auto first = std::make_unique<slot_array>(kInitialSlots);
    slots_.store(first.get(), std::memory_order_relaxed);
    slot_arrays_.push_back(std::move(first));
    for (std::string_view name : detail::kWellKnownAtomNames) intern(name);
  }

  // Returns the index of `name`, or -1 if it is not interned. Lock-free.
  std::int64_t find(std::string_view name) const noexcept { return find(name, hash_of(name)); }

  std::int64_t find(std::string_view name, std::uint64_t hash) const noexcept {
    const slot_array* slots = slots_.load(std::memory_order_acquire);
    const std::uint32_t tag = tag_of(hash);
    for (std::size_t i = hash & slots->mask;; i = (i + 1) & slots->mask) {
      const std::uint32_t slot = slots->slots[i].load(std::memory_order_acquire);
      if (slot == 0) return -1;
      if (slot >> kSlotIndexBits != tag) continue;
      const std::uint32_t index = (slot & kSlotIndexMask) - 1;
      if (name_of(index) == name) return index;
    }
  }

  // Returns the index of `name`, interning it if needed. Existing atoms take the lock-free
  // path and skip validation (they were valid when made). Throws std::invalid_argument
  // (see check_name), atom_table_full, or std::bad_alloc, leaving the table unchanged.
  std::uint32_t intern(std::string_view name) {
    const std::uint64_t hash = hash_of(name);
    const std::uint32_t count_before = count_.load(std::memory_order_acquire);
    if (std::int64_t found = find(name, hash); found >= 0) return std::uint32_t(found);
    check_name(name);

    std::lock_guard lock(mutex_);
    // Another thread may have created it since the lock-free probe. Atoms are only made
    // under this lock, so if the count has not moved, nothing was, and the probe stands.
    const std::uint32_t index = count_.load(std::memory_order_relaxed);
    if (index != count_before) {
      if (std::int64_t found = find(name, hash); found >= 0) return std::uint32_t(found);
    }
    if (index >= atom::kMaxAtoms) {
      throw atom_table_full(fmt::format(
          "athanor::atom: cannot create atom '{}': the atom table is full ({} atoms). Atoms are never "
          "freed; do not make them from unbounded input (use atom::existing) (Erlang: system_limit)",
          name, atom::kMaxAtoms));
    }
    // Everything that can throw comes first, so a failure leaves no trace.
    if (std::size_t(index + 1) * 2 > slots_.load(std::memory_order_relaxed)->size()) grow();
    std::atomic<const char*>& entry = entry_for(index);
    const char* stored = store_name(name);
    entry.store(stored, std::memory_order_release);
    insert(*slots_.load(std::memory_order_relaxed), hash, index);
    count_.store(index + 1, std::memory_order_release);
    return index;
  }

  // Returns the name of an existing atom's index.
  std::string_view name_of(std::uint32_t index) const noexcept {
    const std::atomic<const char*>* chunk = chunks_[index >> kChunkBits].load(std::memory_order_acquire);
    const char* entry = chunk[index & (kChunkSize - 1)].load(std::memory_order_acquire);
    return {entry + 1, static_cast<unsigned char>(entry[0])};
  }

  std::uint32_t count() const noexcept { return count_.load(std::memory_order_acquire); }

 private:
  static constexpr int kChunkBits = 12;
  static constexpr std::uint32_t kChunkSize = 1u << kChunkBits;
  static constexpr std::uint32_t kChunkCount = atom::kMaxAtoms / kChunkSize;
  static constexpr int kSlotIndexBits = 21;  // holds index + 1 <= kMaxAtoms
  static constexpr std::uint32_t kSlotIndexMask = (1u << kSlotIndexBits) - 1;
  static constexpr std::size_t kInitialSlots = 4096;
  static constexpr std::size_t kNameBlockSize = 64 * 1024;
  static_assert(atom::kMaxAtoms <= kSlotIndexMask);
  static_assert(atom::kMaxAtoms % kChunkSize == 0);

  struct slot_array {
    explicit slot_array(std::size_t size)
        : mask(size - 1), storage(new std::atomic<std::uint32_t>[size]), slots(storage.get()) {}
    std::size_t size() const { return mask + 1; }
    std::size_t mask;
    std::unique_ptr<std::atomic<std::uint32_t>[]> storage;  // value-initialised: all empty
    std::atomic<std::uint32_t>* slots;                     // storage.get(), for probing
  };

  // Eight bytes at a time (names are short, and decoding looks up every atom it reads): each
  // word is mixed in by multiply-xorshift, the length too (so "a" and "a\0" differ), then a
  // finaliser so that the low bits (the probe start) and the high bits (the tag) both depend
  // on every byte.
  static std::uint64_t hash_of(std::string_view name) noexcept {
    constexpr std::uint64_t k = 0x9E3779B97F4A7C15ull;
    std::uint64_t h = 0xcbf29ce484222325ull ^ (name.size() * k);
    const char* p = name.data();
    std::size_t left = name.size();
    for (; left >= 8; p += 8, left -= 8) {
      std::uint64_t word;
      std::memcpy(&word, p, 8);
      h = (h ^ word) * k;
      h ^= h >> 29;
    }
    if (left > 0) {
      std::uint64_t word = 0;
      std::memcpy(&word, p, left);
      h = (h ^ word) * k;
      h ^= h >> 29;
    }
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
  }
  // The top 11 bits of the hash (the probe start uses the low bits).
  static std::uint32_t tag_of(std::uint64_t hash) noexcept {
    return std::uint32_t(hash >> (64 - (32 - kSlotIndexBits)));
  }

  static void insert(slot_array& slots, std::uint64_t hash, std::uint32_t index) noexcept {
    std::size_t i = hash & slots.mask;
    while (slots.slots[i].load(std::memory_order_relaxed) != 0) i = (i + 1) & slots.mask;
    slots.slots[i].store(tag_of(hash) << kSlotIndexBits | (index + 1), std::memory_order_release);
  }

  // Publishes a slot array twice the size. Requires mutex_.
  void grow() {
    const slot_array& old = *slots_.load(std::memory_order_relaxed);
    auto bigger = std::make_unique<slot_array>(old.size() * 2);
    const std::uint32_t n = count_.load(std::memory_order_relaxed);
    for (std::uint32_t index = 0; index < n; ++index) insert(*bigger, hash_of(name_of(index)), index);
    slot_arrays_.reserve(slot_arrays_.size() + 1);
    slots_.store(bigger.get(), std::memory_order_release);
    slot_arrays_.push_back(std::move(bigger));
  }

  // Returns the (empty) name entry for `index`, allocating its chunk if needed. Requires mutex_.
  std::atomic<const char*>& entry_for(std::uint32_t index) {
    std::atomic<const char*>* chunk = chunks_[index >> kChunkBits].load(std::memory_order_relaxed);
    if (chunk == nullptr) {
      chunk_storage_.reserve(chunk_storage_.size() + 1);
      chunk_storage_.emplace_back(new std::atomic<const char*>[kChunkSize]);
      chunk = chunk_storage_.back().get();
      chunks_[index >> kChunkBits].store(chunk, std::memory_order_release);
    }
    return chunk[index & (kChunkSize - 1)];
  }

  // Copies `name` into the name arena as [length byte][bytes]; returns where. Requires mutex_.
  const char* store_name(std::string_view name) {
    const std::size_t needed = name.size() + 1;
    if (block_left_ < needed) {
      name_blocks_.reserve(name_blocks_.size() + 1);
      name_blocks_.emplace_back(new char[kNameBlockSize]);
      block_next_ = name_blocks_.back().get();
      block_left_ = kNameBlockSize;
    }
    char* entry = block_next_;
    entry[0] = static_cast<char>(name.size());
    name.copy(entry + 1, name.size());
    block_next_ += needed;
    block_left_ -= needed;
    return entry;
  }

  std::atomic<slot_array*> slots_{nullptr};
  std::atomic<std::atomic<const char*>*> chunks_[kChunkCount] = {};
  std::atomic<std::uint32_t> count_{0};

  std::mutex mutex_;  // serialises creation; guards everything below
  std::vector<std::unique_ptr<slot_array>> slot_arrays_;  // every array ever published
  std::vector<std::unique_ptr<std::atomic<const char*>[]>> chunk_storage_;
  std::vector<std::unique_ptr<char[]>> name_blocks_;
  char* block_next_ = nullptr;
  std::size_t block_left_ = 0;
};

// The one table. Built on first use (so atoms work during static initialisation, in
// any order), and deliberately never destroyed: atoms stored in other static objects
// must stay readable while those objects are destroyed at exit.
atom_table& table() {
  static atom_table* const instance = new atom_table;
  return *instance;
}

// Returns true if Erlang must quote `name` to read it back as an atom. This follows
// io_lib:quote_atom/2: unquoted atoms start with a lowercase Latin-1 letter, continue
// with Latin-1 letters, digits, '_' or '@', and are not reserved words.
bool needs_quotes(std::string_view name) {
  static constexpr std::string_view kReservedWords[] = {
      "after", "and",   "andalso", "band", "begin", "bnot",   "bor",     "bsl", "bsr", "bxor",
      "case",  "catch", "cond",    "div",  "end",   "fun",    "if",      "let", "not", "of",
      "or",    "orelse", "receive", "rem", "try",   "when",   "xor"};
  for (std::string_view word : kReservedWords) {
    if (name == word) return true;
  }
  auto is_lower = [](std::int32_t c) { return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7); };
  auto is_upper = [](std::int32_t c) { return (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7); };
  std::size_t pos = 0;
  if (!is_lower(detail::next_code_point(name, pos))) return true;  // also the empty name
  while (pos < name.size()) {
    const std::int32_t c = detail::next_code_point(name, pos);
    if (!is_lower(c) && !is_upper(c) && !(c >= '0' && c <= '9') && c != '_' && c != '@') return true;
  }
  return false;
}

}  // namespace

atom::atom(std::string_view name) : index_(table().intern(name)) {}

std::optional<atom> atom::existing(std::string_view name) noexcept {
  if (name.size() > kMaxNameBytes) return std::nullopt;  // cannot exist; skip hashing it
  const std::int64_t found = table().find(name);
  if (found < 0) return std::nullopt;
  return atom(std::uint32_t(found));
}

std::size_t atom::count() noexcept { return table().count(); }

std::string_view atom::name() const noexcept { return table().name_of(index_); }

std::string atom::to_string() const {
  const std::string_view text = name();
  if (!needs_quotes(text)) return std::string(text);
  // Escapes as io_lib:write_string/2 does for a quoted atom (the ~tw form: characters
  // from U+00A0 up are written as themselves, in UTF-8).
  std::string out = "'";
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t start = pos;
    const std::int32_t c = detail::next_code_point(text, pos);
    switch (c) {
      case '\'': out += "\\'"; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\v': out += "\\v"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case 0x1B: out += "\\e"; break;
      case 0x7F: out += "\\d"; break;
      default:
        if (c < 0x20 || (c >= 0x80 && c < 0xA0)) {
          out += fmt::format("\\{:03o}", c);
        } else {
          out.append(text.substr(start, pos - start));
        }
    }
  }
  out += '\'';
  return out;
}

std::strong_ordering operator<=>(atom a, atom b) noexcept {
  if (a.index_ == b.index_) return std::strong_ordering::equal;
  // string_view compares as unsigned bytes, and UTF-8 byte order is code point order.
  return a.name().compare(b.name()) <=> 0;
}

std::ostream& operator<<(std::ostream& out, atom a) { return out << a.to_string(); }

atom literals::operator""_a(const char* name, std::size_t size) { return atom(std::string_view(name, size)); }

}  // namespace athanor
