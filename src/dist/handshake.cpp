// The distribution handshake (OTP 23+ version 6), both roles, as sans-I/O state machines.
//
// Concepts. A machine is fed the bytes its socket read and appends the bytes to write; it never
// touches a socket, a clock or a thread. Each role walks a short list of steps (the `step`
// enums); a step consumes exactly one framed message, so a message split across reads, or
// several messages in one read, makes no difference. Where OTP asks net_kernel ("is there
// already a connection to this node?", "is this attempt still wanted?") the machine stops in
// awaiting_decision and the caller answers; status_for_incoming() is Erlang's rule for it.
// Decoders throw handshake_error; the machines catch it at their boundary (consume) and turn
// it into the failed state, so a failed handshake is a state, never an exception.
//
// Rejected approaches.
//  * A callback for the acceptor's decision: it would run inside feed(), so the node's
//    connection table would be entered from inside the parser (re-entrancy, locks), and a
//    decision that needs another process (net_kernel-like) could not wait. A state the caller
//    answers costs one extra call and keeps the machine a plain value.
//  * Doing the I/O here (blocking reads, or coroutines): the connection layer owns sockets,
//    TLS, timeouts and scheduling; the handshake is the part worth testing byte for byte and
//    fuzzing, which needs it pure.
//  * Accepting the old 'n' send_name (version 5): only OTP 23/24 nodes started without epmd
//    send it, OTP 25.0-25.2 refuse it as well, and supporting it means a second message ('c')
//    and a second flags layout. It fails with unsupported_version and a clear message.
//  * Comparing digests with ==: a timing side channel on the one secret. CRYPTO_memcmp.
//
// Invariants.
//  * Input buffered but not yet processed never exceeds max_message_size plus the prefix:
//    next_frame rejects a larger declared length before waiting for its bytes, and input left
//    over while the caller decides is bounded the same way.
//  * After a wrong digest the acceptor writes nothing (OTP closes silently); on a failure the
//    only bytes ever produced are the statuses OTP itself sends (snot_allowed, snok).
//  * Failure details name nodes and flags, never the cookie or a digest.
//  * The acceptor computes the digest of the initiator's challenge only after the initiator
//    proved it knows the cookie. The initiator, by protocol, answers the acceptor's challenge
//    first, so it is a digest oracle for any node it dials: such a node could relay a
//    challenge our own acceptor gave it and log in as itself without the cookie (OTP has the
//    same exposure). The name check narrows this to nodes we chose to dial; the optional
//    is_own_challenge hook closes it for a node that keeps its acceptors' challenges.
#include "athanor/dist/handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>

namespace athanor::dist {

namespace {

// ---- bytes ----------------------------------------------------------------------------------

void put_u8(std::vector<std::byte>& out, std::uint8_t v) { out.push_back(std::byte(v)); }
void put_u16(std::vector<std::byte>& out, std::uint16_t v) {
  put_u8(out, std::uint8_t(v >> 8));
  put_u8(out, std::uint8_t(v));
}
void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  put_u16(out, std::uint16_t(v >> 16));
  put_u16(out, std::uint16_t(v));
}
void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  put_u32(out, std::uint32_t(v >> 32));
  put_u32(out, std::uint32_t(v));
}
void put_text(std::vector<std::byte>& out, std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), p, p + s.size());
}
void put_name(std::vector<std::byte>& out, const std::string& name) {
  if (name.size() > 0xFFFF) throw std::length_error("handshake: a node name longer than 65535 bytes");
  put_u16(out, std::uint16_t(name.size()));
  put_text(out, name);
}

// Reads big-endian fields from one message body; running out is a malformed message.
class reader {
 public:
  reader(std::span<const std::byte> body, const char* what) : body_(body), what_(what) {}
  std::uint8_t u8() {
    need(1);
    return std::uint8_t(body_[pos_++]);
  }
  std::uint16_t u16() {
    std::uint16_t hi = u8();
    return std::uint16_t(hi << 8 | u8());
  }
  std::uint32_t u32() {
    std::uint32_t hi = u16();
    return hi << 16 | u16();
  }
  std::uint64_t u64() {
    std::uint64_t hi = u32();
    return hi << 32 | u32();
  }
  std::string text(std::size_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(body_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::size_t left() const noexcept { return body_.size() - pos_; }

 private:
  void need(std::size_t n) {
    if (left() < n)
      throw handshake_error(handshake_failure::malformed_message,
                            std::string(what_) + " is truncated: " + std::to_string(body_.size()) + " bytes");
  }
  std::span<const std::byte> body_;
  std::size_t pos_ = 0;
  const char* what_;
};

std::string_view as_text(std::span<const std::byte> body) noexcept {
  return {reinterpret_cast<const char*>(body.data()), body.size()};
}

// A peer-sent string made safe for a log line: at most 64 bytes, unprintable bytes as '?'.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out.push_back(c > 0x20 && c < 0x7F ? c : '?');
  if (s.size() > 64) out += "...";
  return "'" + out + "'";
}

std::string hex_tag(std::span<const std::byte> body) {
  if (body.empty()) return "nothing";
  static constexpr char digits[] = "0123456789abcdef";
  auto b = std::uint8_t(body[0]);
  std::string t = "0x";
  t += digits[b >> 4];
  t += digits[b & 15];
  if (b > 0x20 && b < 0x7F) t += std::string(" ('") + char(b) + "')";
  return t;
}

void expect_tag(std::span<const std::byte> body, char tag, const char* what) {
  if (body.empty() || char(body[0]) != tag)
    throw handshake_error(handshake_failure::malformed_message,
                          std::string("expected ") + what + " ('" + tag + "'), got " + hex_tag(body));
}

std::vector<std::byte> framed(const std::vector<std::byte>& body, dist::framing framing) {
  std::vector<std::byte> out;
  out.reserve(body.size() + 4);
  append_frame(out, body, framing);
  return out;
}

std::size_t prefix_size(dist::framing framing) noexcept { return framing == framing::two_byte_length ? 2 : 4; }

struct named_flag {
  std::uint64_t bit;
  const char* name;
};
constexpr named_flag kFlagNames[] = {
    {dflag::published, "PUBLISHED"},
    {dflag::atom_cache, "ATOM_CACHE"},
    {dflag::extended_references, "EXTENDED_REFERENCES"},
    {dflag::dist_monitor, "DIST_MONITOR"},
    {dflag::fun_tags, "FUN_TAGS"},
    {dflag::dist_monitor_name, "DIST_MONITOR_NAME"},
    {dflag::hidden_atom_cache, "HIDDEN_ATOM_CACHE"},
    {dflag::new_fun_tags, "NEW_FUN_TAGS"},
    {dflag::extended_pids_ports, "EXTENDED_PIDS_PORTS"},
    {dflag::export_ptr_tag, "EXPORT_PTR_TAG"},
    {dflag::bit_binaries, "BIT_BINARIES"},
    {dflag::new_floats, "NEW_FLOATS"},
    {dflag::unicode_io, "UNICODE_IO"},
    {dflag::dist_hdr_atom_cache, "DIST_HDR_ATOM_CACHE"},
    {dflag::small_atom_tags, "SMALL_ATOM_TAGS"},
    {dflag::utf8_atoms, "UTF8_ATOMS"},
    {dflag::map_tag, "MAP_TAG"},
    {dflag::big_creation, "BIG_CREATION"},
    {dflag::send_sender, "SEND_SENDER"},
    {dflag::big_seqtrace_labels, "BIG_SEQTRACE_LABELS"},
    {dflag::exit_payload, "EXIT_PAYLOAD"},
    {dflag::fragments, "FRAGMENTS"},
    {dflag::handshake_23, "HANDSHAKE_23"},
    {dflag::unlink_id, "UNLINK_ID"},
    {dflag::mandatory_25_digest, "MANDATORY_25_DIGEST"},
    {dflag::spawn, "SPAWN"},
    {dflag::name_me, "NAME_ME"},
    {dflag::v4_nc, "V4_NC"},
    {dflag::alias, "ALIAS"},
};

}  // namespace

// ---- flags, framing, digest -------------------------------------------------------------------

std::string flag_names(std::uint64_t flags) {
  std::string out;
  for (int bit = 0; bit < 64; ++bit) {
    std::uint64_t b = std::uint64_t(1) << bit;
    if (!(flags & b)) continue;
    if (!out.empty()) out += ", ";
    const char* name = nullptr;
    for (const named_flag& f : kFlagNames)
      if (f.bit == b) name = f.name;
    out += name ? std::string(name) : "bit " + std::to_string(bit);
  }
  return out;
}

std::optional<frame_view> next_frame(std::span<const std::byte> in, dist::framing framing, std::size_t max_body) {
  std::size_t prefix = prefix_size(framing);
  if (in.size() < prefix) return std::nullopt;
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < prefix; ++i) length = length << 8 | std::uint8_t(in[i]);
  if (length > max_body)
    throw handshake_error(handshake_failure::message_too_large,
                          "a handshake message of " + std::to_string(length) + " bytes (at most " +
                              std::to_string(max_body) + " are accepted)");
  if (in.size() - prefix < length) return std::nullopt;
  return frame_view{in.subspan(prefix, std::size_t(length)), prefix + std::size_t(length)};
}

void append_frame(std::vector<std::byte>& out, std::span<const std::byte> body, dist::framing framing) {
  if (framing == framing::two_byte_length) {
    if (body.size() > 0xFFFF) throw std::length_error("handshake: a message over 65535 bytes cannot be framed by 2 bytes");
    put_u16(out, std::uint16_t(body.size()));
  } else {
    if (body.size() > 0xFFFFFFFFu) throw std::length_error("handshake: a message over 4 GiB");
    put_u32(out, std::uint32_t(body.size()));
  }
  out.insert(out.end(), body.begin(), body.end());
}

digest compute_digest(const cookie& cookie, std::uint32_t challenge) {
  // cookie ++ decimal(challenge), as dist_util:gen_digest: the challenge unsigned, unpadded.
  std::string_view secret = cookie.reveal();
  std::string input;
  input.reserve(secret.size() + 10);
  input.append(secret);
  input.append(std::to_string(challenge));
  digest d{};
  unsigned int size = 0;
  int ok = EVP_Digest(input.data(), input.size(), d.data(), &size, EVP_md5(), nullptr);
  OPENSSL_cleanse(input.data(), input.size());
  if (ok != 1 || size != d.size()) throw std::runtime_error("handshake: OpenSSL could not compute MD5");
  return d;
}

bool digests_equal(const digest& a, const digest& b) noexcept { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

std::uint32_t random_challenge() {
  unsigned char b[4];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("handshake: OpenSSL's CSPRNG failed (RAND_bytes)");
  return std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | b[3];
}

std::string_view to_string(handshake_failure failure) noexcept {
  switch (failure) {
    case handshake_failure::malformed_message: return "malformed_message";
    case handshake_failure::message_too_large: return "message_too_large";
    case handshake_failure::unsupported_version: return "unsupported_version";
    case handshake_failure::invalid_name: return "invalid_name";
    case handshake_failure::naming_mode_mismatch: return "naming_mode_mismatch";
    case handshake_failure::missing_flags: return "missing_flags";
    case handshake_failure::name_mismatch: return "name_mismatch";
    case handshake_failure::reflected_challenge: return "reflected_challenge";
    case handshake_failure::refused: return "refused";
    case handshake_failure::bad_digest: return "bad_digest";
    case handshake_failure::peer_closed: return "peer_closed";
  }
  return "unknown";
}

std::string_view to_string(handshake_status status) noexcept {
  switch (status) {
    case handshake_status::ok: return "ok";
    case handshake_status::ok_simultaneous: return "ok_simultaneous";
    case handshake_status::nok: return "nok";
    case handshake_status::not_allowed: return "not_allowed";
    case handshake_status::alive: return "alive";
  }
  return "unknown";
}

// ---- messages -------------------------------------------------------------------------------

std::vector<std::byte> encode(const send_name_message& m, dist::framing framing) {
  std::vector<std::byte> b;
  put_u8(b, 'N');
  put_u64(b, m.flags);
  put_u32(b, m.creation);
  put_name(b, m.name);
  return framed(b, framing);
}

std::vector<std::byte> encode(const status_message& m, dist::framing framing) {
  std::vector<std::byte> b;
  put_u8(b, 's');
  put_text(b, to_string(m.status));
  return framed(b, framing);
}

std::vector<std::byte> encode(const alive_reply_message& m, dist::framing framing) {
  std::vector<std::byte> b;
  put_u8(b, 's');
  put_text(b, m.replace_old_connection ? "true" : "false");
  return framed(b, framing);
}

std::vector<std::byte> encode(const challenge_message& m, dist::framing framing) {
  std::vector<std::byte> b;
  put_u8(b, 'N');
  put_u64(b, m.flags);
  put_u32(b, m.challenge);
  put_u32(b, m.creation);
  put_name(b, m.name);
  return framed(b, framing);
}

std::vector<std::byte> encode(const challenge_reply_message& m, dist::framing framing) {
  std::vector<std::byte> b;
  put_u8(b, 'r');
  put_u32(b, m.challenge);
  for (std::uint8_t x : m.digest) put_u8(b, x);
  return framed(b, framing);
}

std::vector<std::byte> encode(const challenge_ack_message& m, dist::framing framing) {
  std::vector<std::byte> b;
  put_u8(b, 'a');
  for (std::uint8_t x : m.digest) put_u8(b, x);
  return framed(b, framing);
}

send_name_message decode_send_name(std::span<const std::byte> body) {
  if (!body.empty() && char(body[0]) == 'n')
    throw handshake_error(handshake_failure::unsupported_version,
                          "the peer sent the old send_name ('n', distribution version 5: OTP 22 or older, or OTP 23/24 "
                          "started without epmd); Athanor speaks version 6 only ('N', OTP 23+), as OTP 25.0-25.2 do");
  expect_tag(body, 'N', "send_name");
  reader r(body, "send_name");
  r.u8();
  send_name_message m;
  m.flags = r.u64();
  m.creation = r.u32();
  std::uint16_t n = r.u16();
  m.name = r.text(n);  // anything after the name is ignored, as OTP does
  return m;
}

status_message decode_status(std::span<const std::byte> body) {
  expect_tag(body, 's', "status");
  std::string_view text = as_text(body).substr(1);
  for (handshake_status s : {handshake_status::ok, handshake_status::ok_simultaneous, handshake_status::nok,
                             handshake_status::not_allowed, handshake_status::alive})
    if (text == to_string(s)) return status_message{s};
  if (text.starts_with("named:"))
    throw handshake_error(handshake_failure::malformed_message,
                          "status 'named:' answers a dynamic node name request (NAME_ME), which Athanor never makes");
  throw handshake_error(handshake_failure::malformed_message, "unknown status " + shown(text));
}

alive_reply_message decode_alive_reply(std::span<const std::byte> body) {
  expect_tag(body, 's', "the answer to 'alive'");
  std::string_view text = as_text(body).substr(1);
  if (text == "true") return alive_reply_message{true};
  if (text == "false") return alive_reply_message{false};
  throw handshake_error(handshake_failure::malformed_message,
                        "the answer to 'alive' must be 'strue' or 'sfalse', not 's" + shown(text).substr(1));
}

challenge_message decode_challenge(std::span<const std::byte> body) {
  if (!body.empty() && char(body[0]) == 'n')
    throw handshake_error(handshake_failure::unsupported_version,
                          "the peer sent the old challenge ('n', distribution version 5); Athanor speaks version 6 only");
  expect_tag(body, 'N', "challenge");
  reader r(body, "challenge");
  r.u8();
  challenge_message m;
  m.flags = r.u64();
  m.challenge = r.u32();
  m.creation = r.u32();
  std::uint16_t n = r.u16();
  m.name = r.text(n);
  return m;
}

challenge_reply_message decode_challenge_reply(std::span<const std::byte> body) {
  expect_tag(body, 'r', "challenge_reply");
  if (body.size() != 21)
    throw handshake_error(handshake_failure::malformed_message,
                          "challenge_reply of " + std::to_string(body.size()) + " bytes (it has exactly 21)");
  reader r(body, "challenge_reply");
  r.u8();
  challenge_reply_message m;
  m.challenge = r.u32();
  for (std::uint8_t& x : m.digest) x = r.u8();
  return m;
}

challenge_ack_message decode_challenge_ack(std::span<const std::byte> body) {
  expect_tag(body, 'a', "challenge_ack");
  if (body.size() != 17)
    throw handshake_error(handshake_failure::malformed_message,
                          "challenge_ack of " + std::to_string(body.size()) + " bytes (it has exactly 17)");
  challenge_ack_message m;
  for (std::size_t i = 0; i < 16; ++i) m.digest[i] = std::uint8_t(body[i + 1]);
  return m;
}

handshake_status status_for_incoming(const node_name& self, const node_name& peer, existing_connection existing) noexcept {
  switch (existing) {
    case existing_connection::none: return handshake_status::ok;
    case existing_connection::connected: return handshake_status::alive;
    case existing_connection::dialling: return self > peer ? handshake_status::nok : handshake_status::ok_simultaneous;
  }
  return handshake_status::nok;
}

// ---- the shared machinery -------------------------------------------------------------------

namespace detail {

handshake_base::handshake_base(handshake_settings settings) : settings_(std::move(settings)) {}

template <class OnMessage>
void handshake_base::consume(std::span<const std::byte> in, OnMessage&& on_message) {
  if (state_ == handshake_state::connected || state_ == handshake_state::failed) return;
  buffer_.insert(buffer_.end(), in.begin(), in.end());
  std::size_t used = 0;
  try {
    while (state_ == handshake_state::in_progress) {
      std::optional<frame_view> f =
          next_frame(std::span<const std::byte>(buffer_).subspan(used), settings_.framing, settings_.max_message_size);
      if (!f) break;
      used += f->size;
      on_message(f->body);
    }
  } catch (const handshake_error& e) {
    fail(e.kind(), e.what());
  }
  if (state_ == handshake_state::connected) {
    outcome_.unread.assign(buffer_.begin() + std::ptrdiff_t(used), buffer_.end());
    buffer_.clear();
  } else if (state_ == handshake_state::failed) {
    buffer_.clear();
  } else {
    buffer_.erase(buffer_.begin(), buffer_.begin() + std::ptrdiff_t(used));
    // Only while the caller decides can whole messages pile up here: the peer should be
    // silent then, so more than one message's worth is a peer flooding us.
    if (buffer_.size() > settings_.max_message_size + prefix_size(settings_.framing)) {
      buffer_.clear();
      fail(handshake_failure::message_too_large, "the peer sent more than one message's worth while waiting for our status");
    }
  }
}

void handshake_base::fail(handshake_failure kind, std::string detail) {
  state_ = handshake_state::failed;
  failure_ = kind;
  failure_detail_ = std::move(detail);
}

std::uint32_t handshake_base::next_challenge() {
  own_challenge_ = settings_.challenge_source ? settings_.challenge_source() : random_challenge();
  return *own_challenge_;
}

void handshake_base::send(std::vector<std::byte>& out, const std::vector<std::byte>& message) {
  out.insert(out.end(), message.begin(), message.end());
}

std::uint64_t handshake_base::required_flags() const noexcept {
  // Version 6 messages are all these machines speak: HANDSHAKE_23 is required whatever the
  // settings say.
  return expand_mandatory_digest(settings_.required_flags) | dflag::handshake_23;
}

}  // namespace detail

// ---- the initiator --------------------------------------------------------------------------

handshake_initiator::handshake_initiator(handshake_settings settings, node_name dialled)
    : handshake_base(std::move(settings)), dialled_(std::move(dialled)) {
  if (!same_naming_mode(settings_.name, dialled_)) {
    bool self_long = settings_.name.mode() == naming_mode::long_names;
    fail(handshake_failure::naming_mode_mismatch,
         "cannot dial " + dialled_.full() + " from " + settings_.name.full() + ": this node uses " +
             (self_long ? "long" : "short") + " names and that one " + (self_long ? "short" : "long") +
             " names; Erlang nodes of different naming modes refuse each other");
  }
}

handshake_state handshake_initiator::start(std::vector<std::byte>& out) {
  if (step_ != step::not_started) throw std::logic_error("handshake_initiator::start called twice");
  if (state_ == handshake_state::failed) return state_;  // the naming modes differ
  send(out, encode(send_name_message{settings_.flags, settings_.creation, settings_.name.full()}, settings_.framing));
  step_ = step::await_status;
  return state_;
}

handshake_state handshake_initiator::feed(std::span<const std::byte> received, std::vector<std::byte>& out) {
  if (step_ == step::not_started && state_ == handshake_state::in_progress)
    throw std::logic_error("handshake_initiator::feed called before start");
  consume(received, [&](std::span<const std::byte> body) { on_message(body, out); });
  return state_;
}

void handshake_initiator::on_message(std::span<const std::byte> body, std::vector<std::byte>& out) {
  const std::string& peer = dialled_.full();
  switch (step_) {
    case step::await_status: {
      handshake_status s = decode_status(body).status;
      switch (s) {
        case handshake_status::ok:
        case handshake_status::ok_simultaneous: step_ = step::await_challenge; return;
        case handshake_status::nok:
          fail(handshake_failure::refused, peer + " answered nok: it is dialling this node at the same time and its own "
                                                  "attempt wins; that connection is the one to use");
          return;
        case handshake_status::not_allowed:
          fail(handshake_failure::refused,
               peer + " answered not_allowed: it refuses this node's name or capabilities (its log says which)");
          return;
        case handshake_status::alive:
          step_ = step::await_decision;
          state_ = handshake_state::awaiting_decision;
          return;
      }
      return;
    }
    case step::await_challenge: {
      challenge_message c = decode_challenge(body);
      if (c.name != peer) {
        fail(handshake_failure::name_mismatch,
             "the challenge comes from " + shown(c.name) + ", not from " + peer + ", the node dialled");
        return;
      }
      std::uint64_t flags = expand_mandatory_digest(c.flags);
      if (!(flags & dflag::handshake_23)) {
        fail(handshake_failure::unsupported_version, peer + "'s challenge lacks HANDSHAKE_23 (distribution version 6)");
        return;
      }
      if (std::uint64_t missing = required_flags() & ~flags) {
        fail(handshake_failure::missing_flags, "connection to " + peer + " aborted: it cannot handle " + flag_names(missing));
        return;
      }
      if (settings_.is_own_challenge && settings_.is_own_challenge(c.challenge)) {
        fail(handshake_failure::reflected_challenge,
             peer + " sent a challenge that one of this node's own acceptors issued: it would have us answer it "
                    "for itself without knowing the cookie");
        return;
      }
      outcome_.peer = dialled_;
      outcome_.peer_creation = c.creation;
      outcome_.peer_flags = flags;
      outcome_.negotiated_flags = expand_mandatory_digest(settings_.flags) & flags;
      std::uint32_t mine = next_challenge();
      send(out, encode(challenge_reply_message{mine, compute_digest(settings_.cookie, c.challenge)}, settings_.framing));
      step_ = step::await_ack;
      return;
    }
    case step::await_ack: {
      challenge_ack_message a = decode_challenge_ack(body);
      if (!digests_equal(a.digest, compute_digest(settings_.cookie, *own_challenge_))) {
        fail(handshake_failure::bad_digest,
             "connection to " + peer + " refused: its challenge_ack does not match our challenge (the cookies differ)");
        return;
      }
      step_ = step::done;
      state_ = handshake_state::connected;
      return;
    }
    case step::not_started:
    case step::await_decision:
    case step::done: return;  // consume() stops before these
  }
}

handshake_state handshake_initiator::answer_alive(bool replace_old_connection, std::vector<std::byte>& out) {
  if (state_ != handshake_state::awaiting_decision || step_ != step::await_decision)
    throw std::logic_error("handshake_initiator::answer_alive called while no answer is awaited");
  send(out, encode(alive_reply_message{replace_old_connection}, settings_.framing));
  if (!replace_old_connection) {
    fail(handshake_failure::refused,
         dialled_.full() + " is still connected to this node, and this node answered that it keeps that connection");
    return state_;
  }
  step_ = step::await_challenge;
  state_ = handshake_state::in_progress;
  consume({}, [&](std::span<const std::byte> body) { on_message(body, out); });
  return state_;
}

handshake_state handshake_initiator::end_of_input() {
  if (state_ == handshake_state::connected || state_ == handshake_state::failed) return state_;
  const std::string& peer = dialled_.full();
  switch (step_) {
    case step::await_ack:
      fail(handshake_failure::peer_closed,
           peer + " closed the connection instead of acknowledging our challenge reply: most likely the cookies "
                  "differ (an Erlang node closes without a word on a wrong cookie)");
      break;
    case step::await_status:
      fail(handshake_failure::peer_closed,
           peer + " closed the connection without answering our send_name (it may refuse our name, or not speak "
                  "distribution version 6)");
      break;
    default: fail(handshake_failure::peer_closed, peer + " closed the connection during the handshake"); break;
  }
  buffer_.clear();
  return state_;
}

// ---- the acceptor ---------------------------------------------------------------------------

handshake_acceptor::handshake_acceptor(handshake_settings settings) : handshake_base(std::move(settings)) {}

handshake_state handshake_acceptor::feed(std::span<const std::byte> received, std::vector<std::byte>& out) {
  consume(received, [&](std::span<const std::byte> body) { on_message(body, out); });
  return state_;
}

void handshake_acceptor::send_challenge(std::vector<std::byte>& out) {
  std::uint32_t mine = next_challenge();
  // Our exact full name: the OTP initiator checks it against the node it dialled.
  send(out, encode(challenge_message{settings_.flags, mine, settings_.creation, settings_.name.full()}, settings_.framing));
}

void handshake_acceptor::on_message(std::span<const std::byte> body, std::vector<std::byte>& out) {
  switch (step_) {
    case step::await_name: {
      send_name_message m = decode_send_name(body);
      try {
        outcome_.peer = node_name::parse_peer(m.name);
      } catch (const node_name_error& e) {
        fail(handshake_failure::invalid_name, std::string("connection attempt refused: ") + e.what());
        return;
      }
      std::uint64_t flags = expand_mandatory_digest(m.flags);
      outcome_.peer_creation = m.creation;
      outcome_.peer_flags = flags;
      outcome_.negotiated_flags = expand_mandatory_digest(settings_.flags) & flags;
      if (std::uint64_t missing = required_flags() & ~flags) {
        send(out, encode(status_message{handshake_status::not_allowed}, settings_.framing));
        fail(handshake_failure::missing_flags,
             "connection attempt from " + outcome_.peer.full() + " rejected: it cannot handle " + flag_names(missing));
        return;
      }
      step_ = step::await_decision;
      state_ = handshake_state::awaiting_decision;
      return;
    }
    case step::await_alive_reply: {
      if (!decode_alive_reply(body).replace_old_connection) {
        fail(handshake_failure::refused,
             outcome_.peer.full() + " answered false to 'alive': it keeps its old connection and gives up this one");
        return;
      }
      outcome_.replaces_old_connection = true;
      send_challenge(out);
      step_ = step::await_reply;
      return;
    }
    case step::await_reply: {
      challenge_reply_message r = decode_challenge_reply(body);
      if (!digests_equal(r.digest, compute_digest(settings_.cookie, *own_challenge_))) {
        // No reply: the peer learns nothing but that the connection closed.
        fail(handshake_failure::bad_digest,
             "connection attempt from " + outcome_.peer.full() + " rejected: invalid challenge reply (the cookies differ)");
        return;
      }
      send(out, encode(challenge_ack_message{compute_digest(settings_.cookie, r.challenge)}, settings_.framing));
      step_ = step::done;
      state_ = handshake_state::connected;
      return;
    }
    case step::await_decision:
    case step::done: return;  // consume() stops before these
  }
}

handshake_state handshake_acceptor::answer(handshake_status status, std::vector<std::byte>& out) {
  if (state_ != handshake_state::awaiting_decision || step_ != step::await_decision)
    throw std::logic_error("handshake_acceptor::answer called while no answer is awaited");
  send(out, encode(status_message{status}, settings_.framing));
  switch (status) {
    case handshake_status::ok:
    case handshake_status::ok_simultaneous:
      send_challenge(out);
      step_ = step::await_reply;
      break;
    case handshake_status::alive: step_ = step::await_alive_reply; break;
    case handshake_status::nok:
    case handshake_status::not_allowed:
      fail(handshake_failure::refused,
           "connection attempt from " + outcome_.peer.full() + " answered " + std::string(to_string(status)));
      return state_;
  }
  state_ = handshake_state::in_progress;
  consume({}, [&](std::span<const std::byte> body) { on_message(body, out); });
  return state_;
}

handshake_state handshake_acceptor::end_of_input() {
  if (state_ == handshake_state::connected || state_ == handshake_state::failed) return state_;
  std::string who = step_ == step::await_name ? std::string("the peer") : outcome_.peer.full();
  fail(handshake_failure::peer_closed, who + " closed the connection during the handshake");
  buffer_.clear();
  return state_;
}

}  // namespace athanor::dist
