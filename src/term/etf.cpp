// External Term Format codec: see athanor/term/etf.h.
#include "athanor/term/etf.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <charconv>
#include <cstring>
#include <limits>
#include <new>
#include <string_view>
#include <utility>

#include <fmt/core.h>
#include <zlib.h>

#include "term/internal.h"

namespace athanor::etf {
namespace {

// ---------------------------------------------------------------- tags

enum tag : std::uint8_t {
  kVersion = 131,
  kCompressed = 80,
  kNewFloat = 70,
  kBitBinary = 77,
  kAtomCacheRef = 82,
  kNewPid = 88,
  kNewPort = 89,
  kNewerReference = 90,
  kSmallInteger = 97,
  kInteger = 98,
  kFloat = 99,
  kAtom = 100,
  kReference = 101,
  kPort = 102,
  kPid = 103,
  kSmallTuple = 104,
  kLargeTuple = 105,
  kNil = 106,
  kString = 107,
  kList = 108,
  kBinary = 109,
  kSmallBig = 110,
  kLargeBig = 111,
  kNewFun = 112,
  kExport = 113,
  kNewReference = 114,
  kSmallAtom = 115,
  kMap = 116,
  kFun = 117,
  kAtomUtf8 = 118,
  kSmallAtomUtf8 = 119,
  kV4Port = 120,
  kLocal = 121,
};


// ---------------------------------------------------------------- encoding

class encoder {
 public:
  encoder(std::vector<std::byte>& out, const encode_options& options)
      : out_(out), options_(options), start_(out.size()) {}

  void run(const term& root) {
    if (options_.minor_version != 1 && options_.minor_version != 2) {
      throw etf_error(fmt::format("etf: minor_version must be 1 or 2, not {}", options_.minor_version), 0);
    }
    // The output is written through a cursor into room made ahead (ensure), and cut to the
    // bytes written at the end: a size check per term rather than per byte.
    // If encoding fails, `out` is left as it was.
    cursor_ = limit_ = out_.data() + out_.size();
    try {
      walk(root);
    } catch (...) {
      out_.resize(start_);
      throw;
    }
    out_.resize(std::size_t(cursor_ - out_.data()));
  }

 private:
  void walk(const term& root) {
    if (options_.version_byte) ensure(1), u8(kVersion);
    // Pre-order walk with an explicit stack of terms still to write (pointers into
    // `root`, which keeps them alive), so no nesting can overflow the C++ stack.
    // The stack is kept per thread: encoding many small messages then allocates nothing
    // but the output.
    thread_local std::vector<const term*> todo;
    todo.clear();
    todo.push_back(&root);
    while (!todo.empty()) {
      const term& t = *todo.back();
      todo.pop_back();
      one(t, todo);
    }
  }

  // Makes room for `n` more bytes at the cursor.
  void ensure(std::size_t n) {
    if (std::size_t(limit_ - cursor_) >= n) return;
    const std::size_t used = std::size_t(cursor_ - out_.data());
    out_.resize(std::max({used + n, out_.size() * 2, out_.capacity(), std::size_t(64)}));
    cursor_ = out_.data() + used;
    limit_ = out_.data() + out_.size();
  }
  // The writers below need room made by ensure() first.
  void u8(std::uint8_t v) { *cursor_++ = std::byte(v); }
  void u16(std::uint16_t v) {
    cursor_[0] = std::byte(v >> 8), cursor_[1] = std::byte(v);
    cursor_ += 2;
  }
  void u32(std::uint32_t v) {
    cursor_[0] = std::byte(v >> 24), cursor_[1] = std::byte(v >> 16), cursor_[2] = std::byte(v >> 8),
    cursor_[3] = std::byte(v);
    cursor_ += 4;
  }
  void raw(const void* data, std::size_t size) {
    if (size != 0) std::memcpy(cursor_, data, size);
    cursor_ += size;
  }
  std::uint32_t length32(std::size_t n, const char* what) {
    if (n > 0xFFFFFFFFu) throw etf_error(fmt::format("etf: {} too long for the format ({} > 2^32 - 1)", what, n), 0);
    return std::uint32_t(n);
  }

  void integer(std::int64_t v) {
    ensure(11);
    if (v >= 0 && v <= 255) {
      u8(kSmallInteger), u8(std::uint8_t(v));
    } else if (v >= std::numeric_limits<std::int32_t>::min() && v <= std::numeric_limits<std::int32_t>::max()) {
      u8(kInteger), u32(std::uint32_t(std::int32_t(v)));
    } else {
      // Magnitude, computed in unsigned arithmetic so that INT64_MIN is fine.
      std::uint64_t magnitude = v < 0 ? std::uint64_t(0) - std::uint64_t(v) : std::uint64_t(v);
      std::uint8_t digits[8];
      std::uint8_t n = 0;
      while (magnitude != 0) digits[n++] = std::uint8_t(magnitude), magnitude >>= 8;
      u8(kSmallBig), u8(n), u8(v < 0 ? 1 : 0);
      raw(digits, n);
    }
  }

  // SMALL_BIG_EXT or LARGE_BIG_EXT: the magnitude's bytes, least significant first.
  void bignum(const term& t) {
    const detail::bignum_view v = detail::bignum_of(t);
    std::size_t n = v.limbs.size() * 8;
    while (n > 0 && std::uint8_t(v.limbs[(n - 1) / 8] >> ((n - 1) % 8 * 8)) == 0) --n;
    ensure(7);
    if (n <= 255) {
      u8(kSmallBig), u8(std::uint8_t(n));
    } else {
      u8(kLargeBig), u32(length32(n, "integer"));
    }
    u8(v.negative ? 1 : 0);
    ensure(n);
    for (std::size_t i = 0; i < n; ++i) cursor_[i] = std::byte(v.limbs[i / 8] >> (i % 8 * 8));
    cursor_ += n;
  }

  void atom_(atom a) {
    const std::string_view name = a.name();
    ensure(3 + name.size());  // a Latin-1 form is never longer
    if (options_.minor_version == 1) {
      // Most names are ASCII, which is Latin-1 as it stands.
      bool ascii = true;
      for (char c : name) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
      if (ascii) {
        u8(kAtom), u16(std::uint16_t(name.size()));
        raw(name.data(), name.size());
        return;
      }
      // Latin-1 if every character fits, as OTP 25 does by default.
      std::string latin1;
      latin1.reserve(name.size());
      bool fits = true;
      for (std::size_t pos = 0; pos < name.size();) {
        const std::int32_t c = detail::next_code_point(name, pos);
        if (c < 0 || c > 255) {
          fits = false;
          break;
        }
        latin1.push_back(char(c));
      }
      if (fits) {
        u8(kAtom), u16(std::uint16_t(latin1.size()));
        raw(latin1.data(), latin1.size());
        return;
      }
    }
    if (name.size() <= 255) {
      u8(kSmallAtomUtf8), u8(std::uint8_t(name.size()));
    } else {
      u8(kAtomUtf8), u16(std::uint16_t(name.size()));
    }
    raw(name.data(), name.size());
  }

  node_identity node_of(std::uint32_t node, const char* what) {
    if (node == 0) return {options_.context.node, options_.context.creation};
    if (options_.context.node_name) {
      if (auto id = options_.context.node_name(node)) return *id;
    }
    throw etf_error(fmt::format("etf: cannot encode a {} of node {}: the context has no name for it", what, node), 0);
  }

  void one(const term& t, std::vector<const term*>& todo) {
    switch (t.kind()) {
      case term_kind::integer:
        integer(t.as_int());
        return;
      case term_kind::bignum:
        bignum(t);
        return;
      case term_kind::float_: {
        ensure(9);
        u8(kNewFloat);
        const auto bits = std::bit_cast<std::uint64_t>(t.as_double());
        u32(std::uint32_t(bits >> 32)), u32(std::uint32_t(bits));
        return;
      }
      case term_kind::atom:
        atom_(t.as_atom());
        return;
      case term_kind::pid: {
        const pid p = t.as_pid();
        const node_identity node = node_of(p.node(), "pid");
        ensure(1);
        u8(kNewPid);
        atom_(node.name);
        ensure(12);
        u32(p.index()), u32(p.generation()), u32(node.creation);
        return;
      }
      case term_kind::reference: {
        const ref r = t.as_ref();
        const node_identity node = node_of(r.node(), "reference");
        ensure(3);
        u8(kNewerReference), u16(std::uint16_t(r.word_count()));
        atom_(node.name);
        ensure(4 + 4 * r.word_count());
        u32(node.creation);
        for (std::uint32_t w : r.words()) u32(w);
        return;
      }
      case term_kind::port: {
        const port_id p = t.as_port();
        const node_identity node = node_of(p.node(), "port");
        // As OTP 25: NEW_PORT_EXT for numbers of up to 28 bits (what older nodes can hold),
        // V4_PORT_EXT above (measured against erl, whatever the ID field's width).
        const bool v4 = p.number() >= (std::uint64_t(1) << 28);
        ensure(1);
        u8(v4 ? kV4Port : kNewPort);
        atom_(node.name);
        ensure(12);
        if (v4) {
          u32(std::uint32_t(p.number() >> 32)), u32(std::uint32_t(p.number()));
        } else {
          u32(std::uint32_t(p.number()));
        }
        u32(node.creation);
        return;
      }
      case term_kind::fun: {
        const fun_info f = t.as_fun();
        if (f.exported) {
          ensure(1);
          u8(kExport);
          atom_(f.module);
          atom_(f.function);
          ensure(2);
          u8(kSmallInteger), u8(std::uint8_t(f.arity));
        } else {
          // Kept as it arrived: a local fun's code and captured variables are opaque here.
          const std::span<const std::byte> bytes = detail::fun_encoding(t);
          ensure(bytes.size());
          raw(bytes.data(), bytes.size());
        }
        return;
      }
      case term_kind::bitstring: {
        const auto bytes = t.bitstring_bytes();
        ensure(6 + bytes.size());
        u8(kBitBinary), u32(length32(bytes.size(), "bitstring"));
        u8(std::uint8_t(t.bit_size() % 8));
        raw(bytes.data(), bytes.size());
        return;
      }
      case term_kind::tuple: {
        const auto elements = t.tuple_elements();
        ensure(5);
        if (elements.size() <= 255) {
          u8(kSmallTuple), u8(std::uint8_t(elements.size()));
        } else {
          u8(kLargeTuple), u32(length32(elements.size(), "tuple"));
        }
        for (auto it = elements.rbegin(); it != elements.rend(); ++it) todo.push_back(&*it);
        return;
      }
      case term_kind::map: {
        const auto entries = t.map_entries();
        ensure(5);
        u8(kMap), u32(length32(entries.size(), "map"));
        for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
          todo.push_back(&it->second);
          todo.push_back(&it->first);
        }
        return;
      }
      case term_kind::nil:
        ensure(1);
        u8(kNil);
        return;
      case term_kind::list:
        list(t, todo);
        return;
      case term_kind::binary: {
        const auto bytes = t.as_bytes();
        ensure(5 + bytes.size());
        u8(kBinary), u32(length32(bytes.size(), "binary"));
        raw(bytes.data(), bytes.size());
        return;
      }
    }
    throw etf_error("etf: a term of unknown kind", 0);
  }

  // A list cell: STRING_EXT if it is a proper list of at most 65535 integers 0..255 (as
  // Erlang does), else LIST_EXT with the elements up to the first non-list tail.
  void list(const term& t, std::vector<const term*>& todo) {
    std::size_t n = 0;
    bool bytes = true;
    const term* cell = &t;
    for (; cell->is_cons(); cell = &cell->tail()) {
      const term& h = cell->head();
      if (!(h.is_int64() && h.as_int() >= 0 && h.as_int() <= 255)) bytes = false;
      ++n;
    }
    const term& tail = *cell;
    if (bytes && tail.is_nil() && n <= 0xFFFF) {
      ensure(3 + n);
      u8(kString), u16(std::uint16_t(n));
      for (cell = &t; cell->is_cons(); cell = &cell->tail()) u8(std::uint8_t(cell->head().as_int()));
      return;
    }
    ensure(5);
    u8(kList), u32(length32(n, "list"));
    const std::size_t base = todo.size();
    todo.push_back(&tail);
    for (cell = &t; cell->is_cons(); cell = &cell->tail()) todo.push_back(&cell->head());
    std::reverse(todo.begin() + std::ptrdiff_t(base) + 1, todo.end());
  }

  std::vector<std::byte>& out_;
  const encode_options& options_;
  const std::size_t start_;     // out_'s size before this encoding
  std::byte* cursor_ = nullptr;  // where the next byte goes
  std::byte* limit_ = nullptr;   // the end of the room made so far
};

// ---------------------------------------------------------------- decoding

const char* tag_name(std::uint8_t t) {
  switch (t) {
    case kSmallInteger: return "SMALL_INTEGER_EXT";
    case kInteger: return "INTEGER_EXT";
    case kSmallBig: return "SMALL_BIG_EXT";
    case kLargeBig: return "LARGE_BIG_EXT";
    case kNewFloat: return "NEW_FLOAT_EXT";
    case kFloat: return "FLOAT_EXT";
    case kAtom: return "ATOM_EXT";
    case kSmallAtom: return "SMALL_ATOM_EXT";
    case kAtomUtf8: return "ATOM_UTF8_EXT";
    case kSmallAtomUtf8: return "SMALL_ATOM_UTF8_EXT";
    case kSmallTuple: return "SMALL_TUPLE_EXT";
    case kLargeTuple: return "LARGE_TUPLE_EXT";
    case kString: return "STRING_EXT";
    case kList: return "LIST_EXT";
    case kBinary: return "BINARY_EXT";
    case kBitBinary: return "BIT_BINARY_EXT";
    case kMap: return "MAP_EXT";
    case kNewPid: return "NEW_PID_EXT";
    case kPid: return "PID_EXT";
    case kNewerReference: return "NEWER_REFERENCE_EXT";
    case kNewReference: return "NEW_REFERENCE_EXT";
    case kReference: return "REFERENCE_EXT";
    case kCompressed: return "compressed term";
    case kNewPort: return "NEW_PORT_EXT";
    case kV4Port: return "V4_PORT_EXT";
    case kPort: return "PORT_EXT";
    case kExport: return "EXPORT_EXT";
    case kNewFun: return "NEW_FUN_EXT";
    default: return "term";
  }
}

enum class container : std::uint8_t { tuple, list, map };
struct frame {
  container kind;
  std::size_t start;   // index in values_ of its first value
  std::size_t needed;  // values to collect (list: elements + tail, map: 2 * arity)
  std::size_t offset;  // where its tag was, for errors
};

// A decoder's working stacks. Each thread keeps one set that its outermost decoder borrows,
// so decoding many small messages allocates only the terms themselves.
struct scratch {
  std::vector<term> values;
  std::vector<frame> frames;
  std::vector<std::pair<term, term>> entries;  // a map being built
  bool in_use = false;
};

class decoder {
 public:
  decoder(std::span<const std::byte> in, const decode_options& options, std::size_t base, bool inflated)
      : in_(in), options_(options), base_(base), inflated_(inflated), stacks_(borrow()),
        values_(stacks_.values), frames_(stacks_.frames), entries_(stacks_.entries) {}
  ~decoder() {
    // Drop what an error left behind (the terms would otherwise live on in the thread's stacks).
    values_.clear();
    frames_.clear();
    entries_.clear();
    // A huge message's stacks are not kept for the thread's lifetime.
    constexpr std::size_t kKeep = 4096;
    if (values_.capacity() > kKeep) std::vector<term>().swap(values_);
    if (frames_.capacity() > kKeep) std::vector<frame>().swap(frames_);
    if (entries_.capacity() > kKeep) std::vector<std::pair<term, term>>().swap(entries_);
    if (&stacks_ != &own_) stacks_.in_use = false;
  }
  decoder(const decoder&) = delete;
  decoder& operator=(const decoder&) = delete;

  std::size_t pos() const { return pos_; }
  void skip(std::size_t n) { pos_ += n; }

  [[noreturn]] void fail(std::size_t at, std::string_view what) const {
    throw etf_error(fmt::format("etf: {} at offset {}{}", what, base_ + at, inflated_ ? " of the decompressed data" : ""),
                    base_ + at);
  }

  // Ensures `n` more bytes exist for `what`.
  void need(std::size_t n, std::uint8_t what) const {
    if (in_.size() - pos_ < n) {
      fail(pos_, fmt::format("truncated input: {} needs {} more bytes, {} left", tag_name(what), n, in_.size() - pos_));
    }
  }
  std::size_t left() const { return in_.size() - pos_; }
  std::uint8_t u8() { return std::uint8_t(in_[pos_++]); }
  std::uint16_t u16() {
    const std::uint16_t v = std::uint16_t(std::uint16_t(in_[pos_]) << 8 | std::uint16_t(in_[pos_ + 1]));
    pos_ += 2;
    return v;
  }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | std::uint32_t(in_[pos_ + i]);
    pos_ += 4;
    return v;
  }
  std::string_view text(std::size_t n) {
    std::string_view v(reinterpret_cast<const char*>(in_.data()) + pos_, n);
    pos_ += n;
    return v;
  }

  // Decodes one term starting at pos_.
  term run() {
    values_.clear();
    frames_.clear();
    for (;;) {
      step();
      // Complete every frame that now has all its values.
      while (!frames_.empty() && values_.size() - frames_.back().start == frames_.back().needed) complete();
      if (frames_.empty() && !values_.empty()) {
        term result = std::move(values_.back());
        values_.pop_back();
        return result;
      }
    }
  }

 private:
  void open(container kind, std::size_t needed, std::size_t at) {
    if (frames_.size() >= options_.max_depth) {
      fail(at, fmt::format("nesting deeper than the limit of {} (decode_options::max_depth)", options_.max_depth));
    }
    // Every value needs at least one more byte, so this bounds allocation by the input.
    if (needed > left()) {
      fail(at, fmt::format("declared length {} exceeds the {} bytes left", needed, left()));
    }
    frames_.push_back({kind, values_.size(), needed, at});
  }

  void complete() {
    const frame f = frames_.back();
    frames_.pop_back();
    std::span<term> items(values_.data() + f.start, f.needed);
    term result;
    try {
      switch (f.kind) {
        case container::tuple:
          result = detail::tuple_from_temporaries(items.data(), items.size());
          break;
        case container::list: {
          result = std::move(items.back());
          for (std::size_t i = items.size() - 1; i-- > 0;) result = cons(std::move(items[i]), std::move(result));
          break;
        }
        case container::map: {
          entries_.clear();
          entries_.reserve(items.size() / 2);
          for (std::size_t i = 0; i < items.size(); i += 2) entries_.emplace_back(std::move(items[i]), std::move(items[i + 1]));
          const std::size_t count = entries_.size();
          result = detail::map_from_temporaries(entries_);
          if (result.map_size() != count) fail(f.offset, "MAP_EXT has a duplicate key");
          break;
        }
      }
    } catch (const std::length_error& e) {
      fail(f.offset, e.what());
    }
    values_.resize(f.start);
    values_.push_back(std::move(result));
  }

  void push(term t) { values_.push_back(std::move(t)); }

  // The atom named `utf8`: from this thread's recent atoms, else validated and looked up (or
  // made, unless in safe mode).
  atom make_atom(std::string_view utf8, std::size_t at) {
    if (utf8.size() > atom::kMaxNameBytes) {
      fail(at, fmt::format("atom of {} UTF-8 bytes is longer than Athanor's limit of {}", utf8.size(), atom::kMaxNameBytes));
    }
    if (auto cached = recent_atom(utf8)) return *cached;  // was valid when first seen
    for (std::size_t p = 0; p < utf8.size();) {
      if (static_cast<unsigned char>(utf8[p]) < 0x80) {
        ++p;  // ASCII, as most names are
      } else if (detail::next_code_point(utf8, p) < 0) {
        fail(at, "atom is not valid UTF-8");
      }
    }
    if (auto existing = atom::existing(utf8)) {
      remember_atom(utf8, *existing);
      return *existing;
    }
    if (options_.safe) {
      std::size_t shown = std::min<std::size_t>(utf8.size(), 64);  // cut long names, at a code point
      while (shown < utf8.size() && (static_cast<unsigned char>(utf8[shown]) & 0xC0) == 0x80) --shown;
      fail(at, fmt::format("unknown atom '{}{}' (safe mode creates no atoms)", utf8.substr(0, shown),
                           shown < utf8.size() ? "..." : ""));
    }
    try {
      return atom(utf8);
    } catch (const atom_table_full& e) {
      fail(at, e.what());
    }
  }

  // The atoms this thread decoded lately, by name: messages repeat the same few atoms (tags,
  // keys, node names), and a hit here costs a compare of a few bytes rather than a hash and
  // probe of the global table. Atoms are never freed, so an entry never goes stale.
  struct recent_atoms {
    static constexpr std::size_t kSlots = 256, kMaxName = 23;
    struct slot {
      std::uint8_t size = 0xFF;  // 0xFF: empty (no cached name is that long)
      char name[kMaxName];
      atom value;
    };
    slot slots[kSlots];
    static std::size_t slot_of(std::string_view name) noexcept {
      std::uint64_t head = 0, tail = 0;
      if (!name.empty()) std::memcpy(&head, name.data(), std::min<std::size_t>(name.size(), 8));
      if (name.size() > 8) std::memcpy(&tail, name.data() + name.size() - 8, 8);
      std::uint64_t h = (head ^ (tail * 0x9E3779B97F4A7C15ull) ^ name.size()) * 0xff51afd7ed558ccdull;
      return std::size_t(h >> 56);
    }
  };
  static recent_atoms& recent() {
    thread_local recent_atoms cache;
    return cache;
  }
  static std::optional<atom> recent_atom(std::string_view name) noexcept {
    if (name.size() > recent_atoms::kMaxName) return std::nullopt;
    const recent_atoms::slot& s = recent().slots[recent_atoms::slot_of(name)];
    if (s.size != name.size()) return std::nullopt;
    for (std::size_t i = 0; i < name.size(); ++i) {  // a few bytes: no call to memcmp
      if (s.name[i] != name[i]) return std::nullopt;
    }
    return s.value;
  }
  static void remember_atom(std::string_view name, atom value) noexcept {
    if (name.size() > recent_atoms::kMaxName) return;
    recent_atoms::slot& s = recent().slots[recent_atoms::slot_of(name)];
    s.size = std::uint8_t(name.size());
    if (!name.empty()) std::memcpy(s.name, name.data(), name.size());
    s.value = value;
  }

  // Reads an atom tag and its name at pos_, returning the atom.
  atom read_atom() {
    const std::size_t at = pos_;
    if (left() == 0) fail(at, "truncated input: expected an atom, found the end");
    const std::uint8_t t = u8();
    std::size_t n;
    switch (t) {
      case kAtom:
      case kAtomUtf8:
        need(2, t);
        n = u16();
        break;
      case kSmallAtom:
      case kSmallAtomUtf8:
        need(1, t);
        n = u8();
        break;
      case kAtomCacheRef:
        fail(at, "ATOM_CACHE_REF outside a distribution header");
      default:
        fail(at, fmt::format("expected an atom, found tag {}", t));
    }
    need(n, t);
    const std::string_view bytes = text(n);
    if (t == kAtomUtf8 || t == kSmallAtomUtf8) return make_atom(bytes, at);
    bool ascii = true;  // ASCII is the same in Latin-1 and UTF-8
    for (char c : bytes) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (ascii) return make_atom(bytes, at);
    std::string utf8;  // Latin-1 to UTF-8
    utf8.reserve(bytes.size() * 2);
    for (const char ch : bytes) {
      const auto c = static_cast<unsigned char>(ch);
      if (c < 0x80) {
        utf8.push_back(char(c));
      } else {
        utf8.push_back(char(0xC0 | c >> 6));
        utf8.push_back(char(0x80 | (c & 0x3F)));
      }
    }
    return make_atom(utf8, at);
  }

  // The node number of {name, creation}: 0 for this node, else the context's.
  std::uint32_t node_number(atom name, std::uint32_t creation, std::size_t at, const char* what) {
    const etf_context& c = options_.context;
    if (name == c.node && creation == c.creation) return 0;
    if (c.node_number) {
      if (auto n = c.node_number(node_identity{name, creation})) {
        if (*n != 0) return *n;
      }
    }
    fail(at, fmt::format("{} of unknown node {} (creation {})", what, name.to_string(), creation));
  }

  void pid_(std::uint8_t t, std::size_t at) {
    const atom node = read_atom();
    need(t == kNewPid ? 12 : 9, t);
    const std::uint32_t id = u32(), serial = u32();
    const std::uint32_t creation = t == kNewPid ? u32() : u8();
    if (id > pid::kIndexMask || serial > pid::kGenerationMask) {
      fail(at, fmt::format("pid <{}.{}> does not fit athanor::pid (ID < 2^{}, Serial < 2^{})", id, serial,
                           pid::kIndexBits, pid::kGenerationBits));
    }
    const std::uint32_t n = node_number(node, creation, at, "pid");
    if (n > pid::kNodeMask) fail(at, fmt::format("node number {} does not fit athanor::pid", n));
    push(term(pid(n, id, serial)));
  }

  void ref_(std::uint8_t t, std::size_t at) {
    std::size_t words = 1;
    if (t != kReference) {
      need(2, t);
      words = u16();
      if (words == 0 || words > 5) fail(at, fmt::format("reference with {} ID words (1..5 allowed)", words));
    }
    const atom node = read_atom();
    std::uint32_t creation = 0;
    if (t == kNewerReference) {
      need(4 + 4 * words, t);
      creation = u32();
    } else if (t == kNewReference) {
      need(1 + 4 * words, t);
      creation = u8();
    } else {
      need(5, t);
    }
    std::uint32_t w[ref::kMaxWords] = {};
    for (std::size_t i = 0; i < words; ++i) w[i] = u32();
    if (t == kReference) creation = u8();
    const std::uint32_t n = node_number(node, creation, at, "reference");
    push(term(ref::from_words(n, std::span<const std::uint32_t>(w, words))));
  }

  void port_(std::uint8_t t, std::size_t at) {
    const atom node = read_atom();
    need(t == kV4Port ? 12 : t == kNewPort ? 8 : 5, t);
    std::uint64_t number = u32();
    if (t == kV4Port) number = number << 32 | u32();
    const std::uint32_t creation = t == kPort ? u8() : u32();
    push(term(port_id(node_number(node, creation, at, "port"), number)));
  }

  // An integer term inside a fun (SMALL_INTEGER_EXT or INTEGER_EXT).
  std::int64_t small_integer(std::uint8_t owner) {
    const std::size_t at = pos_;
    if (left() == 0) fail(at, fmt::format("truncated input: {} needs an integer", tag_name(owner)));
    const std::uint8_t t = u8();
    if (t == kSmallInteger) {
      need(1, owner);
      return u8();
    }
    if (t == kInteger) {
      need(4, owner);
      return std::int32_t(u32());
    }
    fail(at, fmt::format("{}: expected an integer, found tag {}", tag_name(owner), t));
  }

  void export_(std::size_t at) {
    fun_info f;
    f.exported = true;
    f.module = read_atom();
    f.function = read_atom();
    const std::int64_t arity = small_integer(kExport);
    if (arity < 0 || arity > 255) fail(at, fmt::format("EXPORT_EXT with arity {}", arity));
    push(term::export_fun(f.module, f.function, std::uint32_t(arity)));
  }

  // NEW_FUN_EXT: Size (which counts itself), Arity, Uniq[16], Index, NumFree, Module, OldIndex,
  // OldUniq, Pid, then NumFree terms. Athanor reads what it prints and compares, checks that
  // the rest is well-formed ETF, and keeps the whole encoding to write it back unchanged.
  void new_fun(std::size_t at) {
    need(4, kNewFun);
    const std::size_t size = u32();
    if (size < 4 + 1 + 16 + 4 + 4) fail(at, fmt::format("NEW_FUN_EXT of size {}", size));
    need(size - 4, kNewFun);
    const std::size_t end = at + 1 + size;
    fun_info f;
    f.arity = u8();
    skip(16 + 4);  // Uniq, Index
    f.free_count = u32();
    const std::span<const std::byte> whole = in_.subspan(at, end - at);
    const std::span<const std::byte> saved_in = in_;
    in_ = in_.first(end);  // the fields must lie inside Size
    f.module = read_atom();
    f.old_index = small_integer(kNewFun);
    f.old_uniq = small_integer(kNewFun);
    if (fun_depth_ >= kMaxFunDepth) fail(at, fmt::format("funs nested deeper than {} in captured variables", kMaxFunDepth));
    // The creator pid and the captured variables: any node is fine (they are not used here).
    decode_options inner = options_;
    inner.version_byte = false;
    inner.context.node_number = [](const node_identity&) -> std::optional<std::uint32_t> { return 1; };
    inner.max_depth = options_.max_depth > frames_.size() + 1 ? options_.max_depth - frames_.size() - 1 : 1;
    decoder rest(in_.subspan(pos_), inner, base_ + pos_, inflated_);
    rest.fun_depth_ = fun_depth_ + 1;
    const std::size_t first = pos_;
    if (rest.left() == 0) fail(pos_, "truncated input: NEW_FUN_EXT needs a pid");
    if (const auto pid_tag = std::uint8_t(in_[pos_]); pid_tag != kNewPid && pid_tag != kPid) {
      fail(pos_, fmt::format("NEW_FUN_EXT: expected a pid, found tag {}", pid_tag));
    }
    for (std::size_t i = 0; i <= f.free_count; ++i) {
      if (rest.left() == 0) fail(first + rest.pos(), "truncated input: NEW_FUN_EXT has fewer terms than NumFree says");
      (void)rest.run();
    }
    if (first + rest.pos() != end) fail(first + rest.pos(), "NEW_FUN_EXT: Size does not match its contents");
    in_ = saved_in;
    pos_ = end;
    push(detail::make_local_fun(f, whole));
  }

  void big(std::uint8_t t, std::size_t at) {
    std::size_t n;
    if (t == kSmallBig) {
      need(2, t);
      n = u8();
    } else {
      need(5, t);
      n = u32();
    }
    const std::uint8_t sign = u8();
    need(n, t);
    if (sign > 1) fail(at, fmt::format("{} with sign byte {} (0 or 1 allowed)", tag_name(t), sign));
    const std::size_t digits = pos_;
    skip(n);
    std::size_t used = n;  // ignore high zero digits
    while (used > 0 && in_[digits + used - 1] == std::byte(0)) --used;
    if (used <= 8) {  // the common case: no allocation
      std::uint64_t magnitude = 0;
      for (std::size_t i = used; i-- > 0;) magnitude = magnitude << 8 | std::uint64_t(in_[digits + i]);
      push(detail::make_integer(sign == 1, {&magnitude, 1}));
      return;
    }
    std::vector<std::uint64_t> limbs((used + 7) / 8);
    for (std::size_t i = 0; i < used; ++i) limbs[i / 8] |= std::uint64_t(in_[digits + i]) << (i % 8 * 8);
    push(detail::make_integer(sign == 1, limbs));
  }

  void float_(std::uint8_t t, std::size_t at) {
    double d;
    if (t == kNewFloat) {
      need(8, t);
      const std::uint64_t hi = u32();
      d = std::bit_cast<double>(hi << 32 | u32());
    } else {
      need(31, t);
      std::string_view s = text(31);
      s = s.substr(0, s.find('\0'));
      while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
      while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
      if (!s.empty() && s.front() == '+') s.remove_prefix(1);
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
      if (ec != std::errc() || end != s.data() + s.size()) fail(at, "FLOAT_EXT is not a number");
    }
    if (!std::isfinite(d)) fail(at, "float is not finite (NaN or infinity)");
    push(term(d));
  }

  void step() {
    const std::size_t at = pos_;
    if (left() == 0) fail(at, "truncated input: expected a term, found the end");
    const auto t = std::uint8_t(in_[pos_]);
    switch (t) {
      case kSmallInteger:
        skip(1);
        need(1, t);
        push(term(std::int64_t(u8())));
        return;
      case kInteger:
        skip(1);
        need(4, t);
        push(term(std::int64_t(std::int32_t(u32()))));
        return;
      case kSmallBig:
      case kLargeBig:
        skip(1);
        big(t, at);
        return;
      case kNewFloat:
      case kFloat:
        skip(1);
        float_(t, at);
        return;
      case kAtom:
      case kSmallAtom:
      case kAtomUtf8:
      case kSmallAtomUtf8:
      case kAtomCacheRef:
        push(term(read_atom()));
        return;
      case kSmallTuple:
      case kLargeTuple: {
        skip(1);
        need(t == kSmallTuple ? 1 : 4, t);
        const std::size_t n = t == kSmallTuple ? u8() : u32();
        if (n == 0) {
          push(tuple());
        } else {
          open(container::tuple, n, at);
        }
        return;
      }
      case kNil:
        skip(1);
        push(term::nil());
        return;
      case kString: {
        skip(1);
        need(2, t);
        const std::size_t n = u16();
        need(n, t);
        term chars = term::nil();  // built from the end, as Erlang builds lists
        for (std::size_t i = n; i-- > 0;) chars = cons(term(std::int64_t(std::uint8_t(in_[pos_ + i]))), std::move(chars));
        skip(n);
        push(std::move(chars));
        return;
      }
      case kList: {
        skip(1);
        need(4, t);
        const std::size_t n = u32();
        if (n == 0) return;  // as erts: LIST_EXT of no elements is just its tail, decoded next
        open(container::list, n + 1, at);
        return;
      }
      case kMap: {
        skip(1);
        need(4, t);
        const std::size_t n = u32();
        if (n == 0) {
          push(map(std::span<const std::pair<term, term>>()));
        } else {
          open(container::map, 2 * n, at);
        }
        return;
      }
      case kBinary: {
        skip(1);
        need(4, t);
        const std::size_t n = u32();
        need(n, t);
        push(term::binary(in_.subspan(pos_, n)));
        skip(n);
        return;
      }
      case kBitBinary: {
        skip(1);
        need(5, t);
        const std::size_t n = u32();
        const std::uint8_t bits = u8();
        need(n, t);
        if ((bits == 0) != (n == 0) || bits > 8) fail(at, fmt::format("BIT_BINARY_EXT with {} bytes and {} bits in the last", n, bits));
        push(term::bitstring(in_.subspan(pos_, n), n == 0 ? 0 : (n - 1) * 8 + bits));
        skip(n);
        return;
      }
      case kNewPid:
      case kPid:
        skip(1);
        pid_(t, at);
        return;
      case kNewerReference:
      case kNewReference:
      case kReference:
        skip(1);
        ref_(t, at);
        return;
      case kNewPort:
      case kV4Port:
      case kPort:
        skip(1);
        port_(t, at);
        return;
      case kExport:
        skip(1);
        export_(at);
        return;
      case kNewFun:
        skip(1);
        new_fun(at);
        return;
      case kFun:
        fail(at, "FUN_EXT (written before OTP R8) not supported");
      case kLocal:
        fail(at, "LOCAL_EXT not supported (it is never valid outside the node that made it)");
      case kCompressed:
        fail(at, "a compressed term may only appear at the top level");
      case kVersion:
        fail(at, "version byte 131 inside a term");
      default:
        fail(at, fmt::format("unknown tag {}", t));
    }
  }

  static constexpr int kMaxFunDepth = 8;  // funs captured by funs: each level recurses once

  std::span<const std::byte> in_;
  const decode_options& options_;
  std::size_t base_;
  bool inflated_;
  int fun_depth_ = 0;
  std::size_t pos_ = 0;
  scratch own_;      // used when the thread's stacks are taken (a fun's captured variables)
  scratch& stacks_;
  std::vector<term>& values_;
  std::vector<frame>& frames_;
  std::vector<std::pair<term, term>>& entries_;

  scratch& borrow() {
    thread_local scratch shared;
    if (shared.in_use) return own_;
    shared.in_use = true;
    return shared;
  }
};

// Inflates the zlib stream at the start of `in` into `out`, which must come to exactly
// `size` bytes (size < 2^32 - 1); returns how many input bytes the stream used. Throws
// etf_error. The output buffer has one spare byte, so that data beyond `size` is noticed.
std::size_t inflate_exactly(std::span<const std::byte> in, std::vector<std::byte>& out, std::size_t size,
                            std::size_t base) {
  auto fail = [&](std::string_view what) {
    throw etf_error(fmt::format("etf: compressed term: {} (data at offset {})", what, base), base);
  };
  if (size >= std::numeric_limits<uInt>::max()) fail("declared size too large");
  out.resize(size + 1);
  z_stream z{};
  if (inflateInit(&z) != Z_OK) fail("zlib initialisation failed");
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(size + 1);
  constexpr std::size_t kChunk = 1u << 30;  // zlib counts input in uInt
  std::size_t in_used = 0;
  std::string error;
  for (;;) {
    const std::size_t chunk = std::min(kChunk, in.size() - in_used);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + in_used));
    z.avail_in = uInt(chunk);
    const int rc = inflate(&z, Z_NO_FLUSH);
    in_used += chunk - z.avail_in;
    if (z.avail_out == 0) {
      error = fmt::format("data is larger than the declared {} bytes", size);
    } else if (rc == Z_STREAM_END) {
      break;
    } else if (rc == Z_OK || rc == Z_BUF_ERROR) {
      if (in_used < in.size()) continue;
      error = "truncated zlib data";
    } else {
      error = fmt::format("corrupt zlib data ({})", z.msg != nullptr ? z.msg : "unknown error");
    }
    break;
  }
  const std::size_t produced = z.total_out;
  inflateEnd(&z);
  if (!error.empty()) fail(error);
  if (produced != size) fail(fmt::format("data is {} bytes, not the declared {}", produced, size));
  out.resize(size);
  return in_used;
}

decoded decode_any(std::span<const std::byte> bytes, const decode_options& options, bool whole) {
  std::size_t start = 0;
  if (options.version_byte) {
    if (bytes.empty()) throw etf_error("etf: empty input (expected version byte 131)", 0);
    if (std::uint8_t(bytes[0]) != kVersion) {
      throw etf_error(fmt::format("etf: bad version byte {} at offset 0 (expected 131)", std::uint8_t(bytes[0])), 0);
    }
    start = 1;
    if (bytes.size() > 1 && std::uint8_t(bytes[1]) == kCompressed) {
      if (bytes.size() < 6) throw etf_error("etf: truncated input: compressed term needs a 4-byte size at offset 2", 2);
      const std::size_t size = std::size_t(std::uint8_t(bytes[2])) << 24 | std::size_t(std::uint8_t(bytes[3])) << 16 |
                               std::size_t(std::uint8_t(bytes[4])) << 8 | std::size_t(std::uint8_t(bytes[5]));
      if (size > options.max_decompressed_bytes) {
        throw etf_error(fmt::format("etf: compressed term declares {} bytes, more than the limit of {} "
                                    "(decode_options::max_decompressed_bytes)",
                                    size, options.max_decompressed_bytes),
                        2);
      }
      if (size == 0) throw etf_error("etf: compressed term declares 0 bytes at offset 2", 2);
      std::vector<std::byte> inflated;
      const std::size_t used = inflate_exactly(bytes.subspan(6), inflated, size, 6);
      if (whole && 6 + used != bytes.size()) {
        throw etf_error(fmt::format("etf: {} trailing bytes after the compressed term at offset {}",
                                    bytes.size() - 6 - used, 6 + used),
                        6 + used);
      }
      decoder d(inflated, options, 0, true);
      term t = d.run();
      if (d.pos() != inflated.size()) d.fail(d.pos(), fmt::format("{} trailing bytes after the term", inflated.size() - d.pos()));
      return {std::move(t), 6 + used};
    }
  }
  decoder d(bytes.subspan(start), options, start, false);
  term t = d.run();
  const std::size_t end = start + d.pos();
  if (whole && end != bytes.size()) {
    throw etf_error(fmt::format("etf: {} trailing bytes after the term at offset {}", bytes.size() - end, end), end);
  }
  return {std::move(t), end};
}

}  // namespace

void encode_to(std::vector<std::byte>& out, const term& t, const encode_options& options) {
  encoder(out, options).run(t);
}

std::vector<std::byte> encode(const term& t, const encode_options& options) {
  std::vector<std::byte> out;
  out.reserve(256);  // most messages fit: one allocation instead of a doubling series
  encode_to(out, t, options);
  return out;
}

term decode(std::span<const std::byte> bytes, const decode_options& options) {
  return decode_any(bytes, options, true).value;
}

decoded decode_prefix(std::span<const std::byte> bytes, const decode_options& options) {
  return decode_any(bytes, options, false);
}

}  // namespace athanor::etf
