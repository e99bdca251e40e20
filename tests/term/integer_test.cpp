// Integers beyond 64 bits: representation, order against every other number, hashing,
// printing, arithmetic (athanor/term/integer.h) and their ETF form.
#include "athanor/term/integer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <unordered_set>

#include "athanor/term/etf.h"

namespace athanor {
namespace {

using namespace athanor::literals;

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(std::byte(v));
  return out;
}

const term kTwo64 = integer_from_string("18446744073709551616");  // 1 bsl 64

TEST(Integer, FromStringPicksTheRepresentation) {
  EXPECT_EQ(integer_from_string("42"), term(42));
  EXPECT_EQ(integer_from_string("-9223372036854775808"), term(std::numeric_limits<std::int64_t>::min()));
  EXPECT_TRUE(integer_from_string("9223372036854775807").is_int64());
  EXPECT_TRUE(integer_from_string("9223372036854775808").is_bignum());
  EXPECT_TRUE(integer_from_string("-9223372036854775809").is_bignum());
  EXPECT_EQ(integer_from_string("ff", 16), term(255));
  EXPECT_EQ(integer_from_string("-ZZ", 36), term(-1295));
  EXPECT_EQ(integer_from_string("000000000000000000000000000000001"), term(1));  // leading zeros: still in place
  EXPECT_THROW(integer_from_string(""), std::invalid_argument);
  EXPECT_THROW(integer_from_string("-"), std::invalid_argument);
  EXPECT_THROW(integer_from_string("12a"), std::invalid_argument);
  EXPECT_THROW(integer_from_string("1", 37), std::invalid_argument);
  EXPECT_THROW(integer_from_string("zzzzzzzzzzzzzzzzzzzzzzzzzz!", 36), std::invalid_argument);
}

TEST(Integer, ToStringInAnyBase) {
  EXPECT_EQ(integer_to_string(kTwo64), "18446744073709551616");
  EXPECT_EQ(integer_to_string(kTwo64, 16), "10000000000000000");
  EXPECT_EQ(integer_to_string(term(-255), 16), "-FF");
  EXPECT_EQ(integer_to_string(integer_from_string("-123456789012345678901234567890")), "-123456789012345678901234567890");
  EXPECT_THROW(integer_to_string("a"_a), bad_term_access);
  EXPECT_THROW(integer_to_string(term(1), 1), std::invalid_argument);
}

TEST(Integer, PrintsAsErlang) {
  EXPECT_EQ(kTwo64.to_string(), "18446744073709551616");
  EXPECT_EQ(tuple(integer_from_string("-1180591620717411303424"), 1).to_string(), "{-1180591620717411303424,1}");
}

TEST(Integer, ArithmeticGrowsAndShrinks) {
  const term max = std::numeric_limits<std::int64_t>::max();
  const term min = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(add(max, 1), integer_from_string("9223372036854775808"));
  EXPECT_EQ(subtract(min, 1), integer_from_string("-9223372036854775809"));
  EXPECT_EQ(subtract(add(max, 1), 1), max);
  EXPECT_TRUE(subtract(add(max, 1), 1).is_int64());  // normalised back
  EXPECT_EQ(multiply(kTwo64, kTwo64), integer_from_string("340282366920938463463374607431768211456"));
  EXPECT_EQ(multiply(min, -1), integer_from_string("9223372036854775808"));
  EXPECT_EQ(add(2, 3), term(5));
  EXPECT_EQ(add(1, 0.5), term(1.5));
  EXPECT_EQ(multiply(kTwo64, 0.5), term(9223372036854775808.0));
  EXPECT_THROW(add("a"_a, 1), badarith);
  EXPECT_THROW(multiply(1e300, 1e300), badarith);
}

TEST(Integer, OrderAgainstIntegersAndFloats) {
  const term neg = integer_from_string("-18446744073709551616");
  EXPECT_LT(neg, term(std::numeric_limits<std::int64_t>::min()));
  EXPECT_GT(kTwo64, term(std::numeric_limits<std::int64_t>::max()));
  EXPECT_LT(neg, kTwo64);
  EXPECT_LT(kTwo64, add(kTwo64, 1));
  EXPECT_GT(integer_from_string("-18446744073709551616"), integer_from_string("-18446744073709551617"));
  // Exactly against floats: 2^64 == 18446744073709551616.0 in Erlang, but not =:=.
  EXPECT_TRUE(equal(kTwo64, term(18446744073709551616.0)));
  EXPECT_NE(kTwo64, term(18446744073709551616.0));
  EXPECT_FALSE(equal(add(kTwo64, 1), term(18446744073709551616.0)));  // no rounding of the integer
  EXPECT_GT(add(kTwo64, 1), term(18446744073709551616.0));
  EXPECT_LT(kTwo64, term(1.0e20));
  EXPECT_GT(kTwo64, term(1.0e19));
  EXPECT_LT(kTwo64, "a"_a);  // every number before every atom
  // The tie 2^64 vs 2^64.0 is broken as in map key order: integers first.
  EXPECT_LT(kTwo64, term(18446744073709551616.0));
}

TEST(Integer, HashAndEqualityFollowTheValue) {
  const term a = integer_from_string("123456789012345678901234567890");
  const term b = add(integer_from_string("123456789012345678901234567889"), 1);
  EXPECT_EQ(a, b);
  EXPECT_EQ(std::hash<term>{}(a), std::hash<term>{}(b));
  std::unordered_set<term> set{a, kTwo64, term(1)};
  EXPECT_EQ(set.count(b), 1u);
  EXPECT_EQ(set.count(add(kTwo64, 1)), 0u);
  EXPECT_EQ(map({{a, 1}}).find(b)->as_int(), 1);
}

TEST(Integer, EtfBytesAsErlang) {
  // term_to_binary(1 bsl 64) and term_to_binary(-(1 bsl 64)) from OTP 25.
  EXPECT_EQ(etf::encode(kTwo64), bytes({131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(etf::encode(multiply(kTwo64, -1)), bytes({131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(etf::decode(bytes({131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1})), multiply(kTwo64, -1));
  // High zero digits are accepted and dropped; a value that fits comes back in place.
  EXPECT_EQ(etf::decode(bytes({131, 110, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0})), kTwo64);
  EXPECT_TRUE(etf::decode(bytes({131, 110, 9, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0})).is_int64());
  // 1 bsl 2048 needs LARGE_BIG_EXT (257 digit bytes).
  term huge = 1;
  for (int i = 0; i < 2048; ++i) huge = multiply(huge, 2);
  const auto encoded = etf::encode(huge);
  ASSERT_EQ(encoded.size(), 1 + 1 + 4 + 1 + 257u);
  EXPECT_EQ(encoded[1], std::byte(111));
  EXPECT_EQ(encoded[5], std::byte(1));  // 257 = 0x00000101
  EXPECT_EQ(etf::decode(encoded), huge);
}

}  // namespace
}  // namespace athanor
