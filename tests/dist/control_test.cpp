// Distribution packets (control.h): the wire bytes OTP 25 sends, and every opcode's shape.
#include <gtest/gtest.h>

#include "athanor/dist/control.h"

#include <string>

#include "athanor/dist/handshake.h"

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

// ---- header mode: the atom cache and fragments ------------------------------------------------

constexpr std::uint64_t kCacheAndFragments = dflag::recommended_hidden | dflag::dist_hdr_atom_cache | dflag::fragments;

void append_u64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(std::byte(v >> (8 * i)));
}
std::vector<std::byte> cat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
// A NEW_PID_EXT whose node is ATOM_CACHE_REF `ref`, as OTP writes pids in header mode.
std::vector<std::byte> cached_pid(int ref, std::uint32_t id) {
  std::vector<std::byte> p = bytes_of({0x58, 0x52, ref});
  append_u32(p, id);
  append_u32(p, 0);
  append_u32(p, 0x6b070ce4);
  return p;
}
// Splits a byte stream of length-prefixed packets (what a connection writes) into packets.
std::vector<std::vector<std::byte>> packets_of(std::span<const std::byte> stream) {
  std::vector<std::vector<std::byte>> out;
  while (!stream.empty()) {
    const std::size_t n = std::size_t(stream[0]) << 24 | std::size_t(stream[1]) << 16 | std::size_t(stream[2]) << 8 |
                          std::size_t(stream[3]);
    out.emplace_back(stream.begin() + 4, stream.begin() + 4 + std::ptrdiff_t(n));
    stream = stream.subspan(4 + n);
  }
  return out;
}
etf::decode_options peer_decode() {
  etf::decode_options o;
  o.context = peer_context();
  return o;
}
etf::encode_options peer_encode() {
  etf::encode_options o;
  o.context = peer_context();
  return o;
}
void expect_protocol_error(packet_reader& r, std::span<const std::byte> packet, const std::string& needle,
                           const etf::decode_options& o = peer_decode()) {
  try {
    r.feed(packet, o);
    ADD_FAILURE() << "no error, expected one containing \"" << needle << "\"";
  } catch (const protocol_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(DistHeaderMode, TheNegotiatedFlagsChooseTheMode) {
  EXPECT_EQ(packet_mode_for(dflag::recommended_hidden), packet_mode::pass_through);
  EXPECT_EQ(packet_mode_for(dflag::recommended_hidden | dflag::fragments), packet_mode::header);
  EXPECT_EQ(packet_mode_for(dflag::recommended_hidden | dflag::dist_hdr_atom_cache), packet_mode::header);
  EXPECT_EQ(packet_mode_for(dflag::full_hidden), packet_mode::header);
  EXPECT_EQ(packet_reader(dflag::full_hidden).mode(), packet_mode::header);
}

TEST(DistHeaderMode, PacketsOfEachModeReadBackAndTheModesDoNotMix) {
  const term payload = tuple(atom("hello"), list({term(1), term(2.5)}), term("bin"));
  const term control = tuple(term(2), term(atom("")), term(pid(1, 9, 0)));
  std::vector<std::byte> header, pass;
  write_packet(header, packet_mode::header, control, &payload, peer_encode());
  write_packet(pass, packet_mode::pass_through, control, &payload, peer_encode());
  // Header: 131 68 0, then the terms without their version bytes.
  ASSERT_GE(header.size(), 8u);
  EXPECT_EQ(std::vector<std::byte>(header.begin() + 4, header.begin() + 8), bytes_of({131, 68, 0, 0x68}));
  EXPECT_EQ(header.size(), pass.size() - 1 - 2 + 3);  // no 'p', no two version bytes, three header bytes
  EXPECT_EQ(pass[4], std::byte{112});
  const auto h = std::span(header).subspan(4), p = std::span(pass).subspan(4);
  packet_reader in_header(kCacheAndFragments), in_pass(dflag::recommended_hidden);
  for (auto [reader, packet] : {std::pair{&in_header, h}, std::pair{&in_pass, p}}) {
    std::optional<message> m = reader->feed(packet, peer_decode());
    ASSERT_TRUE(m);
    EXPECT_EQ(m->op, op::send);
    EXPECT_EQ(m->control, control);
    ASSERT_TRUE(m->payload);
    EXPECT_EQ(*m->payload, payload);
  }
  EXPECT_EQ(read_packet(h, peer_decode()).control, control);  // the stateless reader reads both
  expect_protocol_error(in_header, p, "pass-through packet (112) on a connection in header mode");
  expect_protocol_error(in_pass, h, "header-mode packet (131) on a pass-through connection");
  packet_reader fragments_only(dflag::recommended_hidden | dflag::fragments);
  EXPECT_TRUE(fragments_only.feed(h, peer_decode()));
  expect_protocol_error(fragments_only, p, "pass-through packet");
}

// The headers OTP 25 sent (erlang-distribution.md section 4.3), byte for byte up to the "...",
// completed with terms that use every cached atom.
TEST(DistHeaderMode, ReadsTheVerifiedAtomCacheHeaders) {
  packet_reader r(kCacheAndFragments);
  // 83 44 02 9f 00 da 04 "a@vm" af 0a "net_kernel" 68 04 61 14 58 52 00 ...: two new entries,
  // (7, 0xda) = a@vm and (1, 0xaf) = net_kernel; then DEMONITOR_P {20, Pid, net_kernel, Ref}.
  std::vector<std::byte> first = bytes_of({0x83, 0x44, 0x02, 0x9f, 0x00, 0xda, 0x04});
  append_text(first, "a@vm");
  first = cat(first, bytes_of({0xaf, 0x0a}));
  append_text(first, "net_kernel");
  first = cat(first, bytes_of({0x68, 0x04, 0x61, 0x14}));
  first = cat(first, cached_pid(0, 9));
  first = cat(first, bytes_of({0x52, 0x01, 0x5a, 0x00, 0x03, 0x52, 0x00}));
  for (std::uint32_t w : {0x6b070ce4u, 0x000356b0u, 0xe4350002u, 0x7c494c3cu}) append_u32(first, w);
  std::optional<message> m = r.feed(first, peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->op, op::demonitor_p);
  EXPECT_EQ(m->control.element(1).as_pid(), pid(1, 9, 0));
  EXPECT_EQ(m->control.element(2), term(atom("net_kernel")));
  EXPECT_TRUE(m->control.element(3).is_reference());
  // 83 44 04 87 9a 00 da 05 00 78 04 "echo" c2 02 "hi" ...: (7, 0xda) cached, then new entries
  // (0, 0x05) = '', (2, 0x78) = echo, (1, 0xc2) = hi; then REG_SEND {6, Pid, '', echo} + hi.
  std::vector<std::byte> second = bytes_of({0x83, 0x44, 0x04, 0x87, 0x9a, 0x00, 0xda, 0x05, 0x00, 0x78, 0x04});
  append_text(second, "echo");
  second = cat(second, bytes_of({0xc2, 0x02}));
  append_text(second, "hi");
  second = cat(second, bytes_of({0x68, 0x04, 0x61, 0x06}));
  second = cat(second, cached_pid(0, 10));
  second = cat(second, bytes_of({0x52, 0x01, 0x52, 0x02, 0x52, 0x03}));
  m = r.feed(second, peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->op, op::reg_send);
  EXPECT_EQ(m->control, tuple(term(6), term(pid(1, 10, 0)), term(atom("")), term(atom("echo"))));
  ASSERT_TRUE(m->payload);
  EXPECT_EQ(*m->payload, term(atom("hi")));
  // Every slot is now cached: a header of cached entries only (nibbles 7, 0, 2, 1; the
  // LongAtoms nibble 0), and the same message again.
  std::vector<std::byte> third = bytes_of({0x83, 0x44, 0x04, 0x07, 0x12, 0x00, 0xda, 0x05, 0x78, 0xc2, 0x68, 0x04,
                                           0x61, 0x06});
  third = cat(third, cached_pid(0, 10));
  third = cat(third, bytes_of({0x52, 0x01, 0x52, 0x02, 0x52, 0x03}));
  m = r.feed(third, peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control, tuple(term(6), term(pid(1, 10, 0)), term(atom("")), term(atom("echo"))));
  EXPECT_EQ(*m->payload, term(atom("hi")));
  // A new entry overwrites its slot: (0, 0x05), '' so far, becomes 'ok'.
  std::vector<std::byte> fourth = bytes_of({0x83, 0x44, 0x01, 0x08, 0x05, 0x02});
  append_text(fourth, "ok");
  fourth = cat(fourth, bytes_of({0x68, 0x01, 0x61, 0x05}));  // NODE_LINK, without using it
  EXPECT_TRUE(r.feed(fourth, peer_decode()));
  std::vector<std::byte> fifth = bytes_of({0x83, 0x44, 0x02, 0x07, 0x00, 0xda, 0x05, 0x68, 0x04, 0x61, 0x06});
  fifth = cat(fifth, cached_pid(0, 1));
  fifth = cat(fifth, bytes_of({0x52, 0x01, 0x52, 0x01, 0x6a}));  // {6, Pid, ok, ok} + []
  m = r.feed(fifth, peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control.element(3), term(atom("ok")));
}

TEST(DistHeaderMode, LongAtomsHaveTwoByteLengths) {
  packet_reader r(kCacheAndFragments);
  const std::string name(200, 'x');  // any length: the flag only widens the field
  // One new entry (nibble 8: segment 0) and the LongAtoms nibble 1: flags byte 0x18.
  std::vector<std::byte> p = bytes_of({0x83, 0x44, 0x01, 0x18, 0x33, 0x00, 200});
  append_text(p, name);
  p = cat(p, bytes_of({0x68, 0x04, 0x61, 0x06}));
  p = cat(p, bytes_of({0x58, 0x77, 0x04}));
  append_text(p, "a@vm");
  append_u32(p, 3);
  append_u32(p, 0);
  append_u32(p, 0x6b070ce4);
  p = cat(p, bytes_of({0x77, 0x00, 0x52, 0x00, 0x6a}));
  std::optional<message> m = r.feed(p, peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control.element(3), term(atom(name)));
  // Without the flag the same bytes misread the length (0) and the text as terms: an error.
  p[3] = std::byte{0x08};
  expect_protocol_error(r, p, "dist: malformed control message");
}

TEST(DistHeaderMode, BrokenHeadersAreProtocolErrors) {
  packet_reader r(kCacheAndFragments);
  expect_protocol_error(r, bytes_of({0x83, 0x44, 0x01, 0x00, 0x10, 0x68, 0x01, 0x61, 0x05}),
                        "names an empty slot (segment 0, index 16)");
  expect_protocol_error(r, bytes_of({0x83, 0x44}), "cut short of its NumberOfAtomCacheRefs");
  expect_protocol_error(r, bytes_of({0x83, 0x44, 0x03, 0x88}), "cut short in its flags");
  expect_protocol_error(r, bytes_of({0x83, 0x44, 0x01, 0x08}), "ref 0 of 1 cut short");
  expect_protocol_error(r, bytes_of({0x83, 0x44, 0x01, 0x08, 0x01, 0x05, 'a', 'b'}), "5 bytes of text, 2 left");
  expect_protocol_error(r, bytes_of({0x83, 0x44, 0x01, 0x08, 0x01, 0x02, 0xC3, 0x28}), "atom is not valid UTF-8");
  // A reference past the header's atoms, and in a fun.
  expect_protocol_error(r, bytes_of({0x83, 0x44, 0x01, 0x08, 0x01, 0x01, 'a', 0x68, 0x02, 0x61, 0x05, 0x52, 0x01}),
                        "ATOM_CACHE_REF 1 in a header of 1 atom cache refs");
  expect_protocol_error(r, bytes_of({0x83, 0x47, 0x00}), "unknown distribution header 131 71");
  expect_protocol_error(r, bytes_of({0x83}), "of 1 byte");
  expect_protocol_error(r, {}, "empty packet");
  // Atom-cache references need DIST_HDR_ATOM_CACHE; read_packet, stateless, never reads them.
  packet_reader fragments_only(dflag::recommended_hidden | dflag::fragments);
  const auto uses_cache = bytes_of({0x83, 0x44, 0x01, 0x08, 0x01, 0x01, 'a', 0x68, 0x01, 0x61, 0x05});
  expect_protocol_error(fragments_only, uses_cache, "DIST_HDR_ATOM_CACHE was not negotiated");
  EXPECT_THROW(read_packet(uses_cache, peer_decode()), protocol_error);
  EXPECT_TRUE(r.feed(uses_cache, peer_decode()));
}

TEST(DistHeaderMode, SafeModeCacheEntriesCreateNoAtoms) {
  packet_reader r(kCacheAndFragments);
  etf::decode_options safe = peer_decode();
  safe.safe = true;
  // The atoms the packets below may use in safe mode exist, whichever tests ran before (ctest
  // runs each test in a process of its own).
  for (const char* known : {"echo", "a@vm", ""}) (void)atom(known);
  const std::string name = "dist_cache_atom_that_must_not_exist_91c2";
  std::vector<std::byte> p = bytes_of({0x83, 0x44, 0x01, 0x08, 0x07, std::uint8_t(name.size())});
  append_text(p, name);
  p = cat(p, bytes_of({0x68, 0x01, 0x61, 0x05}));
  const std::size_t before = atom::count();
  expect_protocol_error(r, p, "unknown atom 'dist_cache_atom_that_must_not_exist_91c2' (safe mode", safe);
  EXPECT_EQ(atom::count(), before);
  EXPECT_FALSE(atom::existing(name));
  // An existing atom is fine in safe mode, as a new entry and then as a cached one:
  // REG_SEND {6, <a@vm.3.0>, '', echo} + echo, the atom by reference.
  std::vector<std::byte> send_echo = bytes_of({0x68, 0x04, 0x61, 0x06, 0x58, 0x77, 0x04});
  append_text(send_echo, "a@vm");
  append_u32(send_echo, 3);
  append_u32(send_echo, 0);
  append_u32(send_echo, 0x6b070ce4);
  send_echo = cat(send_echo, bytes_of({0x77, 0x00, 0x52, 0x00, 0x52, 0x00}));
  std::vector<std::byte> known = bytes_of({0x83, 0x44, 0x01, 0x08, 0x07, 0x04});
  append_text(known, "echo");
  std::optional<message> m = r.feed(cat(known, send_echo), safe);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control.element(3), term(atom("echo")));
  m = r.feed(cat(bytes_of({0x83, 0x44, 0x01, 0x00, 0x07}), send_echo), safe);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m->payload, term(atom("echo")));
  // Without safe the atom is made.
  EXPECT_TRUE(r.feed(p, peer_decode()));
  EXPECT_TRUE(atom::existing(name));
}

// The whole stream a fragment_writer produces for `packet`, as the connection would write it.
std::vector<std::byte> stream_of(fragment_writer& w) {
  std::vector<std::byte> out;
  while (!w.done()) w.write_next(out);
  return out;
}

TEST(DistFragments, ALargeMessageGoesOutInFragmentsAndComesBackWhole) {
  std::vector<std::byte> big(1'000'000);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i * 7);
  const term payload = tuple(atom("data"), term::binary(big));
  const term control = tuple(term(2), term(atom("")), term(pid(1, 9, 0)));
  std::vector<std::byte> packet;
  write_packet(packet, packet_mode::header, control, &payload, peer_encode());
  EXPECT_FALSE(fits_one_packet(packet));
  const std::size_t body = packet.size() - 7;
  const std::byte* const first_byte = packet.data() + 7;
  fragment_writer w(std::move(packet), 0x4800000093, 65536);
  const std::uint64_t count = (body + 65535) / 65536;
  EXPECT_EQ(w.fragments(), count);
  // Fragments: headers as the protocol says, bodies views of the one encoded buffer in order.
  std::vector<std::byte> stream;
  std::size_t offset = 0;
  for (std::uint64_t k = count; k >= 1; --k) {
    ASSERT_EQ(w.remaining(), k);
    const fragment_writer::fragment f = w.next();
    const auto h = f.header();
    std::vector<std::byte> expected_header;
    append_u32(expected_header, std::uint32_t(f.size() - 4));
    expected_header.push_back(std::byte{131});
    expected_header.push_back(std::byte(k == count ? 69 : 70));
    append_u64(expected_header, 0x4800000093);
    append_u64(expected_header, k);
    if (k == count) expected_header.push_back(std::byte{0});
    EXPECT_EQ(std::vector<std::byte>(h.begin(), h.end()), expected_header) << k;
    EXPECT_EQ(f.body.data(), first_byte + offset) << "a view, not a copy";
    EXPECT_EQ(f.body.size(), k == 1 ? body - offset : 65536u);
    offset += f.body.size();
    stream.insert(stream.end(), h.begin(), h.end());
    stream.insert(stream.end(), f.body.begin(), f.body.end());
  }
  EXPECT_TRUE(w.done());
  EXPECT_THROW(w.next(), std::logic_error);
  packet_reader r(kCacheAndFragments);
  const auto packets = packets_of(stream);
  ASSERT_EQ(packets.size(), count);
  for (std::size_t i = 0; i + 1 < packets.size(); ++i) {
    EXPECT_FALSE(r.feed(packets[i], peer_decode()));
    EXPECT_EQ(r.pending_sequences(), 1u);
  }
  EXPECT_LE(r.buffered_bytes(), 2 * body);
  std::optional<message> m = r.feed(packets.back(), peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control, control);
  EXPECT_EQ(*m->payload, payload);
  EXPECT_EQ(r.pending_sequences(), 0u);
  EXPECT_EQ(r.buffered_bytes(), 0u);
}

TEST(DistFragments, ASmallMessageIsOnePacketUnchanged) {
  std::vector<std::byte> packet;
  const term control = tuple(term(1), term(pid(0, 5, 2)), term(pid(1, 9, 0)));
  write_packet(packet, packet_mode::header, control, nullptr, peer_encode());
  EXPECT_TRUE(fits_one_packet(packet));
  const std::vector<std::byte> copy = packet;
  fragment_writer w(std::move(packet), 1);
  EXPECT_EQ(w.fragments(), 1u);
  EXPECT_EQ(stream_of(w), copy);
  // Exactly one fragment's worth still fits; one byte more takes two fragments.
  const std::size_t body = copy.size() - 7;
  EXPECT_TRUE(fits_one_packet(copy, body));
  EXPECT_FALSE(fits_one_packet(copy, body - 1));
  EXPECT_EQ(fragment_writer(copy, 1, body).fragments(), 1u);
  EXPECT_EQ(fragment_writer(copy, 1, body - 1).fragments(), 2u);
  EXPECT_EQ(fragment_writer(copy, 1, 1).fragments(), body);  // a byte per fragment also reads back
  fragment_writer bytewise(copy, 1, 1);
  packet_reader r(kCacheAndFragments);
  std::optional<message> m;
  for (const auto& p : packets_of(stream_of(bytewise))) {
    ASSERT_FALSE(m);
    m = r.feed(p, peer_decode());
  }
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control, control);
  // Not a header-mode packet, or a fragment size that cannot be: invalid_argument.
  std::vector<std::byte> pass;
  write_packet(pass, control, nullptr, peer_encode());
  EXPECT_THROW(fragment_writer(pass, 1), std::invalid_argument);
  EXPECT_THROW(fragment_writer(copy, 1, 0), std::invalid_argument);
  EXPECT_THROW(fragment_writer(bytes_of({0, 0, 0, 3, 131, 68, 0, 0}), 1), std::invalid_argument);
}

TEST(DistFragments, SequencesInterleaveWithEachOtherAndWithWholePackets) {
  std::vector<std::byte> a, b;
  const term ca = tuple(term(2), term(atom("")), term(pid(1, 1, 0))), cb = tuple(term(2), term(atom("")), term(pid(1, 2, 0)));
  const term pa = term::binary(std::vector<std::byte>(5000, std::byte{'a'}));
  const term pb = list({term(std::string(3000, 'b')), term(atom("b"))});
  write_packet(a, packet_mode::header, ca, &pa, peer_encode());
  write_packet(b, packet_mode::header, cb, &pb, peer_encode());
  fragment_writer wa(std::move(a), 7, 1000), wb(std::move(b), 8, 1000);
  packet_reader r(kCacheAndFragments);
  std::vector<term> got;
  auto feed = [&](const std::vector<std::byte>& p) {
    if (std::optional<message> m = r.feed(p, peer_decode())) got.push_back(*m->payload);
  };
  std::vector<std::byte> tick_like;  // a whole message between fragments
  const term small = atom("small");
  write_packet(tick_like, packet_mode::header, ca, &small, peer_encode());
  while (!wa.done() || !wb.done()) {
    std::vector<std::byte> out;
    if (!wb.done()) wb.write_next(out);
    if (!wa.done()) wa.write_next(out);
    out.insert(out.end(), tick_like.begin(), tick_like.end());
    for (const auto& p : packets_of(out)) feed(p);
    EXPECT_LE(r.pending_sequences(), 2u);
  }
  // b's 3 KB message had fewer fragments: it completed first, between the small ones.
  ASSERT_EQ(got.size(), std::size_t(2 + std::max(wa.fragments(), wb.fragments())));
  std::size_t ia = 0, ib = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (got[i] == pa) ia = i;
    if (got[i] == pb) ib = i;
  }
  EXPECT_LT(ib, ia);
  EXPECT_NE(ia, 0u);
  EXPECT_EQ(r.pending_sequences(), 0u);
}

// A first fragment with its own atom-cache header: the cache is updated when it arrives (later
// packets may use the slots before the last fragment), and its atoms are kept for the sequence.
TEST(DistFragments, AFirstFragmentCarriesItsOwnAtomCacheHeader) {
  // REG_SEND {6, <a@vm.4.0>, '', echo} + {echo, a@vm}, with ref 0 = echo and ref 1 = a@vm.
  const std::vector<std::byte> message_bytes = cat(cat(bytes_of({0x68, 0x04, 0x61, 0x06}), cached_pid(1, 4)),
                                                   bytes_of({0x77, 0x00, 0x52, 0x00, 0x68, 0x02, 0x52, 0x00, 0x52, 0x01}));
  auto first_fragment = [&](std::vector<std::byte> header) {
    std::vector<std::byte> p = bytes_of({0x83, 0x45});
    append_u64(p, 99);
    append_u64(p, 2);
    p = cat(p, header);
    p.insert(p.end(), message_bytes.begin(), message_bytes.begin() + 10);  // cut inside the pid: any cut will do
    return p;
  };
  std::vector<std::byte> last = bytes_of({0x83, 0x46});
  append_u64(last, 99);
  append_u64(last, 1);
  last.insert(last.end(), message_bytes.begin() + 10, message_bytes.end());

  packet_reader r(kCacheAndFragments);
  std::vector<std::byte> header = bytes_of({0x02, 0xfb, 0x00, 0x42, 0x04});  // new: (3, 0x42) = echo, (7, 0xda) = a@vm
  append_text(header, "echo");
  header = cat(header, bytes_of({0xda, 0x04}));
  append_text(header, "a@vm");
  EXPECT_FALSE(r.feed(first_fragment(header), peer_decode()));
  // A whole packet between the fragments uses the slots the first fragment filled.
  std::vector<std::byte> between = bytes_of({0x83, 0x44, 0x02, 0x73, 0x00, 0x42, 0xda, 0x68, 0x04, 0x61, 0x06});
  between = cat(between, cached_pid(1, 5));
  between = cat(between, bytes_of({0x77, 0x00, 0x52, 0x00, 0x61, 0x01}));
  std::optional<message> m = r.feed(between, peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control, tuple(term(6), term(pid(1, 5, 0)), term(atom("")), term(atom("echo"))));
  m = r.feed(last, peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->control, tuple(term(6), term(pid(1, 4, 0)), term(atom("")), term(atom("echo"))));
  EXPECT_EQ(*m->payload, tuple(atom("echo"), atom("a@vm")));

  // With a first fragment naming one atom, the same message's ref 1 is an error, found when
  // the last fragment completes it; the sequence is gone after it.
  packet_reader one(kCacheAndFragments);
  std::vector<std::byte> one_atom = bytes_of({0x01, 0x0b, 0x42, 0x04});  // new: (3, 0x42) = echo
  append_text(one_atom, "echo");
  EXPECT_FALSE(one.feed(first_fragment(one_atom), peer_decode()));
  expect_protocol_error(one, last, "ATOM_CACHE_REF 1 in a header of 1 atom cache refs");
  EXPECT_EQ(one.pending_sequences(), 0u);
}

TEST(DistFragments, BrokenSequencesAreProtocolErrors) {
  auto fragment = [](int kind, std::uint64_t seq, std::uint64_t id, std::vector<std::byte> rest) {
    std::vector<std::byte> p = bytes_of({0x83, kind});
    append_u64(p, seq);
    append_u64(p, id);
    if (kind == 0x45) p.push_back(std::byte{0});  // no cache refs
    return cat(p, rest);
  };
  const auto some = bytes_of({0x68, 0x01});
  packet_reader r(kCacheAndFragments);
  expect_protocol_error(r, fragment(0x46, 5, 1, some), "fragment 1 of sequence 0x5, which was never started");
  EXPECT_FALSE(r.feed(fragment(0x45, 5, 3, some), peer_decode()));
  expect_protocol_error(r, fragment(0x45, 5, 3, some), "sequence 0x5 started twice");
  expect_protocol_error(r, fragment(0x46, 5, 1, some), "fragment 1 of sequence 0x5 where fragment 2 was due");
  expect_protocol_error(r, fragment(0x46, 5, 3, some), "where fragment 2 was due");
  expect_protocol_error(r, fragment(0x45, 6, 0, some), "fragment id 0");
  expect_protocol_error(r, bytes_of({0x83, 0x46, 0, 0, 0}), "cut short of its sequence and fragment ids");
  // A start holding the whole message (fragment id 1) is read at once.
  std::optional<message> m = r.feed(fragment(0x45, 6, 1, bytes_of({0x68, 0x01, 0x61, 0x05})), peer_decode());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->op, op::node_link);
  // A sequence whose bytes do not make a message: the error comes with the last fragment, and
  // the sequence is gone.
  EXPECT_FALSE(r.feed(fragment(0x46, 5, 2, bytes_of({0x61})), peer_decode()));
  expect_protocol_error(r, fragment(0x46, 5, 1, bytes_of({0xff})), "unknown control opcode");  // {255}
  EXPECT_EQ(r.pending_sequences(), 0u);
  EXPECT_EQ(r.buffered_bytes(), 0u);
  // Fragments need FRAGMENTS.
  packet_reader cache_only(dflag::recommended_hidden | dflag::dist_hdr_atom_cache);
  expect_protocol_error(cache_only, fragment(0x45, 5, 2, some), "FRAGMENTS was not negotiated");
}

TEST(DistFragments, LimitsBoundWhatAPeerCanMakeTheReaderHold) {
  auto fragment = [](int kind, std::uint64_t seq, std::uint64_t id, std::size_t bytes) {
    std::vector<std::byte> p = bytes_of({0x83, kind});
    append_u64(p, seq);
    append_u64(p, id);
    if (kind == 0x45) p.push_back(std::byte{0});
    p.resize(p.size() + bytes, std::byte{0x61});
    return p;
  };
  reader_limits limits;
  limits.max_message_bytes = 10'000;
  limits.max_sequences = 3;
  limits.max_buffered_bytes = 25'000;
  {  // One message over max_message_bytes, however it claims to end.
    packet_reader r(kCacheAndFragments, limits);
    EXPECT_FALSE(r.feed(fragment(0x45, 1, 4, 4000), peer_decode()));
    EXPECT_FALSE(r.feed(fragment(0x46, 1, 3, 4000), peer_decode()));
    expect_protocol_error(r, fragment(0x46, 1, 2, 4000), "fragmented message 0x1 longer than the 10000-byte limit");
    packet_reader at_once(kCacheAndFragments, limits);
    expect_protocol_error(at_once, fragment(0x45, 1, 2, 10'001), "10000-byte limit");
  }
  {  // A lying fragment count reserves no more than the limits allow.
    packet_reader r(kCacheAndFragments, limits);
    EXPECT_FALSE(r.feed(fragment(0x45, 1, ~std::uint64_t(0), 100), peer_decode()));
    EXPECT_LE(r.buffered_bytes(), limits.max_message_bytes);
    EXPECT_GE(r.buffered_bytes(), 100u);
  }
  {  // Too many sequences at once.
    packet_reader r(kCacheAndFragments, limits);
    for (std::uint64_t s = 1; s <= 3; ++s) EXPECT_FALSE(r.feed(fragment(0x45, s, 2, 10), peer_decode()));
    expect_protocol_error(r, fragment(0x45, 4, 2, 10), "more than 3 fragmented messages in progress");
    EXPECT_EQ(r.pending_sequences(), 3u);
  }
  {  // Many half-sent sequences together over max_buffered_bytes.
    packet_reader r(kCacheAndFragments, limits);
    EXPECT_FALSE(r.feed(fragment(0x45, 1, 2, 9000), peer_decode()));
    EXPECT_FALSE(r.feed(fragment(0x45, 2, 2, 9000), peer_decode()));
    expect_protocol_error(r, fragment(0x45, 3, 2, 9000), "would hold more than 25000 bytes");
    EXPECT_LE(r.buffered_bytes(), limits.max_buffered_bytes);
    EXPECT_EQ(r.pending_sequences(), 2u);
  }
}

}  // namespace
}  // namespace athanor::dist
