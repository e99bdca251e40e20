// athanor::parse_term: Erlang syntax in, terms out; and the round trip
// parse_term(t.to_string()) == t, checked on examples and, with rapidcheck, on random terms.
#include "athanor/term/parse.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "athanor/term/integer.h"

namespace athanor {
namespace {

using namespace athanor::literals;

// Expects parse_term(text) to throw parse_error at `offset` with `needle` in the message.
void expect_error(std::string_view text, const std::string& needle, std::size_t offset) {
  try {
    const term t = parse_term(text);
    ADD_FAILURE() << "parsed " << t << " from " << text << ", expected an error containing \"" << needle << "\"";
  } catch (const parse_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(e.offset(), offset) << e.what();
  }
}

TEST(Parse, Integers) {
  EXPECT_EQ(parse_term("42"), term(42));
  EXPECT_EQ(parse_term("-42"), term(-42));
  EXPECT_EQ(parse_term("- 42"), term(-42));
  EXPECT_EQ(parse_term("16#FF"), term(255));
  EXPECT_EQ(parse_term("-16#ff"), term(-255));
  EXPECT_EQ(parse_term("2#1010"), term(10));
  EXPECT_EQ(parse_term("36#zz"), term(1295));
  EXPECT_EQ(parse_term("1_000_000"), term(1000000));
  EXPECT_EQ(parse_term("$a"), term(97));
  EXPECT_EQ(parse_term("$\\n"), term(10));
  EXPECT_EQ(parse_term("$\\x{3B1}"), term(0x3B1));
  EXPECT_EQ(parse_term("$ "), term(32));
  EXPECT_EQ(parse_term("18446744073709551616"), integer_from_string("18446744073709551616"));
  EXPECT_EQ(parse_term("-16#10000000000000000"), integer_from_string("-18446744073709551616"));
  EXPECT_EQ(parse_term("9223372036854775807"), term(std::numeric_limits<std::int64_t>::max()));
  EXPECT_EQ(parse_term("-9223372036854775808"), term(std::numeric_limits<std::int64_t>::min()));
}

TEST(Parse, Floats) {
  EXPECT_EQ(parse_term("1.0"), term(1.0));
  EXPECT_EQ(parse_term("1.0e10"), term(1.0e10));
  EXPECT_EQ(parse_term("-2.5E-3"), term(-2.5e-3));
  EXPECT_EQ(parse_term("1.5e+2"), term(150.0));
  EXPECT_TRUE(std::signbit(parse_term("-0.0").as_double()));
  EXPECT_EQ(parse_term("1.0."), term(1.0));
  EXPECT_EQ(parse_term("1."), term(1));  // the '.' ends the term
  expect_error("1.0e400", "out of range", 0);
  expect_error("1.0e", "exponent", 3);
}

TEST(Parse, Atoms) {
  EXPECT_EQ(parse_term("ok"), term("ok"_a));
  EXPECT_EQ(parse_term("node@host"), term(atom("node@host")));
  EXPECT_EQ(parse_term("'hello world'"), term(atom("hello world")));
  EXPECT_EQ(parse_term("'EXIT'"), term("EXIT"_a));
  EXPECT_EQ(parse_term("'it\\'s'"), term(atom("it's")));
  EXPECT_EQ(parse_term("'a\\nb\\\\c\\101\\x42\\x{43}\\s'"), term(atom("a\nb\\cABC ")));
  EXPECT_EQ(parse_term("'\\x{3B1}'"), term(atom("\xCE\xB1")));
  EXPECT_EQ(parse_term("\xC3\xBCn"), term(atom("\xC3\xBCn")));  // Latin-1 letters need no quotes
  EXPECT_EQ(parse_term("true"), term(true));
  expect_error("Var", "a variable is not a term", 0);
  expect_error("_", "a variable is not a term", 0);
  expect_error("'open", "unterminated quoted atom", 0);
  parse_options safe;
  safe.existing_atoms_only = true;
  EXPECT_EQ(parse_term("ok", safe), term("ok"_a));
  EXPECT_THROW(parse_term("surely_no_such_atom_xyzzy_42", safe), parse_error);
  EXPECT_FALSE(atom::existing("surely_no_such_atom_xyzzy_42"));
}

TEST(Parse, StringsAndBinaries) {
  EXPECT_EQ(parse_term("\"abc\""), list({97, 98, 99}));
  EXPECT_EQ(parse_term("\"\""), term::nil());
  EXPECT_EQ(parse_term("\"ab\" \"c\""), list({97, 98, 99}));
  EXPECT_EQ(parse_term("\"\xCE\xB1\""), list({0x3B1}));
  EXPECT_EQ(parse_term("<<1,2,3>>"), term::binary({1, 2, 3}));
  EXPECT_EQ(parse_term("<<>>"), term(""));
  EXPECT_EQ(parse_term("<<\"text\">>"), term("text"));
  EXPECT_EQ(parse_term("<<\"\xCE\xB1\"/utf8>>"), term("\xCE\xB1"));
  EXPECT_EQ(parse_term("<<\"\xC3\xA9\">>"), term::binary({0xE9}));  // one byte per character
  EXPECT_EQ(parse_term("<<5,1:3>>"), term::bitstring(std::vector<std::byte>{std::byte(5), std::byte(0x20)}, 11));
  EXPECT_EQ(parse_term("<<256:16, 1:16/little, -1>>"), term::binary({1, 0, 1, 0, 255}));
  EXPECT_EQ(parse_term("<<1.5/float>>"), term::binary({0x3F, 0xF8, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(parse_term("<<$a, 945/utf8>>"), term("a\xCE\xB1"));
  EXPECT_EQ(parse_term("<<<<1,2>>/binary, 3>>"), term::binary({1, 2, 3}));
  EXPECT_EQ(parse_term("<< 1 , 2 >>"), term::binary({1, 2}));
  expect_error("<<1,2", "expected ','", 5);
  expect_error("<<x>>", "expected a binary segment", 2);
  expect_error("<<1/foo>>", "unsupported binary segment type 'foo'", 4);
}

TEST(Parse, Compounds) {
  EXPECT_EQ(parse_term("{ok, [1, 2 | 3], #{a => <<\"Alice\">>}}"),
            tuple("ok"_a, list({1, 2}, 3), map({{"a"_a, "Alice"}})));
  EXPECT_EQ(parse_term("{}"), tuple());
  EXPECT_EQ(parse_term("[]"), term::nil());
  EXPECT_EQ(parse_term("#{}"), map({}));
  EXPECT_EQ(parse_term("#{a => 1, a => 2}"), map({{"a"_a, 2}}));
  EXPECT_EQ(parse_term("[[]|[]]"), list({term::nil()}));
  EXPECT_EQ(parse_term("  {a,\n  % a comment\n  b}.  "), tuple("a"_a, "b"_a));
  expect_error("{a b}", "expected ',' or '}'", 3);
  expect_error("[1 2]", "expected ',', '|' or ']'", 3);
  expect_error("#{a 1}", "expected '=>'", 4);
  expect_error("{a}}", "unexpected '}' after the term", 3);
  expect_error("", "expected a term, found the end", 0);
  expect_error("1 + 2", "unexpected '+'", 2);
  parse_options shallow;
  shallow.max_depth = 10;
  EXPECT_THROW(parse_term(std::string(11, '[') + std::string(11, ']'), shallow), parse_error);
  EXPECT_NO_THROW(parse_term(std::string(9, '[') + std::string(9, ']'), shallow));
}

TEST(Parse, PidsRefsPortsFuns) {
  EXPECT_EQ(parse_term("<0.42.0>"), term(pid(0, 42, 0)));
  EXPECT_EQ(parse_term("< 3 . 4 . 5 >"), term(pid(3, 4, 5)));
  EXPECT_EQ(parse_term("#Ref<0.0.0.1>"), term(ref(0, 1)));
  EXPECT_EQ(parse_term("#Ref<0.1623555385.374603777.171110>").to_string(), "#Ref<0.1623555385.374603777.171110>");
  EXPECT_EQ(parse_term("#Ref<0.0.4.3.2.1>").as_ref().word_count(), 5u);
  EXPECT_EQ(parse_term("#Port<0.5>"), term(port_id(0, 5)));
  EXPECT_EQ(parse_term("fun lists:map/2"), term::export_fun("lists"_a, "map"_a, 2));
  EXPECT_EQ(parse_term("fun 'a b':'C'/0"), term::export_fun(atom("a b"), "C"_a, 0));
  EXPECT_EQ(parse_term("#Fun<lists.map.2>"), term::export_fun("lists"_a, "map"_a, 2));
  expect_error("#Fun<erl_eval.43.3316493>", "a local fun", 0);
  expect_error("<0.1>", "2 numbers between < and >", 0);
  expect_error("<0.268435456.0>", "pid does not fit", 0);
  expect_error("#Ref<0>", "1 numbers", 0);
  expect_error("#Foo<1>", "expected #{, #Ref<, #Port< or #Fun<", 0);
}

TEST(Parse, ReadsWhatErlangPrints) {
  // io:format("~p", [T]) output from OTP 25, line breaks and all.
  const char* printed =
      "#{name => <<\"Alice\">>,\n  tags => [admin,\"ops\"],\n  info => {1.0e10,-5,16#10,'EXIT'}}";
  EXPECT_EQ(parse_term(printed), map({{"name"_a, "Alice"},
                                      {"tags"_a, list({"admin"_a, list({'o', 'p', 's'})})},
                                      {"info"_a, tuple(1.0e10, -5, 16, "EXIT"_a)}}));
}

// ---------------------------------------------------------------- round trip on random terms

term random_atom() {
  static const std::vector<std::string> names = {"ok", "a b", "EXIT", "", "it's", "\\", "caf\xC3\xA9", "\xCE\xB1\xCE\xB2",
                                      "fun", "_x", "x@y", "\n\t", "\x7F", "\xC2\x80"};
  return term(atom(*rc::gen::elementOf(names)));
}

term random_term(int depth) {
  const int choice = *rc::gen::inRange(0, depth > 0 ? 17 : 11);
  switch (choice) {
    case 0: return term(*rc::gen::arbitrary<std::int64_t>());
    case 1: {
      const std::string digits = *rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::inRange('0', char('9' + 1))));
      return integer_from_string((*rc::gen::arbitrary<bool>() ? "-" : "") + digits + "123456789012345678901");
    }
    case 2: {
      double d = *rc::gen::arbitrary<double>();
      if (!std::isfinite(d)) d = 0.5;
      return term(d);
    }
    case 3: return random_atom();
    case 4: {
      const auto bytes = *rc::gen::arbitrary<std::vector<std::uint8_t>>();
      return term(std::string(bytes.begin(), bytes.end()));
    }
    case 5: return term(*rc::gen::element<std::string>("Alice", "caf\xC3\xA9", "a\"b\\c\n", "\xE2\x82\xAC", ""));
    case 6: {
      const std::size_t n = *rc::gen::inRange<std::size_t>(1, 40);
      std::vector<std::byte> b((n + 7) / 8);
      for (auto& x : b) x = std::byte(*rc::gen::arbitrary<std::uint8_t>());
      return term::bitstring(b, n);
    }
    case 7: return term(pid(*rc::gen::inRange(0u, 65536u), *rc::gen::inRange(0u, 1u << 28), *rc::gen::inRange(0u, 1u << 20)));
    case 8: {
      if (*rc::gen::arbitrary<bool>()) return term(ref(*rc::gen::inRange(0u, 100u), *rc::gen::arbitrary<std::uint64_t>()));
      auto words = *rc::gen::container<std::vector<std::uint32_t>>(std::size_t(*rc::gen::inRange(1, 6)),
                                                                    rc::gen::arbitrary<std::uint32_t>());
      return term(ref::from_words(*rc::gen::inRange(0u, 100u), words));
    }
    case 9: return term(port_id(*rc::gen::inRange(0u, 100u), *rc::gen::arbitrary<std::uint64_t>()));
    case 10: return term::export_fun(random_atom().as_atom(), random_atom().as_atom(), *rc::gen::inRange(0u, 256u));
    case 11:
    case 12: {
      std::vector<term> elements(*rc::gen::inRange<std::size_t>(0, 5));
      for (auto& e : elements) e = random_term(depth - 1);
      return tuple(elements);
    }
    case 13:
    case 14: {
      std::vector<term> elements(*rc::gen::inRange<std::size_t>(0, 5));
      for (auto& e : elements) e = random_term(depth - 1);
      term tail = *rc::gen::inRange(0, 4) == 0 ? random_term(depth - 1) : term::nil();
      return list(elements, tail);
    }
    case 15: {
      std::vector<std::pair<term, term>> entries(*rc::gen::inRange<std::size_t>(0, 4));
      for (auto& [k, v] : entries) k = random_term(depth - 1), v = random_term(depth - 1);
      return map(entries);
    }
    default: {  // a string: a list of code points
      const std::vector<term> chars{term('h'), term(0x3B1), term('\n'), term(0x1F600)};
      return list(chars);
    }
  }
}

RC_GTEST_PROP(ParseProperty, ParsesWhatToStringPrints, ()) {
  const term t = random_term(3);
  RC_ASSERT(parse_term(t.to_string()) == t);
  RC_ASSERT(parse_term(t.to_string_w()) == t);
}

}  // namespace
}  // namespace athanor
