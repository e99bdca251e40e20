// Distribution packets: reading and writing control messages (see control.h).
//
// Every control tuple is checked against its opcode's shape before anything acts on it, so the
// connection's dispatch can take elements by position without re-checking: a pid where a pid
// belongs, an atom where a name belongs, a reference where a monitor or alias reference belongs.
// The shapes are the protocol's (Erlang's "Protocol between connected nodes"); "any" positions
// (reasons, trace tokens, unused fields) accept every term. Trailing bytes after the last term are
// tolerated, as OTP tolerates them; a missing or extra payload is an error.
//
// Header mode (erlang-distribution.md sections 4.2 to 4.4): packet_reader keeps the atom cache
// and the messages being reassembled; fragment_writer slices one encoded message into fragments.
#include "athanor/dist/control.h"

#include <algorithm>
#include <bitset>
#include <cstring>
#include <limits>

#include <fmt/core.h>

#include "athanor/dist/handshake.h"

namespace athanor::dist {

namespace {

// Shape letters: p pid, a atom, r reference, n pid or atom (a process named or not), i integer,
// t a tuple, l a list, x any term.
struct shape {
  std::uint8_t op;
  const char* elements;  // after the opcode
  bool payload;
};

constexpr shape kShapes[] = {
    {1, "pp", false},     {2, "xp", true},       {3, "ppx", false},     {4, "pp", false},
    {5, "", false},       {6, "pxa", true},      {7, "pp", false},      {8, "ppx", false},
    {12, "xpx", true},    {13, "ppxx", false},   {16, "pxax", true},    {18, "ppxx", false},
    {19, "pnr", false},   {20, "pnr", false},    {21, "nprx", false},   {22, "pp", true},
    {23, "ppx", true},    {24, "pp", true},      {25, "ppx", true},     {26, "pp", true},
    {27, "ppx", true},    {28, "npr", true},     {29, "rpptl", true},   {30, "rpptlx", true},
    {31, "rpix", false},  {32, "rpixx", false},  {33, "pr", true},      {34, "prx", true},
    {35, "ipp", false},   {36, "ipp", false},
};

const shape* shape_of(std::int64_t code) noexcept {
  for (const shape& s : kShapes)
    if (s.op == code) return &s;
  return nullptr;
}

bool fits(const term& t, char letter) {
  switch (letter) {
    case 'p': return t.is_pid();
    case 'a': return t.is_atom();
    case 'r': return t.is_reference();
    case 'n': return t.is_pid() || t.is_atom();
    case 'i': return t.is_integer();
    case 't': return t.is_tuple();
    case 'l': return t.is_list();
    default: return true;
  }
}

const char* kind_name(char letter) {
  switch (letter) {
    case 'p': return "a pid";
    case 'a': return "an atom";
    case 'r': return "a reference";
    case 'n': return "a pid or an atom";
    case 'i': return "an integer";
    case 't': return "a tuple";
    case 'l': return "a list";
    default: return "a term";
  }
}

}  // namespace

bool has_payload(op o) noexcept {
  const shape* s = shape_of(std::int64_t(o));
  return s && s->payload;
}

namespace {

// Decodes the control tuple and the payload in `rest` (the packet after its framing), checking
// the tuple against its opcode's shape.
message decode_message(std::span<const std::byte> rest, const etf::decode_options& terms) {
  message m;
  try {
    etf::decoded control = etf::decode_prefix(rest, terms);
    rest = rest.subspan(control.size);
    m.control = std::move(control.value);
  } catch (const etf::etf_error& e) {
    throw protocol_error(std::string("dist: malformed control message: ") + e.what());
  }
  if (!m.control.is_tuple() || m.control.tuple_size() == 0 || !m.control.element(0).is_int64()) {
    throw protocol_error("dist: the control message is not a tuple starting with an opcode: " + m.control.to_string());
  }
  const shape* s = shape_of(m.control.element(0).as_int());
  if (!s) throw protocol_error("dist: unknown control opcode in " + m.control.to_string());
  const std::size_t arity = std::strlen(s->elements) + 1;
  if (m.control.tuple_size() != arity) {
    throw protocol_error("dist: control message " + std::to_string(s->op) + " needs " + std::to_string(arity) +
                         " elements: " + m.control.to_string());
  }
  for (std::size_t i = 1; i < arity; ++i) {
    if (!fits(m.control.element(i), s->elements[i - 1])) {
      throw protocol_error("dist: element " + std::to_string(i + 1) + " of control message " + std::to_string(s->op) +
                           " must be " + kind_name(s->elements[i - 1]) + ": " + m.control.to_string());
    }
  }
  m.op = op(s->op);
  if (s->payload) {
    if (rest.empty()) throw protocol_error("dist: control message " + std::to_string(s->op) + " without its payload");
    try {
      m.payload = etf::decode_prefix(rest, terms).value;
    } catch (const etf::etf_error& e) {
      throw protocol_error(std::string("dist: malformed payload: ") + e.what());
    }
  }
  return m;
}

constexpr std::byte kPassThrough{112}, kVersion{131}, kWhole{68}, kFirstFragment{69}, kLaterFragment{70};

std::uint64_t be64(std::span<const std::byte> b) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | std::uint64_t(b[std::size_t(i)]);
  return v;
}

std::byte* put_be(std::byte* p, std::uint64_t v, int bytes) noexcept {
  for (int i = bytes - 1; i >= 0; --i) *p++ = std::byte(v >> (8 * i));
  return p;
}

}  // namespace

message read_packet(std::span<const std::byte> packet, const etf::decode_options& options) {
  if (packet.empty()) throw protocol_error("dist: empty packet where a message was expected");
  std::span<const std::byte> rest = packet;
  etf::decode_options terms = options;
  if (rest[0] == kPassThrough) {  // each term with its version byte
    rest = rest.subspan(1);
    terms.version_byte = true;
  } else if (rest.size() >= 3 && rest[0] == kVersion && rest[1] == kWhole) {
    // Header form: readable without state only when it names no atom-cache entries.
    if (rest[2] != std::byte{0}) throw protocol_error("dist: atom-cache references in a header (a packet_reader's job)");
    rest = rest.subspan(3);
    terms.version_byte = false;
  } else {
    throw protocol_error("dist: a packet must start with 112 (pass-through) or 131 68 (header)");
  }
  terms.atom_cache_refs = {};
  return decode_message(rest, terms);
}

namespace {

// Appends one packet: its 4-byte length, `prefix` (112, or 131 68 0), then the control term and
// the payload, each with the version byte 131 or without it. On an exception `out` is as it was.
void write_framed(std::vector<std::byte>& out, std::span<const std::byte> prefix, bool version_bytes, const term& control,
                  const term* payload, const etf::encode_options& options) {
  const std::size_t start = out.size();
  etf::encode_options terms = options;
  terms.version_byte = version_bytes;
  terms.minor_version = 2;  // every atom as UTF-8, as OTP sends over distribution
  try {
    out.resize(start + 4);
    out.insert(out.end(), prefix.begin(), prefix.end());
    etf::encode_to(out, control, terms);
    if (payload) etf::encode_to(out, *payload, terms);
  } catch (...) {
    out.resize(start);
    throw;
  }
  const std::uint64_t length = out.size() - start - 4;
  if (length > 0xFFFFFFFFu) {
    out.resize(start);
    throw etf::etf_error("dist: a message longer than 4 GiB cannot be sent", 0);
  }
  for (int i = 0; i < 4; ++i) out[start + std::size_t(i)] = std::byte(length >> (24 - 8 * i));
}

}  // namespace

void write_packet(std::vector<std::byte>& out, const term& control, const term* payload,
                  const etf::encode_options& options) {
  const std::byte prefix[] = {kPassThrough};
  write_framed(out, prefix, true, control, payload, options);
}

packet_mode packet_mode_for(std::uint64_t negotiated_flags) noexcept {
  return (negotiated_flags & (dflag::dist_hdr_atom_cache | dflag::fragments)) ? packet_mode::header
                                                                               : packet_mode::pass_through;
}

void write_packet(std::vector<std::byte>& out, packet_mode mode, const term& control, const term* payload,
                  const etf::encode_options& options) {
  if (mode == packet_mode::pass_through) return write_packet(out, control, payload, options);
  const std::byte prefix[] = {kVersion, kWhole, std::byte{0}};  // no atom-cache refs: no sending cache
  write_framed(out, prefix, false, control, payload, options);
}

// ---- fragment_writer ------------------------------------------------------------------------

namespace {
constexpr std::size_t kWholeHeader = 4 + 3;              // length, 131 68 0
constexpr std::size_t kFirstHeader = 4 + 2 + 8 + 8 + 1;  // length, 131 69, ids, no cache refs
constexpr std::size_t kLaterHeader = 4 + 2 + 8 + 8;      // length, 131 70, ids
}  // namespace

bool fits_one_packet(std::span<const std::byte> packet, std::size_t max_fragment_bytes) noexcept {
  return packet.size() <= kWholeHeader || packet.size() - kWholeHeader <= max_fragment_bytes;
}

fragment_writer::fragment_writer(std::vector<std::byte> packet, std::uint64_t sequence_id,
                                 std::size_t max_fragment_bytes)
    : packet_(std::move(packet)), sequence_id_(sequence_id), max_(max_fragment_bytes) {
  if (max_ == 0 || max_ > 0xFFFFFFFFu - 64) {
    throw std::invalid_argument("dist::fragment_writer: max_fragment_bytes must be 1 to 4 GiB - 64");
  }
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < 4 && i < packet_.size(); ++i) length = length << 8 | std::uint64_t(packet_[i]);
  if (packet_.size() < kWholeHeader || length != packet_.size() - 4 || packet_[4] != kVersion ||
      packet_[5] != kWhole || packet_[6] != std::byte{0}) {
    throw std::invalid_argument("dist::fragment_writer: not one header-mode packet (length, 131 68 0, terms)");
  }
  const std::size_t body = packet_.size() - kWholeHeader;
  count_ = body <= max_ ? 1 : (body + max_ - 1) / max_;
  left_ = count_;
  offset_ = kWholeHeader;
}

fragment_writer::fragment fragment_writer::next() {
  if (left_ == 0) throw std::logic_error("dist::fragment_writer::next after the last fragment");
  fragment f;
  if (count_ == 1) {  // fits in one packet: as it was written
    std::copy_n(packet_.begin(), kWholeHeader, f.header_bytes.begin());
    f.header_size = kWholeHeader;
    f.body = std::span(packet_).subspan(kWholeHeader);
    left_ = 0;
    return f;
  }
  const bool first = left_ == count_;
  const std::size_t n = std::min(max_, packet_.size() - offset_);
  const std::size_t header = first ? kFirstHeader : kLaterHeader;
  std::byte* p = put_be(f.header_bytes.data(), header - 4 + n, 4);
  *p++ = kVersion;
  *p++ = first ? kFirstFragment : kLaterFragment;
  p = put_be(p, sequence_id_, 8);
  p = put_be(p, left_, 8);  // fragment ids count down to 1, the last
  if (first) *p++ = std::byte{0};  // no atom-cache refs
  f.header_size = std::uint8_t(header);
  f.body = std::span(packet_).subspan(offset_, n);
  offset_ += n;
  --left_;
  return f;
}

std::vector<std::byte> fragment_writer::release_buffer() noexcept {
  if (left_ != 0) return {};
  std::vector<std::byte> out = std::move(packet_);
  packet_ = {};
  out.clear();
  return out;
}

void fragment_writer::write_next(std::vector<std::byte>& out) {
  const fragment f = next();
  out.reserve(out.size() + f.size());
  out.insert(out.end(), f.header().begin(), f.header().end());
  out.insert(out.end(), f.body.begin(), f.body.end());
}

// ---- packet_reader --------------------------------------------------------------------------

// OTP's cache: 8 segments of 256 slots, a slot set by a new entry until another replaces it.
struct packet_reader::atom_cache {
  static constexpr std::size_t kSlots = 8 * 256;
  std::array<atom, kSlots> atoms;
  std::bitset<kSlots> filled;
};

packet_reader::packet_reader(std::uint64_t negotiated_flags, reader_limits limits)
    : mode_(packet_mode_for(negotiated_flags)),
      cache_allowed_((negotiated_flags & dflag::dist_hdr_atom_cache) != 0),
      fragments_allowed_((negotiated_flags & dflag::fragments) != 0),
      limits_(limits) {}

packet_reader::~packet_reader() = default;
packet_reader::packet_reader(packet_reader&&) noexcept = default;
packet_reader& packet_reader::operator=(packet_reader&&) noexcept = default;

// The largest finished buffer a reader keeps for its next message (see spare_).
constexpr std::size_t kMaxSpareBytes = std::size_t(16) << 20;

std::optional<message> packet_reader::feed(std::span<const std::byte> packet, const etf::decode_options& options) {
  if (packet.empty()) throw protocol_error("dist: empty packet where a message was expected");
  etf::decode_options terms = options;
  terms.atom_cache_refs = {};
  if (mode_ == packet_mode::pass_through) {
    if (packet[0] != kPassThrough) {
      throw protocol_error(packet[0] == kVersion
                               ? "dist: a header-mode packet (131) on a pass-through connection (neither "
                                 "DIST_HDR_ATOM_CACHE nor FRAGMENTS was negotiated)"
                               : "dist: a packet must start with 112 (pass-through)");
    }
    terms.version_byte = true;
    return decode_message(packet.subspan(1), terms);
  }
  if (packet[0] != kVersion) {
    throw protocol_error(packet[0] == kPassThrough
                             ? "dist: a pass-through packet (112) on a connection in header mode "
                               "(DIST_HDR_ATOM_CACHE or FRAGMENTS was negotiated)"
                             : "dist: a header-mode packet must start with 131");
  }
  if (packet.size() < 2) throw protocol_error("dist: a header-mode packet of 1 byte");
  terms.version_byte = false;
  const std::byte kind = packet[1];
  if (kind == kWhole) {
    const std::span<const std::byte> rest = read_header(packet.subspan(2), atoms_, options);
    terms.atom_cache_refs = atoms_;
    return decode_message(rest, terms);
  }
  if (kind != kFirstFragment && kind != kLaterFragment) {
    throw protocol_error(fmt::format("dist: unknown distribution header 131 {}", int(kind)));
  }
  if (!fragments_allowed_) throw protocol_error("dist: a fragment, but FRAGMENTS was not negotiated");
  if (packet.size() < 18) throw protocol_error("dist: a fragment header cut short of its sequence and fragment ids");
  const std::uint64_t id = be64(packet.subspan(2, 8)), fragment = be64(packet.subspan(10, 8));
  if (fragment == 0) throw protocol_error(fmt::format("dist: fragment id 0 in sequence {:#x} (ids count down to 1)", id));
  auto it = sequences_.find(id);

  if (kind == kFirstFragment) {
    if (it != sequences_.end()) throw protocol_error(fmt::format("dist: sequence {:#x} started twice", id));
    std::vector<atom> atoms;
    const std::span<const std::byte> rest = read_header(packet.subspan(18), atoms, options);
    if (fragment == 1) {  // the whole message in one fragment: nothing to keep
      terms.atom_cache_refs = atoms;
      return decode_message(rest, terms);
    }
    if (sequences_.size() >= limits_.max_sequences) {
      throw protocol_error(fmt::format("dist: more than {} fragmented messages in progress at once (reader_limits)",
                                       limits_.max_sequences));
    }
    it = sequences_.emplace(id, sequence{}).first;
    sequence& s = it->second;
    if (spare_.capacity() > 0 && spare_.capacity() <= limits_.max_buffered_bytes - std::min(buffered_, limits_.max_buffered_bytes)) {
      s.bytes = std::move(spare_);  // the last message's buffer: its pages are already mapped
      spare_ = {};
      buffered_ += s.bytes.capacity();
    }
    s.next_fragment = fragment - 1;
    s.atoms = std::move(atoms);
    // The total is about (first fragment's bytes) x (fragments): room for it now saves copying
    // a large message as it grows. append() keeps what a lying peer can make this take within
    // the limits.
    const std::size_t estimate =
        fragment > limits_.max_message_bytes / std::max<std::size_t>(rest.size(), 1)
            ? limits_.max_message_bytes
            : std::size_t(fragment) * std::max<std::size_t>(rest.size(), 1);
    try {
      append(s, id, rest, estimate);
    } catch (...) {
      release(it);
      throw;
    }
    return std::nullopt;
  }

  if (it == sequences_.end()) {
    throw protocol_error(fmt::format("dist: fragment {} of sequence {:#x}, which was never started", fragment, id));
  }
  sequence& s = it->second;
  if (fragment != s.next_fragment) {
    throw protocol_error(fmt::format("dist: fragment {} of sequence {:#x} where fragment {} was due", fragment, id,
                                     s.next_fragment));
  }
  append(s, id, packet.subspan(18), 0);
  if (fragment > 1) {
    --s.next_fragment;
    return std::nullopt;
  }
  // The last fragment: the sequence leaves the table (and the limits) before its message is
  // decoded, so a decoding error leaves nothing behind.
  sequence whole = std::move(s);
  buffered_ -= whole.bytes.capacity();
  sequences_.erase(it);
  terms.atom_cache_refs = whole.atoms;
  message m = decode_message(whole.bytes, terms);
  if (whole.bytes.capacity() <= kMaxSpareBytes) {
    whole.bytes.clear();
    spare_ = std::move(whole.bytes);
  }
  return m;
}

void packet_reader::append(sequence& s, std::uint64_t id, std::span<const std::byte> bytes, std::size_t expected) {
  if (bytes.size() > limits_.max_message_bytes - s.bytes.size()) {
    throw protocol_error(fmt::format("dist: fragmented message {:#x} longer than the {}-byte limit (reader_limits)",
                                     id, limits_.max_message_bytes));
  }
  const std::size_t need = s.bytes.size() + bytes.size();
  if (need > s.bytes.capacity()) {
    // Grow to `expected`, or double (vector's rule, at most to the message limit), within what
    // the other sequences leave of max_buffered_bytes. Capacity is what is counted: it is what
    // the bytes really take.
    const std::size_t others = buffered_ - s.bytes.capacity();
    const std::size_t budget = limits_.max_buffered_bytes > others ? limits_.max_buffered_bytes - others : 0;
    if (need > budget) {
      throw protocol_error(fmt::format(
          "dist: fragmented messages in progress would hold more than {} bytes (reader_limits), at sequence {:#x}",
          limits_.max_buffered_bytes, id));
    }
    const std::size_t doubled = std::min(s.bytes.capacity() * 2, limits_.max_message_bytes);
    s.bytes.reserve(std::min(std::max({need, expected, doubled}), budget));
    buffered_ = others + s.bytes.capacity();
  }
  s.bytes.insert(s.bytes.end(), bytes.begin(), bytes.end());
}

void packet_reader::release(std::unordered_map<std::uint64_t, sequence>::iterator it) {
  buffered_ -= it->second.bytes.capacity();
  sequences_.erase(it);
}

std::span<const std::byte> packet_reader::read_header(std::span<const std::byte> rest, std::vector<atom>& atoms,
                                                      const etf::decode_options& options) {
  atoms.clear();
  if (rest.empty()) throw protocol_error("dist: a distribution header cut short of its NumberOfAtomCacheRefs");
  const std::size_t n = std::uint8_t(rest[0]);
  rest = rest.subspan(1);
  if (n == 0) return rest;  // no flags either
  if (!cache_allowed_) {
    throw protocol_error("dist: atom-cache references in a header, but DIST_HDR_ATOM_CACHE was not negotiated");
  }
  // Flags: a nibble per reference and one more (bit 0: LongAtoms), two to a byte, low first.
  const std::size_t flag_bytes = n / 2 + 1;
  if (rest.size() < flag_bytes) throw protocol_error(fmt::format("dist: a header of {} atom-cache refs cut short in its flags", n));
  const std::span<const std::byte> flags = rest.first(flag_bytes);
  rest = rest.subspan(flag_bytes);
  auto nibble = [&](std::size_t i) -> unsigned {
    const auto b = std::uint8_t(flags[i / 2]);
    return i % 2 ? b >> 4 : b & 0xFu;
  };
  const bool long_atoms = (nibble(n) & 1) != 0;
  if (!cache_) cache_ = std::make_unique<atom_cache>();
  atoms.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned f = nibble(i);
    if (rest.empty()) throw protocol_error(fmt::format("dist: atom-cache ref {} of {} cut short", i, n));
    const std::size_t slot = (f & 7u) * 256 + std::uint8_t(rest[0]);
    rest = rest.subspan(1);
    if (f & 8u) {  // NewCacheEntry: the atom's text follows; it replaces the slot's
      const std::size_t length_bytes = long_atoms ? 2 : 1;
      if (rest.size() < length_bytes) throw protocol_error(fmt::format("dist: atom-cache ref {} of {} cut short", i, n));
      const std::size_t length = long_atoms ? std::size_t(std::uint8_t(rest[0])) << 8 | std::uint8_t(rest[1])
                                            : std::uint8_t(rest[0]);
      rest = rest.subspan(length_bytes);
      if (rest.size() < length) {
        throw protocol_error(fmt::format("dist: atom-cache ref {} of {}: {} bytes of text, {} left", i, n, length,
                                         rest.size()));
      }
      // The atom is made as the term decoder makes one (UTF-8 checked, Athanor's length limit,
      // no new atom in safe mode, the table's limit), by decoding it as an atom term.
      scratch_.clear();
      if (length <= 255) {
        scratch_.push_back(std::byte{119});  // SMALL_ATOM_UTF8_EXT
      } else {
        scratch_.push_back(std::byte{118});  // ATOM_UTF8_EXT
        scratch_.push_back(std::byte(length >> 8));
      }
      scratch_.push_back(std::byte(length & 0xFF));
      scratch_.insert(scratch_.end(), rest.begin(), rest.begin() + std::ptrdiff_t(length));
      rest = rest.subspan(length);
      etf::decode_options as_term;
      as_term.version_byte = false;
      as_term.safe = options.safe;
      try {
        cache_->atoms[slot] = etf::decode(scratch_, as_term).as_atom();
      } catch (const etf::etf_error& e) {
        throw protocol_error(fmt::format("dist: atom-cache ref {} of {} (segment {}, index {}): {}", i, n, f & 7u,
                                         slot % 256, e.what()));
      }
      cache_->filled.set(slot);
    } else if (!cache_->filled.test(slot)) {
      throw protocol_error(fmt::format("dist: atom-cache ref {} of {} names an empty slot (segment {}, index {})", i, n,
                                       f & 7u, slot % 256));
    }
    atoms.push_back(cache_->atoms[slot]);
  }
  return rest;
}

}  // namespace athanor::dist
