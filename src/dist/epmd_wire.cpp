// The EPMD wire format (see athanor/dist/epmd_wire.h for the layouts).
//
// Parsing goes through one bounds-checked reader: every read names the field it takes, and a read
// past the end throws epmd_error naming that field, so no parser can touch a byte it was not given
// and each error says where the bytes went wrong. Parsers then insist that nothing is left over:
// a length prefix that disagrees with its fields is a sign of a confused or hostile peer, and the
// server closes such a connection rather than guess (epmd tolerates trailing bytes in ALIVE2_REQ;
// no real client sends them). The one leniency kept from epmd is a NUL ending a PORT_PLEASE2 name.
//
// Names are checked on both sides by one rule (is_valid_epmd_name), so a client cannot encode what
// a server would refuse and a NAMES reply can always be parsed line by line.
#include "athanor/dist/epmd_wire.h"

#include <charconv>
#include <string>

namespace athanor::dist {

namespace {

void put_u8(std::string& out, std::uint8_t v) { out.push_back(char(v)); }
void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(char(v >> 8));
  out.push_back(char(v & 0xFF));
}
void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(char((v >> shift) & 0xFF));
}

// A cursor over bytes that refuses to read past their end.
class reader {
 public:
  reader(std::string_view bytes, const char* what) : in_(bytes), what_(what) {}

  std::uint8_t u8(const char* field) {
    need(1, field);
    return std::uint8_t(in_[pos_++]);
  }
  std::uint16_t u16(const char* field) {
    need(2, field);
    std::uint16_t v = std::uint16_t((std::uint8_t(in_[pos_]) << 8) | std::uint8_t(in_[pos_ + 1]));
    pos_ += 2;
    return v;
  }
  std::uint32_t u32(const char* field) {
    need(4, field);
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | std::uint8_t(in_[pos_ + std::size_t(i)]);
    pos_ += 4;
    return v;
  }
  std::string_view bytes(std::size_t n, const char* field) {
    need(n, field);
    std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view rest() {
    std::string_view v = in_.substr(pos_);
    pos_ = in_.size();
    return v;
  }
  std::size_t left() const { return in_.size() - pos_; }
  void expect_end() const {
    if (pos_ != in_.size())
      throw epmd_error(std::string(what_) + ": " + std::to_string(in_.size() - pos_) + " unexpected trailing byte(s)");
  }

 private:
  void need(std::size_t n, const char* field) const {
    if (in_.size() - pos_ < n)
      throw epmd_error(std::string(what_) + ": truncated at " + field + " (needs " + std::to_string(n) + " byte(s), " +
                       std::to_string(in_.size() - pos_) + " left)");
  }
  std::string_view in_;
  std::size_t pos_ = 0;
  const char* what_;
};

// Counts the code points of valid UTF-8 (no overlong forms, no surrogates, nothing above
// U+10FFFF); -1 if invalid.
long utf8_length(std::string_view s) noexcept {
  long count = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    auto b = std::uint8_t(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      cp = b & 0x07;
    } else {
      return -1;
    }
    if (s.size() - i < len) return -1;
    for (std::size_t k = 1; k < len; ++k) {
      auto c = std::uint8_t(s[i + k]);
      if ((c & 0xC0) != 0x80) return -1;
      cp = (cp << 6) | (c & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return -1;
    i += len;
    ++count;
  }
  return count;
}

void check_name(std::string_view name, const char* what) {
  if (!is_valid_epmd_name(name))
    throw epmd_error(std::string(what) + ": invalid node name (needs 1 to 255 UTF-8 characters, no control characters)");
}

void check_extra(std::string_view extra, const char* what) {
  if (extra.size() > epmd_max_extra_bytes)
    throw epmd_error(std::string(what) + ": Extra field of " + std::to_string(extra.size()) + " bytes (at most " +
                     std::to_string(epmd_max_extra_bytes) + ")");
}

// The fields shared by ALIVE2_REQ and a found PORT2_RESP, after their tag (and result).
void put_node(std::string& out, const epmd_node& n, const char* what) {
  check_name(n.name, what);
  check_extra(n.extra, what);
  put_u16(out, n.port);
  put_u8(out, n.node_type);
  put_u8(out, n.protocol);
  put_u16(out, n.highest_version);
  put_u16(out, n.lowest_version);
  put_u16(out, std::uint16_t(n.name.size()));
  out += n.name;
  put_u16(out, std::uint16_t(n.extra.size()));
  out += n.extra;
}

epmd_node read_node(reader& r, const char* what) {
  epmd_node n;
  n.port = r.u16("PortNo");
  n.node_type = r.u8("NodeType");
  n.protocol = r.u8("Protocol");
  n.highest_version = r.u16("HighestVersion");
  n.lowest_version = r.u16("LowestVersion");
  std::uint16_t nlen = r.u16("Nlen");
  n.name = std::string(r.bytes(nlen, "NodeName"));
  std::uint16_t elen = r.u16("Elen");
  n.extra = std::string(r.bytes(elen, "Extra"));
  check_name(n.name, what);
  check_extra(n.extra, what);
  return n;
}

}  // namespace

bool is_valid_epmd_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (char c : name) {
    auto b = std::uint8_t(c);
    if (b < 0x20 || b == 0x7F) return false;
  }
  long chars = utf8_length(name);
  return chars >= 1 && std::size_t(chars) <= epmd_max_name_chars;
}

// ---- requests ----

std::string encode_epmd_request(const epmd_request& request) {
  std::string body;
  if (auto* a = std::get_if<alive2_request>(&request)) {
    put_u8(body, epmd_alive2_req);
    put_node(body, a->node, "ALIVE2_REQ");
  } else if (auto* p = std::get_if<port_please2_request>(&request)) {
    check_name(p->name, "PORT_PLEASE2_REQ");
    put_u8(body, epmd_port_please2_req);
    body += p->name;
  } else {
    put_u8(body, epmd_names_req);
  }
  // The largest body (ALIVE2 with a 1020-byte name and a 1020-byte Extra) is far below 65535.
  std::string packet;
  packet.reserve(2 + body.size());
  put_u16(packet, std::uint16_t(body.size()));
  packet += body;
  return packet;
}

epmd_request parse_epmd_request_body(std::string_view body) {
  if (body.empty()) throw epmd_error("EPMD request: empty body");
  reader r(body, "EPMD request");
  std::uint8_t tag = r.u8("tag");
  switch (tag) {
    case epmd_alive2_req: {
      reader a(body.substr(1), "ALIVE2_REQ");
      epmd_node n = read_node(a, "ALIVE2_REQ");
      a.expect_end();
      return alive2_request{std::move(n)};
    }
    case epmd_port_please2_req: {
      std::string_view name = body.substr(1);
      if (!name.empty() && name.back() == '\0') name.remove_suffix(1);
      check_name(name, "PORT_PLEASE2_REQ");
      return port_please2_request{std::string(name)};
    }
    case epmd_names_req:
      if (body.size() != 1) throw epmd_error("NAMES_REQ: " + std::to_string(body.size() - 1) + " unexpected trailing byte(s)");
      return names_request{};
    default:
      throw epmd_error("EPMD request: unknown or unsupported tag " + std::to_string(tag));
  }
}

epmd_request parse_epmd_request(std::string_view packet) {
  reader r(packet, "EPMD request");
  std::uint16_t len = r.u16("Len");
  if (r.left() != len)
    throw epmd_error("EPMD request: length prefix " + std::to_string(len) + " but " + std::to_string(r.left()) +
                     " byte(s) follow");
  return parse_epmd_request_body(r.rest());
}

// ---- responses ----

std::string encode_epmd_response(const alive2_response& response) {
  std::string out;
  if (response.extended) {
    put_u8(out, epmd_alive2_x_resp);
    put_u8(out, response.result);
    put_u32(out, response.creation);
  } else {
    if (response.creation > 0xFFFF) throw epmd_error("ALIVE2_RESP: creation " + std::to_string(response.creation) + " over 16 bits");
    put_u8(out, epmd_alive2_resp);
    put_u8(out, response.result);
    put_u16(out, std::uint16_t(response.creation));
  }
  return out;
}

std::string encode_epmd_response(const port2_response& response) {
  std::string out;
  put_u8(out, epmd_port2_resp);
  if (!response.node) {
    put_u8(out, 1);
    return out;
  }
  put_u8(out, 0);
  put_node(out, *response.node, "PORT2_RESP");
  return out;
}

std::string encode_epmd_response(const names_response& response) {
  std::string out;
  put_u32(out, response.epmd_port);
  for (const epmd_name_entry& e : response.nodes) {
    check_name(e.name, "NAMES_RESP");
    out += "name ";
    out += e.name;
    out += " at port ";
    out += std::to_string(e.port);
    out += '\n';
  }
  return out;
}

std::size_t alive2_response_size(std::uint8_t first_byte) {
  if (first_byte == epmd_alive2_x_resp) return 6;
  if (first_byte == epmd_alive2_resp) return 4;
  throw epmd_error("ALIVE2 reply: unexpected tag " + std::to_string(first_byte) + " (expected 118 or 121)");
}

alive2_response parse_alive2_response(std::string_view bytes) {
  reader r(bytes, "ALIVE2 reply");
  std::uint8_t tag = r.u8("tag");
  std::size_t size = alive2_response_size(tag);
  if (bytes.size() != size)
    throw epmd_error("ALIVE2 reply: " + std::to_string(bytes.size()) + " byte(s), expected " + std::to_string(size));
  alive2_response resp;
  resp.extended = tag == epmd_alive2_x_resp;
  resp.result = r.u8("Result");
  resp.creation = resp.extended ? r.u32("Creation") : r.u16("Creation");
  r.expect_end();
  return resp;
}

port2_response parse_port2_response(std::string_view bytes) {
  reader r(bytes, "PORT2_RESP");
  std::uint8_t tag = r.u8("tag");
  if (tag != epmd_port2_resp) throw epmd_error("PORT2_RESP: unexpected tag " + std::to_string(tag) + " (expected 119)");
  std::uint8_t result = r.u8("Result");
  if (result != 0) {
    r.expect_end();
    return port2_response{};
  }
  epmd_node n = read_node(r, "PORT2_RESP");
  r.expect_end();
  return port2_response{std::move(n)};
}

names_response parse_names_response(std::string_view bytes) {
  reader r(bytes, "NAMES reply");
  names_response out;
  out.epmd_port = r.u32("EPMDPortNo");
  std::string_view text = r.rest();
  constexpr std::string_view prefix = "name ";
  constexpr std::string_view middle = " at port ";
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) throw epmd_error("NAMES reply: last line has no newline");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line.substr(0, prefix.size()) != prefix) throw epmd_error("NAMES reply: a line does not start with \"name \"");
    line.remove_prefix(prefix.size());
    std::size_t at = line.rfind(middle);
    if (at == std::string_view::npos) throw epmd_error("NAMES reply: a line has no \" at port \"");
    std::string_view name = line.substr(0, at);
    std::string_view digits = line.substr(at + middle.size());
    unsigned port = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || port > 0xFFFF ||
        (digits.size() > 1 && digits[0] == '0'))
      throw epmd_error("NAMES reply: bad port \"" + std::string(digits.substr(0, 16)) + "\"");
    check_name(name, "NAMES reply");
    out.nodes.push_back(epmd_name_entry{std::string(name), std::uint16_t(port)});
  }
  return out;
}

}  // namespace athanor::dist
