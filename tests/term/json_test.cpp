// athanor::json: Jason/Phoenix conventions both ways, errors for terms JSON cannot carry.
#include "athanor/term/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "athanor/term/integer.h"
#include "athanor/term/parse.h"

namespace athanor {
namespace {

using namespace athanor::literals;

void expect_encode_error(const term& t, const std::string& needle) {
  try {
    const std::string text = json::encode(t);
    ADD_FAILURE() << "encoded " << t << " as " << text << ", expected an error containing \"" << needle << "\"";
  } catch (const json::json_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void expect_decode_error(std::string_view text, const std::string& needle, std::size_t offset) {
  try {
    const term t = json::decode(text);
    ADD_FAILURE() << "decoded " << t << " from " << text << ", expected an error containing \"" << needle << "\"";
  } catch (const json::json_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(e.offset(), offset) << e.what();
  }
}

TEST(Json, EncodesAsJason) {
  EXPECT_EQ(json::encode(map({{"name"_a, "Alice"}, {"tags"_a, list({"a", "b"})}})),
            R"({"name":"Alice","tags":["a","b"]})");
  EXPECT_EQ(json::encode(map({{"b", 1}, {"a"_a, 2}, {3, 4}})), R"({"3":4,"a":2,"b":1})");  // map key order
  EXPECT_EQ(json::encode(list({true, false, term(atoms::nil), "ok"_a})), R"([true,false,null,"ok"])");
  EXPECT_EQ(json::encode(term::nil()), "[]");
  EXPECT_EQ(json::encode(map({})), "{}");
  EXPECT_EQ(json::encode(list({'h', 'i'})), "[104,105]");  // an Erlang string is a list of integers
  EXPECT_EQ(json::encode(integer_from_string("-123456789012345678901234567890")), "-123456789012345678901234567890");
  EXPECT_EQ(json::encode(list({1.5, 1.0e10, -0.0, 0.1})), "[1.5,1.0e10,-0.0,0.1]");
  EXPECT_EQ(json::encode(term("quote\" back\\ nl\n tab\t ctl\x01 caf\xC3\xA9")),
            R"("quote\" back\\ nl\n tab\t ctl\u0001 café")");
  EXPECT_EQ(json::encode(term(atom("it's"))), R"("it's")");
}

TEST(Json, RefusesTermsWithoutAJsonForm) {
  expect_encode_error(tuple(1, 2), "JSON has no tuples");
  expect_encode_error(list({tuple()}), "JSON has no tuples");
  expect_encode_error(pid(0, 1, 0), "JSON has no pids");
  expect_encode_error(ref(0, 1), "JSON has no references");
  expect_encode_error(port_id(0, 1), "JSON has no ports");
  expect_encode_error(term::export_fun("m"_a, "f"_a, 0), "JSON has no funs");
  expect_encode_error(term::bitstring(std::vector<std::byte>{std::byte(0)}, 3), "bitstring");
  expect_encode_error(list({1}, 2), "improper list");
  expect_encode_error(map({{tuple(), 1}}), "key must be an atom, a binary or an integer, not a tuple");
  expect_encode_error(term::binary({0xFF}), "not UTF-8");
  term deep = 1;
  for (std::size_t i = 0; i <= json::kMaxDepth + 1; ++i) deep = list({deep});
  expect_encode_error(deep, "nested deeper than");
}

TEST(Json, DecodesAsJason) {
  EXPECT_EQ(json::decode(R"({"ok": true, "n": [1, 2.5, null], "s": "caf\u00e9"})"),
            map({{"ok", true}, {"n", list({1, 2.5, term(atoms::nil)})}, {"s", "caf\xC3\xA9"}}));
  EXPECT_EQ(json::decode("[]"), term::nil());
  EXPECT_EQ(json::decode("{}"), map({}));
  EXPECT_EQ(json::decode(" false "), term(false));
  EXPECT_EQ(json::decode("-9223372036854775808"), term(std::numeric_limits<std::int64_t>::min()));
  EXPECT_EQ(json::decode("18446744073709551615"), term(std::numeric_limits<std::uint64_t>::max()));
  EXPECT_EQ(json::decode("123456789012345678901234567890"), integer_from_string("123456789012345678901234567890"));
  EXPECT_EQ(json::decode("-123456789012345678901234567890"), integer_from_string("-123456789012345678901234567890"));
  EXPECT_EQ(json::decode("1e2"), term(100.0));
  EXPECT_EQ(json::decode(R"({"a": 1, "a": 2})"), map({{"a", 2}}));  // the last one wins
  EXPECT_EQ(json::decode(R"("\ud83d\ude00")"), term("\xF0\x9F\x98\x80"));
}

TEST(Json, DecodeErrorsSayWhere) {
  expect_decode_error("", "syntax error", 0);
  expect_decode_error("[1, 2", "syntax error", 5);
  expect_decode_error("[1] x", "syntax error", 4);
  expect_decode_error("{\"a\" 1}", "syntax error", 5);
  expect_decode_error("\"\xFF\"", "syntax error", 1);
  expect_decode_error("1e400", "number overflow parsing '1e400'", 4);
  expect_decode_error(std::string(json::kMaxDepth + 1, '['), "nested deeper than", 0);
}

TEST(Json, RoundTripsWhatItEncodes) {
  const term t = parse_term(R"(#{<<"id">> => 42, <<"topic">> => <<"room:lobby">>, <<"payload">> =>
                               #{<<"body">> => <<"hi">>, <<"at">> => 1.5, <<"tags">> => [<<"a">>, true, nil]}})");
  EXPECT_EQ(json::decode(json::encode(t)), t);
}

}  // namespace
}  // namespace athanor
