// Phoenix's V2 JSON serializer (channel_message.h): the frames the official client sends and
// expects, byte for byte as phoenix-protocol.md §A.2 quotes them.
#include <gtest/gtest.h>

#include "athanor/term/json.h"
#include "athanor/web/channel_message.h"

namespace athanor::web::testing {
namespace {

TEST(ChannelMessage, DecodesTheClientsJoinAndHeartbeat) {
  channel_message join = decode_channel_message(R"(["4","4","room:lobby","phx_join",{"pass":"secret"}])");
  EXPECT_EQ(join.join_ref, "4");
  EXPECT_EQ(join.ref, "4");
  EXPECT_EQ(join.topic, "room:lobby");
  EXPECT_EQ(join.event, "phx_join");
  EXPECT_EQ(join.payload, map({{term("pass"), term("secret")}}));
  channel_message beat = decode_channel_message(R"([null,"9","phoenix","heartbeat",{}])");
  EXPECT_FALSE(beat.join_ref.has_value());
  EXPECT_EQ(beat.ref, "9");
  EXPECT_EQ(beat.payload, map({}));
}

TEST(ChannelMessage, EncodesRepliesAndBroadcastsAsPhoenixDoes) {
  channel_message reply{"4", "4", "room:lobby", "phx_reply",
                        map({{term("status"), term("ok")}, {term("response"), map({{term("welcome"), term(true)}})}})};
  // Keys in map key order (binaries sort by bytes): response before status.
  EXPECT_EQ(encode_channel_message(reply), R"(["4","4","room:lobby","phx_reply",{"response":{"welcome":true},"status":"ok"}])");
  channel_message broadcast{std::nullopt, std::nullopt, "room:lobby", "new_msg", map({{term("body"), term("hi")}})};
  EXPECT_EQ(encode_channel_message(broadcast), R"([null,null,"room:lobby","new_msg",{"body":"hi"}])");
}

TEST(ChannelMessage, RefusesWhatIsNotAFrame) {
  for (const char* bad : {"", "{}", "not json", R"(["1","1","t","e"])", R"(["1","1","t","e",{},5])",
                          R"([1,"1","t","e",{}])", R"(["1",2,"t","e",{}])", R"(["1","1",null,"e",{}])",
                          R"(["1","1","t",7,{}])"}) {
    EXPECT_THROW(decode_channel_message(bad), channel_message_error) << bad;
  }
}

TEST(ChannelMessage, RoundTripsAnyPayload) {
  const channel_message m{"10", std::nullopt, "room:x", "data",
                          list({term(1), term(2.5), term("s"), term(atom("nil")), map({{term("k"), list({})}})})};
  EXPECT_EQ(decode_channel_message(encode_channel_message(m)), m);
  channel_message bad = m;
  bad.payload = tuple(1, 2);  // no JSON form
  EXPECT_THROW(encode_channel_message(bad), json::json_error);
}

// The bytes phoenix-protocol.md §A.3 quotes from the official client's runs.
TEST(ChannelMessage, BinaryFramesAreTheClientsBytes) {
  using namespace std::string_literals;
  const std::string up = "\x00\x02\x02\x0A\x05"s + "10" + "13" + "room:lobby" + "binup" + "\x01\x02\x03"s;
  channel_message m = decode_channel_binary(up);
  EXPECT_EQ(m.join_ref, "10");
  EXPECT_EQ(m.ref, "13");
  EXPECT_EQ(m.topic, "room:lobby");
  EXPECT_EQ(m.event, "binup");
  EXPECT_TRUE(is_binary_payload(m.payload));
  EXPECT_EQ(m.payload, binary_payload("\x01\x02\x03"s));
  EXPECT_EQ(encode_channel_binary(m), up);
  EXPECT_THROW(encode_channel_binary(channel_message{"1", "1", "t", "e", map({})}), channel_message_error);
  EXPECT_EQ(encode_binary_reply("10", "13", "room:lobby", "ok", "\x03\x02\x01"s),
            "\x01\x02\x02\x0A\x02"s + "10" + "13" + "room:lobby" + "ok" + "\x03\x02\x01"s);
  EXPECT_EQ(encode_binary_push("10", "room:lobby", "bin_push", "\x09\x08\x07"s),
            "\x00\x02\x0A\x08"s + "10" + "room:lobby" + "bin_push" + "\x09\x08\x07"s);
  EXPECT_EQ(encode_binary_broadcast("room:lobby", "bin_bcast", "\x01\x02"s),
            "\x02\x0A\x09"s + "room:lobby" + "bin_bcast" + "\x01\x02"s);
}

TEST(ChannelMessage, BinaryFramesCutShortOrOfAnotherKindAreRefused) {
  using namespace std::string_literals;
  for (const std::string& bad : {""s, "\x00\x01"s, "\x01\x00\x00\x00\x00"s, "\x00\x05\x00\x00\x00"s + "abc"}) {
    EXPECT_THROW(decode_channel_binary(bad), channel_message_error);
  }
  EXPECT_THROW(encode_binary_broadcast(std::string(256, 't'), "e", ""), channel_message_error);
  EXPECT_FALSE(is_binary_payload(map({})));
  EXPECT_FALSE(is_binary_payload(tuple(atom("binary"), 1)));
}

// What the official client reads from the server's three binary kinds (spec §A.3's bytes).
TEST(ChannelMessage, ServerBinaryFramesReadAsTheClientReadsThem) {
  using namespace std::string_literals;
  channel_message reply = decode_server_channel_binary(encode_binary_reply("10", "13", "room:lobby", "ok", "\x03\x02\x01"s));
  EXPECT_EQ(reply, (channel_message{"10", "13", "room:lobby", "phx_reply",
                                    map({{term("status"), term("ok")}, {term("response"), binary_payload("\x03\x02\x01"s)}})}));
  channel_message push = decode_server_channel_binary(encode_binary_push("10", "room:lobby", "bin_push", "\x09"s));
  EXPECT_EQ(push, (channel_message{"10", std::nullopt, "room:lobby", "bin_push", binary_payload("\x09"s)}));
  channel_message bcast = decode_server_channel_binary(encode_binary_broadcast("room:lobby", "bin_bcast", ""));
  EXPECT_EQ(bcast, (channel_message{std::nullopt, std::nullopt, "room:lobby", "bin_bcast", binary_payload("")}));
  for (const std::string& bad : {""s, "\x03"s, "\x01\x02\x02"s, "\x00\x05\x00\x00"s + "abc", "\x02\x01\x01"s + "a"}) {
    EXPECT_THROW(decode_server_channel_binary(bad), channel_message_error) << bad.size();
  }
}

}  // namespace
}  // namespace athanor::web::testing
