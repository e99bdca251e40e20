// Distribution messages after the handshake (Erlang's distribution protocol, "Protocol between
// connected nodes"): the control-message opcodes, reading packets into control tuples and
// payloads, and writing the packets a node sends. No sockets: the connection feeds bytes in
// and takes bytes out, so the fuzzers drive this code as the connection does.
//
// Two framing modes (erlang-distribution.md section 4.2), fixed by the handshake and never mixed:
//  * pass-through, when neither DFLAG_DIST_HDR_ATOM_CACHE nor DFLAG_FRAGMENTS was negotiated:
//    112 ('p'), then each term with its own version byte 131;
//  * header, when either was: 131 68 (a whole message), 131 69 (the first fragment of one) or
//    131 70 (a later fragment), a distribution header, then the terms without version bytes.
//
// Stateless (pass-through, or header packets that use no atom cache and no fragments):
//
//   dist::message m = dist::read_packet(packet, options);    // throws dist::protocol_error
//   if (m.op == dist::op::reg_send) ... m.control.element(3) ... *m.payload ...
//   dist::write_packet(out, control, &payload, encode_options);   // pass-through
//
// Per connection (any mode; what a connection negotiating the cache or fragments needs):
//
//   dist::packet_reader reader(hs.negotiated_flags, limits);
//   for each packet that is not a tick:
//     if (std::optional<dist::message> m = reader.feed(packet, options)) dispatch(*m);
//
//   std::vector<std::byte> packet;
//   dist::write_packet(packet, dist::packet_mode::header, control, &payload, encode_options);
//   if (dist::fits_one_packet(packet)) {
//     queue(std::move(packet));
//   } else {                                            // larger than one fragment: split it
//     dist::fragment_writer w(std::move(packet), sequence_id);    // no copy of the message
//     while (!w.done()) queue(w.next());                // other packets may go in between
//   }
//
// Thread-safety: the free functions are thread-safe; a packet_reader or fragment_writer is a
// plain object, for one thread at a time (its connection's).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "athanor/term/etf.h"
#include "athanor/term/term.h"

namespace athanor::dist {

// The control-message opcodes (the first element of the control tuple).
enum class op : std::uint8_t {
  link = 1,
  send = 2,
  exit = 3,
  unlink = 4,
  node_link = 5,
  reg_send = 6,
  group_leader = 7,
  exit2 = 8,
  send_tt = 12,
  exit_tt = 13,
  reg_send_tt = 16,
  exit2_tt = 18,
  monitor_p = 19,
  demonitor_p = 20,
  monitor_p_exit = 21,
  send_sender = 22,
  send_sender_tt = 23,
  payload_exit = 24,
  payload_exit_tt = 25,
  payload_exit2 = 26,
  payload_exit2_tt = 27,
  payload_monitor_p_exit = 28,
  spawn_request = 29,
  spawn_request_tt = 30,
  spawn_reply = 31,
  spawn_reply_tt = 32,
  alias_send = 33,
  alias_send_tt = 34,
  unlink_id = 35,
  unlink_id_ack = 36,
};

// A packet that breaks the protocol: a malformed term, an unknown opcode, a control tuple of the
// wrong shape, a payload missing or extra. OTP logs such a packet and drops the connection; so
// does Athanor. what() says what was wrong.
class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One distribution message: its opcode, its control tuple (checked: the arity and the element
// kinds the opcode needs), and its payload (the message of a send, the reason of a payload exit,
// the argument list of a spawn request), if the opcode has one. A plain value type.
struct message {
  dist::op op = dist::op::send;
  term control;
  std::optional<term> payload;
};

// True if `o` carries a payload term after its control tuple.
bool has_payload(op o) noexcept;

// Reads one packet (without its 4-byte length; not a tick, which is empty), in either mode, with
// no state: pass-through, or a header-mode 131 68 packet without atom-cache references. Pids,
// refs and ports map to node numbers through `options.context`. Throws protocol_error for
// anything that is not a well-formed message (including atom-cache references and fragments,
// which need a packet_reader), with etf::etf_error's text inside it for a malformed term.
message read_packet(std::span<const std::byte> packet, const etf::decode_options& options);

// Appends one packet in pass-through form, with its 4-byte length, to `out`: the control tuple,
// then the payload when there is one. Throws etf::etf_error for a term the format cannot carry
// (a pid of a node the context cannot name); `out` is then left as it was.
void write_packet(std::vector<std::byte>& out, const term& control, const term* payload,
                  const etf::encode_options& options);

// The tick: an empty packet (a 4-byte zero length).
inline constexpr std::byte kTick[4] = {};

// ---- header mode ------------------------------------------------------------------------------

// A connection's framing mode (see the file comment).
enum class packet_mode : std::uint8_t {
  pass_through,  // 112, then terms with version bytes
  header,        // 131 68/69/70, a distribution header, then terms without version bytes
};

// The mode a handshake's negotiated flags select: header iff DIST_HDR_ATOM_CACHE or FRAGMENTS is
// among them (OTP's rule, erts_prepare_dist_ext; it holds in both directions).
packet_mode packet_mode_for(std::uint64_t negotiated_flags) noexcept;

// Appends one packet in `mode`, with its 4-byte length, to `out`. Pass-through: as the
// four-argument write_packet. Header: 131 68 0 (a header naming no atom-cache entries, which OTP
// always accepts, so this node never keeps a sending cache), then the control tuple and the
// payload without version bytes. Throws as the four-argument write_packet, leaving `out` as it
// was. A header-mode packet larger than one fragment may go out as fragments: fragment_writer.
void write_packet(std::vector<std::byte>& out, packet_mode mode, const term& control, const term* payload,
                  const etf::encode_options& options);

// The most message bytes a fragment carries by default: 64 KiB, as OTP 25 splits messages.
inline constexpr std::size_t kDefaultFragmentBytes = std::size_t(64) << 10;

// True if `packet` (one header-mode packet with its 4-byte length, as write_packet(out,
// packet_mode::header, ...) appends to an empty `out`) carries at most `max_fragment_bytes`
// of message bytes, so there is nothing to gain from fragment_writer.
bool fits_one_packet(std::span<const std::byte> packet, std::size_t max_fragment_bytes = kDefaultFragmentBytes) noexcept;

// One outgoing message as the packets that carry it: fragments (131 69, then 131 70 ...) of at
// most max_fragment_bytes message bytes each, or the packet unchanged when it fits in one. The
// connection queues each fragment as a packet of its own and may send other packets between
// them: that is what keeps ticks and other senders moving while a 100 MB message goes out.
//
// Design: the message is encoded once (write_packet), and the writer takes that buffer over by
// move; each fragment is its own small header (a value, at most 23 bytes) plus a view of the
// next bytes of that one buffer. So splitting copies nothing: the connection can hand header and
// view to sendmsg as two iovecs (or copy a fragment with write_next() if it keeps whole packets).
// Rejected: encoding into one buffer per fragment (the encoder would have to stop at fragment
// boundaries, or the message be copied a second time), and writing each fragment's header into
// the buffer just before its bytes (that overwrites the end of the previous fragment, which may
// not have been sent yet).
//
// Ordering: the receiver delivers a fragmented message when its last fragment arrives, so a
// sender's later messages to the same peer must not be queued before that last fragment (Erlang
// orders the signals between two processes; OTP achieves it by holding the sending process
// until its fragments are out). Fragments of different sequences may interleave freely.
//
// Not thread-safe; a plain movable object. The views next() returns stay valid while the writer
// lives (moving it keeps them valid: the buffer moves with it).
class fragment_writer {
 public:
  // One packet of the message: `header` (length prefix and distribution header) then `body`
  // (a view of the message bytes inside the writer). Written back to back they are one packet.
  struct fragment {
    std::array<std::byte, 23> header_bytes{};
    std::uint8_t header_size = 0;
    std::span<const std::byte> body;
    std::span<const std::byte> header() const noexcept { return std::span(header_bytes).first(header_size); }
    std::size_t size() const noexcept { return header_size + body.size(); }
  };

  // Takes over `packet`, one header-mode packet with its 4-byte length whose header names no
  // atom-cache entries (131 68 0: as write_packet(out, packet_mode::header, ...) appends it to
  // an empty `out`). `sequence_id` names the message on the wire: any value, but unique among
  // this connection's messages still being sent in fragments (OTP derives it from the sender
  // pid; a per-connection counter is fine). Throws std::invalid_argument for another packet or
  // a max_fragment_bytes of 0 or over 4 GiB - 64.
  fragment_writer(std::vector<std::byte> packet, std::uint64_t sequence_id,
                  std::size_t max_fragment_bytes = kDefaultFragmentBytes);

  // Packets the message takes (1 if it fits in one: then next() gives the packet unchanged).
  std::uint64_t fragments() const noexcept { return count_; }
  // Packets not yet taken by next() / write_next().
  std::uint64_t remaining() const noexcept { return left_; }
  bool done() const noexcept { return left_ == 0; }

  // The next packet. Requires !done() (else std::logic_error).
  fragment next();
  // Appends the next packet, whole, to `out` (copying at most max_fragment_bytes of the
  // message). Requires !done() (else std::logic_error).
  void write_next(std::vector<std::byte>& out);
  // Once done(): gives the message's buffer back, emptied but with its capacity, to encode a
  // later message into (its pages are mapped already); the views next() returned end with it.
  // Before done(), or a second time: an empty vector.
  std::vector<std::byte> release_buffer() noexcept;

 private:
  std::vector<std::byte> packet_;
  std::uint64_t sequence_id_;
  std::size_t max_;
  std::uint64_t count_ = 0;
  std::uint64_t left_ = 0;
  std::size_t offset_ = 0;  // of the next body bytes in packet_
};

// How much a peer may make a packet_reader hold (see packet_reader).
struct reader_limits {
  // The largest message reassembled from fragments (node_config::max_message_bytes bounds a
  // single packet the same way).
  std::size_t max_message_bytes = std::size_t(256) << 20;
  // Fragmented messages being reassembled at once (OTP sends one per sending process).
  std::size_t max_sequences = 64;
  // Buffer bytes of all of them together (capacity: what they really take).
  std::size_t max_buffered_bytes = std::size_t(512) << 20;
};

// A connection's receiving side: reads its packets in order, keeping the state header mode
// needs across packets: the atom cache (2048 slots, OTP's, per connection and direction, filled
// by the headers' new entries) and the fragmented messages being reassembled. In pass-through
// mode it is read_packet plus the mode check.
//
// Memory: nothing beyond the object until a header uses the cache (then 8 KiB for good) or a
// message comes in fragments (its bytes, within reader_limits, until its last fragment).
//
// Errors: every problem is a protocol_error, after which the connection must be closed (OTP
// closes it too): the reader's state is then valid but no longer matches the peer's.
//
// Not thread-safe: one per connection, fed by that connection alone.
class packet_reader {
 public:
  // `negotiated_flags`: what the handshake agreed (handshake_result::negotiated_flags). They
  // choose the mode (packet_mode_for), and whether atom-cache references (DIST_HDR_ATOM_CACHE)
  // and fragments (FRAGMENTS) are allowed: a peer using what was not negotiated is refused.
  explicit packet_reader(std::uint64_t negotiated_flags, reader_limits limits = {});
  ~packet_reader();
  packet_reader(packet_reader&&) noexcept;
  packet_reader& operator=(packet_reader&&) noexcept;

  // Reads the next packet of the connection (without its 4-byte length; not a tick). Returns the
  // message it completes: a whole message, or the last fragment of one; nullopt when it buffered
  // a fragment of a message not complete yet. `options` as for read_packet; with options.safe,
  // a header's new cache entries may not create atoms either (the cache makes atoms as the
  // decoder does, so the peer_atom_limit policy holds). Throws protocol_error for a packet of the
  // other mode, a malformed header, a reference to an empty cache slot, a fragment of a
  // sequence not started or started twice, a fragment id out of order (ids count down to 1), a
  // message over the limits, and everything read_packet refuses.
  std::optional<message> feed(std::span<const std::byte> packet, const etf::decode_options& options);

  packet_mode mode() const noexcept { return mode_; }
  // Messages being reassembled, and the buffer bytes they hold.
  std::size_t pending_sequences() const noexcept { return sequences_.size(); }
  std::size_t buffered_bytes() const noexcept { return buffered_; }
  // The buffer of the last reassembled message is kept for the next (a fresh one would cost a
  // page fault per 4 KiB of a large message); this frees it. Call it when the connection is idle.
  void release_spare() noexcept { spare_ = {}; }
  std::size_t spare_bytes() const noexcept { return spare_.capacity(); }

 private:
  struct sequence {
    std::uint64_t next_fragment = 0;  // the id the next continuation must carry
    std::vector<atom> atoms;          // its first fragment's header
    std::vector<std::byte> bytes;     // the message so far
  };
  struct atom_cache;

  std::span<const std::byte> read_header(std::span<const std::byte> rest, std::vector<atom>& atoms,
                                         const etf::decode_options& options);
  // Appends a fragment's bytes to `s`, growing its buffer towards `expected` bytes (a hint)
  // within reader_limits.
  void append(sequence& s, std::uint64_t id, std::span<const std::byte> bytes, std::size_t expected);
  void release(std::unordered_map<std::uint64_t, sequence>::iterator it);

  packet_mode mode_;
  bool cache_allowed_;
  bool fragments_allowed_;
  reader_limits limits_;
  std::unique_ptr<atom_cache> cache_;  // made by the first header that uses it
  std::unordered_map<std::uint64_t, sequence> sequences_;
  std::size_t buffered_ = 0;     // capacity of all sequences' bytes
  std::vector<std::byte> spare_;  // a finished message's buffer (at most 16 MiB), for the next
  std::vector<atom> atoms_;      // the current whole packet's header atoms (kept: no allocation per packet)
  std::vector<std::byte> scratch_;  // one cache entry's atom as a term, to decode it
};

}  // namespace athanor::dist
