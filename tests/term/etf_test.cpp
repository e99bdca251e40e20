#include "athanor/term/etf.h"
#include "athanor/term/integer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace athanor {
namespace {

using namespace athanor::literals;
using etf::decode;
using etf::encode;
using etf::etf_error;

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(std::byte(v));
  return out;
}
std::vector<std::byte> cat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
std::vector<std::byte> str(std::string_view s) {
  std::vector<std::byte> out;
  for (char c : s) out.push_back(std::byte(c));
  return out;
}

// Expects decode(input) to throw etf_error whose message contains `needle`.
void expect_error(const std::vector<std::byte>& input, const std::string& needle, const etf::decode_options& options = {}) {
  try {
    const term t = decode(input, options);
    ADD_FAILURE() << "decoded " << t << ", expected an error containing \"" << needle << "\"";
  } catch (const etf_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

void expect_round_trip(const term& t) {
  for (int minor : {1, 2}) {
    etf::encode_options eo;
    eo.minor_version = minor;
    const auto encoded = encode(t, eo);
    const term back = decode(encoded);
    EXPECT_EQ(back, t) << t << " (minor_version " << minor << ")";
    EXPECT_EQ(encode(back, eo), encoded) << t;
  }
}

// ---------------------------------------------------------------- exact bytes from OTP 25
// Each literal is what OTP 25.2 printed for
//   erl -noshell -eval 'io:format("~w~n", [binary_to_list(term_to_binary(T))]), halt().'

TEST(Etf, ExactBytesOfATuple) {
  // T = {ok,[1,2,3],<<"a">>,#{a=>1}}
  const term t = tuple("ok"_a, list({1, 2, 3}), "a", map({{"a"_a, 1}}));
  EXPECT_EQ(encode(t), bytes({131, 104, 4, 100, 0, 2, 111, 107, 107, 0, 3, 1, 2, 3, 109, 0, 0, 0, 1, 97, 116, 0, 0, 0, 1,
                              100, 0, 1, 97, 97, 1}));
}

TEST(Etf, ExactBytesOfIntegers) {
  // T = [-5,255,256,-1,2147483647,2147483648,-2147483648,-2147483649,9223372036854775807,-9223372036854775808]
  const term t = list({-5, 255, 256, -1, 2147483647, std::int64_t(2147483648), std::int64_t(-2147483648LL),
                       std::int64_t(-2147483649LL), std::numeric_limits<std::int64_t>::max(),
                       std::numeric_limits<std::int64_t>::min()});
  EXPECT_EQ(encode(t), bytes({131, 108, 0,   0,   0,   10,  98,  255, 255, 255, 251, 97,  255, 98,  0,   0,   1,   0,
                              98,  255, 255, 255, 255, 98,  127, 255, 255, 255, 110, 4,   0,   0,   0,   0,   128, 98,
                              128, 0,   0,   0,   110, 4,   1,   1,   0,   0,   128, 110, 8,   0,   255, 255, 255, 255,
                              255, 255, 255, 127, 110, 8,   1,   0,   0,   0,   0,   0,   0,   0,   128, 106}));
}

TEST(Etf, ExactBytesOfFloats) {
  // T = {0.1, -0.0, 1.0e300, 1.5}
  EXPECT_EQ(encode(tuple(0.1, -0.0, 1.0e300, 1.5)),
            bytes({131, 104, 4,   70, 63, 185, 153, 153, 153, 153, 153, 154, 70,  128, 0,   0,  0,  0, 0,
                   0,   0,   70,  126, 55, 228, 60,  136, 0,   117, 156, 70,  63,  248, 0,  0,  0,  0, 0, 0}));
}

TEST(Etf, ExactBytesOfAtoms) {
  // T = {ok, list_to_atom([252,110]), list_to_atom([16#3b1]), '', 'hello world'}
  const term t = tuple("ok"_a, atom("\xC3\xBCn"), atom("\xCE\xB1"), atom(""), atom("hello world"));
  EXPECT_EQ(encode(t), bytes({131, 104, 5, 100, 0, 2, 111, 107, 100, 0, 2, 252, 110, 119, 2, 206, 177, 100, 0, 0, 100, 0,
                              11, 104, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100}));
  // term_to_binary({ok, list_to_atom([252,110]), list_to_atom([16#3b1])}, [{minor_version,2}])
  etf::encode_options v2;
  v2.minor_version = 2;
  EXPECT_EQ(encode(tuple("ok"_a, atom("\xC3\xBCn"), atom("\xCE\xB1")), v2),
            bytes({131, 104, 3, 119, 2, 111, 107, 119, 3, 195, 188, 110, 119, 2, 206, 177}));
  // node() in a non-distributed erl: 'nonode@nohost'
  EXPECT_EQ(encode("nonode@nohost"_a), cat(bytes({131, 100, 0, 13}), str("nonode@nohost")));
}

TEST(Etf, ExactBytesOfLists) {
  // T = {[1,2|3], [256,1], "abc", [], [a|b], [[]], [1,[2]]}
  const term t = tuple(list({1, 2}, 3), list({256, 1}), list({'a', 'b', 'c'}), term::nil(), cons("a"_a, "b"_a),
                       list({term::nil()}), list({1, list({2})}));
  EXPECT_EQ(encode(t), bytes({131, 104, 7,   108, 0,   0,   0,   2,   97,  1,   97,  2,   97, 3,   108, 0,   0,
                              0,   2,   98,  0,   0,   1,   0,   97,  1,   106, 107, 0,   3,  97,  98,  99,  106,
                              108, 0,   0,   0,   1,   100, 0,   1,   97,  100, 0,   1,   98, 108, 0,   0,   0,
                              1,   106, 106, 108, 0,   0,   0,   2,   97,  1,   107, 0,   1,  2,   106}));
  // Headers only: lists:duplicate(65535, 1) is a STRING_EXT, lists:duplicate(70000, 1) a LIST_EXT.
  std::vector<term> ones(65535, term(1));
  const auto string_ext = encode(list(ones));
  EXPECT_EQ(std::vector<std::byte>(string_ext.begin(), string_ext.begin() + 6), bytes({131, 107, 255, 255, 1, 1}));
  ones.resize(70000, term(1));
  const auto long_list = encode(list(ones));
  EXPECT_EQ(std::vector<std::byte>(long_list.begin(), long_list.begin() + 8), bytes({131, 108, 0, 1, 17, 112, 97, 1}));
}

TEST(Etf, ExactBytesOfEmptiesBinariesAndLargeTuples) {
  // T = {{}, #{}, <<>>, []}
  EXPECT_EQ(encode(tuple(tuple(), map({}), "", term::nil())), bytes({131, 104, 4, 104, 0, 116, 0, 0, 0, 0, 109, 0, 0, 0, 0, 106}));
  // T = {<<"é"/utf8>>, "é"}
  EXPECT_EQ(encode(tuple("\xC3\xA9", list({0xE9}))), bytes({131, 104, 2, 109, 0, 0, 0, 2, 195, 169, 107, 0, 1, 233}));
  // list_to_tuple(lists:seq(1,300)): the first 6 bytes
  std::vector<term> seq;
  for (int i = 1; i <= 300; ++i) seq.emplace_back(i);
  const auto large = encode(tuple(std::span<const term>(seq)));
  EXPECT_EQ(std::vector<std::byte>(large.begin(), large.begin() + 6), bytes({131, 105, 0, 0, 1, 44}));
}

TEST(Etf, ExactBytesOfMapsInErlangKeyOrder) {
  // T = #{1.5=>a, 2=>b, a=>c, {x}=>d, <<"b">> => e, [1] => f}: integers before floats.
  const term t = map({{1.5, "a"_a}, {2, "b"_a}, {"a"_a, "c"_a}, {tuple("x"_a), "d"_a}, {"b", "e"_a}, {list({1}), "f"_a}});
  EXPECT_EQ(encode(t), bytes({131, 116, 0, 0, 0, 6, 97, 2, 100, 0, 1, 98, 70, 63, 248, 0, 0, 0, 0, 0, 0, 100, 0, 1, 97,
                              100, 0, 1, 97, 100, 0, 1, 99, 104, 1, 100, 0, 1, 120, 100, 0, 1, 100, 107, 0, 1, 1, 100, 0,
                              1, 102, 109, 0, 0, 0, 1, 98, 100, 0, 1, 101}));
}

TEST(Etf, ExactBytesOfPidsAndRefs) {
  // T = list_to_pid("<0.5.1>")
  EXPECT_EQ(encode(pid(0, 5, 1)), cat(cat(bytes({131, 88, 100, 0, 13}), str("nonode@nohost")),
                                       bytes({0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0})));
  // T = binary_to_term(<<131,90,0,3,100,0,13,"nonode@nohost",0,0,0,0, 0,3,255,255, 255,255,255,255, 0,0,63,255>>),
  // the largest ref W0/W1/W2 words that fit athanor::ref; erl re-encodes it to the same bytes.
  const auto expected = cat(cat(bytes({131, 90, 0, 3, 100, 0, 13}), str("nonode@nohost")),
                            bytes({0, 0, 0, 0, 0, 3, 255, 255, 255, 255, 255, 255, 0, 0, 63, 255}));
  EXPECT_EQ(encode(ref(0, ~std::uint64_t(0))), expected);
  EXPECT_EQ(decode(expected), term(ref(0, ~std::uint64_t(0))));
  // ref(0, 1) is #Ref<0.0.0.1>: W0 = 1.
  EXPECT_EQ(encode(ref(0, 1)), cat(cat(bytes({131, 90, 0, 3, 100, 0, 13}), str("nonode@nohost")),
                                    bytes({0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})));
}

TEST(Etf, ContextNamesThisNode) {
  etf::encode_options eo;
  eo.context.node = atom("cpp@vm");
  eo.context.creation = 0x01020304;
  EXPECT_EQ(encode(pid(0, 7, 0), eo), cat(cat(bytes({131, 88, 100, 0, 6}), str("cpp@vm")),
                                          bytes({0, 0, 0, 7, 0, 0, 0, 0, 1, 2, 3, 4})));
  etf::decode_options d;
  d.context = eo.context;
  EXPECT_EQ(decode(encode(pid(0, 7, 3), eo), d), term(pid(0, 7, 3)));
  EXPECT_EQ(decode(encode(ref(0, 99), eo), d), term(ref(0, 99)));
  // The same bytes under another context name an unknown node.
  expect_error(encode(pid(0, 7, 3), eo), "pid of unknown node cpp@vm (creation 16909060)");
  expect_error(encode(ref(0, 7), eo), "reference of unknown node");
}

TEST(Etf, ContextMapsOtherNodes) {
  etf::encode_options eo;
  eo.context.node_name = [](std::uint32_t n) -> std::optional<etf::node_identity> {
    if (n == 5) return etf::node_identity{atom("a@vm"), 77};
    return std::nullopt;
  };
  etf::decode_options d;
  d.context.node_number = [](const etf::node_identity& id) -> std::optional<std::uint32_t> {
    if (id.name == atom("a@vm") && id.creation == 77) return 5;
    return std::nullopt;
  };
  const term t = tuple(pid(5, 1, 2), ref(5, 3), pid(0, 4, 0));
  const auto encoded = encode(t, eo);
  EXPECT_EQ(decode(encoded, d), t);
  try {
    (void)encode(pid(6, 1, 1), eo);
    ADD_FAILURE() << "encoded a pid of an unnamed node";
  } catch (const etf_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot encode a pid of node 6"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)encode(ref(9, 1)), etf_error);  // no node_name at all
  // A resolver returning a node number too large for a pid.
  etf::decode_options wide;
  wide.context.node_number = [](const etf::node_identity&) -> std::optional<std::uint32_t> { return 1u << 20; };
  expect_error(encode(pid(5, 1, 2), eo), "does not fit athanor::pid", wide);
  EXPECT_EQ(decode(encode(ref(5, 3), eo), wide), term(ref(1u << 20, 3)));
}

// ---------------------------------------------------------------- round trips

TEST(Etf, RoundTripsEveryKind) {
  const term terms[] = {
      0, 1, 255, 256, -1, -256, std::numeric_limits<std::int32_t>::max(), std::numeric_limits<std::int32_t>::min(),
      std::int64_t(1) << 31, -(std::int64_t(1) << 31) - 1, std::int64_t(1) << 40, std::numeric_limits<std::int64_t>::max(),
      std::numeric_limits<std::int64_t>::min(), 0.0, -0.0, 0.1, 1e300, -1e-300, std::numeric_limits<double>::denorm_min(),
      "ok"_a, atom(""), atom("\xC3\xBCn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9"), atom("\xF0\x9F\x98\x80"), atom(std::string(255, 'x')),
      pid(), pid(0, 123, 4), pid(0, pid::kIndexMask, pid::kGenerationMask), ref(), ref(0, 12345), ref(0, ~std::uint64_t(0)),
      tuple(), tuple(1, "a"_a, "b"), term::nil(), list({1, 2, 3}), list({1, 2}, 3), list({"a"_a}, "b"),
      list({256}), list({-1}), list({1.0}), cons(list({1}), list({2}, 3)), "", "binary", map({}),
      map({{1, 2}, {1.0, 3}, {"k"_a, list({})}, {tuple(), map({{"x", "y"}})}})};
  for (const term& t : terms) {
    expect_round_trip(t);
  }
  // A Latin-1 atom whose UTF-8 name is exactly 255 bytes, and a mixed one.
  std::string latin;
  for (int i = 0; i < 127; ++i) latin += "\xC3\xA9";  // é
  latin += "e";
  expect_round_trip(atom(latin));
  // A 300-element tuple, a 1 MB binary, a 70000-element byte list and a 33-key map.
  std::vector<term> seq;
  for (int i = 0; i < 300; ++i) seq.emplace_back(i);
  expect_round_trip(tuple(std::span<const term>(seq)));
  expect_round_trip(term(std::string(1 << 20, '\x5A')));
  std::vector<term> bytes_list(70000, term(7));
  expect_round_trip(list(bytes_list));
  std::vector<std::pair<term, term>> entries;
  for (int i = 0; i < 33; ++i) entries.emplace_back(i, tuple(i));
  expect_round_trip(map(entries));
}

// Large binaries are appended without zero-filled room made for them first (etf.cpp, bulk()):
// terms written after one, and output appended to bytes already there, must not notice.
TEST(Etf, LargeBinariesAmongOtherTermsAndAfterExistingBytesEncodeExactly) {
  const std::string big(5000, 'b'), bigger(70000, 'c');
  const term t = tuple(term(big), "after"_a, term("small"), list({term(bigger), term(12345)}), term(big));
  const std::vector<std::byte> alone = encode(t);
  // 131, SMALL_TUPLE 5; each binary 109 + 4-byte length + bytes; the atom as ATOM_EXT (100, a
  // 2-byte length: minor_version 1); the list as LIST_EXT with its NIL tail, 12345 as INTEGER_EXT.
  const std::size_t expected_size = 1 + 2 + (5 + 5000) + (3 + 5) + (5 + 5) + (5 + 5 + 70000 + 5 + 1) + (5 + 5000);
  EXPECT_EQ(alone.size(), expected_size);
  EXPECT_EQ(decode(alone), t);
  std::vector<std::byte> out(3, std::byte{0xEE});
  etf::encode_to(out, t);
  ASSERT_EQ(out.size(), 3 + alone.size());
  EXPECT_EQ(std::vector<std::byte>(out.begin(), out.begin() + 3), std::vector<std::byte>(3, std::byte{0xEE}));
  EXPECT_EQ(std::vector<std::byte>(out.begin() + 3, out.end()), alone);
}

TEST(Etf, EncodesAndDecodesDeepNestingWithoutRecursion) {
  term deep = term::nil();
  for (int i = 0; i < 100'000; ++i) deep = tuple(deep);
  const auto encoded = encode(deep);
  EXPECT_EQ(encoded.size(), 1 + 2 * 100'000 + 1u);
  etf::decode_options unlimited;
  unlimited.max_depth = 1'000'000;
  const term back = decode(encoded, unlimited);
  const term* t = &back;
  std::size_t depth = 0;
  while (t->is_tuple()) t = &t->element(0), ++depth;
  EXPECT_EQ(depth, 100'000u);
  EXPECT_TRUE(t->is_nil());
  // Deep in list heads, too.
  term heads = 1;
  for (int i = 0; i < 50'000; ++i) heads = list({heads});
  EXPECT_EQ(encode(decode(encode(heads), unlimited)), encode(heads));
}

TEST(Etf, DepthLimit) {
  auto nested = [](int depth) {
    term t = 0;
    for (int i = 0; i < depth; ++i) t = tuple(t);
    return encode(t);
  };
  EXPECT_NO_THROW((void)decode(nested(10'000)));
  expect_error(nested(10'001), "nesting deeper than the limit of 10000");
  etf::decode_options shallow;
  shallow.max_depth = 3;
  EXPECT_NO_THROW((void)decode(nested(3), shallow));
  expect_error(nested(4), "nesting deeper than the limit of 3", shallow);
  expect_error(encode(list({list({list({list({1.5})})})})), "nesting deeper", shallow);
  expect_error(encode(map({{1, map({{1, map({{1, map({{1, 2}})}})}})}})), "nesting deeper", shallow);
  // A long flat list is not deep.
  std::vector<term> wide(100'000, term(1.5));
  EXPECT_EQ(decode(encode(list(wide)), shallow).length(), 100'000u);
}

// ---------------------------------------------------------------- decoding older and alternative forms

TEST(Etf, DecodesLegacyTags) {
  // term_to_binary(1.5, [{minor_version,0}]): FLOAT_EXT
  EXPECT_EQ(decode(bytes({131, 99, 49, 46, 53, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48, 48,
                          48, 48, 101, 43, 48, 48, 0, 0, 0, 0, 0})),
            term(1.5));
  // SMALL_ATOM_EXT (Latin-1) and ATOM_UTF8_EXT
  EXPECT_EQ(decode(bytes({131, 115, 2, 252, 110})), term(atom("\xC3\xBCn")));
  EXPECT_EQ(decode(bytes({131, 118, 0, 2, 206, 177})), term(atom("\xCE\xB1")));
  // LARGE_BIG_EXT within int64, with high zero digits, and a negative zero.
  EXPECT_EQ(decode(bytes({131, 111, 0, 0, 0, 3, 1, 5, 0, 0})), term(-5));
  EXPECT_EQ(decode(bytes({131, 110, 0, 1})), term(0));
  EXPECT_EQ(decode(bytes({131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128})), term(std::numeric_limits<std::int64_t>::min()));
  // PID_EXT (creation byte), NEW_REFERENCE_EXT and REFERENCE_EXT
  const auto node = cat(bytes({100, 0, 13}), str("nonode@nohost"));
  EXPECT_EQ(decode(cat(cat(bytes({131, 103}), node), bytes({0, 0, 0, 9, 0, 0, 0, 2, 0}))), term(pid(0, 9, 2)));
  EXPECT_EQ(decode(cat(cat(bytes({131, 114, 0, 2}), node), bytes({0, 0, 0, 0, 7, 0, 0, 0, 1}))),
            term(ref(0, 7 | std::uint64_t(1) << 18)));
  EXPECT_EQ(decode(cat(cat(bytes({131, 101}), node), bytes({0, 0, 0, 7, 0}))), term(ref(0, 7)));
  // NEWER_REFERENCE_EXT with 5 words, the extra ones zero.
  EXPECT_EQ(decode(cat(cat(bytes({131, 90, 0, 5}), node), bytes({0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                                  0, 0, 0, 0}))),
            term(ref(0, 1)));
  // BIT_BINARY_EXT of whole bytes, and an empty one.
  EXPECT_EQ(decode(bytes({131, 77, 0, 0, 0, 2, 8, 1, 2})), term::binary({1, 2}));
  EXPECT_EQ(decode(bytes({131, 77, 0, 0, 0, 0, 0})), term(""));
  // LIST_EXT of no elements is its tail (as erts decodes it).
  EXPECT_EQ(decode(bytes({131, 108, 0, 0, 0, 0, 106})), term::nil());
  EXPECT_EQ(decode(bytes({131, 108, 0, 0, 0, 0, 97, 1})), term(1));
  // MAP_EXT keys in any order.
  EXPECT_EQ(decode(bytes({131, 116, 0, 0, 0, 2, 97, 2, 97, 0, 97, 1, 97, 0})), map({{1, 0}, {2, 0}}));
  // STRING_EXT of zero length
  EXPECT_EQ(decode(bytes({131, 107, 0, 0})), term::nil());
}

TEST(Etf, DecodesCompressedTerms) {
  // term_to_binary(lists:duplicate(20, <<"abc">>), [compressed])
  const auto compressed = bytes({131, 80, 0, 0, 0, 166, 120, 156, 203, 97, 96, 96, 16, 201, 5, 18, 204, 137, 73, 201, 131,
                                 149, 206, 2, 0, 81, 134, 32, 163});
  const term t = decode(compressed);
  ASSERT_TRUE(t.is_list());
  EXPECT_EQ(t.length(), 20u);
  for (const term& e : t.list_elements()) EXPECT_EQ(e, term("abc"));
  EXPECT_EQ(etf::decode_prefix(cat(compressed, bytes({1, 2}))).size, compressed.size());

  // Limits and corruption.
  etf::decode_options small;
  small.max_decompressed_bytes = 100;
  expect_error(compressed, "declares 166 bytes, more than the limit of 100", small);
  auto wrong_size = compressed;
  wrong_size[5] = std::byte(165);
  expect_error(wrong_size, "larger than the declared 165 bytes");
  wrong_size[5] = std::byte(167);
  expect_error(wrong_size, "not the declared 167");
  auto corrupt = compressed;
  corrupt[8] = std::byte(0xFF);
  expect_error(corrupt, "corrupt zlib data");
  expect_error(std::vector<std::byte>(compressed.begin(), compressed.end() - 3), "truncated zlib data");
  expect_error(cat(compressed, bytes({0})), "1 trailing bytes after the compressed term");
  expect_error(bytes({131, 80, 0, 0}), "compressed term needs a 4-byte size");
  expect_error(bytes({131, 80, 0, 0, 0, 0, 120, 156}), "declares 0 bytes");
  expect_error(bytes({131, 104, 1, 80, 0, 0, 0, 1}), "compressed term may only appear at the top level");
}

// ---------------------------------------------------------------- errors

TEST(Etf, ReportsMalformedInput) {
  expect_error({}, "empty input");
  expect_error(bytes({130, 106}), "bad version byte 130 at offset 0");
  expect_error(bytes({131}), "truncated input: expected a term, found the end");
  expect_error(bytes({131, 106, 106}), "1 trailing bytes after the term at offset 2");
  expect_error(bytes({131, 200}), "unknown tag 200 at offset 1");
  expect_error(bytes({131, 104, 1, 131, 106}), "version byte 131 inside a term");
  expect_error(bytes({131, 109, 0, 0, 0, 10, 1, 2, 3}), "truncated input: BINARY_EXT needs 10 more bytes, 3 left");
  expect_error(bytes({131, 105, 0xFF, 0xFF, 0xFF, 0xFF, 106}), "declared length 4294967295 exceeds the 1 bytes left");
  expect_error(bytes({131, 108, 0xFF, 0xFF, 0xFF, 0xFF, 106}), "declared length");
  expect_error(bytes({131, 116, 0x7F, 0xFF, 0xFF, 0xFF, 106}), "declared length");
  expect_error(bytes({131, 107, 0xFF, 0xFF, 1}), "STRING_EXT needs 65535 more bytes");
  expect_error(bytes({131, 116, 0, 0, 0, 2, 97, 1, 97, 0, 97, 1, 97, 0}), "MAP_EXT has a duplicate key");
  expect_error(bytes({131, 70, 0x7F, 0xF0, 0, 0, 0, 0, 0, 0}), "not finite");
  expect_error(bytes({131, 70, 0x7F, 0xF8, 0, 0, 0, 0, 0, 1}), "not finite");
  expect_error(bytes({131, 99, 'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
               "FLOAT_EXT is not a number");
  expect_error(bytes({131, 110, 1, 2, 5}), "sign byte 2");
  expect_error(bytes({131, 111, 0xFF, 0xFF, 0xFF, 0xFF, 0}), "LARGE_BIG_EXT needs 4294967295 more bytes");
  // Atoms
  expect_error(bytes({131, 119, 2, 0xC3, 0x28}), "atom is not valid UTF-8");
  std::vector<std::byte> long_atom = bytes({131, 118, 1, 0});
  long_atom.resize(long_atom.size() + 256, std::byte('a'));
  expect_error(long_atom, "atom of 256 UTF-8 bytes is longer than Athanor's limit of 255");
  std::vector<std::byte> latin_atom = bytes({131, 100, 0, 200});
  latin_atom.resize(latin_atom.size() + 200, std::byte(0xE9));  // 200 x é = 400 UTF-8 bytes
  expect_error(latin_atom, "atom of 400 UTF-8 bytes");
  expect_error(bytes({131, 82, 1}), "ATOM_CACHE_REF outside a distribution header");
  // Malformed bitstrings, funs and ports.
  expect_error(bytes({131, 77, 0, 0, 0, 1, 0, 32}), "BIT_BINARY_EXT with 1 bytes and 0 bits");
  expect_error(bytes({131, 77, 0, 0, 0, 1, 9, 32}), "BIT_BINARY_EXT with 1 bytes and 9 bits");
  expect_error(bytes({131, 113, 100, 0, 5, 108, 105, 115, 116, 115, 100, 0, 3, 109, 97, 112, 98, 0, 0, 1, 0}),
               "EXPORT_EXT with arity 256");
  expect_error(bytes({131, 113, 100, 0, 1, 109, 100, 0, 1, 102, 100, 0, 1, 97}), "EXPORT_EXT: expected an integer");
  expect_error(bytes({131, 112, 0, 0, 0, 0}), "NEW_FUN_EXT of size 0");
  expect_error(bytes({131, 112, 0, 0, 0, 40}), "NEW_FUN_EXT needs 36 more bytes");
  expect_error(bytes({131, 117, 0, 0, 0, 0}), "FUN_EXT (written before OTP R8) not supported");
  expect_error(bytes({131, 120}), "expected an atom, found the end");
  expect_error(bytes({131, 102}), "expected an atom, found the end");
  expect_error(cat(cat(bytes({131, 89, 100, 0, 13}), str("nonode@nohost")), bytes({0, 0, 0, 0, 0, 0, 0})),
               "NEW_PORT_EXT needs 8 more bytes");
  expect_error(bytes({131, 121, 1, 2}), "LOCAL_EXT not supported");
  // Pids and refs that do not fit, or name no atom.
  const auto node = cat(bytes({100, 0, 13}), str("nonode@nohost"));
  expect_error(cat(cat(bytes({131, 88}), node), bytes({0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})), "does not fit athanor::pid");
  expect_error(cat(cat(bytes({131, 88}), node), bytes({0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0})), "does not fit athanor::pid");
  expect_error(bytes({131, 88, 97, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), "expected an atom, found tag 97");
  expect_error(cat(cat(bytes({131, 90, 0, 0}), node), bytes({0, 0, 0, 0})), "reference with 0 ID words");
  expect_error(cat(cat(bytes({131, 90, 0, 6}), node), bytes({0, 0, 0, 0})), "reference with 6 ID words");
  expect_error(cat(cat(bytes({131, 90, 0, 3}), node), bytes({0, 0, 0, 0, 0, 0, 0, 0})), "NEWER_REFERENCE_EXT needs 16 more bytes");
}

TEST(Etf, EveryTruncationIsAnError) {
  const term t = tuple("ok"_a, list({1, 2, 3}), "abc", map({{"a"_a, 1.5}}), list({tuple(pid(0, 1, 2), ref(0, 3))}, 7),
                       std::int64_t(1) << 40, -70000, atom("\xCE\xB1"), list({300}));
  const auto encoded = encode(t);
  ASSERT_EQ(decode(encoded), t);
  for (std::size_t n = 0; n < encoded.size(); ++n) {
    const std::vector<std::byte> prefix(encoded.begin(), encoded.begin() + std::ptrdiff_t(n));
    EXPECT_THROW((void)decode(prefix), etf_error) << "prefix of " << n << " bytes";
    EXPECT_THROW((void)etf::decode_prefix(prefix), etf_error) << "prefix of " << n << " bytes";
  }
}

TEST(Etf, ErrorsCarryTheirOffset) {
  try {
    (void)decode(bytes({131, 104, 2, 97, 1, 200}));
    ADD_FAILURE();
  } catch (const etf_error& e) {
    EXPECT_EQ(e.offset(), 5u);
    EXPECT_STREQ(e.what(), "etf: unknown tag 200 at offset 5");
  }
}

TEST(Etf, SafeModeCreatesNoAtoms) {
  etf::decode_options safe;
  safe.safe = true;
  const std::string name = "etf_test_atom_that_must_not_exist_7f3a";
  const auto encoded = cat(bytes({131, 119, std::uint8_t(name.size())}), str(name));
  const std::size_t before = atom::count();
  expect_error(encoded, "unknown atom 'etf_test_atom_that_must_not_exist_7f3a' (safe mode creates no atoms)", safe);
  EXPECT_EQ(atom::count(), before);
  EXPECT_FALSE(atom::existing(name).has_value());
  // Latin-1 atoms and pid node names are checked too.
  expect_error(bytes({131, 100, 0, 3, 'q', 0xE9, 'z'}), "unknown atom", safe);
  expect_error(cat(cat(bytes({131, 88, 119, 11}), str("nobody@nowh")), bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})),
               "unknown atom", safe);
  // A long unknown name is cut in the message, at a code point boundary.
  std::string long_name;
  for (int i = 0; i < 40; ++i) long_name += "\xCE\xB1";  // 80 bytes of α
  expect_error(cat(bytes({131, 119, 80}), str(long_name)), "unknown atom '" + long_name.substr(0, 64) + "...'", safe);
  // Existing atoms are fine; without safe the atom is created.
  EXPECT_EQ(decode(encode(tuple("ok"_a, pid(0, 1, 1))), safe), tuple("ok"_a, pid(0, 1, 1)));
  EXPECT_EQ(decode(encoded), term(atom(name)));
  EXPECT_EQ(decode(encoded, safe), term(atom(name)));
}

// ATOM_CACHE_REF (82, Index) inside a distribution header's terms: the header's atoms come in
// decode_options::atom_cache_refs (athanor::dist reads the header and keeps the cache).
TEST(Etf, AtomCacheRefsNameTheHeadersAtoms) {
  const atom header[] = {atom("a@vm"), atom("net_kernel"), atom("")};
  etf::decode_options o;
  o.version_byte = false;  // header-mode terms have no version byte
  o.atom_cache_refs = header;
  // {net_kernel, '', [a@vm]} with every atom by reference: the first pass (which sizes the
  // term's block) must step over the refs too, or the list after them would not fit.
  EXPECT_EQ(decode(bytes({104, 3, 82, 1, 82, 2, 108, 0, 0, 0, 1, 82, 0, 106}), o),
            tuple("net_kernel"_a, ""_a, list({term("a@vm"_a)})));
  // A pid's node name by reference, as OTP writes it in this mode.
  o.context.node_number = [](const etf::node_identity& n) -> std::optional<std::uint32_t> {
    return n.name == atom("a@vm") ? std::optional<std::uint32_t>(1) : std::nullopt;
  };
  EXPECT_EQ(decode(bytes({104, 2, 88, 82, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 97, 7}), o),
            tuple(pid(1, 9, 0), 7));
  expect_error(bytes({82, 3}), "ATOM_CACHE_REF 3 in a header of 3 atom cache refs", o);
  expect_error(bytes({82}), "ATOM_CACHE_REF needs 1 more bytes", o);
  // Without the header's atoms, as before: an error.
  etf::decode_options plain;
  plain.version_byte = false;
  expect_error(bytes({82, 0}), "ATOM_CACHE_REF outside a distribution header", plain);
  expect_error(bytes({131, 82, 0}), "ATOM_CACHE_REF outside a distribution header");
  // A local fun keeps its bytes to write them back, where an index would mean nothing: refused
  // in its module and in its captured variables.
  auto fun_with = [](std::vector<std::byte> module, std::vector<std::byte> free_var) {
    std::vector<std::byte> body = bytes({1});                        // Arity
    body.resize(body.size() + 16 + 4, std::byte{0});                 // Uniq, Index
    body = cat(body, bytes({0, 0, 0, 1}));                           // NumFree
    body = cat(body, module);                                        // Module
    body = cat(body, bytes({97, 0, 97, 0}));                         // OldIndex, OldUniq
    body = cat(cat(cat(body, bytes({88, 119, 4})), str("a@vm")), bytes({0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}));  // Pid
    body = cat(body, free_var);
    const std::size_t size = body.size() + 4;
    return cat(bytes({112, 0, 0, 0, int(size)}), body);
  };
  const auto m = cat(bytes({119, 1}), str("m"));
  expect_error(fun_with(bytes({82, 1}), bytes({97, 5})), "ATOM_CACHE_REF inside a fun", o);
  expect_error(fun_with(m, bytes({82, 1})), "ATOM_CACHE_REF inside a fun", o);
  EXPECT_TRUE(decode(fun_with(m, bytes({97, 5})), o).is_fun());  // the same fun without refs
}

// A decoded message is one shared block (see etf.h): every part holds the whole, so a part
// kept after the message is dropped must stay intact, and dropping the last part frees it
// (ASan, which CI runs these under, reports a use after free or a leak otherwise).
TEST(Etf, PartsOfADecodedMessageOutliveIt) {
  const ref wide = ref::from_words(0, std::vector<std::uint32_t>{1, 2, 3, 4, 5});
  const term original =
      tuple("msg"_a, "a binary of some length", list({1, "two", 3.0}), map({{"k", list({1, 2})}}),
            term::bitstring(std::as_bytes(std::span("\xFF", 1)), 3), wide, term::export_fun("m"_a, "f"_a, 2),
            integer_from_string("123456789012345678901234567890"), list({1, 2}, "improper"));
  const auto encoded = encode(original);
  term message = decode(encoded);
  ASSERT_EQ(message, original);
  EXPECT_EQ(message.use_count(), 1u);
  term text = message.element(1);
  EXPECT_EQ(message.use_count(), 2u) << "a part counts in the one block";
  EXPECT_EQ(message.element(2).use_count(), 2u) << "every part reports the block's count";
  term part = text.sub_binary(2, 6);
  term inner = message.element(3).find("k") != nullptr ? *message.element(3).find("k") : term();
  term tail = message.element(8).tail();
  term mine = tuple(message.element(2), message.element(5), message.element(7));  // our block holds theirs
  const term detached = message.element(3).unshared();  // a deep copy: holds nothing of the message
  EXPECT_EQ(message.use_count(), 8u);  // message, text, part, inner, tail and the three in `mine`
  EXPECT_EQ(detached.use_count(), 1u);
  message = term();  // the message goes; its parts stay
  EXPECT_EQ(part.as_binary(), "binary");
  EXPECT_EQ(text.as_binary(), "a binary of some length");
  EXPECT_EQ(inner, list({1, 2}));
  EXPECT_EQ(detached, map({{"k", list({1, 2})}}));
  EXPECT_EQ(tail, list({2}, "improper"));
  EXPECT_EQ(mine, tuple(list({1, "two", 3.0}), wide, integer_from_string("123456789012345678901234567890")));
  text = term();
  EXPECT_EQ(part.as_binary(), "binary") << "a sub-binary holds the block, not the binary it came from";
  mine = term();
  EXPECT_EQ(tail.head(), 2);
}

// A map arrives in any key order (Erlang writes maps over 32 keys in hash order): the
// decoded map keeps its keys sorted, so it equals the same map built here.
TEST(Etf, DecodesMapsInAnyKeyOrder) {
  // #{3 => c, 1 => a, 2 => b}, written in that order.
  const auto unsorted = bytes({131, 116, 0, 0, 0, 3, 97, 3, 100, 0, 1, 'c', 97, 1, 100, 0, 1, 'a', 97, 2, 100, 0, 1, 'b'});
  const term m = decode(unsorted);
  EXPECT_EQ(m, map({{1, "a"_a}, {2, "b"_a}, {3, "c"_a}}));
  EXPECT_EQ(m.map_entries().front().first, 1);
  EXPECT_EQ(encode(m), encode(map({{1, "a"_a}, {2, "b"_a}, {3, "c"_a}})));
  // Out of order and repeated: still an error.
  expect_error(bytes({131, 116, 0, 0, 0, 3, 97, 2, 97, 0, 97, 1, 97, 0, 97, 2, 97, 0}), "MAP_EXT has a duplicate key");
}

// Parts of one decoded message copied and dropped on several threads at once: the block's
// one count is shared by all of them (TSan, which CI runs these under, checks the races).
TEST(Etf, PartsOfOneMessageAreSharedAcrossThreads) {
  term message = decode(encode(tuple(list({1, 2, 3}), "payload", map({{"a"_a, "b"}}))));
  std::vector<std::thread> threads;
  std::vector<std::size_t> seen(4, 0);
  for (std::size_t t = 0; t < seen.size(); ++t) {
    threads.emplace_back([&message, &seen, t] {
      const term& whole = message;  // read-only, as a term shared between threads is
      for (int i = 0; i < 10'000; ++i) {
        term part = whole.element(std::size_t(i % 3));
        seen[t] += part.is_list() ? 1 : 0;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (std::size_t count : seen) EXPECT_EQ(count, 3334u);
  EXPECT_EQ(message.use_count(), 1u) << "every copy gave its reference back";
}

TEST(Etf, OptionsAndPrefixes) {
  // Without the version byte (distribution header mode).
  etf::encode_options raw;
  raw.version_byte = false;
  EXPECT_EQ(encode(tuple(1), raw), bytes({104, 1, 97, 1}));
  etf::decode_options draw;
  draw.version_byte = false;
  EXPECT_EQ(decode(bytes({104, 1, 97, 1}), draw), tuple(1));
  expect_error(bytes({131, 104, 1, 97, 1}), "version byte 131 inside a term", draw);
  // Two terms back to back, as a distribution message.
  const auto two = cat(encode(tuple(2, "x"_a)), encode(list({1, 2})));
  const etf::decoded first = etf::decode_prefix(two);
  EXPECT_EQ(first.value, tuple(2, "x"_a));
  const etf::decoded second = etf::decode_prefix(std::span(two).subspan(first.size));
  EXPECT_EQ(second.value, list({1, 2}));
  EXPECT_EQ(first.size + second.size, two.size());
  // encode_to appends.
  std::vector<std::byte> out = bytes({1});
  etf::encode_to(out, term(5));
  EXPECT_EQ(out, bytes({1, 131, 97, 5}));
  // A failed encoding leaves the buffer as it was, though it fails after writing a
  // long prefix (a foreign pid with no name in the context comes last).
  std::vector<std::byte> before = out;
  const term unencodable = tuple(std::string(10'000, 'x'), pid(6, 1, 0));
  EXPECT_THROW(etf::encode_to(out, unencodable), etf_error);
  EXPECT_EQ(out, before);
  // Bad minor version.
  etf::encode_options bad;
  bad.minor_version = 0;
  EXPECT_THROW((void)encode(term(1), bad), etf_error);
}

}  // namespace
}  // namespace athanor
