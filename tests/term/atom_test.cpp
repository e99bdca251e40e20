#include "athanor/term/atom.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

namespace athanor {
namespace {

using namespace athanor::literals;

// Returns a name no earlier call returned, so that tests that need new atoms still get
// them when the test binary runs them again (--gtest_repeat).
std::string fresh_name(std::string_view prefix) {
  static std::atomic<int> calls{0};
  return fmt::format("{}_{}", prefix, calls.fetch_add(1));
}

// These run during static initialisation, possibly before atom.cpp's own statics are
// set up: the table must build itself on first use.
const std::string kShutdownNameAtStaticInit(atoms::shutdown.name());
const atom kAtomMadeAtStaticInit("made_during_static_initialisation");

TEST(Atom, WorksDuringStaticInitialisation) {
  EXPECT_EQ(kShutdownNameAtStaticInit, "shutdown");
  EXPECT_EQ(kAtomMadeAtStaticInit.name(), "made_during_static_initialisation");
  EXPECT_EQ(kAtomMadeAtStaticInit, atom("made_during_static_initialisation"));
}

TEST(Atom, SameNameGivesSameAtom) {
  atom a("same_name_test");
  atom b(std::string("same_name_test"));
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.index(), b.index());
}

TEST(Atom, DifferentNamesGiveDifferentAtoms) {
  atom a("different_one");
  atom b("different_two");
  EXPECT_NE(a, b);
  EXPECT_NE(a.index(), b.index());
}

TEST(Atom, NameReturnsTheName) {
  EXPECT_EQ(atom("hello world").name(), "hello world");
  EXPECT_EQ(atom("").name(), "");
  EXPECT_EQ(atom("\xC3\xA9t\xC3\xA9").name(), "\xC3\xA9t\xC3\xA9");  // "été"
  // Names are compared by content, not by the caller's pointer.
  std::string buffer = "temporary_name";
  atom a(buffer);
  buffer = "overwritten!!!";
  EXPECT_EQ(a.name(), "temporary_name");
}

TEST(Atom, WellKnownAtomsAreSeededInOrder) {
  const atom constants[] = {
      atoms::normal,  atoms::kill,         atoms::killed,      atoms::noproc,       atoms::shutdown,
      atoms::timeout, atoms::undefined,    atoms::ok,          atoms::error,        atoms::EXIT,
      atoms::DOWN,    atoms::process,      atoms::noconnection, atoms::badarg,      atoms::true_,
      atoms::false_,  atoms::nil,          atoms::infinity,    atoms::brutal_kill,  atoms::system_limit,
      atoms::noreply, atoms::reply,        atoms::stop,        atoms::ignore,       atoms::nonode_at_nohost,
  };
  ASSERT_EQ(std::size(constants), std::size(detail::kWellKnownAtomNames));
  for (std::uint32_t i = 0; i < std::size(constants); ++i) {
    EXPECT_EQ(constants[i].index(), i);
    EXPECT_EQ(constants[i].name(), detail::kWellKnownAtomNames[i]);
    EXPECT_EQ(atom(detail::kWellKnownAtomNames[i]), constants[i]);
  }
  EXPECT_EQ(atoms::true_.name(), "true");
  EXPECT_EQ(atoms::EXIT.name(), "EXIT");
}

TEST(Atom, WellKnownAtomsAreCompileTimeConstants) {
  static_assert(atoms::ok.index() == 7);
  static_assert(atoms::ok == atoms::ok);
  static_assert(atoms::ok != atoms::error);
  static_assert(atom() == atoms::undefined);
  constexpr atom chosen = atoms::shutdown;
  switch (chosen.index()) {
    case atoms::normal.index(): FAIL(); break;
    case atoms::shutdown.index(): SUCCEED(); break;
    default: FAIL();
  }
}

TEST(Atom, DefaultIsUndefined) {
  atom a;
  EXPECT_EQ(a, atoms::undefined);
  EXPECT_EQ(a.name(), "undefined");
}

TEST(Atom, IndexIsStableAcrossLookups) {
  atom a("stable_index_test");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(atom("stable_index_test").index(), a.index());
  EXPECT_LT(a.index(), atom::count());
}

TEST(Atom, CountGrowsByOneOnlyWhenANameIsNew) {
  const std::string name = fresh_name("count_test");
  const std::size_t before = atom::count();
  EXPECT_GE(before, std::size(detail::kWellKnownAtomNames));
  atom{name};
  EXPECT_EQ(atom::count(), before + 1);
  atom{name};
  atom("ok");
  EXPECT_EQ(atom::count(), before + 1);
}

TEST(Atom, ExistingFindsWithoutCreating) {
  const std::size_t before = atom::count();
  EXPECT_EQ(atom::existing("existing_test_never_made"), std::nullopt);
  EXPECT_EQ(atom::count(), before);
  EXPECT_EQ(atom::existing("ok"), atoms::ok);
  atom made("existing_test_made");
  EXPECT_EQ(atom::existing("existing_test_made"), made);
  EXPECT_EQ(atom::existing(std::string(300, 'x')), std::nullopt);  // too long to exist
  EXPECT_EQ(atom::existing("\xFF"), std::nullopt);                  // not UTF-8: cannot exist
}

TEST(Atom, LiteralOperatorInterns) {
  EXPECT_EQ("ok"_a, atoms::ok);
  EXPECT_EQ("literal_test"_a, atom("literal_test"));
  EXPECT_EQ(athanor::literals::operator""_a("EXIT", 4), atoms::EXIT);
}

TEST(Atom, NameMayHave255BytesButNotMore) {
  const std::string longest(atom::kMaxNameBytes, 'n');
  EXPECT_EQ(atom(longest).name(), longest);
  const std::size_t before = atom::count();
  EXPECT_THROW(atom(std::string(atom::kMaxNameBytes + 1, 'n')), std::invalid_argument);
  EXPECT_EQ(atom::count(), before);
}

TEST(Atom, NameMustBeValidUtf8) {
  const std::size_t before = atom::count();
  EXPECT_THROW(atom("\xFF"), std::invalid_argument);              // never valid
  EXPECT_THROW(atom("abc\xC3"), std::invalid_argument);           // truncated
  EXPECT_THROW(atom("\xC0\xAF"), std::invalid_argument);          // overlong '/'
  EXPECT_THROW(atom("\xED\xA0\x80"), std::invalid_argument);      // surrogate U+D800
  EXPECT_THROW(atom("\xF4\x90\x80\x80"), std::invalid_argument);  // above U+10FFFF
  EXPECT_EQ(atom::count(), before);
  EXPECT_NO_THROW(atom("\xF0\x9F\x98\x80"));  // U+1F600
  EXPECT_NO_THROW(atom(std::string_view("nul\0inside", 10)));
}

TEST(Atom, InvalidArgumentMessageSaysWhy) {
  try {
    atom(std::string(256, 'x'));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("at most 255 bytes"), std::string::npos) << e.what();
  }
}

// Erlang orders atoms alphabetically (by code point), not by creation order.
TEST(Atom, OrderIsAlphabeticalNotCreationOrder) {
  atom zebra("order_test_zebra");
  atom apple("order_test_apple");
  ASSERT_GT(apple.index(), zebra.index());
  EXPECT_LT(apple, zebra);
  EXPECT_GT(zebra, apple);
  EXPECT_EQ(apple <=> atom("order_test_apple"), std::strong_ordering::equal);
  EXPECT_LT(atoms::EXIT, "a"_a);                        // 'E' < 'a'
  EXPECT_LT("ab"_a, "abc"_a);                           // a prefix first
  EXPECT_LT("z"_a, atom("\xC3\xA9"));                   // 'z' < 'é' (U+E9)
  EXPECT_LT(atom("\xC3\xA9"), atom("\xD0\xB6"));        // 'é' < 'ж' (U+436): bytes compare unsigned
}

TEST(Atom, HashMatchesEquality) {
  std::hash<atom> hash;
  EXPECT_EQ(hash(atom("hash_test")), hash(atom("hash_test")));
  std::unordered_set<atom> set = {atoms::ok, atoms::error, "ok"_a, "hash_test"_a};
  EXPECT_EQ(set.size(), 3u);
  EXPECT_TRUE(set.contains(atom("hash_test")));
}

// Expected strings are what Erlang/OTP 25 prints with io:format("~tw", [Atom]) (checked
// with erl; ~tw rather than ~w only matters for characters above U+00FF, which ~w
// escapes as \x{...}).
TEST(Atom, ToStringQuotesOnlyWhenErlangDoes) {
  EXPECT_EQ(atoms::ok.to_string(), "ok");
  EXPECT_EQ(atoms::EXIT.to_string(), "'EXIT'");
  EXPECT_EQ(atom("hello world").to_string(), "'hello world'");
  EXPECT_EQ(atom("Ok").to_string(), "'Ok'");
  EXPECT_EQ(atom("").to_string(), "''");
  EXPECT_EQ(atom("a@b").to_string(), "a@b");
  EXPECT_EQ(atom("a_B9").to_string(), "a_B9");
  EXPECT_EQ(atom("_x").to_string(), "'_x'");
  EXPECT_EQ(atom("a.b").to_string(), "'a.b'");
  EXPECT_EQ(atom("a b").to_string(), "'a b'");
  EXPECT_EQ(atom(" ").to_string(), "' '");
  EXPECT_EQ(atoms::true_.to_string(), "true");
}

TEST(Atom, ToStringQuotesReservedWords) {
  for (const char* word : {"after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor",
                           "case", "catch", "cond", "div", "end", "fun", "if", "let", "not", "of", "or",
                           "orelse", "receive", "rem", "try", "when", "xor"}) {
    EXPECT_EQ(atom(word).to_string(), fmt::format("'{}'", word));
  }
  // Not reserved in OTP 25 (maybe/else are only with the maybe_expr feature).
  EXPECT_EQ(atom("maybe").to_string(), "maybe");
  EXPECT_EQ(atom("else").to_string(), "else");
}

TEST(Atom, ToStringEscapesLikeErlang) {
  EXPECT_EQ(atom("don't").to_string(), "'don\\'t'");
  EXPECT_EQ(atom("a\\b").to_string(), "'a\\\\b'");
  EXPECT_EQ(atom("\n").to_string(), "'\\n'");
  EXPECT_EQ(atom("\x1B").to_string(), "'\\e'");
  EXPECT_EQ(atom("\x7F").to_string(), "'\\d'");
  EXPECT_EQ(atom("\x07").to_string(), "'\\007'");
  EXPECT_EQ(atom("\xC2\x80").to_string(), "'\\200'");  // U+0080, a C1 control
  EXPECT_EQ(atom("\xC2\x9F").to_string(), "'\\237'");  // U+009F
}

TEST(Atom, ToStringUsesLatin1LettersAsErlangDoes) {
  EXPECT_EQ(atom("\xC3\xA9").to_string(), "\xC3\xA9");              // é: lowercase, unquoted
  EXPECT_EQ(atom("\xC3\x9F").to_string(), "\xC3\x9F");              // ß
  EXPECT_EQ(atom("x\xC3\xBF").to_string(), "x\xC3\xBF");            // xÿ
  EXPECT_EQ(atom("\xC3\x88").to_string(), "'\xC3\x88'");            // È: uppercase start
  EXPECT_EQ(atom("a\xC3\x88").to_string(), "a\xC3\x88");            // aÈ
  EXPECT_EQ(atom("a\xC3\x98").to_string(), "a\xC3\x98");            // aØ
  EXPECT_EQ(atom("a\xC3\x97").to_string(), "'a\xC3\x97'");          // a×: not a letter
  EXPECT_EQ(atom("\xC3\xB7x").to_string(), "'\xC3\xB7x'");          // ÷x
  EXPECT_EQ(atom("\xC2\xA0").to_string(), "'\xC2\xA0'");            // no-break space
  EXPECT_EQ(atom("\xD0\xB6").to_string(), "'\xD0\xB6'");            // ж: beyond Latin-1
  EXPECT_EQ(atom("a\xD0\xB6").to_string(), "'a\xD0\xB6'");
}

TEST(Atom, StreamAndFmtPrintTheErlangForm) {
  std::ostringstream out;
  out << atoms::EXIT << ' ' << atoms::ok;
  EXPECT_EQ(out.str(), "'EXIT' ok");
  EXPECT_EQ(fmt::format("{} {}", atoms::DOWN, atoms::normal), "'DOWN' normal");
  EXPECT_EQ(fmt::format("[{:>6}]", atoms::ok), "[    ok]");
}

TEST(Atom, ConcurrentInterningAgreesOnIndexes) {
  constexpr int kThreads = 8;
  constexpr int kNames = 5000;
  std::vector<std::string> names;
  const std::string prefix = fresh_name("concurrent_intern");
  for (int i = 0; i < kNames; ++i) names.push_back(fmt::format("{}_{}", prefix, i));
  const std::size_t before = atom::count();

  std::vector<std::vector<std::uint32_t>> seen(kThreads, std::vector<std::uint32_t>(kNames));
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int> order(kNames);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), std::mt19937(t));  // each thread its own fixed order
      start.arrive_and_wait();
      for (int i : order) seen[t][i] = atom(names[i]).index();
    });
  }
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(atom::count(), before + kNames);
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(seen[t], seen[0]);
  std::unordered_set<std::uint32_t> distinct(seen[0].begin(), seen[0].end());
  EXPECT_EQ(distinct.size(), std::size_t(kNames));
  for (int i = 0; i < kNames; ++i) EXPECT_EQ(atom(names[i]).name(), names[i]);
}

TEST(Atom, LookupsStayCorrectWhileTheTableGrows) {
  std::vector<atom> known;
  for (int i = 0; i < 100; ++i) known.emplace_back(fmt::format("growth_known_{}", i));
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      do {
        for (int i = 0; i < 100; ++i) {
          const std::string name = fmt::format("growth_known_{}", i);
          if (atom::existing(name) != known[i] || known[i].name() != name) ++wrong;
        }
      } while (!done.load());
    });
  }
  // Enough new atoms to make the hash table double several times.
  for (int i = 0; i < 40000; ++i) atom(fmt::format("growth_new_{}", i));
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(atom::existing("growth_new_39999")->name(), "growth_new_39999");
}

// Filling the table is irreversible, so it happens in a child process (a death test in
// "threadsafe" style re-runs only this test there). The child exits 0 only if every
// check passed, and prints what failed otherwise.
TEST(AtomDeathTest, TableFullThrowsAtomTableFull) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto fill_the_table = [] {
    auto fail = [](const char* what) {
      std::fprintf(stderr, "check failed: %s\n", what);
      std::_Exit(1);
    };
    const atom before_full("made_before_the_table_filled");
    char name[32] = "fill_";
    for (std::uint32_t i = 0; atom::count() < atom::kMaxAtoms; ++i) {
      const char* end = std::to_chars(name + 5, name + sizeof name, i).ptr;
      atom(std::string_view(name, end - name));
    }
    if (atom::count() != atom::kMaxAtoms) fail("count() is not kMaxAtoms");
    try {
      atom("one_too_many");
      fail("no exception");
    } catch (const atom_table_full& e) {
      if (std::string(e.what()).find("system_limit") == std::string::npos) fail("message lacks system_limit");
    } catch (...) {
      fail("wrong exception type");
    }
    const std::runtime_error* as_base = nullptr;
    try {
      atom("still_too_many");
    } catch (const std::runtime_error& e) {
      as_base = &e;
    }
    if (as_base == nullptr) fail("atom_table_full is not a std::runtime_error");
    // Existing atoms still work; nothing half-made is visible.
    if (atom("made_before_the_table_filled") != before_full) fail("existing atom not found");
    if (atom("ok") != atoms::ok) fail("well-known atom not found");
    if (atom::existing("one_too_many")) fail("the failed atom exists");
    if (atom::count() != atom::kMaxAtoms) fail("count changed");
    std::fprintf(stderr, "atom table full as expected\n");
    std::_Exit(0);
  };
  EXPECT_EXIT(fill_the_table(), testing::ExitedWithCode(0), "atom table full as expected");
}

}  // namespace
}  // namespace athanor
