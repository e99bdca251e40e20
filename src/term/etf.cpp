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

  // Makes room for `n` more bytes at the cursor. The room is zero-filled by resize(), so it
  // grows by what is asked plus a little (the vector's capacity grows geometrically anyway),
  // never by doubling what is there: after a large binary that would zero-fill as much again.
  void ensure(std::size_t n) {
    if (std::size_t(limit_ - cursor_) >= n) return;
    const std::size_t used = std::size_t(cursor_ - out_.data());
    out_.resize(std::max({used + n, std::min(out_.capacity(), used + n + 4096), std::size_t(64)}));
    cursor_ = out_.data() + used;
    limit_ = out_.data() + out_.size();
  }
  // Writes `size` bytes at the cursor; large ones are appended without zero-filling room for
  // them first (a 1 MiB binary sent to another node cost a memset as long as its copy).
  void bulk(const void* data, std::size_t size) {
    if (size < 4096) {
      ensure(size);
      raw(data, size);
      return;
    }
    const std::size_t used = std::size_t(cursor_ - out_.data());
    out_.resize(used);
    const auto* p = static_cast<const std::byte*>(data);
    out_.insert(out_.end(), p, p + size);
    cursor_ = limit_ = out_.data() + out_.size();
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

  // The atoms this thread encoded lately, as the bytes written for them (names of up to 24
  // bytes, which is nearly all): a message repeats a few atoms, and a hit is one copy
  // instead of a name lookup in the global table and a scan of it.
  struct recent_encodings {
    static constexpr std::size_t kSlots = 256, kMaxBytes = 27;  // tag, 2 length bytes, 24 of name
    struct slot {
      std::uint32_t index = ~std::uint32_t(0);  // ~0: empty
      std::uint8_t minor_version = 0;
      std::uint8_t size = 0;
      std::byte bytes[kMaxBytes];
    };
    slot slots[kSlots];
  };
  static recent_encodings::slot& recent_encoding(atom a) {
    thread_local recent_encodings cache;
    return cache.slots[(a.index() * 0x9E3779B1u) >> 24];
  }

  void atom_(atom a) {
    recent_encodings::slot& cached = recent_encoding(a);
    if (cached.index == a.index() && cached.minor_version == options_.minor_version) {
      ensure(recent_encodings::kMaxBytes);
      std::memcpy(cursor_, cached.bytes, recent_encodings::kMaxBytes);  // fixed size: one wide copy
      cursor_ += cached.size;
      return;
    }
    std::byte* const start = cursor_;
    atom_uncached(a);
    const std::size_t written = std::size_t(cursor_ - start);
    if (written <= recent_encodings::kMaxBytes) {  // an atom's bytes depend on nothing else
      cached.index = a.index();
      cached.minor_version = std::uint8_t(options_.minor_version);
      cached.size = std::uint8_t(written);
      std::memcpy(cached.bytes, start, written);
    }
  }

  void atom_uncached(atom a) {
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
        integer(detail::term_internals::integer(t));
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
        atom_(detail::term_internals::atom_of(t));
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
        const auto elements = detail::term_internals::tuple_view(t);
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
        const auto entries = detail::term_internals::map_view(t);
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
        const std::string_view bytes = detail::term_internals::binary_view(t);
        ensure(5);
        u8(kBinary), u32(length32(bytes.size(), "binary"));
        bulk(bytes.data(), bytes.size());
        return;
      }
    }
    throw etf_error("etf: a term of unknown kind", 0);
  }

  // A list cell: STRING_EXT if it is a proper list of at most 65535 integers 0..255 (as
  // Erlang does), else LIST_EXT with the elements up to the first non-list tail.
  void list(const term& t, std::vector<const term*>& todo) {
    using internals = detail::term_internals;
    std::size_t n = 0;
    bool bytes = true;
    const term* cell = &t;
    for (; cell->kind() == term_kind::list; cell = &internals::cell(*cell)->tail) {
      const term& h = internals::cell(*cell)->head;
      if (!(h.kind() == term_kind::integer && std::uint64_t(internals::integer(h)) <= 255)) bytes = false;
      ++n;
    }
    const term& tail = *cell;
    if (bytes && tail.kind() == term_kind::nil && n <= 0xFFFF) {
      ensure(3 + n);
      u8(kString), u16(std::uint16_t(n));
      for (cell = &t; cell->kind() == term_kind::list; cell = &internals::cell(*cell)->tail) {
        u8(std::uint8_t(internals::integer(internals::cell(*cell)->head)));
      }
      return;
    }
    ensure(5);
    u8(kList), u32(length32(n, "list"));
    const std::size_t base = todo.size();
    todo.push_back(&tail);
    for (cell = &t; cell->kind() == term_kind::list; cell = &internals::cell(*cell)->tail) {
      todo.push_back(&internals::cell(*cell)->head);
    }
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
    case kAtomCacheRef: return "ATOM_CACHE_REF";
    default: return "term";
  }
}

enum class container : std::uint8_t { tuple, list, map };

// A container being filled: its slots are handed out in order, the last one (a list's tail)
// included. A list's heads lie one cons cell apart, its tail next to the last head.
struct frame {
  term* next;               // the next slot to fill
  std::size_t remaining;    // slots still to fill
  std::pair<term, term>* entries;  // a map's, to sort when it is full
  std::size_t entry_count;  // how many
  std::size_t offset;       // where its tag was, for errors
  container kind;
};

// A decoder's working stack. Each thread keeps one that its outermost decoder borrows, so
// decoding many small messages allocates only the terms themselves.
struct scratch {
  std::vector<frame> frames;
  bool in_use = false;
};

// Decodes one term in two passes over the bytes. The first (block_bytes) adds up the room
// the term's boxes take, without building anything; the second builds the term top-down
// into one detail::shared_block of that size: a container's box is made when its tag is
// read, and each term that follows is written straight into the next slot, so nothing is
// moved or counted twice, and the whole message is one allocation to make and to free.
// Rejected: building bottom-up on a stack of finished values (the previous design: every
// value moved twice and every box its own malloc, 1.4 times slower than this) and one
// arena grown in chunks (no first pass, but chunks chained behind every part of the term,
// and room left over in the last chunk for as long as the term lives).
class decoder {
 public:
  decoder(std::span<const std::byte> in, const decode_options& options, std::size_t base, bool inflated)
      : in_(in), options_(options), base_(base), inflated_(inflated), stacks_(borrow()), frames_(stacks_.frames) {}
  ~decoder() {
    frames_.clear();
    // A deep message's stack is not kept for the thread's lifetime.
    constexpr std::size_t kKeep = 4096;
    if (frames_.capacity() > kKeep) std::vector<frame>().swap(frames_);
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
    const std::uint16_t v = be16(pos_);
    pos_ += 2;
    return v;
  }
  std::uint32_t u32() {
    const std::uint32_t v = be32(pos_);
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
    try {
      return build();
    } catch (const std::length_error& e) {  // beyond a tuple's, a map's or a block's limit
      fail(pos_, e.what());
    }
  }

 private:
  term build() {
    frames_.clear();
    detail::shared_block block(block_bytes());
    block_ = &block;
    // The root's storage is never destroyed: if decoding fails, the block (all the root
    // could point into) is freed by `block` alone.
    alignas(term) std::byte root_storage[sizeof(term)];
    term* const root = reinterpret_cast<term*>(root_storage);
    slot_ = root;
    for (;;) {
      if (!step()) continue;  // LIST_EXT of no elements: its tail goes in the same slot
      slot_ = next_slot();
      if (slot_ == nullptr) break;
    }
    block.commit();
    block_ = nullptr;
    return std::move(*root);
  }

  std::uint16_t be16(std::size_t p) const {
    return std::uint16_t(std::uint16_t(in_[p]) << 8 | std::uint16_t(in_[p + 1]));
  }
  std::uint32_t be32(std::size_t p) const {
    std::uint32_t v;
    std::memcpy(&v, in_.data() + p, 4);
    return __builtin_bswap32(v);
  }

  // Returns an upper bound of the bytes the boxes of the term at pos_ take: the first pass.
  // It stops early at anything malformed, which the second pass then reports at the same
  // place, having built only what this counted. Every length is checked against the bytes
  // that remain (each element takes at least one), so the sum is at most ~40 bytes per input
  // byte whatever the input declares.
  std::size_t block_bytes() const {
    using sb = detail::shared_block;
    const std::size_t end = in_.size();
    std::size_t p = pos_, pending = 1, bytes = 0;
    // Skips the atom at q (a node name inside a pid, port or reference); npos if malformed.
    auto skip_atom = [&](std::size_t q) -> std::size_t {
      if (q >= end) return std::string_view::npos;
      const std::uint8_t t = std::uint8_t(in_[q]);
      if ((t == kAtomUtf8 || t == kAtom) && end - q >= 3) return q + 3 + be16(q + 1);
      if ((t == kSmallAtomUtf8 || t == kSmallAtom) && end - q >= 2) return q + 2 + std::uint8_t(in_[q + 1]);
      if (t == kAtomCacheRef && end - q >= 2) return q + 2;  // atoms take no room in the block
      return std::string_view::npos;
    };
    while (pending > 0 && p < end) {
      --pending;
      const std::uint8_t t = std::uint8_t(in_[p]);
      const std::size_t rest = end - p;
      switch (t) {
        case kSmallInteger: p += 2; break;
        case kInteger: p += 5; break;
        case kNewFloat: p += 9; break;
        case kFloat: p += 32; break;
        case kAtomUtf8:
        case kAtom:
          if (rest < 3) return bytes;
          p += 3 + be16(p + 1);
          break;
        case kSmallAtomUtf8:
        case kSmallAtom:
          if (rest < 2) return bytes;
          p += 2 + std::uint8_t(in_[p + 1]);
          break;
        case kAtomCacheRef: p += 2; break;
        case kNil: p += 1; break;
        case kSmallTuple:
        case kLargeTuple: {
          const std::size_t header = t == kSmallTuple ? 2 : 5;
          if (rest < header) return bytes;
          const std::size_t n = t == kSmallTuple ? std::uint8_t(in_[p + 1]) : be32(p + 1);
          p += header;
          if (n > end - p) return bytes;
          pending += n;
          if (n != 0) bytes += sb::tuple_bytes(n);
          break;
        }
        case kString: {
          if (rest < 3) return bytes;
          const std::size_t n = be16(p + 1);
          p += 3;
          if (n > end - p) return bytes;
          bytes += n * sb::cons_bytes;
          p += n;
          break;
        }
        case kList: {
          if (rest < 5) return bytes;
          const std::size_t n = be32(p + 1);
          p += 5;
          if (n > end - p) return bytes;
          pending += n + 1;
          bytes += n * sb::cons_bytes;
          break;
        }
        case kMap: {
          if (rest < 5) return bytes;
          const std::size_t n = be32(p + 1);
          p += 5;
          if (n > end - p) return bytes;
          pending += 2 * n;
          if (n != 0) bytes += sb::map_bytes(n);
          break;
        }
        case kBinary:
        case kBitBinary: {
          const std::size_t header = t == kBinary ? 5 : 6;
          if (rest < header) return bytes;
          const std::size_t n = be32(p + 1);
          p += header;
          if (n > end - p) return bytes;
          if (n != 0) bytes += sb::binary_bytes(n);
          p += n;
          break;
        }
        case kSmallBig:
        case kLargeBig: {
          const std::size_t header = t == kSmallBig ? 3 : 6;
          if (rest < header) return bytes;
          const std::size_t n = t == kSmallBig ? std::uint8_t(in_[p + 1]) : be32(p + 1);
          p += header;
          if (n > end - p) return bytes;
          bytes += sb::bignum_bytes((n + 7) / 8);
          p += n;
          break;
        }
        case kNewPid:
        case kPid:
          p = skip_atom(p + 1);
          if (p == std::string_view::npos) return bytes;
          p += t == kNewPid ? 12 : 9;
          break;
        case kNewPort:
        case kV4Port:
        case kPort:
          p = skip_atom(p + 1);
          if (p == std::string_view::npos) return bytes;
          p += t == kV4Port ? 12 : t == kNewPort ? 8 : 5;
          break;
        case kNewerReference:
        case kNewReference: {
          if (rest < 3) return bytes;
          const std::size_t words = be16(p + 1);
          p = skip_atom(p + 3);
          if (p == std::string_view::npos) return bytes;
          p += (t == kNewerReference ? 4 : 1) + 4 * words;
          bytes += sb::ref_bytes;
          break;
        }
        case kReference:
          p = skip_atom(p + 1);
          if (p == std::string_view::npos) return bytes;
          p += 5;
          bytes += sb::ref_bytes;
          break;
        case kExport:
          p += 1;
          pending += 3;  // module, function, arity
          bytes += sb::fun_bytes(0);
          break;
        case kNewFun: {
          if (rest < 5) return bytes;
          const std::size_t size = be32(p + 1);
          if (size > rest - 1) return bytes;
          bytes += sb::fun_bytes(1 + size);  // the whole NEW_FUN_EXT, tag included
          p += 1 + size;
          break;
        }
        default:
          return bytes;  // unknown or misplaced: the second pass says which
      }
    }
    return bytes;
  }

  // Returns the next slot to fill, completing the containers that are full; null when the
  // term is complete.
  term* next_slot() {
    while (!frames_.empty()) {
      frame& f = frames_.back();
      if (f.remaining != 0) {
        term* s = f.next;
        --f.remaining;
        if (f.kind != container::list) {
          f.next = s + 1;
        } else if (f.remaining == 1) {
          f.next = detail::shared_block::tail_of(s);  // after the last head, its cell's tail
        } else if (f.remaining > 1) {
          f.next = detail::shared_block::next_head(s);
        }
        return s;
      }
      if (f.kind == container::map && !detail::sort_map_entries(f.entries, f.entry_count)) {
        fail(f.offset, "MAP_EXT has a duplicate key");
      }
      frames_.pop_back();
    }
    return nullptr;
  }

  // Checks that a container of `needed` slots may be opened at `at`.
  void check_container(std::size_t needed, std::size_t at) {
    if (frames_.size() >= options_.max_depth) {
      fail(at, fmt::format("nesting deeper than the limit of {} (decode_options::max_depth)", options_.max_depth));
    }
    // Every value needs at least one more byte, so this bounds allocation by the input.
    if (needed > left()) {
      fail(at, fmt::format("declared length {} exceeds the {} bytes left", needed, left()));
    }
  }

  // Writes `t` into the slot being filled.
  void push(term t) { ::new (slot_) term(std::move(t)); }

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
      case kAtomCacheRef: {
        const std::span<const atom> refs = options_.atom_cache_refs;
        if (refs.empty()) fail(at, "ATOM_CACHE_REF outside a distribution header");
        need(1, t);
        const std::size_t index = u8();
        if (in_fun_) fail(at, "ATOM_CACHE_REF inside a fun (a fun is kept as its bytes, where the index means nothing)");
        if (index >= refs.size()) {
          fail(at, fmt::format("ATOM_CACHE_REF {} in a header of {} atom cache refs", index, refs.size()));
        }
        return refs[index];
      }
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
    block_->reference(slot_, ref::from_words(n, std::span<const std::uint32_t>(w, words)));
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
    f.arity = std::uint32_t(arity);
    block_->fun(slot_, f, {});
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
    const bool was_in_fun = in_fun_;
    in_fun_ = true;
    f.module = read_atom();
    in_fun_ = was_in_fun;
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
    rest.in_fun_ = true;
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
    block_->fun(slot_, f, whole);
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
      block_->integer(slot_, sign == 1, {&magnitude, 1});
      return;
    }
    std::vector<std::uint64_t> limbs((used + 7) / 8);
    for (std::size_t i = 0; i < used; ++i) limbs[i / 8] |= std::uint64_t(in_[digits + i]) << (i % 8 * 8);
    block_->integer(slot_, sign == 1, limbs);
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

  // Decodes the term at pos_ into slot_; for a container, makes its box and opens it. Returns
  // false if it wrote nothing (LIST_EXT of no elements, whose tail comes next).
  bool step() {
    const std::size_t at = pos_;
    if (left() == 0) fail(at, "truncated input: expected a term, found the end");
    const auto t = std::uint8_t(in_[pos_]);
    switch (t) {
      case kSmallInteger:
        skip(1);
        need(1, t);
        push(term(std::int64_t(u8())));
        return true;
      case kInteger:
        skip(1);
        need(4, t);
        push(term(std::int64_t(std::int32_t(u32()))));
        return true;
      case kSmallBig:
      case kLargeBig:
        skip(1);
        big(t, at);
        return true;
      case kNewFloat:
      case kFloat:
        skip(1);
        float_(t, at);
        return true;
      case kAtom:
      case kSmallAtom:
      case kAtomUtf8:
      case kSmallAtomUtf8:
      case kAtomCacheRef:
        push(term(read_atom()));
        return true;
      case kSmallTuple:
      case kLargeTuple: {
        skip(1);
        need(t == kSmallTuple ? 1 : 4, t);
        const std::size_t n = t == kSmallTuple ? u8() : u32();
        if (n == 0) {
          push(tuple());
        } else {
          check_container(n, at);
          frames_.push_back({block_->tuple(slot_, n), n, nullptr, 0, at, container::tuple});
        }
        return true;
      }
      case kNil:
        skip(1);
        push(term::nil());
        return true;
      case kString: {
        skip(1);
        need(2, t);
        const std::size_t n = u16();
        need(n, t);
        if (n == 0) {
          push(term::nil());
          return true;
        }
        term* head = block_->list(slot_, n);
        for (std::size_t i = 0; i < n; ++i) {
          ::new (head) term(std::int64_t(std::uint8_t(in_[pos_ + i])));
          if (i + 1 < n) head = detail::shared_block::next_head(head);
        }
        ::new (detail::shared_block::tail_of(head)) term(term::nil());
        skip(n);
        return true;
      }
      case kList: {
        skip(1);
        need(4, t);
        const std::size_t n = u32();
        if (n == 0) return false;  // as erts: LIST_EXT of no elements is just its tail, decoded next
        check_container(n + 1, at);
        frames_.push_back({block_->list(slot_, n), n + 1, nullptr, 0, at, container::list});
        return true;
      }
      case kMap: {
        skip(1);
        need(4, t);
        const std::size_t n = u32();
        if (n == 0) {
          push(map(std::span<const std::pair<term, term>>()));
        } else {
          check_container(2 * n, at);
          std::pair<term, term>* entries = block_->map(slot_, n);
          frames_.push_back({&entries->first, 2 * n, entries, n, at, container::map});
        }
        return true;
      }
      case kBinary: {
        skip(1);
        need(4, t);
        const std::size_t n = u32();
        need(n, t);
        if (n == 0) {
          push(term::binary({}));
        } else {
          block_->bits(slot_, in_.data() + pos_, n, 0);
        }
        skip(n);
        return true;
      }
      case kBitBinary: {
        skip(1);
        need(5, t);
        const std::size_t n = u32();
        const std::uint8_t bits = u8();
        need(n, t);
        if ((bits == 0) != (n == 0) || bits > 8) fail(at, fmt::format("BIT_BINARY_EXT with {} bytes and {} bits in the last", n, bits));
        if (n == 0) {
          push(term::binary({}));
        } else {
          block_->bits(slot_, in_.data() + pos_, n, bits);
        }
        skip(n);
        return true;
      }
      case kNewPid:
      case kPid:
        skip(1);
        pid_(t, at);
        return true;
      case kNewerReference:
      case kNewReference:
      case kReference:
        skip(1);
        ref_(t, at);
        return true;
      case kNewPort:
      case kV4Port:
      case kPort:
        skip(1);
        port_(t, at);
        return true;
      case kExport:
        skip(1);
        export_(at);
        return true;
      case kNewFun:
        skip(1);
        new_fun(at);
        return true;
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
  bool in_fun_ = false;  // reading a NEW_FUN_EXT's fields or captured variables
  std::size_t pos_ = 0;
  scratch own_;      // used when the thread's stack is taken (a fun's captured variables)
  scratch& stacks_;
  std::vector<frame>& frames_;
  detail::shared_block* block_ = nullptr;  // run()'s
  term* slot_ = nullptr;                    // the slot step() fills

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
