// Distribution packets (control.h): the wire bytes OTP 25 sends, and every opcode's shape.
#include <gtest/gtest.h>

#include "athanor/dist/control.h"

namespace athanor::dist {
namespace {

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(std::byte(v));
  return out;
}
void append_text(std::vector<std::byte>& out, std::string_view s) {
  for (char c : s) out.push_back(std::byte(c));
}
void append_u32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(std::byte(v >> (8 * i)));
}

// Maps the one peer these tests know, a@vm, to node number 1.
etf::etf_context peer_context() {
  etf::etf_context c;
  c.node = atom("cpp@vm");
  c.creation = 7;
  c.node_number = [](const etf::node_identity& n) -> std::optional<std::uint32_t> {
    if (n.name == atom("a@vm")) return 1;
    return std::nullopt;
  };
  c.node_name = [](std::uint32_t n) -> std::optional<etf::node_identity> {
    if (n == 1) return etf::node_identity{atom("a@vm"), 0x6b070ce4};
    return std::nullopt;
  };
  return c;
}

// The MONITOR_P that OTP 25 sends before net_adm:ping's call (erlang-distribution.md §4.2).
TEST(DistPacket, ReadsTheMonitorThatPingSendsFirst) {
  std::vector<std::byte> p = bytes_of({0x70, 0x83, 0x68, 0x04, 0x61, 0x13, 0x58, 0x77, 0x04});
  append_text(p, "a@vm");
  append_u32(p, 9);
  append_u32(p, 0);
  append_u32(p, 0x6b070ce4);
  p.push_back(std::byte{0x77});
  p.push_back(std::byte{0x0a});
  append_text(p, "net_kernel");
  for (int b : {0x5a, 0x00, 0x03, 0x77, 0x04}) p.push_back(std::byte(b));
  append_text(p, "a@vm");
  for (std::uint32_t w : {0x6b070ce4u, 0x000356b0u, 0xe4350002u, 0x7c494c3cu}) append_u32(p, w);
  EXPECT_EQ(p.size(), 0x3eu);  // the length prefix OTP sent
  etf::decode_options o;
  o.context = peer_context();
  message m = read_packet(p, o);
  EXPECT_EQ(m.op, op::monitor_p);
  EXPECT_FALSE(m.payload);
  EXPECT_EQ(m.control.element(1).as_pid(), pid(1, 9, 0));
  EXPECT_EQ(m.control.element(2), term(atom("net_kernel")));
  EXPECT_TRUE(m.control.element(3).is_reference());
}

TEST(DistPacket, WritesPassThroughPacketsThatReadBack) {
  etf::encode_options eo;
  eo.context = peer_context();
  etf::decode_options dopt;
  dopt.context = peer_context();
  const pid remote(1, 9, 0), local(0, 5, 2);
  const term payload = tuple(atom("hello"), list({term(1), term(2.5)}), term("bin"));
  std::vector<std::byte> out;
  const term control = tuple(term(2), term(atom("")), term(remote));
  write_packet(out, control, &payload, eo);
  const std::uint32_t length = std::uint32_t(out[0]) << 24 | std::uint32_t(out[1]) << 16 | std::uint32_t(out[2]) << 8 |
                               std::uint32_t(out[3]);
  ASSERT_EQ(length + 4, out.size());
  EXPECT_EQ(out[4], std::byte{112});
  EXPECT_EQ(out[5], std::byte{131});
  message m = read_packet(std::span(out).subspan(4), dopt);
  EXPECT_EQ(m.op, op::send);
  EXPECT_EQ(m.control, control);
  ASSERT_TRUE(m.payload);
  EXPECT_EQ(*m.payload, payload);
  // A second packet appends after the first.
  const term link = tuple(term(1), term(local), term(remote));
  const std::size_t first = out.size();
  write_packet(out, link, nullptr, eo);
  message l = read_packet(std::span(out).subspan(first + 4), dopt);
  EXPECT_EQ(l.op, op::link);
  EXPECT_EQ(l.control, link);
  EXPECT_FALSE(l.payload);
}

TEST(DistPacket, AnUnnamableNodeLeavesTheBufferAsItWas) {
  etf::encode_options eo;
  eo.context = peer_context();
  std::vector<std::byte> out = bytes_of({1, 2, 3});
  const term control = tuple(term(2), term(atom("")), term(pid(9, 1, 0)));  // node 9 is unknown
  EXPECT_THROW(write_packet(out, control, &control, eo), etf::etf_error);
  EXPECT_EQ(out, bytes_of({1, 2, 3}));
}

TEST(DistPacket, EveryOpcodeChecksItsShape) {
  etf::encode_options eo;
  eo.context = peer_context();
  etf::decode_options dopt;
  dopt.context = peer_context();
  const term p = term(pid(1, 9, 0)), a = term(atom("name")), r = term(ref(0, 77)), x = term(atom("why"));
  const term payload = term(atom("payload"));
  struct example {
    op o;
    term control;
  };
  const std::vector<example> good = {
      {op::link, tuple(term(1), p, p)},
      {op::send, tuple(term(2), term(atom("")), p)},
      {op::exit, tuple(term(3), p, p, x)},
      {op::reg_send, tuple(term(6), p, term(atom("")), a)},
      {op::exit2, tuple(term(8), p, p, x)},
      {op::monitor_p, tuple(term(19), p, a, r)},
      {op::monitor_p, tuple(term(19), p, p, r)},
      {op::demonitor_p, tuple(term(20), p, a, r)},
      {op::monitor_p_exit, tuple(term(21), a, p, r, x)},
      {op::send_sender, tuple(term(22), p, p)},
      {op::payload_exit, tuple(term(24), p, p)},
      {op::payload_exit2, tuple(term(26), p, p)},
      {op::payload_monitor_p_exit, tuple(term(28), p, p, r)},
      {op::spawn_request, tuple(term(29), r, p, p, tuple(a, a, term(2)), term::nil())},
      {op::spawn_reply, tuple(term(31), r, p, term(2), p)},
      {op::alias_send, tuple(term(33), p, r)},
      {op::unlink_id, tuple(term(35), term(12), p, p)},
      {op::unlink_id_ack, tuple(term(36), term(12), p, p)},
  };
  for (const example& e : good) {
    std::vector<std::byte> out;
    write_packet(out, e.control, has_payload(e.o) ? &payload : nullptr, eo);
    message m = read_packet(std::span(out).subspan(4), dopt);
    EXPECT_EQ(m.op, e.o) << e.control.to_string();
    EXPECT_EQ(m.payload.has_value(), has_payload(e.o)) << e.control.to_string();
  }
  const std::vector<term> bad = {
      tuple(term(99), p, p),                      // unknown opcode
      tuple(term(1), p),                          // LINK without its target
      tuple(term(1), p, a),                       // LINK to a name
      tuple(term(6), p, term(atom("")), p),       // REG_SEND to a pid
      tuple(term(19), p, a, p),                   // MONITOR_P with a pid for a reference
      tuple(term(35), term(atom("x")), p, p),     // UNLINK_ID with an atom id
      term(atom("not_a_tuple")),
      tuple(),
      tuple(term(atom("send")), p),
  };
  for (const term& control : bad) {
    std::vector<std::byte> out;
    write_packet(out, control, nullptr, eo);
    EXPECT_THROW(read_packet(std::span(out).subspan(4), dopt), protocol_error) << control.to_string();
  }
}

TEST(DistPacket, MissingPayloadsHeadersAndGarbageAreProtocolErrors) {
  etf::encode_options eo;
  eo.context = peer_context();
  etf::decode_options dopt;
  dopt.context = peer_context();
  std::vector<std::byte> out;
  write_packet(out, tuple(term(2), term(atom("")), term(pid(1, 9, 0))), nullptr, eo);  // SEND, no message
  EXPECT_THROW(read_packet(std::span(out).subspan(4), dopt), protocol_error);
  EXPECT_THROW(read_packet({}, dopt), protocol_error);
  EXPECT_THROW(read_packet(bytes_of({0x70, 0x83, 0x68}), dopt), protocol_error);  // truncated term
  EXPECT_THROW(read_packet(bytes_of({0x71, 0x83, 0x6a}), dopt), protocol_error);  // neither 'p' nor a header
  EXPECT_THROW(read_packet(bytes_of({0x83, 0x44, 0x01, 0x08, 0x00}), dopt), protocol_error);  // atom cache
  // A header with no cache references, then terms without version bytes: accepted.
  std::vector<std::byte> header = bytes_of({0x83, 0x44, 0x00, 0x68, 0x02, 0x61, 0x05, 0x6a});  // {5, []}: NODE_LINK has arity 1
  EXPECT_THROW(read_packet(header, dopt), protocol_error);
  std::vector<std::byte> node_link = bytes_of({0x83, 0x44, 0x00, 0x68, 0x01, 0x61, 0x05});
  EXPECT_EQ(read_packet(node_link, dopt).op, op::node_link);
}

}  // namespace
}  // namespace athanor::dist
