// Distribution messages after the handshake (Erlang's distribution protocol, "Protocol between
// connected nodes"): the control-message opcodes, reading one packet into its control tuple and
// payload, and writing the packets a node sends. Pure functions over bytes and terms: no sockets,
// so the fuzzer drives them as the connection does.
//
//   dist::message m = dist::read_packet(packet, options);    // throws dist::protocol_error
//   if (m.op == dist::op::reg_send) ... m.control.element(3) ... *m.payload ...
//
// Packets are in pass-through form ('p', then each term with its own version byte), the form a
// connection uses when neither DFLAG_DIST_HDR_ATOM_CACHE nor DFLAG_FRAGMENTS was negotiated;
// header-form packets (131, 68, ...) with no atom-cache references are read too. Thread-safe:
// every function here is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
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

// Reads one packet (without its 4-byte length; not a tick, which is empty). Pids, refs and ports
// map to node numbers through `options.context`. Throws protocol_error for anything that is not
// a well-formed message (including atom-cache references, which this node never negotiates), and
// etf::etf_error's text inside it for a malformed term.
message read_packet(std::span<const std::byte> packet, const etf::decode_options& options);

// Appends one packet in pass-through form, with its 4-byte length, to `out`: the control tuple,
// then the payload when there is one. Throws etf::etf_error for a term the format cannot carry
// (a pid of a node the context cannot name); `out` is then left as it was.
void write_packet(std::vector<std::byte>& out, const term& control, const term* payload,
                  const etf::encode_options& options);

// The tick: an empty packet (a 4-byte zero length).
inline constexpr std::byte kTick[4] = {};

}  // namespace athanor::dist
