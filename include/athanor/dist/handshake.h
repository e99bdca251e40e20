// athanor::dist handshake — the distribution handshake of Erlang/OTP (version 6, OTP 23+), both
// roles, without I/O: the caller moves bytes between a socket and a state machine.
//
//   handshake_initiator hs({.name = me, .creation = creation, .cookie = c}, node_name::parse("a@vm"));
//   std::vector<std::byte> out;
//   hs.start(out);                                  // write `out` to the socket
//   while (hs.state() == handshake_state::in_progress) {
//     out.clear();
//     hs.feed(read_some(socket), out);              // or hs.end_of_input() on EOF
//     if (hs.state() == handshake_state::awaiting_decision)
//       hs.answer_alive(true, out);                 // the peer says it still has a connection
//     write_all(socket, out);                       // also when it failed ("snot_allowed"...)
//   }
//   if (hs.state() == handshake_state::connected) {
//     const handshake_outcome& o = hs.outcome();   // peer, creation, negotiated flags,
//     ...                                          // o.unread: the connection's first bytes
//   }
//
// The messages, A the initiator and B the acceptor (each framed by a big-endian length: 2
// bytes over TCP, 4 bytes under TLS distribution; afterwards always 4):
//   A->B send_name        'N' Flags:u64 Creation:u32 Nlen:u16 Name
//   B->A status           's' "ok" | "ok_simultaneous" | "nok" | "not_allowed" | "alive"
//   A->B (after "alive")  's' "true" | "false"
//   B->A challenge        'N' Flags:u64 Challenge:u32 Creation:u32 Nlen:u16 Name
//   A->B challenge_reply  'r' Challenge:u32 Digest[16]   (digest of B's challenge)
//   B->A challenge_ack    'a' Digest[16]                 (digest of A's challenge)
// with Digest = MD5(cookie ++ decimal(challenge)). See handshake.cpp for the design.
//
// What the machines check, as OTP 25 does: names are alive@host (parse_peer); the peer's flags,
// with MANDATORY_25_DIGEST expanded, hold the required ones (the acceptor answers
// "snot_allowed"; the initiator just gives up); the challenge's name is exactly the node
// dialled; digests are compared in constant time, and the acceptor closes without a word on a
// wrong cookie; a message over max_message_size bytes (2 KiB) fails the handshake before it
// is buffered. Timeouts are the caller's: OTP gives each step default_setup_time (7 s,
// net_setuptime) and so should the caller.
//
// Thread-safety: the free functions share no state and may be called from any thread (the
// CSPRNG is OpenSSL's, which is thread-safe). A state machine is a plain object owned by one
// connection: calls on one machine must not overlap; different machines are independent.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "athanor/dist/cookie.h"
#include "athanor/dist/node_name.h"

namespace athanor::dist {

// ---- distribution flags ---------------------------------------------------------------------

// The capability bits of the handshake (DFLAG_* in OTP's dist.hrl), and the sets Athanor uses.
namespace dflag {
inline constexpr std::uint64_t published = 0x1;  // a visible node; Athanor stays hidden: never set
inline constexpr std::uint64_t atom_cache = 0x2;  // obsolete
inline constexpr std::uint64_t extended_references = 0x4;
inline constexpr std::uint64_t dist_monitor = 0x8;
inline constexpr std::uint64_t fun_tags = 0x10;
inline constexpr std::uint64_t dist_monitor_name = 0x20;
inline constexpr std::uint64_t hidden_atom_cache = 0x40;  // obsolete
inline constexpr std::uint64_t new_fun_tags = 0x80;
inline constexpr std::uint64_t extended_pids_ports = 0x100;
inline constexpr std::uint64_t export_ptr_tag = 0x200;
inline constexpr std::uint64_t bit_binaries = 0x400;
inline constexpr std::uint64_t new_floats = 0x800;
inline constexpr std::uint64_t unicode_io = 0x1000;
inline constexpr std::uint64_t dist_hdr_atom_cache = 0x2000;
inline constexpr std::uint64_t small_atom_tags = 0x4000;
inline constexpr std::uint64_t utf8_atoms = 0x10000;
inline constexpr std::uint64_t map_tag = 0x20000;
inline constexpr std::uint64_t big_creation = 0x40000;
inline constexpr std::uint64_t send_sender = 0x80000;
inline constexpr std::uint64_t big_seqtrace_labels = 0x100000;
inline constexpr std::uint64_t exit_payload = 0x400000;
inline constexpr std::uint64_t fragments = 0x800000;
inline constexpr std::uint64_t handshake_23 = 0x1000000;
inline constexpr std::uint64_t unlink_id = 0x2000000;
// Shorthand for every bit of mandatory_otp25 (bit 26; OTP's markdown docs say bit 36, its
// code and the wire say bit 26).
inline constexpr std::uint64_t mandatory_25_digest = 0x4000000;
inline constexpr std::uint64_t spawn = std::uint64_t(1) << 32;
inline constexpr std::uint64_t name_me = std::uint64_t(1) << 33;
inline constexpr std::uint64_t v4_nc = std::uint64_t(1) << 34;
inline constexpr std::uint64_t alias = std::uint64_t(1) << 35;

// What an OTP 25 node requires of its peers (erts_dflags.mandatory, 0x1070F94).
inline constexpr std::uint64_t mandatory_otp25 = extended_references | fun_tags | new_fun_tags | extended_pids_ports |
                                                 export_ptr_tag | bit_binaries | new_floats | utf8_atoms | map_tag |
                                                 big_creation | handshake_23;
// The recommended set for a hidden node (0xC07070FBC): the mandatory bits, the digest bit
// (so OTP 27+ finds it), UNLINK_ID and V4_NC (mandatory from OTP 26), monitors and aliases.
inline constexpr std::uint64_t recommended_hidden = mandatory_otp25 | mandatory_25_digest | unlink_id | v4_nc |
                                                    dist_monitor | dist_monitor_name | alias;
// Everything OTP 25 offers by default except PUBLISHED (0xD07DF7FBC): adds SPAWN, EXIT_PAYLOAD,
// SEND_SENDER, FRAGMENTS, DIST_HDR_ATOM_CACHE (these two switch the connection to header
// framing), BIG_SEQTRACE_LABELS, UNICODE_IO and SMALL_ATOM_TAGS.
inline constexpr std::uint64_t full_hidden = recommended_hidden | spawn | exit_payload | send_sender | fragments |
                                             dist_hdr_atom_cache | big_seqtrace_labels | unicode_io | small_atom_tags;

static_assert(mandatory_otp25 == 0x1070F94);
static_assert(recommended_hidden == 0xC07070FBC);
static_assert(full_hidden == 0xD07DF7FBC);
}  // namespace dflag

// `flags` with every mandatory_otp25 bit added when it has MANDATORY_25_DIGEST, as OTP 25
// reads a peer's flags. Flags are compared and negotiated only after this expansion.
constexpr std::uint64_t expand_mandatory_digest(std::uint64_t flags) noexcept {
  return (flags & dflag::mandatory_25_digest) ? (flags | dflag::mandatory_otp25) : flags;
}

// The OTP names of the set bits, e.g. "BIG_CREATION, UNLINK_ID" ("bit 40" for bits without a
// name), for messages such as "the peer cannot handle ...". Empty for 0.
std::string flag_names(std::uint64_t flags);

// ---- limits ---------------------------------------------------------------------------------

// OTP's net_setuptime: how long each handshake step may take before the caller gives up.
inline constexpr std::chrono::milliseconds default_setup_time{7000};
// The largest handshake message accepted by default (the length prefix excluded). Real ones
// are under 300 bytes (a 255-byte name and 19 bytes of fields).
inline constexpr std::size_t default_max_handshake_message = 2048;

// ---- framing --------------------------------------------------------------------------------

// How messages are delimited on the byte stream: a big-endian length, then that many bytes.
enum class framing : std::uint8_t {
  two_byte_length,   // the handshake over plain TCP
  four_byte_length,  // the handshake under TLS distribution (inet_tls_dist), and every
                     // packet after any handshake (a zero length is a tick)
};

// One whole frame found at the front of a byte stream.
struct frame_view {
  std::span<const std::byte> body;  // the message, without its length prefix
  std::size_t size = 0;             // bytes the frame takes in the stream (prefix + body)
};

// The frame at the front of `in`, or nullopt if `in` does not hold all of it yet. Throws
// handshake_error (message_too_large) when the prefix declares more than `max_body` bytes,
// so a caller never waits for, or buffers, an oversized message.
std::optional<frame_view> next_frame(std::span<const std::byte> in, dist::framing framing,
                                     std::size_t max_body = default_max_handshake_message);

// Appends `body` with its length prefix to `out`. Throws std::length_error if the body does
// not fit the prefix (over 65535 bytes with two_byte_length).
void append_frame(std::vector<std::byte>& out, std::span<const std::byte> body, dist::framing framing);

// ---- digest and challenges ------------------------------------------------------------------

using digest = std::array<std::uint8_t, 16>;

// MD5(cookie ++ the challenge as unsigned decimal without padding), e.g. cookie "X" and
// challenge 878310980 give md5("X878310980"). Throws std::runtime_error if OpenSSL fails.
digest compute_digest(const cookie& cookie, std::uint32_t challenge);

// Whether two digests are equal, in time independent of where they differ (CRYPTO_memcmp).
bool digests_equal(const digest& a, const digest& b) noexcept;

// A challenge from OpenSSL's CSPRNG (RAND_bytes). Throws std::runtime_error if it fails.
std::uint32_t random_challenge();

// ---- errors ---------------------------------------------------------------------------------

enum class handshake_failure : std::uint8_t {
  malformed_message,     // a message that does not parse, or is not the one expected now
  message_too_large,     // a length prefix over max_message_size
  unsupported_version,   // the old 'n' send_name (version 5), or a challenge without HANDSHAKE_23
  invalid_name,          // a peer name that is not alive@host
  naming_mode_mismatch,  // the initiator was asked to dial a node of the other naming mode
  missing_flags,         // the peer lacks a required capability
  name_mismatch,         // the challenge names another node than the one dialled
  reflected_challenge,   // the peer's challenge is one our own acceptor sent (is_own_challenge)
  refused,               // a status said no (nok, not_allowed, sfalse), ours or the peer's
  bad_digest,            // the digest does not match: the cookies differ
  peer_closed,           // the peer closed the connection before the handshake finished
};

// "malformed_message", "bad_digest", ...
std::string_view to_string(handshake_failure failure) noexcept;

// Thrown by the decoders and next_frame for input that cannot be a valid message. The state
// machines catch it and fail with kind() and what().
class handshake_error : public std::runtime_error {
 public:
  handshake_error(handshake_failure kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  handshake_failure kind() const noexcept { return kind_; }

 private:
  handshake_failure kind_;
};

// ---- messages -------------------------------------------------------------------------------
// encode(m, framing) returns the framed message. decode_*(body) takes one message without its
// length prefix (next_frame's body) and throws handshake_error (malformed_message, or
// unsupported_version for the old 'n' send_name) for anything else: wrong tag, too short, a
// name length past the end. Extra bytes after a send_name's or challenge's name are ignored,
// as OTP ignores them; a challenge_reply must be exactly 21 bytes and an ack exactly 17, as OTP
// requires. Names are returned as sent; the state machines validate them (parse_peer).

struct send_name_message {
  std::uint64_t flags = 0;
  std::uint32_t creation = 0;
  std::string name;
};

// What the acceptor answers to a send_name.
enum class handshake_status : std::uint8_t {
  ok,               // go on
  ok_simultaneous,  // go on; the acceptor gave up its own attempt to dial the initiator
  nok,              // no: the acceptor's own attempt to dial the initiator wins
  not_allowed,      // no: the initiator's name or flags are refused
  alive,            // the acceptor is still connected to the initiator: does it want a new one?
};
std::string_view to_string(handshake_status status) noexcept;  // "ok", "ok_simultaneous", ...

struct status_message {
  handshake_status status = handshake_status::ok;
};

// The initiator's answer to "alive": "strue" (replace the old connection) or "sfalse".
struct alive_reply_message {
  bool replace_old_connection = false;
};

struct challenge_message {
  std::uint64_t flags = 0;
  std::uint32_t challenge = 0;
  std::uint32_t creation = 0;
  std::string name;
};

struct challenge_reply_message {
  std::uint32_t challenge = 0;  // the initiator's challenge to the acceptor
  dist::digest digest{};        // of the acceptor's challenge
};

struct challenge_ack_message {
  dist::digest digest{};  // of the initiator's challenge
};

// Each throws std::length_error only if a name is too long for its 16-bit length (the state
// machines never send such a name: node names are at most 255 bytes).
std::vector<std::byte> encode(const send_name_message& m, dist::framing framing);
std::vector<std::byte> encode(const status_message& m, dist::framing framing);
std::vector<std::byte> encode(const alive_reply_message& m, dist::framing framing);
std::vector<std::byte> encode(const challenge_message& m, dist::framing framing);
std::vector<std::byte> encode(const challenge_reply_message& m, dist::framing framing);
std::vector<std::byte> encode(const challenge_ack_message& m, dist::framing framing);

// 'N' only. An 'n' (version 5: OTP 22 and older, or OTP 23/24 started without epmd) throws
// unsupported_version; OTP 25.0-25.2 refuse it too.
send_name_message decode_send_name(std::span<const std::byte> body);
// "s" + one of the five statuses. "named:" (the reply to a NAME_ME request, which Athanor
// never makes) and anything else throw malformed_message.
status_message decode_status(std::span<const std::byte> body);
// "strue" or "sfalse" exactly.
alive_reply_message decode_alive_reply(std::span<const std::byte> body);
// 'N' only (an 'n' challenge throws unsupported_version).
challenge_message decode_challenge(std::span<const std::byte> body);
challenge_reply_message decode_challenge_reply(std::span<const std::byte> body);
challenge_ack_message decode_challenge_ack(std::span<const std::byte> body);

// ---- the simultaneous-connect rule ----------------------------------------------------------

// What this node has with the node now dialling in.
enum class existing_connection : std::uint8_t {
  none,       // nothing
  dialling,   // our own handshake to that node is under way (a simultaneous connect)
  connected,  // a connection that we believe is up
};

// The status an acceptor answers, by Erlang's rule (net_kernel's accept_pending): none -> ok;
// connected -> alive (the initiator then says whether the old connection is gone);
// dialling -> nok if our name is greater than the peer's (our attempt wins, so the caller
// keeps it) and ok_simultaneous otherwise (the caller must abandon its own attempt). Names
// compare as byte strings, as Erlang compares node atoms.
handshake_status status_for_incoming(const node_name& self, const node_name& peer, existing_connection existing) noexcept;

// ---- state machines -------------------------------------------------------------------------

// This node's side of a handshake.
struct handshake_settings {
  node_name name;              // this node's full name (sent as is; the peer checks it)
  std::uint32_t creation = 0;  // from epmd's ALIVE2_X_RESP; any value for an unregistered node
  dist::cookie cookie;
  std::uint64_t flags = dflag::recommended_hidden;       // offered to the peer
  std::uint64_t required_flags = dflag::mandatory_otp25;  // the peer must have these (HANDSHAKE_23 always)
  dist::framing framing = dist::framing::two_byte_length;
  std::size_t max_message_size = default_max_handshake_message;
  // Where this side's challenge comes from; empty: random_challenge(). Only for tests that
  // replay a recorded handshake: a predictable challenge lets a recorded reply be replayed.
  std::function<std::uint32_t()> challenge_source;
  // Optional, for a node that both dials and accepts: whether `challenge` is one that this
  // node's acceptors sent and have not yet seen answered (their own_challenge()). The initiator refuses
  // to answer such a challenge (reflected_challenge): a peer that relays our acceptor's
  // challenge to our initiator would otherwise get its digest from us, and with it our
  // acceptor's door, without knowing the cookie. Empty: not checked (OTP does not check).
  std::function<bool(std::uint32_t)> is_own_challenge;
};

enum class handshake_state : std::uint8_t {
  in_progress,        // feed it what the peer sends
  awaiting_decision,  // the caller must answer (acceptor: answer(); initiator: answer_alive())
  connected,          // done: see outcome()
  failed,             // done: see failure(); write what the last call produced, then close
};

// What a successful handshake established.
struct handshake_outcome {
  node_name peer;                     // as the peer sent it (parse_peer's rules)
  std::uint32_t peer_creation = 0;
  std::uint64_t peer_flags = 0;        // as the peer sent them, MANDATORY_25_DIGEST expanded
  std::uint64_t negotiated_flags = 0;  // ours & the peer's, both expanded
  // Acceptor only: we answered "alive" and the peer said "true". The caller must close its old
  // connection to `peer`: this one replaces it.
  bool replaces_old_connection = false;
  // From now on packets are framed by a four-byte length, whatever the handshake used.
  dist::framing packet_framing = dist::framing::four_byte_length;
  // Bytes received after the last handshake message: the connection's first packets (a peer
  // may tick or send right after the handshake, in the same read). Hand them on.
  std::vector<std::byte> unread;
};

namespace detail {
// What both roles share: input buffering, framing, the failure record. Not for direct use.
class handshake_base {
 public:
  handshake_state state() const noexcept { return state_; }
  // The failure, when state() == failed (malformed_message before that).
  handshake_failure failure() const noexcept { return failure_; }
  // A sentence for logs: what failed and why. Never contains the cookie or a digest.
  const std::string& failure_detail() const noexcept { return failure_detail_; }
  // The result, when state() == connected. The peer's name, creation and flags are also set
  // from the moment they are known (the acceptor's awaiting_decision, the initiator's
  // challenge), so a caller can decide or log with them.
  const handshake_outcome& outcome() const noexcept { return outcome_; }
  // The challenge this side sent, once sent (the acceptor's challenge, the initiator's in its
  // reply). Not secret: it travels in clear. See handshake_settings::is_own_challenge.
  std::optional<std::uint32_t> own_challenge() const noexcept { return own_challenge_; }

 protected:
  explicit handshake_base(handshake_settings settings);
  // Appends `in` and hands each whole frame's body to `on_message` while the state stays
  // in_progress; decoding errors fail the handshake. After the last message the rest of the
  // input goes to outcome_.unread.
  template <class OnMessage>
  void consume(std::span<const std::byte> in, OnMessage&& on_message);
  void fail(handshake_failure kind, std::string detail);
  std::uint32_t next_challenge();
  void send(std::vector<std::byte>& out, const std::vector<std::byte>& message);
  std::uint64_t required_flags() const noexcept;

  handshake_settings settings_;
  handshake_state state_ = handshake_state::in_progress;
  handshake_failure failure_ = handshake_failure::malformed_message;
  std::string failure_detail_;
  handshake_outcome outcome_;
  std::vector<std::byte> buffer_;   // received, not yet a whole frame
  std::optional<std::uint32_t> own_challenge_;
};
}  // namespace detail

// The side that dials (A). Lifecycle: start(), then feed() until the state leaves
// in_progress; on awaiting_decision (the acceptor said "alive") call answer_alive().
class handshake_initiator : public detail::handshake_base {
 public:
  // `dialled`: the node being connected to; the challenge must carry exactly this name. If its
  // naming mode differs from ours the machine starts failed (naming_mode_mismatch), as erl
  // refuses to dial across modes, and start() sends nothing.
  handshake_initiator(handshake_settings settings, node_name dialled);

  // Appends the send_name message to `out`. Call once, first; throws std::logic_error if
  // called again. Returns state().
  handshake_state start(std::vector<std::byte>& out);

  // Consumes bytes read from the socket and appends to `out` the bytes to write. Returns the
  // new state. Calls after the state became connected or failed change nothing (bytes after
  // the handshake are outcome().unread; what follows belongs to the connection layer).
  handshake_state feed(std::span<const std::byte> received, std::vector<std::byte>& out);

  // awaiting_decision only (else std::logic_error): the acceptor believes it is still connected
  // to us. true: our old connection is gone (OTP answers true while this attempt is still
  // wanted), the acceptor drops its old one and the handshake goes on; false: give up
  // (failed, refused). Appends "strue"/"sfalse" to `out`.
  handshake_state answer_alive(bool replace_old_connection, std::vector<std::byte>& out);

  // The peer closed the connection (EOF). Fails with peer_closed, saying what was awaited
  // (after our challenge_reply that usually means a wrong cookie: OTP closes silently).
  handshake_state end_of_input();

  const node_name& dialled() const noexcept { return dialled_; }

 private:
  enum class step : std::uint8_t { not_started, await_status, await_decision, await_challenge, await_ack, done };
  void on_message(std::span<const std::byte> body, std::vector<std::byte>& out);

  node_name dialled_;
  step step_ = step::not_started;
};

// The side that accepts (B). Lifecycle: feed() until awaiting_decision, answer() (by
// status_for_incoming and any allow-list), then feed() until connected or failed.
class handshake_acceptor : public detail::handshake_base {
 public:
  explicit handshake_acceptor(handshake_settings settings);

  // As handshake_initiator::feed. A send_name from a peer without the required flags fails
  // with missing_flags and appends "snot_allowed"; a wrong digest fails with bad_digest and
  // appends nothing (the caller closes without a reply, as OTP does).
  handshake_state feed(std::span<const std::byte> received, std::vector<std::byte>& out);

  // awaiting_decision only (else std::logic_error): the status for the peer in outcome().peer.
  // (Like OTP's, the acceptor does not refuse a peer of the other naming mode by itself; a
  // caller that wants to answers not_allowed when !same_naming_mode.)
  // ok / ok_simultaneous: appends the status and our challenge; nok / not_allowed: appends the
  // status and fails (refused); alive: appends "salive" and waits for the peer's answer.
  handshake_state answer(handshake_status status, std::vector<std::byte>& out);

  // The peer closed the connection (EOF): fails with peer_closed.
  handshake_state end_of_input();

 private:
  enum class step : std::uint8_t { await_name, await_decision, await_alive_reply, await_reply, done };
  void on_message(std::span<const std::byte> body, std::vector<std::byte>& out);
  void send_challenge(std::vector<std::byte>& out);

  step step_ = step::await_name;
};

}  // namespace athanor::dist
