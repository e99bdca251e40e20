// The EPMD wire format: byte-exact layouts (the bytes real epmd and erl exchange, recorded against
// OTP 25), round trips, and rejection of malformed input.
#include "athanor/dist/epmd_wire.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>
#include <string_view>

namespace athanor::dist {
namespace {

using namespace std::string_literals;

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += digits[std::uint8_t(c) >> 4];
    out += digits[std::uint8_t(c) & 15];
  }
  return out;
}

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += char(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

epmd_node erl_node_a() {
  // What `erl -sname a` registers on OTP 25: a normal node, versions 6 and 5, no Extra.
  return epmd_node{.name = "a", .port = 5555, .node_type = epmd_normal_node, .protocol = 0, .highest_version = 6,
                   .lowest_version = 5, .extra = ""};
}

// ---- byte-exact layouts ----

TEST(EpmdWire, PortPlease2RequestMatchesTheSpecBytes) {
  // §2.2: 00 0c 7a "Nonexistent".
  EXPECT_EQ(encode_epmd_request(port_please2_request{"Nonexistent"}), "\x00\x0c\x7a"s + "Nonexistent");
  EXPECT_EQ(parse_epmd_request("\x00\x0c\x7a"s + "Nonexistent"), epmd_request(port_please2_request{"Nonexistent"}));
}

TEST(EpmdWire, NamesRequestIsLengthOneAndTagN) {
  EXPECT_EQ(hex(encode_epmd_request(names_request{})), "00016e");
  EXPECT_EQ(parse_epmd_request(unhex("00016e")), epmd_request(names_request{}));
}

TEST(EpmdWire, Alive2RequestLayout) {
  // Len 14, 'x', PortNo 5555, 'M', TCP, 6, 5, Nlen 1, "a", Elen 0.
  const std::string bytes = unhex("000e7815b34d000006000500016100" "00");
  EXPECT_EQ(hex(encode_epmd_request(alive2_request{erl_node_a()})), hex(bytes));
  EXPECT_EQ(parse_epmd_request(bytes), epmd_request(alive2_request{erl_node_a()}));
}

TEST(EpmdWire, Alive2RequestWithExtraRoundTrips) {
  epmd_node n{.name = "cpp_node-1", .port = 65535, .node_type = epmd_hidden_node, .protocol = 0,
              .highest_version = 6, .lowest_version = 6, .extra = "\x00\x01\xff"s};
  std::string bytes = encode_epmd_request(alive2_request{n});
  EXPECT_EQ(bytes.size(), 2 + 13 + n.name.size() + n.extra.size());
  EXPECT_EQ(std::get<alive2_request>(parse_epmd_request(bytes)).node, n);
}

TEST(EpmdWire, Alive2RepliesMatchRealEpmdBytes) {
  // Recorded from epmd (OTP 25): a 6/5 registration, a 5/5 one, and a taken name.
  EXPECT_EQ(hex(encode_epmd_response(alive2_response{.extended = true, .result = 0, .creation = 0x6b1641fd})), "76006b1641fd");
  EXPECT_EQ(hex(encode_epmd_response(alive2_response{.extended = false, .result = 0, .creation = 1})), "79000001");
  EXPECT_EQ(hex(encode_epmd_response(alive2_response{.extended = true, .result = 1, .creation = 99})), "760100000063");
  EXPECT_EQ(parse_alive2_response(unhex("76006b1641fd")), (alive2_response{.extended = true, .result = 0, .creation = 0x6b1641fd}));
  EXPECT_EQ(parse_alive2_response(unhex("79000003")), (alive2_response{.extended = false, .result = 0, .creation = 3}));
  EXPECT_EQ(parse_alive2_response(unhex("760100000063")).result, 1);
  EXPECT_EQ(alive2_response_size(118), 6u);
  EXPECT_EQ(alive2_response_size(121), 4u);
}

TEST(EpmdWire, Port2RepliesMatchRealEpmdBytes) {
  // §2.2: not found is 77 01; found, as epmd answered for erl_node_a().
  EXPECT_EQ(hex(encode_epmd_response(port2_response{})), "7701");
  EXPECT_EQ(parse_port2_response(unhex("7701")), port2_response{});
  const std::string found = unhex("770015b34d00000600050001610000");
  EXPECT_EQ(hex(encode_epmd_response(port2_response{erl_node_a()})), hex(found));
  EXPECT_EQ(parse_port2_response(found), port2_response{erl_node_a()});
}

TEST(EpmdWire, NamesReplyMatchesTheSpecBytes) {
  // §2.3: 00 00 11 11 + "name a at port 44781\nname py at port 33915\n".
  const std::string bytes = "\x00\x00\x11\x11"s + "name a at port 44781\nname py at port 33915\n";
  names_response expected{.epmd_port = 4369, .nodes = {{"a", 44781}, {"py", 33915}}};
  EXPECT_EQ(parse_names_response(bytes), expected);
  EXPECT_EQ(encode_epmd_response(expected), bytes);
  EXPECT_EQ(parse_names_response(unhex("00001111")), (names_response{.epmd_port = 4369, .nodes = {}}));
}

TEST(EpmdWire, NamesReplyNameMayHoldSpacesAndUtf8) {
  const std::string bytes = "\x00\x00\x11\x11"s + "name a b at port 1 at port 7\nname \xc3\xa9t\xc3\xa9 at port 0\n";
  names_response r = parse_names_response(bytes);
  ASSERT_EQ(r.nodes.size(), 2u);
  EXPECT_EQ(r.nodes[0], (epmd_name_entry{"a b at port 1", 7}));
  EXPECT_EQ(r.nodes[1], (epmd_name_entry{"\xc3\xa9t\xc3\xa9", 0}));
}

TEST(EpmdWire, PortPleaseNameEndingInNulIsAcceptedAsEpmdDoes) {
  EXPECT_EQ(parse_epmd_request_body("za\0"s), epmd_request(port_please2_request{"a"}));
  EXPECT_THROW(parse_epmd_request_body("za\0\0"s), epmd_error);
  EXPECT_THROW(parse_epmd_request_body("z\0"s), epmd_error);
}

// ---- names ----

TEST(EpmdWire, NameRules) {
  EXPECT_TRUE(is_valid_epmd_name("a"));
  EXPECT_TRUE(is_valid_epmd_name("cpp_node-1.x"));
  EXPECT_TRUE(is_valid_epmd_name("\xc3\xa9"));                 // é
  EXPECT_TRUE(is_valid_epmd_name(std::string(255, 'x')));
  EXPECT_FALSE(is_valid_epmd_name(std::string(256, 'x')));
  std::string e255;
  for (int i = 0; i < 255; ++i) e255 += "\xc3\xa9";
  EXPECT_TRUE(is_valid_epmd_name(e255));                        // 255 characters, 510 bytes
  EXPECT_FALSE(is_valid_epmd_name(e255 + "x"));
  EXPECT_FALSE(is_valid_epmd_name(""));
  EXPECT_FALSE(is_valid_epmd_name("a\0b"s));
  EXPECT_FALSE(is_valid_epmd_name("a\nname evil at port 1"));  // would forge a NAMES line
  EXPECT_FALSE(is_valid_epmd_name("tab\there"));
  EXPECT_FALSE(is_valid_epmd_name("\x7f"));
  EXPECT_FALSE(is_valid_epmd_name("\xc3"));                     // truncated sequence
  EXPECT_FALSE(is_valid_epmd_name("\xc0\xaf"));                 // overlong '/'
  EXPECT_FALSE(is_valid_epmd_name("\xed\xa0\x80"));             // a surrogate
  EXPECT_FALSE(is_valid_epmd_name("\xf4\x90\x80\x80"));         // above U+10FFFF
  EXPECT_FALSE(is_valid_epmd_name("\xff"));
}

TEST(EpmdWire, EncodersRefuseWhatCannotBeSent) {
  EXPECT_THROW(encode_epmd_request(port_please2_request{""}), epmd_error);
  EXPECT_THROW(encode_epmd_request(alive2_request{epmd_node{.name = "a\nb"}}), epmd_error);
  EXPECT_THROW(encode_epmd_request(alive2_request{epmd_node{.name = "a", .extra = std::string(1021, 'e')}}), epmd_error);
  EXPECT_NO_THROW(encode_epmd_request(alive2_request{epmd_node{.name = "a", .extra = std::string(1020, 'e')}}));
  EXPECT_THROW(encode_epmd_response(alive2_response{.extended = false, .result = 0, .creation = 70000}), epmd_error);
  EXPECT_THROW(encode_epmd_response(names_response{.epmd_port = 1, .nodes = {{"x\ny", 1}}}), epmd_error);
  EXPECT_THROW(encode_epmd_response(port2_response{epmd_node{.name = ""}}), epmd_error);
}

// ---- malformed input ----

TEST(EpmdWire, MalformedRequestsAreRejectedWithAClearError) {
  auto message = [](std::string_view body) -> std::string {
    try {
      parse_epmd_request_body(body);
    } catch (const epmd_error& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(message(""), "EPMD request: empty body");
  EXPECT_EQ(message("d"), "EPMD request: unknown or unsupported tag 100");  // DUMP_REQ
  EXPECT_EQ(message("k"), "EPMD request: unknown or unsupported tag 107");  // KILL_REQ
  EXPECT_EQ(message("n!"), "NAMES_REQ: 1 unexpected trailing byte(s)");
  EXPECT_EQ(message("z"), "PORT_PLEASE2_REQ: invalid node name (needs 1 to 255 UTF-8 characters, no control characters)");
  // ALIVE2 with a name length beyond the body, an Elen beyond it, and a trailing byte.
  EXPECT_EQ(message(unhex("7815b34d0000060005" "0005" "61" "0000")),
            "ALIVE2_REQ: truncated at NodeName (needs 5 byte(s), 3 left)");
  EXPECT_EQ(message(unhex("7815b34d0000060005" "0001" "61" "0009" "00")),
            "ALIVE2_REQ: truncated at Extra (needs 9 byte(s), 1 left)");
  EXPECT_EQ(message(unhex("7815b34d0000060005" "0001" "61" "0000" "ff")), "ALIVE2_REQ: 1 unexpected trailing byte(s)");
  EXPECT_EQ(message(unhex("7815b34d0000060005" "0000" "0000")),
            "ALIVE2_REQ: invalid node name (needs 1 to 255 UTF-8 characters, no control characters)");
  EXPECT_EQ(message(unhex("7815b34d0000060005" "0001" "00" "0000")),
            "ALIVE2_REQ: invalid node name (needs 1 to 255 UTF-8 characters, no control characters)");
  // The length prefix must match.
  EXPECT_THROW(parse_epmd_request(unhex("00026e")), epmd_error);
  EXPECT_THROW(parse_epmd_request(unhex("0001")), epmd_error);
  EXPECT_THROW(parse_epmd_request(unhex("00")), epmd_error);
  EXPECT_THROW(parse_epmd_request(""), epmd_error);
}

TEST(EpmdWire, EveryTruncationOfAValidMessageIsRejected) {
  const std::string request = encode_epmd_request(alive2_request{erl_node_a()});
  for (std::size_t n = 0; n < request.size(); ++n) EXPECT_THROW(parse_epmd_request(request.substr(0, n)), epmd_error) << n;
  for (std::size_t n = 0; n + 2 < request.size(); ++n)
    EXPECT_THROW(parse_epmd_request_body(request.substr(2, n)), epmd_error) << n;
  const std::string found = encode_epmd_response(port2_response{erl_node_a()});
  for (std::size_t n = 0; n < found.size(); ++n) EXPECT_THROW(parse_port2_response(found.substr(0, n)), epmd_error) << n;
  const std::string x = unhex("76006b1641fd");
  for (std::size_t n = 0; n < x.size(); ++n) EXPECT_THROW(parse_alive2_response(x.substr(0, n)), epmd_error) << n;
  for (std::size_t n = 0; n < 4; ++n) EXPECT_THROW(parse_names_response(std::string(n, '\0')), epmd_error) << n;
}

TEST(EpmdWire, MalformedRepliesAreRejected) {
  EXPECT_THROW(alive2_response_size('w'), epmd_error);
  EXPECT_THROW(parse_alive2_response(unhex("7900000300")), epmd_error);  // 121 with 5 bytes
  EXPECT_THROW(parse_alive2_response(unhex("760000000003ff")), epmd_error);
  EXPECT_THROW(parse_port2_response(unhex("7601")), epmd_error);         // wrong tag
  EXPECT_THROW(parse_port2_response(unhex("770100")), epmd_error);       // not found + trailing
  EXPECT_THROW(parse_port2_response(unhex("770015b34d00000600050001610000ff")), epmd_error);
  EXPECT_THROW(parse_port2_response(unhex("770015b34d00000600050002610000")), epmd_error);  // Nlen too long
  const std::string head = "\x00\x00\x11\x11"s;
  EXPECT_THROW(parse_names_response(head + "name a at port 1"), epmd_error);          // no newline
  EXPECT_THROW(parse_names_response(head + "nom a at port 1\n"), epmd_error);
  EXPECT_THROW(parse_names_response(head + "name a port 1\n"), epmd_error);
  EXPECT_THROW(parse_names_response(head + "name a at port 65536\n"), epmd_error);
  EXPECT_THROW(parse_names_response(head + "name a at port \n"), epmd_error);
  EXPECT_THROW(parse_names_response(head + "name a at port 01\n"), epmd_error);
  EXPECT_THROW(parse_names_response(head + "name a at port -1\n"), epmd_error);
  EXPECT_THROW(parse_names_response(head + "name a at port 1x\n"), epmd_error);
  EXPECT_THROW(parse_names_response(head + "name  at port 1\n"), epmd_error);         // empty name
  EXPECT_THROW(parse_names_response(head + "\n"), epmd_error);
}

// ---- round trips ----

RC_GTEST_PROP(EpmdWireProperty, NodesRoundTripThroughRequestAndReply, ()) {
  epmd_node n;
  const auto len = *rc::gen::inRange<std::size_t>(1, 40);
  n.name = *rc::gen::container<std::string>(len, rc::gen::inRange<char>(0x20, 0x7F));
  n.port = *rc::gen::arbitrary<std::uint16_t>();
  n.node_type = *rc::gen::arbitrary<std::uint8_t>();
  n.protocol = *rc::gen::arbitrary<std::uint8_t>();
  n.highest_version = *rc::gen::arbitrary<std::uint16_t>();
  n.lowest_version = *rc::gen::arbitrary<std::uint16_t>();
  n.extra = *rc::gen::container<std::string>(*rc::gen::inRange<std::size_t>(0, 64), rc::gen::arbitrary<char>());
  RC_ASSERT(std::get<alive2_request>(parse_epmd_request(encode_epmd_request(alive2_request{n}))).node == n);
  RC_ASSERT(parse_port2_response(encode_epmd_response(port2_response{n})) == port2_response{n});
  RC_ASSERT(std::get<port_please2_request>(parse_epmd_request(encode_epmd_request(port_please2_request{n.name}))).name == n.name);
  names_response names{.epmd_port = *rc::gen::arbitrary<std::uint32_t>(), .nodes = {{n.name, n.port}, {"b", 1}}};
  RC_ASSERT(parse_names_response(encode_epmd_response(names)) == names);
  alive2_response x{.extended = true, .result = *rc::gen::arbitrary<std::uint8_t>(), .creation = *rc::gen::arbitrary<std::uint32_t>()};
  RC_ASSERT(parse_alive2_response(encode_epmd_response(x)) == x);
}

}  // namespace
}  // namespace athanor::dist
