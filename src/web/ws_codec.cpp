// The WebSocket frame codec (RFC 6455 §5), UTF-8 validation, permessage-deflate (RFC 7692) and the
// handshake's accept key. No I/O: the `ws` connection (websocket.cpp) and fuzz/ws_frame_fuzz.cpp
// drive it. The decoder consumes only whole frames, so a connection keeps at most one partial
// frame between reads (bounded by max_frame).
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <zlib.h>

#include <cstring>

#include "athanor/web/websocket.h"

namespace athanor::web {

// ---- UTF-8 ---------------------------------------------------------------------------------------

bool utf8_validator::feed(std::string_view bytes) noexcept {
  for (unsigned char c : bytes) {
    if (need_ == 0) {
      if (c < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (c >= 0xC2 && c <= 0xDF) {
        need_ = 1;
      } else if (c >= 0xE0 && c <= 0xEF) {
        need_ = 2;
        if (c == 0xE0) lo_ = 0xA0;        // no overlongs
        else if (c == 0xED) hi_ = 0x9F;   // no surrogates
      } else if (c >= 0xF0 && c <= 0xF4) {
        need_ = 3;
        if (c == 0xF0) lo_ = 0x90;        // no overlongs
        else if (c == 0xF4) hi_ = 0x8F;   // at most U+10FFFF
      } else {
        return false;
      }
    } else {
      if (c < lo_ || c > hi_) return false;
      lo_ = 0x80;
      hi_ = 0xBF;
      --need_;
    }
  }
  return true;
}

// ---- handshake helpers ---------------------------------------------------------------------------

std::string ws_accept_key(std::string_view client_key) {
  static constexpr char kGuid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in(client_key);
  in += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char b64[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int n = EVP_EncodeBlock(b64, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(b64), std::size_t(n));
}

namespace {
std::string_view trim(std::string_view v) noexcept {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}
// Splits on `sep` outside quoted strings (extension parameters may be quoted).
std::vector<std::string_view> split_unquoted(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"') quoted = !quoted;
    else if (s[i] == sep && !quoted) {
      out.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  }
  out.push_back(trim(s.substr(start)));
  return out;
}
}  // namespace

std::optional<ws_deflate_params> negotiate_permessage_deflate(std::string_view offers, std::string& response) {
  for (std::string_view offer : split_unquoted(offers, ',')) {
    auto parts = split_unquoted(offer, ';');
    if (parts.empty() || !iequals(parts[0], "permessage-deflate")) continue;
    ws_deflate_params p;
    bool ok = true, seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false;
    for (std::size_t i = 1; i < parts.size() && ok; ++i) {
      std::string_view kv = parts[i];
      std::size_t eq = kv.find('=');
      std::string_view k = trim(kv.substr(0, eq));
      std::string_view v = eq == std::string_view::npos ? std::string_view() : trim(kv.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      if (k == "server_no_context_takeover" && eq == std::string_view::npos && !seen_snct) {
        p.server_no_context_takeover = seen_snct = true;
      } else if (k == "client_no_context_takeover" && eq == std::string_view::npos && !seen_cnct) {
        p.client_no_context_takeover = seen_cnct = true;
      } else if (k == "server_max_window_bits" && !seen_smwb && v.size() >= 1 && v.size() <= 2) {
        seen_smwb = true;
        int bits = 0;
        for (char c : v) bits = (c >= '0' && c <= '9') ? bits * 10 + (c - '0') : 100;
        // zlib cannot produce a raw deflate stream with an 8-bit window: decline such offers.
        if (bits < 9 || bits > 15) ok = false;
        else p.server_max_window_bits = bits;
      } else if (k == "client_max_window_bits" && !seen_cmwb) {
        seen_cmwb = true;  // a hint we may ignore: our inflater accepts any window up to 15 bits
        if (!v.empty()) {
          int bits = 0;
          for (char c : v) bits = (c >= '0' && c <= '9') ? bits * 10 + (c - '0') : 100;
          if (bits < 8 || bits > 15) ok = false;
        }
      } else {
        ok = false;  // unknown or repeated parameter: this offer is declined (RFC 7692 §5)
      }
    }
    if (!ok) continue;
    response = "permessage-deflate";
    if (p.server_no_context_takeover) response += "; server_no_context_takeover";
    if (p.client_no_context_takeover) response += "; client_no_context_takeover";
    if (seen_smwb) response += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
    return p;
  }
  return std::nullopt;
}

// ---- frames ------------------------------------------------------------------------------------

void ws_encode_frame(std::string& out, ws_opcode op, std::string_view payload, bool fin, bool rsv1,
                     std::optional<std::uint32_t> mask_key) {
  unsigned char h[14];
  std::size_t n = 0;
  h[n++] = static_cast<unsigned char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | static_cast<unsigned>(op));
  unsigned char m = mask_key ? 0x80 : 0;
  std::uint64_t len = payload.size();
  if (len < 126) {
    h[n++] = static_cast<unsigned char>(m | len);
  } else if (len <= 0xFFFF) {
    h[n++] = static_cast<unsigned char>(m | 126);
    h[n++] = static_cast<unsigned char>(len >> 8);
    h[n++] = static_cast<unsigned char>(len);
  } else {
    h[n++] = static_cast<unsigned char>(m | 127);
    for (int i = 7; i >= 0; --i) h[n++] = static_cast<unsigned char>(len >> (8 * i));
  }
  unsigned char key[4] = {};
  if (mask_key) {
    for (int i = 0; i < 4; ++i) key[i] = static_cast<unsigned char>(*mask_key >> (8 * (3 - i)));
    std::memcpy(h + n, key, 4);
    n += 4;
  }
  out.append(reinterpret_cast<const char*>(h), n);
  std::size_t at = out.size();
  out.append(payload);
  if (mask_key)
    for (std::size_t i = 0; i < payload.size(); ++i) out[at + i] = char(out[at + i] ^ char(key[i & 3]));
}

// ---- permessage-deflate --------------------------------------------------------------------------

struct ws_deflate::streams {
  z_stream def{};
  z_stream inf{};
  bool def_ready = false;
  bool inf_ready = false;
  ~streams() {
    if (def_ready) deflateEnd(&def);
    if (inf_ready) inflateEnd(&inf);
  }
};

ws_deflate::ws_deflate(ws_deflate_params p) : params_(p) {}
ws_deflate::~ws_deflate() = default;

bool ws_deflate::compress(std::string_view in, std::string& out) {
  if (!z_) z_ = std::make_unique<streams>();
  if (!z_->def_ready) {
    // memLevel 8 and the negotiated window: zlib's defaults, a deliberate speed/size trade.
    if (deflateInit2(&z_->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -params_.server_max_window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
    z_->def_ready = true;
  }
  out.clear();
  z_stream& z = z_->def;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = deflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
    out.append(buf, sizeof buf - z.avail_out);
  } while (z.avail_out == 0);
  // RFC 7692 §7.2.1: drop the 00 00 ff ff that ends a sync flush.
  if (out.size() >= 4 && out.compare(out.size() - 4, 4, std::string_view("\x00\x00\xff\xff", 4)) == 0) out.resize(out.size() - 4);
  if (params_.server_no_context_takeover) deflateReset(&z);
  return true;
}

bool ws_deflate::decompress(std::string_view in, std::string& out, std::size_t max_out, bool& too_big) {
  too_big = false;
  if (!z_) z_ = std::make_unique<streams>();
  if (!z_->inf_ready) {
    if (inflateInit2(&z_->inf, -15) != Z_OK) return false;
    z_->inf_ready = true;
  }
  out.clear();
  z_stream& z = z_->inf;
  static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
  char buf[16384];
  for (int part = 0; part < 2; ++part) {
    z.next_in = part == 0 ? reinterpret_cast<Bytef*>(const_cast<char*>(in.data())) : const_cast<Bytef*>(tail);
    z.avail_in = part == 0 ? static_cast<uInt>(in.size()) : 4;
    while (z.avail_in > 0) {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof buf;
      int rc = inflate(&z, Z_SYNC_FLUSH);
      out.append(buf, sizeof buf - z.avail_out);
      if (out.size() > max_out) {
        too_big = true;
        inflateReset(&z);
        return false;
      }
      if (rc == Z_STREAM_END) {
        // A final block: legal; the next message starts a fresh stream.
        inflateReset(&z);
        break;
      }
      if (rc == Z_BUF_ERROR && z.avail_out != 0) break;  // needs more input than there is
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        inflateReset(&z);
        return false;
      }
    }
  }
  if (params_.client_no_context_takeover) inflateReset(&z);
  return true;
}

// ---- decoding ------------------------------------------------------------------------------------

namespace {
bool valid_close_code(std::uint16_t c) noexcept {
  if (c >= 3000 && c <= 4999) return true;
  switch (c) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010: case 1011:
    case 1012: case 1013: case 1014:
      return true;
    default:
      return false;
  }
}
}  // namespace

std::size_t ws_decoder::feed(std::string_view in, std::vector<event>& out) {
  std::size_t pos = 0;
  auto fail = [&](std::uint16_t code, const char* why) {
    finished_ = true;
    event e;
    e.k = event::kind::fail;
    e.code = code;
    e.data = why;
    out.push_back(std::move(e));
    partial_.clear();
    return pos;
  };
  while (!finished_) {
    std::string_view f = in.substr(pos);
    if (f.size() < 2) break;
    auto b0 = static_cast<unsigned char>(f[0]), b1 = static_cast<unsigned char>(f[1]);
    bool fin = b0 & 0x80;
    bool rsv1 = b0 & 0x40;
    auto op = static_cast<ws_opcode>(b0 & 0x0F);
    bool masked = b1 & 0x80;
    std::uint64_t len = b1 & 0x7F;
    std::size_t hdr = 2;
    if (b0 & 0x30) return fail(ws_close::protocol_error, "reserved bits set");
    bool control = (b0 & 0x08) != 0;
    switch (op) {
      case ws_opcode::continuation: case ws_opcode::text: case ws_opcode::binary:
      case ws_opcode::close: case ws_opcode::ping: case ws_opcode::pong:
        break;
      default:
        return fail(ws_close::protocol_error, "unknown opcode");
    }
    if (masked != require_mask_) return fail(ws_close::protocol_error, require_mask_ ? "unmasked client frame" : "masked server frame");
    if (control && (!fin || len > 125)) return fail(ws_close::protocol_error, "bad control frame");
    if (rsv1 && (!deflate_ || control || op == ws_opcode::continuation)) return fail(ws_close::protocol_error, "RSV1 without permessage-deflate");
    if (len == 126) {
      if (f.size() < 4) break;
      len = (std::uint64_t(static_cast<unsigned char>(f[2])) << 8) | static_cast<unsigned char>(f[3]);
      hdr = 4;
    } else if (len == 127) {
      if (f.size() < 10) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<unsigned char>(f[2 + i]);
      if (len >> 63) return fail(ws_close::protocol_error, "frame length has its top bit set");
      hdr = 10;
    }
    if (len > limits_.max_frame) return fail(ws_close::too_big, "frame too large");
    std::size_t key_at = hdr;
    if (masked) hdr += 4;
    if (f.size() < hdr + len) break;  // wait for the whole frame
    std::string payload(f.substr(hdr, std::size_t(len)));
    if (masked) {
      unsigned char key[4];
      std::memcpy(key, f.data() + key_at, 4);
      for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char(payload[i] ^ char(key[i & 3]));
    }
    pos += hdr + std::size_t(len);

    if (control) {
      event e;
      if (op == ws_opcode::close) {
        e.k = event::kind::close;
        if (payload.size() == 1) return fail(ws_close::protocol_error, "close frame of one byte");
        if (payload.empty()) {
          e.code = ws_close::no_status;
        } else {
          e.code = std::uint16_t((static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]));
          if (!valid_close_code(e.code)) return fail(ws_close::protocol_error, "invalid close code");
          e.data = payload.substr(2);
          utf8_validator v;
          if (!v.feed(e.data) || !v.complete()) return fail(ws_close::invalid_payload, "close reason is not UTF-8");
        }
        finished_ = true;
      } else {
        e.k = op == ws_opcode::ping ? event::kind::ping : event::kind::pong;
        e.data = std::move(payload);
      }
      out.push_back(std::move(e));
      continue;
    }

    if (op == ws_opcode::continuation) {
      if (!in_message_) return fail(ws_close::protocol_error, "continuation without a message");
    } else {
      if (in_message_) return fail(ws_close::protocol_error, "new message inside a fragmented one");
      in_message_ = true;
      message_op_ = op;
      compressed_ = rsv1;
      utf8_.reset();
      partial_.clear();
    }
    if (partial_.size() + payload.size() > limits_.max_message) return fail(ws_close::too_big, "message too large");
    if (message_op_ == ws_opcode::text && !compressed_ && !utf8_.feed(payload))
      return fail(ws_close::invalid_payload, "text message is not UTF-8");
    if (partial_.empty()) partial_ = std::move(payload);
    else partial_ += payload;
    if (!fin) continue;

    in_message_ = false;
    event e;
    e.k = event::kind::message;
    e.op = message_op_;
    if (compressed_) {
      bool too_big = false;
      if (!deflate_->decompress(partial_, e.data, limits_.max_message, too_big))
        return fail(too_big ? ws_close::too_big : ws_close::invalid_payload, too_big ? "message too large" : "bad deflate data");
      if (message_op_ == ws_opcode::text) {
        utf8_.reset();
        if (!utf8_.feed(e.data)) return fail(ws_close::invalid_payload, "text message is not UTF-8");
      }
    } else {
      e.data = std::move(partial_);
    }
    partial_ = std::string();
    if (message_op_ == ws_opcode::text && !utf8_.complete()) return fail(ws_close::invalid_payload, "text message is not UTF-8");
    out.push_back(std::move(e));
  }
  return pos;
}

}  // namespace athanor::web
