// The kinds that arrive from Erlang nodes: bitstrings, sub-binaries, ports, funs and references
// with more than 64 bits. Each is decoded from bytes a real OTP 25 node wrote (the literals
// are term_to_binary/1 output), compared, printed and re-encoded byte for byte.
#include "athanor/term/etf.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <unordered_set>
#include <vector>

namespace athanor {
namespace {

using namespace athanor::literals;

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(std::byte(v));
  return out;
}
std::vector<std::byte> with_node(std::initializer_list<int> head, std::initializer_list<int> tail) {
  std::vector<std::byte> out = bytes(head);
  for (char c : std::string_view("\x64\x00\x0dnonode@nohost", 16)) out.push_back(std::byte(c));
  const auto t = bytes(tail);
  out.insert(out.end(), t.begin(), t.end());
  return out;
}

term bits(std::initializer_list<int> values, std::size_t bit_count) {
  const auto b = bytes(values);
  return term::bitstring(b, bit_count);
}

TEST(Kinds, BitstringsAreNotBinaries) {
  const term b = bits({5, 0x20}, 11);  // <<5,1:3>>
  EXPECT_EQ(b.kind(), term::kind::bitstring);
  EXPECT_TRUE(b.is_bitstring());
  EXPECT_FALSE(b.is_binary());
  EXPECT_EQ(b.bit_size(), 11u);
  EXPECT_EQ(b.byte_size(), 2u);
  EXPECT_THROW((void)b.as_binary(), bad_term_access);
  EXPECT_EQ(b.to_string(), "<<5,1:3>>");
  EXPECT_EQ(bits({0xFF}, 1).to_string(), "<<1:1>>");  // unused bits are cleared
  EXPECT_EQ(bits({0xFF}, 1), bits({0x80}, 1));
  EXPECT_EQ(bits({1, 2}, 16), term::binary({1, 2}));    // whole bytes: a binary
  EXPECT_TRUE(bits({1, 2}, 16).is_binary());
  EXPECT_THROW(bits({1}, 9), std::invalid_argument);
  EXPECT_TRUE(term("ab").is_bitstring());
  EXPECT_EQ(term("ab").bit_size(), 16u);
  const auto stored = b.bitstring_bytes();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0], std::byte(5));
  EXPECT_EQ(stored[1], std::byte(0x20));
  EXPECT_EQ(term("ab").bitstring_bytes().size(), 2u);
  EXPECT_THROW((void)term(1).bitstring_bytes(), bad_term_access);
  EXPECT_THROW((void)term(1).bit_size(), bad_term_access);
  EXPECT_EQ(kind_name(term_kind::bitstring), "bitstring");
}

TEST(Kinds, BitstringsCompareBitByBit) {
  // As in Erlang: <<1:1>> > <<1>> (the first bit decides), a prefix comes first.
  EXPECT_GT(bits({0x80}, 1), term::binary({1}));
  EXPECT_LT(term::binary({}), bits({0x00}, 1));
  EXPECT_LT(bits({0x00}, 1), bits({0x00}, 2));
  EXPECT_LT(bits({5, 0x20}, 11), bits({5, 0x40}, 11));
  EXPECT_LT(term::binary({5}), bits({5, 0x20}, 11));
  EXPECT_LT(list({1}), bits({0}, 3));  // bitstrings after lists
  EXPECT_NE(bits({0}, 3), bits({0}, 4));
  EXPECT_NE(std::hash<term>{}(bits({0}, 3)), std::hash<term>{}(bits({0}, 4)));
}

TEST(Kinds, BitstringEtfAsErlang) {
  const auto encoded = bytes({131, 77, 0, 0, 0, 2, 3, 5, 32});  // term_to_binary(<<5,1:3>>)
  EXPECT_EQ(etf::encode(bits({5, 0x20}, 11)), encoded);
  EXPECT_EQ(etf::decode(encoded), bits({5, 0x20}, 11));
  // BIT_BINARY_EXT with 8 bits in the last byte is a binary.
  EXPECT_EQ(etf::decode(bytes({131, 77, 0, 0, 0, 1, 8, 7})), term::binary({7}));
}

TEST(Kinds, SubBinariesShareBytes) {
  const term whole(std::string(1000, 'x') + "needle" + std::string(1000, 'y'));
  const term part = whole.sub_binary(1000, 6);
  EXPECT_EQ(part.as_binary(), "needle");
  EXPECT_EQ(part.as_binary().data(), whole.as_binary().data() + 1000);  // no copy
  EXPECT_EQ(part, term("needle"));
  EXPECT_EQ(std::hash<term>{}(part), std::hash<term>{}(term("needle")));
  EXPECT_EQ(whole.use_count(), 2u);  // the part keeps the bytes alive
  const term part_of_part = part.sub_binary(1, 3);
  EXPECT_EQ(part_of_part.as_binary(), "eed");
  EXPECT_EQ(whole.use_count(), 3u);  // it refers to the owner, not to `part`
  EXPECT_EQ(whole.sub_binary(0, whole.byte_size()).use_count(), 4u);  // the whole: a copy of the same term
  EXPECT_TRUE(whole.sub_binary(5, 0).as_binary().empty());
  EXPECT_THROW((void)whole.sub_binary(2000, 7), std::out_of_range);
  EXPECT_THROW((void)term(1).sub_binary(0, 0), bad_term_access);
  term survivor;
  {
    const term temp(std::string(100, 'q') + "z");
    survivor = temp.sub_binary(100, 1);
  }
  EXPECT_EQ(survivor.as_binary(), "z");  // outlives the binary it was cut from
  EXPECT_EQ(etf::encode(part), etf::encode(term("needle")));
}

TEST(Kinds, PortsDecodeCompareAndPrint) {
  // hd(erlang:ports()) in a fresh erl: #Port<0.0>.
  const auto encoded = with_node({131, 89}, {0, 0, 0, 0, 0, 0, 0, 0});
  const term p = etf::decode(encoded);
  EXPECT_EQ(p.kind(), term::kind::port);
  EXPECT_TRUE(p.is_port());
  EXPECT_FALSE(term(pid(0, 1, 0)).is_port());
  EXPECT_THROW((void)term(1).as_port(), bad_term_access);
  EXPECT_EQ(kind_name(term_kind::port), "port");
  EXPECT_EQ(port_id(3, 9).node(), 3u);
  EXPECT_EQ(port_id(3, 9).number(), 9u);
  EXPECT_EQ(p.as_port(), port_id(0, 0));
  EXPECT_EQ(p.to_string(), "#Port<0.0>");
  EXPECT_EQ(etf::encode(p), encoded);
  EXPECT_EQ(term(port_id(0, 5)).to_string(), "#Port<0.5>");
  // V4_PORT_EXT for numbers beyond 32 bits; a small one comes back as NEW_PORT_EXT, as erl does.
  const term big = port_id(0, 0x100000007ull);
  EXPECT_EQ(etf::encode(big), with_node({131, 120}, {0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0}));
  EXPECT_EQ(etf::decode(etf::encode(big)), big);
  EXPECT_EQ(etf::decode(with_node({131, 120}, {0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0})), term(port_id(0, 7)));
  // Order: reference < fun < port < pid.
  EXPECT_LT(term(ref(0, 1)), term::export_fun("m"_a, "f"_a, 1));
  EXPECT_LT(term::export_fun("m"_a, "f"_a, 1), p);
  EXPECT_LT(p, term(pid(0, 1, 0)));
  EXPECT_LT(term(port_id(0, 1)), term(port_id(0, 2)));
  EXPECT_NE(std::hash<term>{}(term(port_id(0, 1))), std::hash<term>{}(term(port_id(0, 2))));
}

TEST(Kinds, ExportedFuns) {
  const auto encoded = bytes({131, 113, 100, 0, 5, 'l', 'i', 's', 't', 's', 100, 0, 3, 'm', 'a', 'p', 97, 2});
  const term f = etf::decode(encoded);  // fun lists:map/2
  EXPECT_TRUE(f.is_fun());
  EXPECT_EQ(f.to_string(), "fun lists:map/2");
  EXPECT_THROW((void)term(1).as_fun(), bad_term_access);
  EXPECT_EQ(kind_name(term_kind::fun), "fun");
  EXPECT_EQ(f, term::export_fun("lists"_a, "map"_a, 2));
  EXPECT_EQ(etf::encode(f), encoded);
  const fun_info info = f.as_fun();
  EXPECT_TRUE(info.exported);
  EXPECT_EQ(info.module, "lists"_a);
  EXPECT_EQ(info.function, "map"_a);
  EXPECT_EQ(info.arity, 2u);
  // Order as in erl: fun lists:map/2 > fun lists:filter/2; by arity last.
  EXPECT_GT(f, term::export_fun("lists"_a, "filter"_a, 2));
  EXPECT_LT(term::export_fun("lists"_a, "map"_a, 1), f);
  EXPECT_EQ(term::export_fun("a b"_a, "c"_a, 1).to_string(), "fun 'a b':c/1");
  EXPECT_THROW(term::export_fun("m"_a, "f"_a, 256), std::invalid_argument);
}

// term_to_binary(fun() -> ok end) from an erl shell (#Fun<erl_eval.43.3316493>).
std::vector<std::byte> local_fun_bytes() {
  return bytes({131, 112, 0,   0,   0,   143, 0,   6,   83,  97,  170, 70,  21,  144, 209, 189, 241, 235, 98,  209,
                166, 235, 8,   0,   0,   0,   43,  0,   0,   0,   1,   100, 0,   8,   101, 114, 108, 95,  101, 118,
                97,  108, 97,  43,  98,  0,   50,  155, 13,  88,  100, 0,   13,  110, 111, 110, 111, 100, 101, 64,
                110, 111, 104, 111, 115, 116, 0,   0,   0,   9,   0,   0,   0,   0,   0,   0,   0,   0,   104, 6,
                97,  4,   106, 100, 0,   4,   110, 111, 110, 101, 100, 0,   4,   110, 111, 110, 101, 116, 0,   0,
                0,   0,   108, 0,   0,   0,   1,   104, 5,   100, 0,   6,   99,  108, 97,  117, 115, 101, 97,  4,
                106, 106, 108, 0,   0,   0,   1,   104, 3,   100, 0,   4,   97,  116, 111, 109, 97,  4,   100, 0,
                2,   111, 107, 106, 106});
}

TEST(Kinds, LocalFunsAreOpaqueAndByteExact) {
  const auto encoded = local_fun_bytes();
  const term f = etf::decode(encoded);
  EXPECT_TRUE(f.is_fun());
  EXPECT_EQ(f.to_string(), "#Fun<erl_eval.43.3316493>");
  const fun_info info = f.as_fun();
  EXPECT_FALSE(info.exported);
  EXPECT_EQ(info.module, "erl_eval"_a);
  EXPECT_EQ(info.arity, 0u);
  EXPECT_EQ(info.free_count, 1u);
  EXPECT_EQ(etf::encode(f), encoded);
  EXPECT_EQ(etf::encode(tuple(f, f)).size(), 3 + 2 * (encoded.size() - 1));
  EXPECT_EQ(etf::decode(etf::encode(f)), f);
  EXPECT_EQ(std::hash<term>{}(etf::decode(encoded)), std::hash<term>{}(f));
  EXPECT_LT(f, term::export_fun("a"_a, "b"_a, 0));  // local funs first, as in OTP 25
  // A changed captured variable makes a different fun.
  auto other = encoded;
  other[other.size() - 3] = std::byte('x');  // 'ok' -> 'xk' in the captured clause
  EXPECT_NE(etf::decode(other), f);
  // Size must match the contents.
  auto wrong = encoded;
  wrong.push_back(std::byte(106));
  wrong[4] = std::byte(144);
  EXPECT_THROW((void)etf::decode(wrong), etf::etf_error);
  auto truncated = encoded;
  truncated.resize(truncated.size() - 1);
  truncated[4] = std::byte(142);
  EXPECT_THROW((void)etf::decode(truncated), etf::etf_error);
}

TEST(Kinds, ReferencesFromARealNode) {
  // make_ref() in OTP 25: #Ref<0.1623555385.374603777.171110>, W2 has 32 bits.
  const auto encoded = with_node({131, 90, 0, 3}, {0, 0, 0, 0, 0, 2, 156, 102, 22, 84, 0, 1, 96, 197, 125, 57});
  const term r = etf::decode(encoded);
  EXPECT_EQ(r.to_string(), "#Ref<0.1623555385.374603777.171110>");
  EXPECT_FALSE(r.as_ref().is_compact());
  EXPECT_GT(r.use_count(), 0u);  // kept in a block
  EXPECT_EQ(etf::encode(r), encoded);
  const std::uint32_t words[] = {171110, 374603777, 1623555385};
  EXPECT_EQ(r, term(ref::from_words(0, words)));
  EXPECT_GT(r, term(ref(0, ~std::uint64_t(0))));  // beyond every 64-bit id
  // Five words (printed highest first, as erl prints #Ref<9035.0.4.3.2.1>).
  const std::uint32_t five[] = {1, 2, 3, 4, 0};
  const ref r5 = ref::from_words(0, five);
  EXPECT_EQ(r5.to_string(), "#Ref<0.0.4.3.2.1>");
  EXPECT_EQ(etf::decode(etf::encode(r5)), term(r5));
  EXPECT_EQ(etf::encode(r5)[3], std::byte(5));  // the word count is kept
  // Missing words count as zero, as in the BEAM.
  const std::uint32_t three[] = {1, 2, 3}, padded[] = {1, 2, 3, 0, 0};
  const ref r3 = ref::from_words(0, three), r3_padded = ref::from_words(0, padded);
  EXPECT_EQ(r3, r3_padded);
  EXPECT_NE(r3, r5);
  EXPECT_LT(r3, r5);
  EXPECT_EQ(std::hash<ref>{}(r3), std::hash<ref>{}(r3_padded));
  EXPECT_EQ(std::hash<term>{}(term(r3)), std::hash<term>{}(term(r3_padded)));
  EXPECT_EQ(term(r3), term(r3_padded));
  EXPECT_THROW(ref::from_words(0, {}), std::invalid_argument);
  EXPECT_TRUE(ref(5, ~std::uint64_t(0)).is_compact());
  EXPECT_EQ(ref(5, 1).word_count(), 3u);
  EXPECT_EQ(ref(5, 1).words()[0], 1u);
  EXPECT_EQ(r.as_ref().words()[2], 1623555385u);
  // Local refs stay in place.
  EXPECT_EQ(term(make_ref()).use_count(), 0u);
  std::unordered_set<term> set{r, term(r5), term(ref(0, 1))};
  EXPECT_EQ(set.count(etf::decode(encoded)), 1u);
}

TEST(Kinds, TermOrderOfEveryKind) {
  // number < atom < reference < fun < port < pid < tuple < map < nil < list < bitstring
  const term ordered[] = {term(1),
                          "a"_a,
                          term(ref(0, 1)),
                          term::export_fun("m"_a, "f"_a, 0),
                          term(port_id(0, 1)),
                          term(pid(0, 1, 0)),
                          tuple(),
                          map({}),
                          term::nil(),
                          list({1}),
                          term("")};
  for (std::size_t i = 0; i + 1 < std::size(ordered); ++i) {
    EXPECT_LT(ordered[i], ordered[i + 1]) << ordered[i] << " vs " << ordered[i + 1];
  }
}

TEST(Kinds, PrintsAsTildeW) {
  EXPECT_EQ(term("abc").to_string_w(), "<<97,98,99>>");
  EXPECT_EQ(term("abc").to_string(), "<<\"abc\">>");
  EXPECT_EQ(term(atom("\xCE\xB1\xCE\xB2")).to_string_w(), "'\\x{3B1}\\x{3B2}'");
  EXPECT_EQ(tuple(list({1, 2}), bits({0xFF}, 1), "ok"_a).to_string_w(), "{[1,2],<<1:1>>,ok}");
}

}  // namespace
}  // namespace athanor
