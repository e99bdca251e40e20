// Distribution packets: reading and writing control messages (see control.h).
//
// Every control tuple is checked against its opcode's shape before anything acts on it, so the
// connection's dispatch can take elements by position without re-checking: a pid where a pid
// belongs, an atom where a name belongs, a reference where a monitor or alias reference belongs.
// The shapes are the protocol's (Erlang's "Protocol between connected nodes"); "any" positions
// (reasons, trace tokens, unused fields) accept every term. Trailing bytes after the last term are
// tolerated, as OTP tolerates them; a missing or extra payload is an error.
#include "athanor/dist/control.h"

#include <cstring>

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

message read_packet(std::span<const std::byte> packet, const etf::decode_options& options) {
  if (packet.empty()) throw protocol_error("dist: empty packet where a message was expected");
  std::span<const std::byte> rest = packet;
  etf::decode_options terms = options;
  if (rest[0] == std::byte{112}) {  // 'p': pass-through, each term with its version byte
    rest = rest.subspan(1);
    terms.version_byte = true;
  } else if (rest.size() >= 3 && rest[0] == std::byte{131} && rest[1] == std::byte{68}) {
    // Header form: acceptable only without atom-cache references (this node never negotiates
    // the cache, and a peer that uses it anyway is broken).
    if (rest[2] != std::byte{0}) throw protocol_error("dist: atom-cache references in a header, never negotiated");
    rest = rest.subspan(3);
    terms.version_byte = false;
  } else {
    throw protocol_error("dist: a packet must start with 112 (pass-through) or 131 68 (header)");
  }
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

void write_packet(std::vector<std::byte>& out, const term& control, const term* payload,
                  const etf::encode_options& options) {
  const std::size_t start = out.size();
  etf::encode_options terms = options;
  terms.version_byte = true;
  terms.minor_version = 2;  // every atom as UTF-8, as OTP sends over distribution
  try {
    out.resize(start + 5);
    out[start + 4] = std::byte{112};
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

}  // namespace athanor::dist
