// The distribution handshake: the verified OTP 25 transcript byte for byte, both machines against
// each other in memory, every refusal path, malformed input at every step, and real `erl` nodes
// on both sides of a TCP socket (skipped when erl is not installed).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "athanor/dist/handshake.h"

namespace athanor::dist {
namespace {

using bytes = std::vector<std::byte>;

bytes from_hex(std::string_view hex) {
  bytes out;
  int nibble = -1;
  for (char c : hex) {
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (v < 0) continue;  // spaces separate fields
    if (nibble < 0) {
      nibble = v;
    } else {
      out.push_back(std::byte(nibble << 4 | v));
      nibble = -1;
    }
  }
  return out;
}

std::string to_hex(std::span<const std::byte> b) {
  static constexpr char d[] = "0123456789abcdef";
  std::string s;
  for (std::byte x : b) {
    s += d[std::uint8_t(x) >> 4];
    s += d[std::uint8_t(x) & 15];
  }
  return s;
}

std::string to_hex(const digest& d) { return to_hex(std::as_bytes(std::span(d))); }

bytes text(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return bytes(p, p + s.size());
}

bytes cat(bytes a, const bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// §3.3 of docs/erlang-distribution.md: a@vm (real OTP 25.2.3, cookie X) dials the test peer
// py@vm. Each line is one framed message.
const bytes kSendName = from_hex("0013 4e 0000000d07df7fbd 6b070ce4 0004 6140766d");
const bytes kStatusOk = from_hex("0003 73 6f6b");
const bytes kChallenge = from_hex("0018 4e 0000000c07470fbc 3459f644 6b070d92 0005 707940766d");
const bytes kReply = from_hex("0015 72 c27aa1b5 3d509a23a1c64fbd107e150401b692f2");
const bytes kAck = from_hex("0011 61 067a36c0732b3440f7e352dc35846fe8");

constexpr std::uint64_t kErlFlags = 0xd07df7fbd;   // what a@vm offered
constexpr std::uint64_t kPeerFlags = 0xc07470fbc;  // what the test peer offered

handshake_settings transcript_initiator() {
  return {.name = node_name::parse("a@vm"),
          .creation = 0x6b070ce4,
          .cookie = cookie("X"),
          .flags = kErlFlags,
          .challenge_source = [] { return 0xc27aa1b5u; }};
}

handshake_settings transcript_acceptor() {
  return {.name = node_name::parse("py@vm"),
          .creation = 0x6b070d92,
          .cookie = cookie("X"),
          .flags = kPeerFlags,
          .challenge_source = [] { return 0x3459f644u; }};
}

handshake_settings node(std::string_view name, std::string_view secret = "cookie", std::uint32_t creation = 7) {
  return {.name = node_name::parse(name), .creation = creation, .cookie = cookie(secret)};
}

std::span<const std::byte> body_of(const bytes& framed) { return std::span(framed).subspan(2); }

// ---- flags, digest, messages ----------------------------------------------------------------

TEST(HandshakeFlags, SetsAreTheDocumentedOnes) {
  EXPECT_EQ(dflag::mandatory_otp25, 0x1070F94u);
  EXPECT_EQ(dflag::recommended_hidden, 0xC07070FBCu);
  EXPECT_EQ(dflag::full_hidden, 0xD07DF7FBCu);
  EXPECT_EQ(dflag::recommended_hidden & dflag::published, 0u);
  EXPECT_EQ(dflag::full_hidden & dflag::published, 0u);
  EXPECT_EQ(default_setup_time, std::chrono::seconds(7));
}

TEST(HandshakeFlags, TheDigestBitStandsForEveryMandatoryBit) {
  EXPECT_EQ(expand_mandatory_digest(dflag::mandatory_25_digest), dflag::mandatory_25_digest | dflag::mandatory_otp25);
  EXPECT_EQ(expand_mandatory_digest(0x6000028), 0x6000028 | dflag::mandatory_otp25);
  EXPECT_EQ(expand_mandatory_digest(dflag::big_creation), dflag::big_creation);
}

TEST(HandshakeFlags, NamesAreOtps) {
  EXPECT_EQ(flag_names(dflag::big_creation | dflag::unlink_id), "BIG_CREATION, UNLINK_ID");
  EXPECT_EQ(flag_names(std::uint64_t(1) << 40), "bit 40");
  EXPECT_EQ(flag_names(0), "");
}

TEST(HandshakeDigest, MatchesTheVerifiedTranscript) {
  EXPECT_EQ(to_hex(compute_digest(cookie("X"), 878310980)), "3d509a23a1c64fbd107e150401b692f2");  // 0x3459f644
  EXPECT_EQ(to_hex(compute_digest(cookie("X"), 0xc27aa1b5)), "067a36c0732b3440f7e352dc35846fe8");
  // MD5 of the cookie's bytes followed by the challenge in unsigned, unpadded decimal: moving
  // digits between the two changes nothing.
  EXPECT_EQ(compute_digest(cookie("X"), 4294967295u), compute_digest(cookie("X42949"), 67295));
  EXPECT_EQ(compute_digest(cookie("X"), 123), compute_digest(cookie("X1"), 23));
  EXPECT_NE(compute_digest(cookie("X"), 1), compute_digest(cookie("X"), 10));
}

TEST(HandshakeDigest, EqualityIsExact) {
  digest a = compute_digest(cookie("X"), 1);
  digest b = a;
  EXPECT_TRUE(digests_equal(a, b));
  b[15] ^= 1;
  EXPECT_FALSE(digests_equal(a, b));
  b = a;
  b[0] ^= 0x80;
  EXPECT_FALSE(digests_equal(a, b));
}

TEST(HandshakeDigest, ChallengesAreRandom) {
  std::vector<std::uint32_t> seen;
  for (int i = 0; i < 8; ++i) seen.push_back(random_challenge());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end());  // 8 equal draws: odds 2^-32 per pair
}

TEST(HandshakeMessages, EncodeTheTranscriptByteForByte) {
  auto tcp = framing::two_byte_length;
  EXPECT_EQ(to_hex(encode(send_name_message{kErlFlags, 0x6b070ce4, "a@vm"}, tcp)), to_hex(kSendName));
  EXPECT_EQ(to_hex(encode(status_message{handshake_status::ok}, tcp)), to_hex(kStatusOk));
  EXPECT_EQ(to_hex(encode(challenge_message{kPeerFlags, 0x3459f644, 0x6b070d92, "py@vm"}, tcp)), to_hex(kChallenge));
  EXPECT_EQ(to_hex(encode(challenge_reply_message{0xc27aa1b5, compute_digest(cookie("X"), 0x3459f644)}, tcp)),
            to_hex(kReply));
  EXPECT_EQ(to_hex(encode(challenge_ack_message{compute_digest(cookie("X"), 0xc27aa1b5)}, tcp)), to_hex(kAck));
}

TEST(HandshakeMessages, DecodeTheTranscript) {
  send_name_message n = decode_send_name(body_of(kSendName));
  EXPECT_EQ(n.flags, kErlFlags);
  EXPECT_EQ(n.creation, 0x6b070ce4u);
  EXPECT_EQ(n.name, "a@vm");
  EXPECT_EQ(decode_status(body_of(kStatusOk)).status, handshake_status::ok);
  challenge_message c = decode_challenge(body_of(kChallenge));
  EXPECT_EQ(c.flags, kPeerFlags);
  EXPECT_EQ(c.challenge, 878310980u);
  EXPECT_EQ(c.creation, 0x6b070d92u);
  EXPECT_EQ(c.name, "py@vm");
  challenge_reply_message r = decode_challenge_reply(body_of(kReply));
  EXPECT_EQ(r.challenge, 3262816693u);
  EXPECT_EQ(to_hex(r.digest), "3d509a23a1c64fbd107e150401b692f2");
  EXPECT_EQ(to_hex(decode_challenge_ack(body_of(kAck)).digest), "067a36c0732b3440f7e352dc35846fe8");
}

TEST(HandshakeMessages, StatusesAndAliveReplies) {
  auto tcp = framing::two_byte_length;
  for (handshake_status s : {handshake_status::ok, handshake_status::ok_simultaneous, handshake_status::nok,
                             handshake_status::not_allowed, handshake_status::alive}) {
    bytes m = encode(status_message{s}, tcp);
    EXPECT_EQ(to_hex(m), to_hex(cat(from_hex("00"), cat(bytes{std::byte(1 + to_string(s).size())}, text("s" + std::string(to_string(s)))))));
    EXPECT_EQ(decode_status(body_of(m)).status, s);
  }
  EXPECT_EQ(to_hex(encode(alive_reply_message{true}, tcp)), to_hex(cat(from_hex("0005"), text("strue"))));
  EXPECT_EQ(to_hex(encode(alive_reply_message{false}, tcp)), to_hex(cat(from_hex("0006"), text("sfalse"))));
  EXPECT_TRUE(decode_alive_reply(text("strue")).replace_old_connection);
  EXPECT_FALSE(decode_alive_reply(text("sfalse")).replace_old_connection);
}

TEST(HandshakeMessages, TlsUsesAFourByteLength) {
  bytes m = encode(send_name_message{kErlFlags, 0x6b070ce4, "a@vm"}, framing::four_byte_length);
  EXPECT_EQ(to_hex(m), "00000013" + to_hex(body_of(kSendName)));
  std::optional<frame_view> f = next_frame(m, framing::four_byte_length);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->size, m.size());
  EXPECT_EQ(decode_send_name(f->body).name, "a@vm");
}

TEST(HandshakeMessages, NextFrameWaitsForWholeFramesAndRefusesHugeOnes) {
  EXPECT_FALSE(next_frame(bytes{}, framing::two_byte_length));
  EXPECT_FALSE(next_frame(from_hex("00"), framing::two_byte_length));
  EXPECT_FALSE(next_frame(std::span(kSendName).first(kSendName.size() - 1), framing::two_byte_length));
  ASSERT_TRUE(next_frame(cat(kSendName, kStatusOk), framing::two_byte_length));
  EXPECT_EQ(next_frame(cat(kSendName, kStatusOk), framing::two_byte_length)->size, kSendName.size());
  // Refused on the prefix alone: nothing waits for 65 KB that will never be accepted.
  try {
    next_frame(from_hex("ffff"), framing::two_byte_length);
    FAIL();
  } catch (const handshake_error& e) {
    EXPECT_EQ(e.kind(), handshake_failure::message_too_large);
  }
  EXPECT_THROW(next_frame(from_hex("00000801"), framing::four_byte_length), handshake_error);
  EXPECT_TRUE(next_frame(cat(from_hex("0800"), bytes(2048)), framing::two_byte_length));
}

TEST(HandshakeMessages, SendNameExtraBytesAreIgnored) {
  bytes body = cat(bytes(body_of(kSendName).begin(), body_of(kSendName).end()), text("junk"));
  EXPECT_EQ(decode_send_name(body).name, "a@vm");
  bytes cbody = cat(bytes(body_of(kChallenge).begin(), body_of(kChallenge).end()), text("junk"));
  EXPECT_EQ(decode_challenge(cbody).name, "py@vm");
}

handshake_failure kind_of(auto&& f) {
  try {
    f();
  } catch (const handshake_error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no handshake_error";
  return handshake_failure::peer_closed;
}

TEST(HandshakeMessages, DecodersRefuseWhatIsNotTheirMessage) {
  using hf = handshake_failure;
  // The old send_name: 'n', version 5, flags, name.
  EXPECT_EQ(kind_of([] { decode_send_name(from_hex("6e 0005 0007df7d 6140766d")); }), hf::unsupported_version);
  EXPECT_EQ(kind_of([] { decode_challenge(from_hex("6e 0005 0007df7d 00000001 6140766d")); }), hf::unsupported_version);
  EXPECT_EQ(kind_of([] { decode_send_name(bytes{}); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_send_name(text("x")); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_send_name(from_hex("4e 0000000d07df7fbd 6b070ce4")); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_send_name(from_hex("4e 0000000d07df7fbd 6b070ce4 0005 6140766d")); }),
            hf::malformed_message);  // the name is one byte short
  EXPECT_EQ(kind_of([] { decode_challenge(from_hex("4e 0000000c07470fbc 3459f644 6b070d92 00")); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_status(text("sbogus")); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_status(text("s")); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_status(text("okay")); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_status(cat(text("snamed:"), from_hex("0004 6140766d 00000001"))); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_alive_reply(text("smaybe")); }), hf::malformed_message);
  EXPECT_EQ(kind_of([] { decode_alive_reply(text("strue ")); }), hf::malformed_message);
  bytes reply(body_of(kReply).begin(), body_of(kReply).end());
  EXPECT_EQ(kind_of([&] { decode_challenge_reply(std::span(reply).first(20)); }), hf::malformed_message);
  EXPECT_EQ(kind_of([&] { decode_challenge_reply(cat(reply, from_hex("00"))); }), hf::malformed_message);
  bytes ack(body_of(kAck).begin(), body_of(kAck).end());
  EXPECT_EQ(kind_of([&] { decode_challenge_ack(std::span(ack).first(16)); }), hf::malformed_message);
  EXPECT_EQ(kind_of([&] { decode_challenge_ack(cat(ack, from_hex("00"))); }), hf::malformed_message);
  EXPECT_EQ(kind_of([&] { decode_challenge_ack(reply); }), hf::malformed_message);
}

// ---- the simultaneous-connect rule ----------------------------------------------------------

TEST(HandshakeRule, SimultaneousConnectKeepsTheGreaterNamesAttempt) {
  node_name a = node_name::parse("a@vm"), b = node_name::parse("b@vm");
  EXPECT_EQ(status_for_incoming(a, b, existing_connection::dialling), handshake_status::ok_simultaneous);
  EXPECT_EQ(status_for_incoming(b, a, existing_connection::dialling), handshake_status::nok);
  EXPECT_EQ(status_for_incoming(a, b, existing_connection::none), handshake_status::ok);
  EXPECT_EQ(status_for_incoming(b, a, existing_connection::connected), handshake_status::alive);
  // Byte order, not alphabetical order: 'Z' < 'a'.
  EXPECT_EQ(status_for_incoming(node_name::parse("Z@vm"), node_name::parse("a@vm"), existing_connection::dialling),
            handshake_status::ok_simultaneous);
  EXPECT_EQ(status_for_incoming(node_name::parse("a@vm"), node_name::parse("Z@vm"), existing_connection::dialling),
            handshake_status::nok);
}

// ---- the machines against a transcript ------------------------------------------------------

TEST(HandshakeMachine, AcceptorReplaysTheTranscriptByteForByte) {
  handshake_acceptor b(transcript_acceptor());
  bytes out;
  EXPECT_EQ(b.feed(kSendName, out), handshake_state::awaiting_decision);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(b.outcome().peer.full(), "a@vm");
  EXPECT_EQ(b.outcome().peer_creation, 0x6b070ce4u);
  EXPECT_EQ(b.answer(handshake_status::ok, out), handshake_state::in_progress);
  EXPECT_EQ(to_hex(out), to_hex(cat(kStatusOk, kChallenge)));
  out.clear();
  EXPECT_EQ(b.feed(kReply, out), handshake_state::connected);
  EXPECT_EQ(to_hex(out), to_hex(kAck));
  const handshake_outcome& o = b.outcome();
  EXPECT_EQ(o.peer.full(), "a@vm");
  EXPECT_EQ(o.peer_flags, kErlFlags);  // already has every mandatory bit
  EXPECT_EQ(o.negotiated_flags, kPeerFlags & kErlFlags);
  EXPECT_EQ(o.packet_framing, framing::four_byte_length);
  EXPECT_FALSE(o.replaces_old_connection);
  EXPECT_TRUE(o.unread.empty());
}

TEST(HandshakeMachine, InitiatorReplaysTheTranscriptByteForByte) {
  handshake_initiator a(transcript_initiator(), node_name::parse("py@vm"));
  bytes out;
  EXPECT_EQ(a.start(out), handshake_state::in_progress);
  EXPECT_EQ(to_hex(out), to_hex(kSendName));
  out.clear();
  // The status and the challenge often arrive in one read.
  EXPECT_EQ(a.feed(cat(kStatusOk, kChallenge), out), handshake_state::in_progress);
  EXPECT_EQ(to_hex(out), to_hex(kReply));
  out.clear();
  EXPECT_EQ(a.feed(kAck, out), handshake_state::connected);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(a.outcome().peer.full(), "py@vm");
  EXPECT_EQ(a.outcome().peer_creation, 0x6b070d92u);
  EXPECT_EQ(a.outcome().negotiated_flags, kPeerFlags & kErlFlags);
}

TEST(HandshakeMachine, InputMayArriveOneByteAtATime) {
  handshake_initiator a(transcript_initiator(), node_name::parse("py@vm"));
  bytes out;
  a.start(out);
  out.clear();
  bytes in = cat(cat(kStatusOk, kChallenge), kAck);
  for (std::byte x : in) a.feed(std::span(&x, 1), out);
  EXPECT_EQ(a.state(), handshake_state::connected);
  EXPECT_EQ(to_hex(out), to_hex(kReply));

  handshake_acceptor b(transcript_acceptor());
  out.clear();
  for (std::byte x : kSendName) b.feed(std::span(&x, 1), out);
  ASSERT_EQ(b.state(), handshake_state::awaiting_decision);
  b.answer(handshake_status::ok, out);
  out.clear();
  for (std::byte x : kReply) b.feed(std::span(&x, 1), out);
  EXPECT_EQ(b.state(), handshake_state::connected);
  EXPECT_EQ(to_hex(out), to_hex(kAck));
}

TEST(HandshakeMachine, BytesAfterTheHandshakeAreHandedOn) {
  handshake_initiator a(transcript_initiator(), node_name::parse("py@vm"));
  bytes out;
  a.start(out);
  bytes tick_and_packet = from_hex("00000000 00000003 70 83 6a");
  a.feed(cat(cat(cat(kStatusOk, kChallenge), kAck), tick_and_packet), out);
  ASSERT_EQ(a.state(), handshake_state::connected);
  EXPECT_EQ(to_hex(a.outcome().unread), to_hex(tick_and_packet));
  // Later bytes belong to the connection, not the handshake.
  EXPECT_EQ(a.feed(from_hex("00000000"), out), handshake_state::connected);
  EXPECT_EQ(to_hex(a.outcome().unread), to_hex(tick_and_packet));
}

// ---- the machines against each other --------------------------------------------------------

// The bodies of the frames in `stream` (a whole number of frames).
std::vector<bytes> frames_of(const bytes& stream, framing f = framing::two_byte_length) {
  std::vector<bytes> out;
  std::span<const std::byte> rest(stream);
  while (std::optional<frame_view> fr = next_frame(rest, f, 1 << 16)) {
    out.emplace_back(fr->body.begin(), fr->body.end());
    rest = rest.subspan(fr->size);
  }
  EXPECT_TRUE(rest.empty()) << "a partial frame";
  return out;
}

// Their first bytes, e.g. {"N", "sok", "r"}: 's' statuses in full, other messages by their tag.
std::vector<std::string> tags_of(const bytes& stream, framing f = framing::two_byte_length) {
  std::vector<std::string> tags;
  for (const bytes& b : frames_of(stream, f)) {
    std::string t(reinterpret_cast<const char*>(b.data()), b.size());
    tags.push_back(!t.empty() && t[0] == 's' ? t : t.substr(0, 1));
  }
  return tags;
}

using tag_list = std::vector<std::string>;

// An initiator and an acceptor wired to each other in memory. The acceptor answers by
// status_for_incoming (with `existing`) unless `status` is set; the initiator answers
// `alive_answer` to "alive". Transfers are cut into pieces of `chunk` bytes. A side that fails
// closes the connection, so the other sees the end of its input.
struct duel {
  node_name acceptor_name;
  handshake_initiator a;
  handshake_acceptor b;
  existing_connection existing = existing_connection::none;
  std::optional<handshake_status> status;
  bool alive_answer = true;
  std::size_t chunk = std::size_t(1) << 20;
  bytes a_wrote, b_wrote;

  duel(handshake_settings as, handshake_settings bs, std::string_view dialled = {})
      : acceptor_name(bs.name),
        a(std::move(as), dialled.empty() ? bs.name : node_name::parse(dialled)),
        b(std::move(bs)) {}

  duel& run() {
    bytes to_b, to_a;
    a.start(to_b);
    a_wrote = to_b;
    while (!to_a.empty() || !to_b.empty()) {
      bytes next_a, next_b;
      for (std::size_t i = 0; i < to_b.size(); i += chunk) {
        b.feed(std::span(to_b).subspan(i, std::min(chunk, to_b.size() - i)), next_a);
        if (b.state() == handshake_state::awaiting_decision)
          b.answer(status.value_or(status_for_incoming(acceptor_name, b.outcome().peer, existing)), next_a);
      }
      for (std::size_t i = 0; i < to_a.size(); i += chunk) {
        a.feed(std::span(to_a).subspan(i, std::min(chunk, to_a.size() - i)), next_b);
        if (a.state() == handshake_state::awaiting_decision) a.answer_alive(alive_answer, next_b);
      }
      a_wrote.insert(a_wrote.end(), next_b.begin(), next_b.end());
      b_wrote.insert(b_wrote.end(), next_a.begin(), next_a.end());
      to_a = std::move(next_a);
      to_b = std::move(next_b);
    }
    if (a.state() == handshake_state::failed) b.end_of_input();
    if (b.state() == handshake_state::failed) a.end_of_input();
    return *this;
  }
};

TEST(HandshakeDuel, SameCookieConnectsWithTheCommonFlags) {
  for (framing f : {framing::two_byte_length, framing::four_byte_length}) {
    for (std::size_t chunk : {std::size_t(1) << 20, std::size_t(1), std::size_t(7)}) {
      handshake_settings as = node("a@vm", "cookie", 11), bs = node("b@vm", "cookie", 22);
      as.flags = dflag::full_hidden;
      as.framing = bs.framing = f;
      duel d(std::move(as), std::move(bs));
      d.chunk = chunk;
      d.run();
      ASSERT_EQ(d.a.state(), handshake_state::connected) << d.a.failure_detail();
      ASSERT_EQ(d.b.state(), handshake_state::connected) << d.b.failure_detail();
      EXPECT_EQ(d.a.outcome().peer.full(), "b@vm");
      EXPECT_EQ(d.b.outcome().peer.full(), "a@vm");
      EXPECT_EQ(d.a.outcome().peer_creation, 22u);
      EXPECT_EQ(d.b.outcome().peer_creation, 11u);
      EXPECT_EQ(d.a.outcome().negotiated_flags, dflag::recommended_hidden);
      EXPECT_EQ(d.b.outcome().negotiated_flags, dflag::recommended_hidden);
      EXPECT_TRUE(d.a.outcome().unread.empty());
      EXPECT_EQ(tags_of(d.a_wrote, f), (tag_list{"N", "r"}));
      EXPECT_EQ(tags_of(d.b_wrote, f), (tag_list{"sok", "N", "a"}));
    }
  }
}

TEST(HandshakeDuel, WrongCookieFailsTheAcceptorSilentlyAndTheInitiatorNeverConnects) {
  duel d(node("a@vm", "SECRETONE"), node("b@vm", "SECRETTWO"));
  d.run();
  EXPECT_EQ(d.b.state(), handshake_state::failed);
  EXPECT_EQ(d.b.failure(), handshake_failure::bad_digest);
  // Nothing after the challenge: no ack, no status, as OTP.
  EXPECT_EQ(tags_of(d.b_wrote), (tag_list{"sok", "N"}));
  EXPECT_EQ(d.a.state(), handshake_state::failed);
  EXPECT_EQ(d.a.failure(), handshake_failure::peer_closed);
  EXPECT_NE(d.a.failure_detail().find("cookies differ"), std::string::npos) << d.a.failure_detail();
  for (const std::string& detail : {d.a.failure_detail(), d.b.failure_detail()}) {
    EXPECT_EQ(detail.find("SECRET"), std::string::npos) << detail;
  }
}

TEST(HandshakeDuel, AWrongAckFailsTheInitiator) {
  handshake_initiator a(transcript_initiator(), node_name::parse("py@vm"));
  bytes out;
  a.start(out);
  a.feed(cat(kStatusOk, kChallenge), out);
  bytes bad_ack = kAck;
  bad_ack.back() ^= std::byte(1);
  out.clear();
  EXPECT_EQ(a.feed(bad_ack, out), handshake_state::failed);
  EXPECT_EQ(a.failure(), handshake_failure::bad_digest);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(a.failure_detail().find("067a36c0"), std::string::npos);  // no digest in logs
}

TEST(HandshakeDuel, MissingMandatoryFlagsGetNotAllowed) {
  handshake_settings as = node("a@vm");
  as.flags = dflag::recommended_hidden & ~dflag::big_creation & ~dflag::mandatory_25_digest;
  duel d(std::move(as), node("b@vm"));
  d.run();
  EXPECT_EQ(d.b.failure(), handshake_failure::missing_flags);
  EXPECT_NE(d.b.failure_detail().find("BIG_CREATION"), std::string::npos) << d.b.failure_detail();
  EXPECT_EQ(to_hex(d.b_wrote), to_hex(cat(from_hex("000c"), text("snot_allowed"))));
  EXPECT_EQ(d.a.failure(), handshake_failure::refused);
  EXPECT_NE(d.a.failure_detail().find("not_allowed"), std::string::npos) << d.a.failure_detail();
}

TEST(HandshakeDuel, TheDigestBitAloneSatisfiesOtp25) {
  // OTP 25 accepts 0x6000028 (digest + UNLINK_ID + monitors, no individual bits) by expanding it.
  handshake_settings as = node("a@vm");
  as.flags = 0x6000028;
  duel d(std::move(as), node("b@vm"));
  d.run();
  ASSERT_EQ(d.b.state(), handshake_state::connected) << d.b.failure_detail();
  EXPECT_EQ(d.b.outcome().peer_flags, 0x6000028 | dflag::mandatory_otp25);
  EXPECT_EQ(d.b.outcome().negotiated_flags, (0x6000028 | dflag::mandatory_otp25) & dflag::recommended_hidden);
  EXPECT_EQ(d.a.outcome().negotiated_flags, d.b.outcome().negotiated_flags);
}

TEST(HandshakeDuel, RequiredFlagsAreConfigurable) {
  handshake_settings as = node("a@vm"), bs = node("b@vm");
  as.flags = dflag::mandatory_otp25;  // no SPAWN
  bs.required_flags = dflag::mandatory_otp25 | dflag::spawn;
  duel d(std::move(as), std::move(bs));
  d.run();
  EXPECT_EQ(d.b.failure(), handshake_failure::missing_flags);
  EXPECT_NE(d.b.failure_detail().find("SPAWN"), std::string::npos);
}

TEST(HandshakeDuel, TheInitiatorAbortsWhenTheAcceptorLacksFlags) {
  handshake_settings bs = node("b@vm");
  bs.flags = dflag::recommended_hidden & ~dflag::map_tag & ~dflag::mandatory_25_digest;
  duel d(node("a@vm"), std::move(bs));
  d.run();
  EXPECT_EQ(d.a.failure(), handshake_failure::missing_flags);
  EXPECT_NE(d.a.failure_detail().find("MAP_TAG"), std::string::npos) << d.a.failure_detail();
  EXPECT_EQ(tags_of(d.a_wrote), (tag_list{"N"}));  // no challenge reply: it just closes
}

TEST(HandshakeDuel, TheChallengeMustComeFromTheNodeDialled) {
  duel d(node("a@vm"), node("b@vm"), "c@vm");
  d.run();
  EXPECT_EQ(d.a.failure(), handshake_failure::name_mismatch);
  EXPECT_NE(d.a.failure_detail().find("'b@vm'"), std::string::npos) << d.a.failure_detail();
  EXPECT_EQ(tags_of(d.a_wrote), (tag_list{"N"}));
  EXPECT_NE(d.b.state(), handshake_state::connected);
}

TEST(HandshakeDuel, NoDiallingAcrossNamingModes) {
  handshake_initiator a(node("a@vm"), node_name::parse("b@host.example.com"));
  EXPECT_EQ(a.state(), handshake_state::failed);
  EXPECT_EQ(a.failure(), handshake_failure::naming_mode_mismatch);
  bytes out;
  EXPECT_EQ(a.start(out), handshake_state::failed);
  EXPECT_TRUE(out.empty());
  handshake_initiator ok(node("a@10.0.0.1"), node_name::parse("b@host.example.com"));
  EXPECT_EQ(ok.state(), handshake_state::in_progress);
}

TEST(HandshakeDuel, SimultaneousConnectLeavesExactlyOneConnection) {
  // a@vm and b@vm dial each other at once; each acceptor sees its own attempt under way.
  duel a_dials_b(node("a@vm"), node("b@vm"));
  duel b_dials_a(node("b@vm"), node("a@vm"));
  a_dials_b.existing = b_dials_a.existing = existing_connection::dialling;
  a_dials_b.run();
  b_dials_a.run();
  // b@vm's acceptor: b > a, its own attempt wins: nok.
  EXPECT_EQ(tags_of(a_dials_b.b_wrote), (tag_list{"snok"}));
  EXPECT_EQ(a_dials_b.a.failure(), handshake_failure::refused);
  EXPECT_EQ(a_dials_b.b.failure(), handshake_failure::refused);
  // a@vm's acceptor: a < b, it gives up its own attempt: ok_simultaneous, and this one connects.
  EXPECT_EQ(tags_of(b_dials_a.b_wrote), (tag_list{"sok_simultaneous", "N", "a"}));
  EXPECT_EQ(b_dials_a.a.state(), handshake_state::connected);
  EXPECT_EQ(b_dials_a.b.state(), handshake_state::connected);
}

TEST(HandshakeDuel, AliveReplacesTheOldConnectionWhenTheInitiatorSaysTrue) {
  duel d(node("a@vm"), node("b@vm"));
  d.existing = existing_connection::connected;
  d.alive_answer = true;
  d.run();
  ASSERT_EQ(d.b.state(), handshake_state::connected) << d.b.failure_detail();
  EXPECT_EQ(d.a.state(), handshake_state::connected);
  EXPECT_TRUE(d.b.outcome().replaces_old_connection);
  EXPECT_EQ(tags_of(d.b_wrote), (tag_list{"salive", "N", "a"}));
  EXPECT_EQ(tags_of(d.a_wrote), (tag_list{"N", "strue", "r"}));
}

TEST(HandshakeDuel, AliveEndsBothWhenTheInitiatorSaysFalse) {
  duel d(node("a@vm"), node("b@vm"));
  d.existing = existing_connection::connected;
  d.alive_answer = false;
  d.run();
  EXPECT_EQ(d.a.failure(), handshake_failure::refused);
  EXPECT_EQ(d.b.failure(), handshake_failure::refused);
  EXPECT_EQ(tags_of(d.a_wrote), (tag_list{"N", "sfalse"}));
  EXPECT_EQ(tags_of(d.b_wrote), (tag_list{"salive"}));
}

TEST(HandshakeDuel, RefusalsEndTheInitiator) {
  for (handshake_status s : {handshake_status::nok, handshake_status::not_allowed}) {
    duel d(node("a@vm"), node("b@vm"));
    d.status = s;
    d.run();
    EXPECT_EQ(d.a.failure(), handshake_failure::refused);
    EXPECT_EQ(d.b.failure(), handshake_failure::refused);
    EXPECT_NE(d.a.failure_detail().find(std::string(to_string(s))), std::string::npos) << d.a.failure_detail();
    EXPECT_EQ(tags_of(d.b_wrote), (tag_list{"s" + std::string(to_string(s))}));
  }
}

TEST(HandshakeMachine, AcceptorRefusesBadNamesAndTheOldProtocolWithoutAWord) {
  for (std::string name : {std::string("noat"), std::string("a@b@c"), std::string("@vm"), std::string("a@"),
                           std::string("a\0@vm", 5), std::string(300, 'x') + "@vm"}) {
    handshake_acceptor b(node("b@vm"));
    bytes out;
    EXPECT_EQ(b.feed(encode(send_name_message{dflag::recommended_hidden, 1, name}, framing::two_byte_length), out),
              handshake_state::failed);
    EXPECT_EQ(b.failure(), handshake_failure::invalid_name) << name;
    EXPECT_TRUE(out.empty());
  }
  handshake_acceptor b(node("b@vm"));
  bytes out;
  EXPECT_EQ(b.feed(from_hex("0009 6e 0005 0007df7d 6140766d"), out), handshake_state::failed);
  EXPECT_EQ(b.failure(), handshake_failure::unsupported_version);
  EXPECT_TRUE(out.empty());
}

TEST(HandshakeMachine, CallsOutOfTurnAreLogicErrors) {
  bytes out;
  handshake_acceptor b(node("b@vm"));
  EXPECT_THROW(b.answer(handshake_status::ok, out), std::logic_error);
  handshake_initiator a(node("a@vm"), node_name::parse("b@vm"));
  EXPECT_THROW(a.feed(kStatusOk, out), std::logic_error);
  EXPECT_THROW(a.answer_alive(true, out), std::logic_error);
  a.start(out);
  EXPECT_THROW(a.start(out), std::logic_error);
}

TEST(HandshakeMachine, OversizedMessagesFailOnTheirLengthAlone) {
  handshake_acceptor b(node("b@vm"));
  bytes out;
  EXPECT_EQ(b.feed(from_hex("0801"), out), handshake_state::failed);  // 2049 > 2048
  EXPECT_EQ(b.failure(), handshake_failure::message_too_large);
  handshake_settings tls = node("b@vm");
  tls.framing = framing::four_byte_length;
  handshake_acceptor c(std::move(tls));
  EXPECT_EQ(c.feed(from_hex("7fffffff"), out), handshake_state::failed);
  EXPECT_EQ(c.failure(), handshake_failure::message_too_large);
  handshake_settings tiny = node("b@vm");
  tiny.max_message_size = 10;
  handshake_acceptor d(std::move(tiny));
  EXPECT_EQ(d.feed(kSendName, out), handshake_state::failed);
  EXPECT_TRUE(out.empty());
}

TEST(HandshakeMachine, APeerTalkingWhileWeDecideIsCutOff) {
  handshake_acceptor b(node("b@vm"));
  bytes out;
  EXPECT_EQ(b.feed(kSendName, out), handshake_state::awaiting_decision);
  for (int i = 0; i < 3 && b.state() == handshake_state::awaiting_decision; ++i) b.feed(kSendName, out);
  EXPECT_EQ(b.state(), handshake_state::awaiting_decision);  // 3 small messages: buffered, bounded
  b.feed(bytes(2100), out);
  EXPECT_EQ(b.state(), handshake_state::failed);
  EXPECT_EQ(b.failure(), handshake_failure::message_too_large);
}

TEST(HandshakeMachine, MessagesBufferedWhileDecidingAreReadAfterTheAnswer) {
  // Input that arrives while the caller decides is kept and read after the answer (here the
  // transcript's reply, which matches because the challenge is the recorded one).
  handshake_acceptor b(transcript_acceptor());
  bytes out;
  EXPECT_EQ(b.feed(cat(kSendName, kReply), out), handshake_state::awaiting_decision);
  EXPECT_EQ(b.answer(handshake_status::ok, out), handshake_state::connected);  // the transcript's own reply matches
  EXPECT_EQ(to_hex(out), to_hex(cat(cat(kStatusOk, kChallenge), kAck)));
}

// Every strict prefix of `body` (framed whole), `body` under other tags, and `body` with a byte
// appended when its size is exact, fed to a fresh machine from `make`: each must fail, none
// crash. Then deterministic random frames: none may connect.
template <class Make>
void expect_corruptions_fail(Make make, const bytes& body, bool exact_size, const char* step) {
  auto try_body = [&](const bytes& b) {
    auto m = make();
    bytes out;
    bytes framed;
    append_frame(framed, b, framing::two_byte_length);
    m->feed(framed, out);
    return m->state();
  };
  for (std::size_t k = 0; k < body.size(); ++k) {
    bytes prefix(body.begin(), body.begin() + std::ptrdiff_t(k));
    EXPECT_EQ(try_body(prefix), handshake_state::failed) << step << ": prefix of " << k << " bytes";
  }
  for (char tag : {'x', 'N', 'n', 's', 'r', 'a', '\0', '\xff'}) {
    if (!body.empty() && char(body[0]) == tag) continue;
    bytes b = body;
    b[0] = std::byte(tag);
    EXPECT_EQ(try_body(b), handshake_state::failed) << step << ": tag " << int(tag);
  }
  if (exact_size) EXPECT_EQ(try_body(cat(body, from_hex("00"))), handshake_state::failed) << step << ": one byte more";
  std::uint32_t x = 12345;
  for (int i = 0; i < 300; ++i) {
    bytes junk(i % 40);
    for (std::byte& j : junk) {
      x = x * 1664525u + 1013904223u;
      j = std::byte(x >> 24);
    }
    EXPECT_NE(try_body(junk), handshake_state::connected) << step;
  }
}

bytes body_bytes(const bytes& framed) { return bytes(framed.begin() + 2, framed.end()); }

TEST(HandshakeMachine, MalformedInputFailsAtEveryStep) {
  // Acceptor: send_name, challenge_reply, and the answer to alive.
  expect_corruptions_fail([] { return std::make_unique<handshake_acceptor>(transcript_acceptor()); },
                          body_bytes(kSendName), false, "acceptor send_name");
  auto after_ok = [] {
    auto b = std::make_unique<handshake_acceptor>(transcript_acceptor());
    bytes out;
    b->feed(kSendName, out);
    b->answer(handshake_status::ok, out);
    return b;
  };
  expect_corruptions_fail(after_ok, body_bytes(kReply), true, "acceptor challenge_reply");
  auto after_alive = [] {
    auto b = std::make_unique<handshake_acceptor>(transcript_acceptor());
    bytes out;
    b->feed(kSendName, out);
    b->answer(handshake_status::alive, out);
    return b;
  };
  expect_corruptions_fail(after_alive, text("strue"), true, "acceptor alive reply");
  // Initiator: status, challenge, ack.
  auto started = [] {
    auto a = std::make_unique<handshake_initiator>(transcript_initiator(), node_name::parse("py@vm"));
    bytes out;
    a->start(out);
    return a;
  };
  expect_corruptions_fail(started, body_bytes(kStatusOk), true, "initiator status");
  auto after_status = [&] {
    auto a = started();
    bytes out;
    a->feed(kStatusOk, out);
    return a;
  };
  expect_corruptions_fail(after_status, body_bytes(kChallenge), false, "initiator challenge");
  auto after_challenge = [&] {
    auto a = after_status();
    bytes out;
    a->feed(kChallenge, out);
    return a;
  };
  expect_corruptions_fail(after_challenge, body_bytes(kAck), true, "initiator ack");
}

TEST(HandshakeMachine, TruncatedStreamsNeverConnectAndEndInPeerClosed) {
  bytes to_initiator = cat(cat(kStatusOk, kChallenge), kAck);
  for (std::size_t k = 0; k < to_initiator.size(); ++k) {
    handshake_initiator a(transcript_initiator(), node_name::parse("py@vm"));
    bytes out;
    a.start(out);
    EXPECT_EQ(a.feed(std::span(to_initiator).first(k), out), handshake_state::in_progress) << k;
    EXPECT_EQ(a.end_of_input(), handshake_state::failed);
    EXPECT_EQ(a.failure(), handshake_failure::peer_closed);
  }
  bytes to_acceptor = cat(kSendName, kReply);
  for (std::size_t k = 0; k < to_acceptor.size(); ++k) {
    handshake_acceptor b(transcript_acceptor());
    bytes out;
    b.feed(std::span(to_acceptor).first(std::min(k, kSendName.size())), out);
    if (b.state() == handshake_state::awaiting_decision) {
      b.answer(handshake_status::ok, out);
      b.feed(std::span(to_acceptor).subspan(kSendName.size(), k - kSendName.size()), out);
    }
    EXPECT_NE(b.state(), handshake_state::connected) << k;
    EXPECT_NE(b.state(), handshake_state::failed) << k;
    EXPECT_EQ(b.end_of_input(), handshake_state::failed);
    EXPECT_EQ(b.failure(), handshake_failure::peer_closed);
  }
}

TEST(HandshakeMachine, AFailedMachineIgnoresFurtherInput) {
  handshake_acceptor b(node("b@vm"));
  bytes out;
  b.feed(text("garbage!"), out);  // "ga" = 0x6761: too large
  ASSERT_EQ(b.state(), handshake_state::failed);
  handshake_failure f = b.failure();
  EXPECT_EQ(b.feed(kSendName, out), handshake_state::failed);
  EXPECT_EQ(b.end_of_input(), handshake_state::failed);
  EXPECT_EQ(b.failure(), f);
  EXPECT_TRUE(out.empty());
}


TEST(HandshakeMachine, AReflectedChallengeIsRefusedWhenTheNodeKeepsItsOwn) {
  // evil@vm, without the cookie, dials b@vm's acceptor and gets challenge C; then makes b@vm
  // dial it and sends C as its own challenge. Answering it would hand evil the digest that
  // opens b@vm's acceptor.
  auto attack = [](bool keep_own_challenges) {
    handshake_acceptor door(node("b@vm", "secret"));
    bytes to_evil;
    EXPECT_FALSE(door.own_challenge());
    door.feed(encode(send_name_message{dflag::recommended_hidden, 5, "evil@vm"}, framing::two_byte_length), to_evil);
    door.answer(handshake_status::ok, to_evil);
    std::optional<std::uint32_t> c = door.own_challenge();
    EXPECT_TRUE(c);
    EXPECT_EQ(decode_challenge(frames_of(to_evil).at(1)).challenge, *c);

    handshake_settings mine = node("b@vm", "secret");
    if (keep_own_challenges) mine.is_own_challenge = [&](std::uint32_t x) { return door.own_challenge() == x; };
    handshake_initiator dialler(std::move(mine), node_name::parse("evil@vm"));
    bytes from_dialler;
    dialler.start(from_dialler);
    from_dialler.clear();
    dialler.feed(cat(kStatusOk, encode(challenge_message{dflag::recommended_hidden, *c, 5, "evil@vm"},
                                       framing::two_byte_length)),
                 from_dialler);
    if (keep_own_challenges) {
      EXPECT_EQ(dialler.failure(), handshake_failure::reflected_challenge);
      EXPECT_TRUE(from_dialler.empty());
      return door.state();
    }
    // Relayed to the acceptor, the dialler's reply opens it.
    challenge_reply_message r = decode_challenge_reply(frames_of(from_dialler).at(0));
    bytes ignored;
    return door.feed(encode(r, framing::two_byte_length), ignored);
  };
  EXPECT_EQ(attack(false), handshake_state::connected);  // what OTP is exposed to
  EXPECT_EQ(attack(true), handshake_state::in_progress);  // evil has nothing to relay
}

// ---- real erl -------------------------------------------------------------------------------
// A real OTP node on each side of a plain blocking socket driven by the test thread. Each test
// starts its own `erl` with a temporary HOME and its own epmd port (ERL_EPMD_PORT: erl starts an
// epmd there), talks to that epmd by hand (PORT_PLEASE2, ALIVE2, KILL), and waits on pipes and
// sockets with poll() deadlines, never with sleeps.

extern "C" char** environ;

constexpr int kDeadlineMs = 30000;

bool erl_installed() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/bin:/bin";
  while (!rest.empty()) {
    std::size_t colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (!dir.empty() && ::access((dir + "/erl").c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return false;
}

// A file descriptor closed when it goes out of scope.
class unique_fd {
 public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    reset();
    fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  ~unique_fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A listening socket on 127.0.0.1 and an ephemeral port.
unique_fd listen_loopback(std::uint16_t& port) {
  unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = loopback(0);
  if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.get(), 4) != 0) return {};
  socklen_t len = sizeof a;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return s;
}

// A port nobody listens on now (for erl's epmd).
std::uint16_t free_port() {
  std::uint16_t port = 0;
  unique_fd s = listen_loopback(port);
  return port;
}

unique_fd connect_loopback(std::uint16_t port) {
  unique_fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = loopback(port);
  if (!s || ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {};
  return s;
}

bool readable_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  return r > 0;
}

// Some bytes from `fd`: nullopt if none came within the deadline, empty at end of input.
std::optional<bytes> read_some(int fd, int timeout_ms = kDeadlineMs) {
  if (!readable_within(fd, timeout_ms)) return std::nullopt;
  bytes b(4096);
  ssize_t n;
  do n = ::read(fd, b.data(), b.size());
  while (n < 0 && errno == EINTR);
  b.resize(n > 0 ? std::size_t(n) : 0);
  return b;
}

bool write_all(int fd, std::span<const std::byte> b) {
  while (!b.empty()) {
    ssize_t n = ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    b = b.subspan(std::size_t(n));
  }
  return true;
}

// Everything until the peer closes (epmd answers, then closes).
std::optional<bytes> read_to_end(int fd) {
  bytes all;
  for (;;) {
    std::optional<bytes> b = read_some(fd);
    if (!b) return std::nullopt;
    if (b->empty()) return all;
    all.insert(all.end(), b->begin(), b->end());
  }
}

bytes epmd_request(const bytes& request) {
  bytes framed;
  append_frame(framed, request, framing::two_byte_length);
  return framed;
}

// PORT_PLEASE2_REQ: the distribution port of node `alive` registered with the epmd on `epmd`.
std::optional<std::uint16_t> epmd_port_please(std::uint16_t epmd, std::string_view alive) {
  unique_fd s = connect_loopback(epmd);
  if (!s || !write_all(s.get(), epmd_request(cat(text("z"), text(alive))))) return std::nullopt;
  std::optional<bytes> r = read_to_end(s.get());
  if (!r || r->size() < 4 || (*r)[0] != std::byte(119) || (*r)[1] != std::byte(0)) return std::nullopt;
  return std::uint16_t(std::uint16_t((*r)[2]) << 8 | std::uint16_t((*r)[3]));
}

// ALIVE2_REQ: registers `alive` at `port` as a hidden node, distribution version 6. The node
// stays registered while the returned socket is open.
unique_fd epmd_register(std::uint16_t epmd, std::string_view alive, std::uint16_t port, std::uint32_t& creation) {
  unique_fd s = connect_loopback(epmd);
  bytes req = text("x");
  for (std::uint8_t v : {std::uint8_t(port >> 8), std::uint8_t(port), std::uint8_t(72), std::uint8_t(0),
                         std::uint8_t(0), std::uint8_t(6), std::uint8_t(0), std::uint8_t(6),
                         std::uint8_t(alive.size() >> 8), std::uint8_t(alive.size())})
    req.push_back(std::byte(v));
  req = cat(cat(req, text(alive)), from_hex("0000"));
  if (!s || !write_all(s.get(), epmd_request(req))) return {};
  bytes resp;
  while (resp.size() < 6) {
    std::optional<bytes> b = read_some(s.get());
    if (!b || b->empty()) return {};
    resp.insert(resp.end(), b->begin(), b->end());
  }
  if (resp[0] != std::byte(118) || resp[1] != std::byte(0)) return {};
  creation = std::uint32_t(resp[2]) << 24 | std::uint32_t(resp[3]) << 16 | std::uint32_t(resp[4]) << 8 |
             std::uint32_t(resp[5]);
  return s;
}

// KILL_REQ: stops the epmd that erl started. epmd refuses ("NO") while a node is registered;
// the caller has already ended every registration, and a refusal only means epmd has not yet
// read those closes, which the next request's round trip lets it do.
void epmd_kill(std::uint16_t epmd) {
  for (int attempt = 0; attempt < 200; ++attempt) {
    unique_fd s = connect_loopback(epmd);
    if (!s) return;  // already gone
    if (!write_all(s.get(), epmd_request(text("k")))) return;
    std::optional<bytes> r = read_to_end(s.get());
    if (!r || *r == text("OK")) return;
  }
  ADD_FAILURE() << "the epmd on port " << epmd << " would not stop";
}

class temp_home {
 public:
  temp_home() {
    std::string pattern = (std::filesystem::temp_directory_path() / "athanor-erl-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_home() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An `erl` child process with pipes to its stdin and its stdout+stderr.
class erl_process {
 public:
  erl_process(const std::vector<std::string>& args, const std::string& home, std::uint16_t epmd_port) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    std::vector<std::string> env_text;
    for (char** e = environ; *e; ++e) {
      std::string_view v(*e);
      for (std::string_view drop : {"HOME=", "ERL_EPMD_PORT=", "ERL_FLAGS=", "ERL_AFLAGS=", "ERL_ZFLAGS="})
        if (v.starts_with(drop)) goto skip;
      env_text.emplace_back(v);
    skip:;
    }
    env_text.push_back("HOME=" + home);
    env_text.push_back("ERL_EPMD_PORT=" + std::to_string(epmd_port));
    std::vector<char*> envp, argv;
    for (std::string& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_text{"erl"};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    for (std::string& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, out[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, home.c_str());  // erl_crash.dump lands there
    int rc = ::posix_spawnp(&pid_, "erl", &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = unique_fd(in[1]);
    stdout_ = unique_fd(out[0]);
    if (rc != 0) throw std::runtime_error("cannot start erl");
  }

  ~erl_process() {
    stdin_.reset();
    ::kill(pid_, SIGKILL);  // it may be inside net_adm:ping, which waits forever on a mute peer
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }

  void write_line(const std::string& line) {
    std::string l = line + "\n";
    ASSERT_EQ(::write(stdin_.get(), l.data(), l.size()), ssize_t(l.size()));
  }

  // Reads lines until one equals `want`; false if the deadline passes or erl's output ends.
  bool wait_for_line(const std::string& want) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDeadlineMs);
    for (;;) {
      std::size_t nl;
      while ((nl = pending_.find('\n')) != std::string::npos) {
        std::string line = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        seen_ += line + "\n";
        if (line == want) return true;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      std::optional<bytes> b = read_some(stdout_.get(), int(left.count()));
      if (!b || b->empty()) return false;
      pending_.append(reinterpret_cast<const char*>(b->data()), b->size());
    }
  }

  // Everything erl printed so far, for failure messages.
  const std::string& output() const { return seen_; }

 private:
  pid_t pid_ = -1;
  unique_fd stdin_, stdout_;
  std::string pending_, seen_;
};

std::string unique_alive(std::string_view prefix) {
  static int counter = 0;
  return std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

// `erl -sname peer_<unique> -setcookie <cookie>`, with its own HOME and epmd port. Every line
// written to it names a node to net_adm:ping; it prints the result (pong or pang).
struct erl_peer {
  temp_home home;
  std::uint16_t epmd_port = free_port();
  std::string alive = unique_alive("peer");
  std::unique_ptr<erl_process> erl;

  explicit erl_peer(const std::string& cookie) {
    std::string script =
        "io:format(\"ready~n\"),"
        "Loop = fun L() -> case io:get_line(\"\") of"
        "  eof -> halt();"
        "  Line -> io:format(\"~p~n\", [net_adm:ping(list_to_atom(string:trim(Line)))]), L()"
        " end end,"
        "Loop().";
    erl = std::make_unique<erl_process>(
        std::vector<std::string>{"-sname", alive, "-setcookie", cookie, "-noshell", "-eval", script}, home.path(),
        epmd_port);
  }
  ~erl_peer() {
    erl.reset();
    epmd_kill(epmd_port);
  }
  node_name name() const { return node_name::from_sname(alive); }
};

// Runs a machine over a socket until it is done. `first`: what to write before reading.
// Awaiting a decision, `decide(machine, out)` answers. `last_output` gets what the final call
// produced (empty: nothing was written at the end).
template <class Machine, class Decide>
handshake_state drive(Machine& m, int fd, const bytes& first, Decide&& decide, bytes* last_output = nullptr) {
  EXPECT_TRUE(write_all(fd, first));
  while (m.state() == handshake_state::in_progress || m.state() == handshake_state::awaiting_decision) {
    bytes out;
    if (m.state() == handshake_state::awaiting_decision) {
      decide(m, out);
    } else {
      std::optional<bytes> in = read_some(fd);
      if (!in) {
        ADD_FAILURE() << "no handshake message within " << kDeadlineMs << " ms";
        break;
      }
      if (in->empty()) {
        m.end_of_input();
        if (last_output) last_output->clear();
        break;
      }
      m.feed(*in, out);
    }
    if (last_output) *last_output = out;
    if (!out.empty() && !write_all(fd, out)) {
      m.end_of_input();
      break;
    }
  }
  return m.state();
}

auto never_decide = [](auto&, bytes&) { ADD_FAILURE() << "unexpected decision"; };

TEST(HandshakeRealErl, InitiatorConnectsToErl) {
  if (!erl_installed()) GTEST_SKIP() << "erl is not installed";
  erl_peer peer("X");
  ASSERT_TRUE(peer.erl->wait_for_line("ready")) << peer.erl->output();
  std::optional<std::uint16_t> port = epmd_port_please(peer.epmd_port, peer.alive);
  ASSERT_TRUE(port) << "epmd does not know " << peer.alive;
  unique_fd s = connect_loopback(*port);
  ASSERT_TRUE(s);

  handshake_initiator hs({.name = node_name::from_sname(unique_alive("athanor")), .creation = 1, .cookie = cookie("X")},
                         peer.name());
  bytes first;
  hs.start(first);
  ASSERT_EQ(drive(hs, s.get(), first, never_decide), handshake_state::connected) << hs.failure_detail();
  const handshake_outcome& o = hs.outcome();
  EXPECT_EQ(o.peer.full(), peer.alive + "@" + this_host_short_name());  // our --sname is erl's -sname
  EXPECT_NE(o.peer_creation, 0u);
  EXPECT_EQ(o.negotiated_flags & dflag::mandatory_otp25, dflag::mandatory_otp25);
  EXPECT_EQ(o.negotiated_flags & ~dflag::recommended_hidden, 0u);
}

TEST(HandshakeRealErl, InitiatorWithAnotherCookieNeverConnects) {
  if (!erl_installed()) GTEST_SKIP() << "erl is not installed";
  erl_peer peer("X");
  ASSERT_TRUE(peer.erl->wait_for_line("ready")) << peer.erl->output();
  std::optional<std::uint16_t> port = epmd_port_please(peer.epmd_port, peer.alive);
  ASSERT_TRUE(port);
  unique_fd s = connect_loopback(*port);
  ASSERT_TRUE(s);
  handshake_initiator hs({.name = node_name::from_sname(unique_alive("athanor")), .creation = 1, .cookie = cookie("Y")},
                         peer.name());
  bytes first;
  hs.start(first);
  EXPECT_EQ(drive(hs, s.get(), first, never_decide), handshake_state::failed);
  EXPECT_EQ(hs.failure(), handshake_failure::peer_closed);  // erl closes without a word
  EXPECT_NE(hs.failure_detail().find("cookies differ"), std::string::npos) << hs.failure_detail();
}

// erl pings a node the test registered with erl's epmd; the test accepts on its own socket.
struct accepting_test_node {
  std::uint16_t port = 0;
  unique_fd listener = listen_loopback(port);
  std::string alive = unique_alive("athanor_acc");
  std::uint32_t creation = 0;
  unique_fd registration;
  node_name name = node_name::from_sname(alive + "@localhost");

  explicit accepting_test_node(const erl_peer& peer) {
    registration = epmd_register(peer.epmd_port, alive, port, creation);
  }

  unique_fd accept_one() {
    if (!readable_within(listener.get(), kDeadlineMs)) return {};
    return unique_fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
};

TEST(HandshakeRealErl, AcceptorAcceptsErlsPing) {
  if (!erl_installed()) GTEST_SKIP() << "erl is not installed";
  erl_peer peer("X");
  ASSERT_TRUE(peer.erl->wait_for_line("ready")) << peer.erl->output();
  accepting_test_node me(peer);
  ASSERT_TRUE(me.registration) << "epmd refused the registration";
  ASSERT_NE(me.creation, 0u);

  peer.erl->write_line(me.name.full());  // net_adm:ping(athanor_acc_...@localhost)
  unique_fd conn = me.accept_one();
  ASSERT_TRUE(conn) << "erl did not dial in: " << peer.erl->output();
  handshake_acceptor hs({.name = me.name, .creation = me.creation, .cookie = cookie("X")});
  auto decide = [&](handshake_acceptor& m, bytes& out) {
    m.answer(status_for_incoming(me.name, m.outcome().peer, existing_connection::none), out);
  };
  ASSERT_EQ(drive(hs, conn.get(), {}, decide), handshake_state::connected) << hs.failure_detail();
  EXPECT_EQ(hs.outcome().peer, peer.name());
  EXPECT_NE(hs.outcome().peer_creation, 0u);
  EXPECT_EQ(hs.outcome().negotiated_flags & dflag::mandatory_otp25, dflag::mandatory_otp25);
  EXPECT_EQ(hs.outcome().peer_flags & dflag::published, dflag::published);  // erl is a visible node
  // The connection layer would now answer erl's MONITOR_P and is_auth call; closing instead
  // makes that call fail, so the ping ends in pang.
  conn.reset();
  EXPECT_TRUE(peer.erl->wait_for_line("pang")) << peer.erl->output();
}

TEST(HandshakeRealErl, AcceptorRejectsErlWithAnotherCookieAndErlGetsPang) {
  if (!erl_installed()) GTEST_SKIP() << "erl is not installed";
  erl_peer peer("X");
  ASSERT_TRUE(peer.erl->wait_for_line("ready")) << peer.erl->output();
  accepting_test_node me(peer);
  ASSERT_TRUE(me.registration) << "epmd refused the registration";

  peer.erl->write_line(me.name.full());
  unique_fd conn = me.accept_one();
  ASSERT_TRUE(conn) << "erl did not dial in: " << peer.erl->output();
  handshake_acceptor hs({.name = me.name, .creation = me.creation, .cookie = cookie("Y")});
  auto decide = [&](handshake_acceptor& m, bytes& out) { m.answer(handshake_status::ok, out); };
  bytes last;
  EXPECT_EQ(drive(hs, conn.get(), {}, decide, &last), handshake_state::failed);
  EXPECT_EQ(hs.failure(), handshake_failure::bad_digest) << hs.failure_detail();
  EXPECT_TRUE(last.empty());  // closed without a reply
  conn.reset();
  EXPECT_TRUE(peer.erl->wait_for_line("pang")) << peer.erl->output();
}

}  // namespace
}  // namespace athanor::dist
