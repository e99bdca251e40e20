// athanor::etf — Erlang's External Term Format: encode() is term_to_binary/1, decode() is
// binary_to_term/1,2. Thread-safe: the functions share no state (beyond the atom table,
// which is itself thread-safe); options and contexts are plain values.
//
//   using namespace athanor::literals;
//   std::vector<std::byte> bytes = etf::encode(tuple("ok"_a, 42));   // 131,104,2,100,0,2,"ok",97,42
//   term back = etf::decode(bytes);                                  // {ok,42}
//   etf::decode_options options;
//   options.safe = true;                                             // never create atoms
//   term from_peer = etf::decode(untrusted, options);
//
// Encoding is byte-identical to OTP 25's term_to_binary/1 (minor_version 1) for every term
// Athanor can hold, except maps of more than 32 keys: Erlang writes those in its internal
// hash order, Athanor in map key order (Erlang accepts any order; only the bytes differ).
// With minor_version = 2 atoms are always UTF-8, as OTP 26's term_to_binary/1 and the
// distribution protocol write them.
//
// Decoding accepts every tag OTP 25 writes and the older ones that map onto Athanor terms
// (see decode()). Input is untrusted: the decoder never reads outside the span, never
// recurses (an explicit stack, bounded by max_depth), checks every declared length against
// the bytes that remain before allocating for it, bounds decompression by
// max_decompressed_bytes, and reports every problem as an etf_error. Memory: the decoded
// term takes at most 40 bytes per input byte (a STRING_EXT: one 40-byte cons cell per
// byte), so bound the input size (and max_decompressed_bytes) by what you can afford.
// Without `safe`, every new atom in the input is interned for good, as in Erlang: decode
// untrusted input with safe = true.
//
// A decoded term is one allocation: the decoder measures the term first, then builds all
// of it in one block that its parts share (one malloc and one free per message, whatever
// its shape). So, as with a sub-binary in Erlang, a part kept alive keeps the whole
// message's memory: to keep a small part of a large message for long, keep
// part.unshared(), a deep copy of just that part. Terms built any other way are not affected.
//
// Pids and references. A term's pid or ref names its node by a number (0 = this node),
// the wire by a node-name atom and a creation. etf_context maps one to the other: node 0
// is {context.node, context.creation} (default 'nonode@nohost' and 0, what a
// non-distributed erl uses), other node numbers go through the optional node_name /
// node_number functions (the distribution layer's node table); ports go the same way. A
// pid is written with ID = pid.index() and Serial = pid.generation(); a wire pid that does
// not fit (ID >= 2^28, Serial >= 2^20) is an etf_error. A ref keeps the wire's ID words
// (1 to 5 of them, any values: a real node's 82-bit refs and its 5-word ones round-trip);
// a local ref's 64-bit id is the three words OTP uses, W0 = id & 0x3FFFF (18 bits),
// W1 = the next 32 bits, W2 = id >> 50, so ref(0, 1) is #Ref<0.0.0.1> in both.
//
// Funs are opaque (see fun_info): an exported fun is written as EXPORT_EXT from its parts;
// a local fun is written back exactly as it was decoded (its captured variables are kept
// encoded, checked to be well-formed ETF but not decoded, and its atoms are not rewritten
// for minor_version 2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "athanor/term/term.h"

namespace athanor::etf {

// Thrown by decode() for malformed, unsupported or refused input, and by encode() for a
// term the format cannot carry. what() says what and where, e.g.
// "etf: truncated input: BINARY_EXT needs 10 bytes at offset 6, 3 left". Thread-safe to
// copy, like every exception.
class etf_error : public std::runtime_error {
 public:
  etf_error(const std::string& message, std::size_t offset) : std::runtime_error(message), offset_(offset) {}
  // The byte offset in the input where the problem was found (for encode(): 0). For
  // compressed input, an offset inside the decompressed data.
  std::size_t offset() const noexcept { return offset_; }

 private:
  std::size_t offset_;
};

// A node as the wire names it.
struct node_identity {
  atom name;
  std::uint32_t creation = 0;
};

// How pids and refs map between node numbers and node names (see the file comment).
struct etf_context {
  // This node (node number 0).
  atom node = atoms::nonode_at_nohost;
  std::uint32_t creation = 0;
  // Encode: the name of node number n (n != 0), or nullopt if unknown (then encode throws).
  std::function<std::optional<node_identity>(std::uint32_t)> node_name;
  // Decode: the number (1..pid::kNodeMask) of a node that is not this one, or nullopt to
  // refuse the pid or ref (then decode throws "unknown node").
  std::function<std::optional<std::uint32_t>(const node_identity&)> node_number;
};

struct encode_options {
  etf_context context{};
  // 1: as OTP 25's term_to_binary/1: atoms whose characters are all Latin-1 as ATOM_EXT,
  //    the others as SMALL_ATOM_UTF8_EXT. 2: every atom as SMALL_ATOM_UTF8_EXT (OTP 26's
  //    default, and what OTP 25 sends over distribution). Other values throw etf_error.
  int minor_version = 1;
  // Write the leading version byte 131 (off for distribution header mode).
  bool version_byte = true;
};

struct decode_options {
  etf_context context{};
  // As binary_to_term(B, [safe]): never create an atom; an atom that does not exist yet is
  // an etf_error ("unknown atom").
  bool safe = false;
  // Most nested tuples, lists and maps (a LIST_EXT in another's tail counts as nesting).
  std::size_t max_depth = 10'000;
  // Largest size a compressed term (tag 80) may declare for its uncompressed data.
  std::size_t max_decompressed_bytes = std::size_t(64) << 20;
  // Expect the leading version byte 131 (off for distribution header mode; compressed
  // terms then cannot occur).
  bool version_byte = true;
  // Distribution header mode with the atom cache: the atoms of the current packet's header,
  // in its order; ATOM_CACHE_REF (tag 82, Index:u8) decodes to atom_cache_refs[Index], and an
  // Index past the end is an etf_error. Empty (the default, and everywhere but inside such a
  // packet): ATOM_CACHE_REF is an etf_error, as it means nothing outside a header. The span
  // is not owned: it must outlive the decode call. Safe mode does not apply to these atoms
  // (they exist already: whoever read the header made them, or refused to). A reference
  // inside a local fun (NEW_FUN_EXT) is refused: a fun's bytes are kept to be written back
  // verbatim (see the file comment), and this index would mean nothing in another packet.
  std::span<const atom> atom_cache_refs{};
};

// Returns the term in the External Term Format. Throws etf_error for a pid, port or ref of a
// node the context cannot name, a binary or list longer than 2^32 - 1, or a bad
// minor_version; std::bad_alloc if memory runs out. Never recurses: any nesting is fine.
std::vector<std::byte> encode(const term& t, const encode_options& options = {});
// Appends the encoding of `t` to `out` (same rules); on an exception `out` is left as it was.
void encode_to(std::vector<std::byte>& out, const term& t, const encode_options& options = {});

// Returns the term encoded in `bytes`, which must hold exactly one term. Throws etf_error
// on anything else (see the file comment and the limits in decode_options).
//
// Accepted tags: SMALL_INTEGER_EXT, INTEGER_EXT, SMALL_BIG_EXT and LARGE_BIG_EXT (any
// size; a value that fits 64 bits becomes an in-place integer), NEW_FLOAT_EXT and FLOAT_EXT
// (finite values), ATOM_UTF8_EXT, SMALL_ATOM_UTF8_EXT, ATOM_EXT and SMALL_ATOM_EXT
// (Latin-1; converted to UTF-8; at most 255 UTF-8 bytes, Athanor's atom limit),
// SMALL_TUPLE_EXT, LARGE_TUPLE_EXT, NIL_EXT, STRING_EXT, LIST_EXT (improper tails too),
// BINARY_EXT, BIT_BINARY_EXT, MAP_EXT (any key order; duplicates refused), NEW_PID_EXT,
// PID_EXT, NEWER_REFERENCE_EXT, NEW_REFERENCE_EXT, REFERENCE_EXT, NEW_PORT_EXT,
// V4_PORT_EXT, PORT_EXT, EXPORT_EXT, NEW_FUN_EXT (funs nested at most 8 deep in captured
// variables), and a compressed term (tag 80, zlib). Refused with a clear message: FUN_EXT
// (pre-R8), LOCAL_EXT, unknown tags, and ATOM_CACHE_REF unless options.atom_cache_refs
// gives the header's atoms (distribution header mode only).
term decode(std::span<const std::byte> bytes, const decode_options& options = {});

// Decodes the one term at the start of `bytes` and returns it with the number of bytes
// it used; the rest is left alone (a distribution message is two terms back to back).
struct decoded {
  term value;
  std::size_t size = 0;
};
decoded decode_prefix(std::span<const std::byte> bytes, const decode_options& options = {});

}  // namespace athanor::etf
