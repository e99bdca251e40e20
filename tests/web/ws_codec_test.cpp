// The WebSocket codec without sockets: frames, limits, UTF-8, permessage-deflate, the accept key.
#include <gtest/gtest.h>

#include "athanor/web/websocket.h"

namespace athanor::web {
namespace {

using kind = ws_decoder::event::kind;

std::string client_frame(ws_opcode op, std::string_view p, bool fin = true, bool rsv1 = false) {
  std::string f;
  ws_encode_frame(f, op, p, fin, rsv1, 0xA1B2C3D4u);
  return f;
}

TEST(WsCodec, AcceptKeyMatchesRfc6455Example) {
  EXPECT_EQ(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsCodec, EncodesLengthsMinimally) {
  std::string a, b, c;
  ws_encode_frame(a, ws_opcode::text, std::string(125, 'x'));
  ws_encode_frame(b, ws_opcode::binary, std::string(126, 'x'));
  ws_encode_frame(c, ws_opcode::binary, std::string(70000, 'x'));
  EXPECT_EQ(a.size(), 127u);
  EXPECT_EQ(std::uint8_t(a[0]), 0x81);
  EXPECT_EQ(b.size(), 130u);
  EXPECT_EQ(std::uint8_t(b[1]), 126);
  EXPECT_EQ(c.size(), 70010u);
  EXPECT_EQ(std::uint8_t(c[1]), 127);
}

TEST(WsCodec, DecodesFragmentsAndInterleavedControlFramesByteByByte) {
  std::string wire = client_frame(ws_opcode::text, "héllo ", false) + client_frame(ws_opcode::ping, "p") +
                     client_frame(ws_opcode::continuation, "wörld") + client_frame(ws_opcode::binary, std::string("\0\1", 2)) +
                     client_frame(ws_opcode::close, std::string("\x0f\xa0" "bye", 5));
  ws_decoder d(ws_limits{}, true, nullptr);
  std::vector<ws_decoder::event> ev;
  std::string buf;
  for (char ch : wire) {
    buf.push_back(ch);
    buf.erase(0, d.feed(buf, ev));
  }
  EXPECT_TRUE(buf.empty());
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].k, kind::ping);
  EXPECT_EQ(ev[1].k, kind::message);
  EXPECT_EQ(ev[1].data, "héllo wörld");
  EXPECT_EQ(ev[2].op, ws_opcode::binary);
  EXPECT_EQ(ev[2].data, std::string("\0\1", 2));
  EXPECT_EQ(ev[3].k, kind::close);
  EXPECT_EQ(ev[3].code, 4000);
  EXPECT_EQ(ev[3].data, "bye");
  EXPECT_TRUE(d.finished());
}

std::uint16_t fail_code(const std::string& wire, ws_limits l = {}, bool mask = true) {
  ws_decoder d(l, mask, nullptr);
  std::vector<ws_decoder::event> ev;
  d.feed(wire, ev);
  if (ev.empty() || ev.back().k != kind::fail) return 0;
  return ev.back().code;
}

TEST(WsCodec, ProtocolErrorsGiveTheirCloseCodes) {
  std::string unmasked;
  ws_encode_frame(unmasked, ws_opcode::text, "x");
  EXPECT_EQ(fail_code(unmasked), 1002);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::continuation, "x")), 1002);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::text, "a", false) + client_frame(ws_opcode::text, "b")), 1002);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::ping, "p", false)), 1002);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::ping, std::string(126, 'p'))), 1002);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::text, "x", true, true)), 1002);  // RSV1 without deflate
  EXPECT_EQ(fail_code(client_frame(static_cast<ws_opcode>(3), "x")), 1002);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::close, "x")), 1002);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::close, std::string("\x03\xed", 2))), 1002);  // 1005 may not be sent
  EXPECT_EQ(fail_code(client_frame(ws_opcode::text, "\xc3\x28")), 1007);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::text, "\xed\xa0\x80")), 1007);  // a surrogate
  EXPECT_EQ(fail_code(client_frame(ws_opcode::text, "\xe2\x82", false) + client_frame(ws_opcode::continuation, "")), 1007);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::text, std::string(100, 'x')), ws_limits{.max_frame = 50, .max_message = 1000}), 1009);
  EXPECT_EQ(fail_code(client_frame(ws_opcode::text, std::string(40, 'x'), false) + client_frame(ws_opcode::continuation, std::string(40, 'x')),
                      ws_limits{.max_frame = 50, .max_message = 60}),
            1009);
}

TEST(WsCodec, Utf8Validator) {
  utf8_validator v;
  EXPECT_TRUE(v.feed("\xf0\x9f"));
  EXPECT_FALSE(v.complete());
  EXPECT_TRUE(v.feed("\x98\x80"));
  EXPECT_TRUE(v.complete());
  v.reset();
  EXPECT_FALSE(v.feed("\xc0\xaf"));  // overlong
  v.reset();
  EXPECT_FALSE(v.feed("\xf4\x90\x80\x80"));  // > U+10FFFF
  v.reset();
  EXPECT_TRUE(v.feed("plain ascii"));
}

TEST(WsCodec, PermessageDeflateNegotiation) {
  std::string resp;
  auto p = negotiate_permessage_deflate("permessage-deflate; client_max_window_bits", resp);
  ASSERT_TRUE(p);
  EXPECT_EQ(resp, "permessage-deflate");
  p = negotiate_permessage_deflate("permessage-deflate; server_no_context_takeover; server_max_window_bits=10", resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->server_no_context_takeover);
  EXPECT_EQ(p->server_max_window_bits, 10);
  EXPECT_EQ(resp, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");
  // The first offer is malformed (unknown parameter): the second is taken.
  p = negotiate_permessage_deflate("permessage-deflate; bogus, permessage-deflate; client_no_context_takeover", resp);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->client_no_context_takeover);
  EXPECT_FALSE(negotiate_permessage_deflate("x-webkit-deflate-frame", resp));
  EXPECT_FALSE(negotiate_permessage_deflate("permessage-deflate; server_max_window_bits=8", resp));
}

TEST(WsCodec, DeflateRoundTripThroughTheDecoder) {
  for (bool no_takeover : {false, true}) {
    ws_deflate_params params;
    params.server_no_context_takeover = no_takeover;
    params.client_no_context_takeover = no_takeover;
    ws_deflate server_side(params), client_side(params);
    ws_decoder d(ws_limits{}, true, &server_side);
    std::vector<ws_decoder::event> ev;
    std::string text(5000, 'z');
    for (int i = 0; i < 3; ++i) {
      std::string z;
      ASSERT_TRUE(client_side.compress(text + std::to_string(i), z));
      EXPECT_LT(z.size(), 200u);
      std::string wire = client_frame(ws_opcode::text, z.substr(0, z.size() / 2), false, true) +
                         client_frame(ws_opcode::continuation, z.substr(z.size() / 2));
      EXPECT_EQ(d.feed(wire, ev), wire.size());
    }
    ASSERT_EQ(ev.size(), 3u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ev[i].data, text + std::to_string(i));
  }
}

TEST(WsCodec, DeflateBombIsTooBig) {
  ws_deflate a(ws_deflate_params{}), b(ws_deflate_params{});
  std::string z;
  ASSERT_TRUE(a.compress(std::string(1 << 20, 'a'), z));
  std::string out;
  bool too_big = false;
  EXPECT_FALSE(b.decompress(z, out, 1000, too_big));
  EXPECT_TRUE(too_big);
  EXPECT_FALSE(b.decompress("\xff\xff\xff garbage", out, 1000, too_big));
  EXPECT_FALSE(too_big);
}

}  // namespace
}  // namespace athanor::web
