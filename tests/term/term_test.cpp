#include "athanor/term/term.h"

#include "athanor/term/etf.h"
#include "athanor/term/integer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <pthread.h>
#include <limits>
#include <map>
#include <ranges>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

namespace athanor {
namespace {

using namespace athanor::literals;

// ---------------------------------------------------------------- construction and kinds

TEST(Term, IsTwoWords) { static_assert(sizeof(term) == 16); }

TEST(Term, DefaultIsTheAtomUndefined) {
  term t;
  EXPECT_TRUE(t.is_atom());
  EXPECT_EQ(t.as_atom(), atoms::undefined);
  EXPECT_EQ(t.kind(), term::kind::atom);
}

TEST(Term, FromAtom) {
  term t = atoms::ok;
  EXPECT_TRUE(t.is_atom());
  EXPECT_EQ(t.as_atom(), atoms::ok);
  EXPECT_TRUE(t.is_atom(atoms::ok));
  EXPECT_FALSE(t.is_atom(atoms::error));
  EXPECT_FALSE(term(1).is_atom(atoms::ok));
}

TEST(Term, FromBoolIsTheAtomTrueOrFalse) {
  EXPECT_EQ(term(true).as_atom(), atoms::true_);
  EXPECT_EQ(term(false).as_atom(), atoms::false_);
}

TEST(Term, FromEveryIntegerType) {
  EXPECT_EQ(term(std::int8_t{-8}).as_int(), -8);
  EXPECT_EQ(term(std::uint8_t{200}).as_int(), 200);
  EXPECT_EQ(term(short{-16}).as_int(), -16);
  EXPECT_EQ(term(std::uint16_t{65535}).as_int(), 65535);
  EXPECT_EQ(term(-32).as_int(), -32);
  EXPECT_EQ(term(4000000000u).as_int(), 4000000000);
  EXPECT_EQ(term(-64L).as_int(), -64);
  EXPECT_EQ(term(std::numeric_limits<std::int64_t>::min()).as_int(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(term(std::numeric_limits<std::int64_t>::max()).as_int(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(term(std::uint64_t(std::numeric_limits<std::int64_t>::max())).as_int(),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(term('a').as_int(), 97);  // like Erlang's $a
  EXPECT_TRUE(term(1).is_integer());
  EXPECT_TRUE(term(1).is_number());
}

TEST(Term, UnsignedAbove64SignedBitsIsABignum) {
  const term big(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(big.kind(), term::kind::bignum);
  EXPECT_TRUE(big.is_integer());
  EXPECT_FALSE(big.is_int64());
  EXPECT_EQ(big.to_string(), "18446744073709551615");
  EXPECT_THROW((void)big.as_int(), std::out_of_range);
  EXPECT_THROW((void)term("a"_a).as_int(), bad_term_access);
  EXPECT_EQ(term(std::uint64_t(1) << 63).to_string(), "9223372036854775808");
}

TEST(Term, FromFloatingPoint) {
  EXPECT_EQ(term(1.5).as_double(), 1.5);
  EXPECT_EQ(term(0.25f).as_double(), 0.25);
  EXPECT_TRUE(term(1.5).is_float());
  EXPECT_TRUE(term(1.5).is_number());
  EXPECT_FALSE(term(1.5).is_integer());
}

TEST(Term, NonFiniteFloatsThrow) {
  EXPECT_THROW((void)term(std::nan("")), std::invalid_argument);
  EXPECT_THROW((void)term(std::numeric_limits<double>::infinity()), std::invalid_argument);
  EXPECT_THROW((void)term(-std::numeric_limits<float>::infinity()), std::invalid_argument);
}

TEST(Term, FromPidAndRef) {
  const pid p(0, 12, 3);
  const ref r(1, 99);
  EXPECT_TRUE(term(p).is_pid());
  EXPECT_EQ(term(p).as_pid(), p);
  EXPECT_TRUE(term(r).is_reference());
  EXPECT_EQ(term(r).as_ref(), r);
}

TEST(Term, StringsBecomeBinaries) {
  const std::string s = "from std::string";
  const term a = std::string_view("from view");
  const term b = "from literal";
  const term c = s;
  for (const term* t : {&a, &b, &c}) EXPECT_TRUE(t->is_binary());
  EXPECT_EQ(a.as_binary(), "from view");
  EXPECT_EQ(b.as_binary(), "from literal");
  EXPECT_EQ(c.as_binary(), s);
  EXPECT_EQ(term(std::string_view("a\0b", 3)).byte_size(), 3u);
}

TEST(Term, BinaryFromBytes) {
  const std::byte raw[] = {std::byte{1}, std::byte{0}, std::byte{255}};
  const term a = term::binary(raw);
  const term b = term::binary({1, 0, 255});
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.byte_size(), 3u);
  ASSERT_EQ(a.as_bytes().size(), 3u);
  EXPECT_EQ(a.as_bytes()[2], std::byte{255});
  EXPECT_EQ(a.as_binary(), std::string_view("\x01\x00\xFF", 3));
}

TEST(Term, EmptyBinary) {
  const term empty = "";
  EXPECT_TRUE(empty.is_binary());
  EXPECT_EQ(empty.byte_size(), 0u);
  EXPECT_TRUE(empty.as_bytes().empty());
  EXPECT_EQ(empty, term::binary({}));
  EXPECT_EQ(empty.use_count(), 0u);  // no allocation for an empty binary
}

TEST(Term, NilIsTheEmptyList) {
  const term nil = term::nil();
  EXPECT_TRUE(nil.is_nil());
  EXPECT_TRUE(nil.is_list());
  EXPECT_FALSE(nil.is_cons());
  EXPECT_EQ(nil.kind(), term::kind::nil);
  EXPECT_EQ(nil.length(), 0u);
  EXPECT_EQ(list({}), nil);
}

TEST(Term, TupleFromArguments) {
  const term t = tuple(atoms::ok, 42, "text", 1.5);
  EXPECT_TRUE(t.is_tuple());
  ASSERT_EQ(t.tuple_size(), 4u);
  EXPECT_EQ(t.element(0), atoms::ok);
  EXPECT_EQ(t.element(1), 42);
  EXPECT_EQ(t.element(2).as_binary(), "text");
  EXPECT_EQ(t.element(3), 1.5);
  EXPECT_EQ(t.tuple_elements().size(), 4u);
  EXPECT_EQ(&t.tuple_elements()[1], &t.element(1));
}

TEST(Term, TupleFromSpanAndEmptyTuple) {
  const std::vector<term> parts = {1, 2, 3};
  const term t = tuple(parts);
  EXPECT_EQ(t, tuple(1, 2, 3));
  const term empty = tuple();
  EXPECT_TRUE(empty.is_tuple());
  EXPECT_EQ(empty.tuple_size(), 0u);
  EXPECT_EQ(empty, tuple(std::span<const term>()));
  EXPECT_EQ(tuple(tuple()).tuple_size(), 1u);
}

TEST(Term, ElementOutOfRangeThrows) {
  const term t = tuple(1, 2);
  EXPECT_THROW(t.element(2), std::out_of_range);
  EXPECT_THROW(tuple().element(0), std::out_of_range);
}

TEST(Term, ProperList) {
  const term l = list({1, 2, 3});
  EXPECT_TRUE(l.is_cons());
  EXPECT_TRUE(l.is_list());
  EXPECT_EQ(l.kind(), term::kind::list);
  EXPECT_EQ(l.head(), 1);
  EXPECT_EQ(l.tail(), list({2, 3}));
  EXPECT_EQ(l.tail().tail().tail(), term::nil());
  EXPECT_EQ(l.length(), 3u);
}

TEST(Term, ListFromSpanWithTailAndCons) {
  const std::vector<term> items = {1, 2};
  const term improper = list(items, 3);  // [1,2|3]
  EXPECT_EQ(improper, cons(1, cons(2, 3)));
  EXPECT_EQ(improper.tail().tail(), 3);
  EXPECT_EQ(list(items), list({1, 2}));
  EXPECT_EQ(cons(1, term::nil()), list({1}));
  EXPECT_THROW(improper.length(), bad_term_access);
}

TEST(Term, ListElementsIteratesAProperList) {
  static_assert(std::ranges::forward_range<term::list_view>);
  std::vector<std::int64_t> seen;
  for (const term& e : list({10, 20, 30}).list_elements()) seen.push_back(e.as_int());
  EXPECT_EQ(seen, (std::vector<std::int64_t>{10, 20, 30}));
  int count = 0;
  for ([[maybe_unused]] const term& e : term::nil().list_elements()) ++count;
  EXPECT_EQ(count, 0);
  // The view keeps its list alive, so iterating a temporary list is safe (the loop above
  // iterates list({10, 20, 30}), a temporary).
  const term l = list({"a"_a, "b"_a});
  auto it = l.list_elements().begin();
  EXPECT_EQ(it->as_atom(), "a"_a);
  auto before = it++;
  EXPECT_EQ(*before, "a"_a);
  EXPECT_EQ(*it, "b"_a);
  EXPECT_EQ(++it, l.list_elements().end());
}

TEST(Term, ListElementsThrowsAtAnImproperTail) {
  std::vector<std::int64_t> seen;
  const term improper = cons(1, cons(2, 3));
  EXPECT_THROW(
      {
        for (const term& e : improper.list_elements()) seen.push_back(e.as_int());
      },
      bad_term_access);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2}));
}

TEST(Term, MapLookup) {
  const term m = map({{"name"_a, "Alice"}, {"age"_a, 42}});
  EXPECT_TRUE(m.is_map());
  EXPECT_EQ(m.map_size(), 2u);
  ASSERT_NE(m.find("age"_a), nullptr);
  EXPECT_EQ(*m.find("age"_a), 42);
  EXPECT_EQ(m.find("name"_a)->as_binary(), "Alice");
  EXPECT_EQ(m.find("missing"_a), nullptr);
  EXPECT_EQ(m.find(42), nullptr);
}

TEST(Term, MapKeepsTheLastValueOfADuplicateKey) {
  const term m = map({{"a"_a, 1}, {"b"_a, 2}, {"a"_a, 3}});
  EXPECT_EQ(m.map_size(), 2u);
  EXPECT_EQ(*m.find("a"_a), 3);
}

// Erlang's map key order: term order, but every integer before every float.
TEST(Term, MapEntriesAreSortedInMapKeyOrder) {
  const term m = map({{"b"_a, 1}, {1.0, 2}, {"a"_a, 3}, {1, 4}, {2, 5}, {-1.5, 6}});
  const auto entries = m.map_entries();
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[0].first, 1);
  EXPECT_EQ(entries[1].first, 2);
  EXPECT_EQ(entries[2].first, -1.5);
  EXPECT_EQ(entries[3].first, 1.0);
  EXPECT_EQ(entries[4].first, "a"_a);
  EXPECT_EQ(entries[5].first, "b"_a);
  EXPECT_EQ(*m.find(-1.5), 6);
  EXPECT_EQ(*m.find(2), 5);
  // Nested keys follow the same rule: {2} before {1.5}.
  const term nested = map({{tuple(1.5), "f"_a}, {tuple(2), "i"_a}});
  EXPECT_EQ(nested.map_entries()[0].first, tuple(2));
  EXPECT_EQ(*nested.find(tuple(1.5)), "f"_a);
}

TEST(Term, MapKeysMatchExactly) {
  const term m = map({{1, "int"}, {2.0, "float"}});
  EXPECT_EQ(m.find(1)->as_binary(), "int");
  EXPECT_EQ(m.find(1.0), nullptr);
  EXPECT_EQ(m.find(2), nullptr);
  EXPECT_EQ(m.find(2.0)->as_binary(), "float");
}

TEST(Term, MapFromSpanAndEmptyMap) {
  const std::vector<std::pair<term, term>> entries = {{1, 2}, {3, 4}};
  EXPECT_EQ(map(entries), map({{3, 4}, {1, 2}}));
  const term empty = map({});
  EXPECT_TRUE(empty.is_map());
  EXPECT_EQ(empty.map_size(), 0u);
  EXPECT_EQ(empty.find(1), nullptr);
  EXPECT_TRUE(empty.map_entries().empty());
}

TEST(Term, PredicatesMatchKinds) {
  const term samples[] = {1, 1.5, atoms::ok, make_ref(), pid(0, 1, 0), tuple(1), map({{1, 2}}),
                          term::nil(), list({1}), "bin"};
  const term_kind kinds[] = {term::kind::integer, term::kind::float_, term::kind::atom, term::kind::reference,
                              term::kind::pid,     term::kind::tuple,  term::kind::map,  term::kind::nil,
                              term::kind::list,    term::kind::binary};
  for (std::size_t i = 0; i < std::size(samples); ++i) {
    const term& t = samples[i];
    SCOPED_TRACE(t.to_string());
    EXPECT_EQ(t.kind(), kinds[i]);
    EXPECT_EQ(t.is_integer(), kinds[i] == term::kind::integer);
    EXPECT_EQ(t.is_float(), kinds[i] == term::kind::float_);
    EXPECT_EQ(t.is_number(), kinds[i] == term::kind::integer || kinds[i] == term::kind::float_);
    EXPECT_EQ(t.is_atom(), kinds[i] == term::kind::atom);
    EXPECT_EQ(t.is_reference(), kinds[i] == term::kind::reference);
    EXPECT_EQ(t.is_pid(), kinds[i] == term::kind::pid);
    EXPECT_EQ(t.is_tuple(), kinds[i] == term::kind::tuple);
    EXPECT_EQ(t.is_map(), kinds[i] == term::kind::map);
    EXPECT_EQ(t.is_nil(), kinds[i] == term::kind::nil);
    EXPECT_EQ(t.is_cons(), kinds[i] == term::kind::list);
    EXPECT_EQ(t.is_list(), kinds[i] == term::kind::nil || kinds[i] == term::kind::list);
    EXPECT_EQ(t.is_binary(), kinds[i] == term::kind::binary);
  }
}

TEST(Term, KindNames) {
  EXPECT_EQ(kind_name(term::kind::integer), "integer");
  EXPECT_EQ(kind_name(term::kind::bignum), "bignum");
  EXPECT_EQ(kind_name(term::kind::float_), "float");
  EXPECT_EQ(kind_name(term::kind::atom), "atom");
  EXPECT_EQ(kind_name(term::kind::reference), "reference");
  EXPECT_EQ(kind_name(term::kind::pid), "pid");
  EXPECT_EQ(kind_name(term::kind::tuple), "tuple");
  EXPECT_EQ(kind_name(term::kind::map), "map");
  EXPECT_EQ(kind_name(term::kind::nil), "nil");
  EXPECT_EQ(kind_name(term::kind::list), "list");
  EXPECT_EQ(kind_name(term::kind::binary), "binary");
}

TEST(Term, ReadingTheWrongKindThrowsBadTermAccess) {
  const term number = 42;
  const term nil = term::nil();
  EXPECT_THROW(number.as_atom(), bad_term_access);
  EXPECT_THROW(term(atoms::ok).as_int(), bad_term_access);
  EXPECT_THROW(number.as_double(), bad_term_access);  // no silent int -> float
  EXPECT_THROW(term(1.0).as_int(), bad_term_access);
  EXPECT_THROW(number.as_pid(), bad_term_access);
  EXPECT_THROW(number.as_ref(), bad_term_access);
  EXPECT_THROW(number.as_binary(), bad_term_access);
  EXPECT_THROW(number.as_bytes(), bad_term_access);
  EXPECT_THROW(number.byte_size(), bad_term_access);
  EXPECT_THROW(number.tuple_size(), bad_term_access);
  EXPECT_THROW(list({1}).element(0), bad_term_access);
  EXPECT_THROW(number.tuple_elements(), bad_term_access);
  EXPECT_THROW(nil.head(), bad_term_access);  // hd([]) is badarg in Erlang
  EXPECT_THROW(nil.tail(), bad_term_access);
  EXPECT_THROW(tuple(1).head(), bad_term_access);
  EXPECT_THROW(number.length(), bad_term_access);
  EXPECT_THROW(number.list_elements(), bad_term_access);
  EXPECT_THROW(number.map_size(), bad_term_access);
  EXPECT_THROW(number.find(1), bad_term_access);
  EXPECT_THROW(number.map_entries(), bad_term_access);
  // A logic error: the caller should have checked kind() first.
  EXPECT_THROW(number.as_atom(), std::logic_error);
}

TEST(Term, BadTermAccessMessageNamesBothKindsAndTheValue) {
  try {
    term(atoms::ok).as_int();
    FAIL();
  } catch (const bad_term_access& e) {
    EXPECT_STREQ(e.what(), "athanor::term::as_int: expected integer, got atom ok");
  }
}

TEST(Term, BadTermAccessMessageAbbreviatesHugeTerms) {
  std::vector<term> many(100000, term(123456));
  try {
    list(many).as_atom();
    FAIL();
  } catch (const bad_term_access& e) {
    const std::string what = e.what();
    EXPECT_LT(what.size(), 200u);
    EXPECT_EQ(what.substr(what.size() - 3), "...");
  }
}

// ---------------------------------------------------------------- copying and sharing

TEST(Term, CopiesShareTheHeapBlock) {
  const term original = tuple(1, 2, 3);
  EXPECT_EQ(original.use_count(), 1u);
  {
    const term copy = original;
    EXPECT_EQ(original.use_count(), 2u);
    EXPECT_EQ(copy.tuple_elements().data(), original.tuple_elements().data());
    term assigned;
    assigned = copy;
    EXPECT_EQ(original.use_count(), 3u);
  }
  EXPECT_EQ(original.use_count(), 1u);
  const term text = "shared bytes";
  const term text_copy = text;
  EXPECT_EQ(text.as_binary().data(), text_copy.as_binary().data());
}

// unshared() is a deep copy: equal, sharing nothing, and the original's blocks untouched.
TEST(Term, UnsharedIsADeepCopyInOneBlock) {
  const term text = "a binary of some length";
  const term original = tuple(text, list({1, text.sub_binary(2, 6), 3.0}, "tail"), map({{"k", tuple()}, {1, list({})}}),
                              term::bitstring(std::as_bytes(std::span("\xF0", 1)), 4), ref::from_words(0, std::vector<std::uint32_t>{1, 2, 3, 4, 5}),
                              term::export_fun(atoms::ok, atoms::error, 1), integer_from_string("-98765432109876543210"),
                              "", map({}), pid(0, 7, 1), 42);
  const term copy = original.unshared();
  EXPECT_EQ(copy, original);
  EXPECT_EQ(copy.to_string(), original.to_string());
  EXPECT_EQ(original.use_count(), 1u) << "the original is not shared";
  EXPECT_EQ(text.use_count(), 3u) << "original and its sub-binary hold it; the copy does not";
  EXPECT_NE(copy.element(0).as_binary().data(), text.as_binary().data()) << "bytes copied";
  EXPECT_EQ(copy.use_count(), 1u);
  const term part = copy.element(1);
  EXPECT_EQ(copy.use_count(), 2u) << "the copy's parts share its one block";
  EXPECT_EQ(part.unshared().use_count(), 1u);
  EXPECT_EQ(term(5).unshared(), 5);
  EXPECT_EQ(tuple().unshared(), tuple());
  // Deep nesting, in tuples and in list heads: no recursion.
  term deep = term::nil();
  for (int i = 0; i < 100'000; ++i) deep = (i % 2 == 0) ? tuple(deep) : list({deep});
  const term deep_copy = deep.unshared();
  EXPECT_EQ(etf::encode(deep_copy), etf::encode(deep));  // the encoder walks without recursion; == would not
}

TEST(Term, ImmediatesHaveNoHeapBlock) {
  for (const term& t : {term(1), term(2.5), term(atoms::ok), term(make_ref()), term(pid(0, 1, 1)), term::nil(),
                        tuple(), map({}), term("")}) {
    EXPECT_EQ(t.use_count(), 0u) << t;
  }
}

TEST(Term, DestroyingAContainerReleasesItsChildren) {
  const term child = "child";
  {
    const term parent = tuple(child, list({child, child}), map({{child, child}}));
    EXPECT_EQ(child.use_count(), 6u);
  }
  EXPECT_EQ(child.use_count(), 1u);  // and ASan reports any block that was not freed
}

TEST(Term, MoveLeavesUndefinedAndTransfersTheBlock) {
  term source = tuple(1, 2);
  const auto* elements = source.tuple_elements().data();
  term target = std::move(source);
  EXPECT_EQ(source, atoms::undefined);  // NOLINT(bugprone-use-after-move): documented state
  EXPECT_EQ(target.tuple_elements().data(), elements);
  EXPECT_EQ(target.use_count(), 1u);
  term other = 5;
  other = std::move(target);
  EXPECT_EQ(other.tuple_elements().data(), elements);
  EXPECT_EQ(other.use_count(), 1u);
}

TEST(Term, SelfAssignmentIsSafe) {
  term t = list({1, 2});
  const term& alias = t;
  t = alias;
  EXPECT_EQ(t, list({1, 2}));
  EXPECT_EQ(t.use_count(), 1u);
  term& same = t;  // a self-move through a reference, as generic code does it
  t = std::move(same);
  EXPECT_EQ(t.use_count() <= 1u, true);
}

TEST(Term, SwapExchangesValues) {
  term a = tuple(1);
  term b = "b";
  swap(a, b);
  EXPECT_EQ(a, "b");
  EXPECT_EQ(b, tuple(1));
  a.swap(b);
  EXPECT_EQ(a, tuple(1));
}

// Runs `body` on a thread with a 512 KiB stack, so that any recursion proportional to a
// structure's length fails deterministically (as a crash) instead of passing by luck on
// an 8 MiB main stack.
void run_on_small_stack(void (*body)(void*), void* argument) {
  struct call {
    void (*body)(void*);
    void* argument;
  } c{body, argument};
  pthread_attr_t attributes;
  ASSERT_EQ(pthread_attr_init(&attributes), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attributes, 512 * 1024), 0);
  pthread_t thread;
  auto trampoline = [](void* p) -> void* {
    auto* c = static_cast<call*>(p);
    c->body(c->argument);
    return nullptr;
  };
  ASSERT_EQ(pthread_create(&thread, &attributes, trampoline, &c), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attributes);
}

TEST(Term, LongListsAndDeepTuplesFreeCompareAndHashWithoutDeepRecursion) {
  constexpr int kLength = 200'000;
  struct work {
    term a = term::nil(), b = term::nil(), deep = 0;
    std::size_t length = 0;
    bool exact = false, arithmetic = false, ordered_equal = false, hashes_match = false, deep_equal = false;
    std::string printed;
  } w;
  for (int i = 0; i < kLength; ++i) {
    w.a = cons(i, std::move(w.a));
    w.b = cons(i, std::move(w.b));
    w.deep = tuple(i, std::move(w.deep));  // {N, {N-1, ...}}: the nesting is in the last element
  }
  run_on_small_stack(
      [](void* p) {
        auto& w = *static_cast<work*>(p);
        w.length = w.a.length();
        w.exact = w.a == w.b;
        w.arithmetic = equal(w.a, w.b);
        w.ordered_equal = compare(w.a, w.b) == 0;
        w.hashes_match = std::hash<term>{}(w.a) == std::hash<term>{}(w.b);
        w.deep_equal = compare(w.deep, tuple(kLength - 1, w.deep.element(1))) == 0 && std::hash<term>{}(w.deep) != 0;
        w.printed = w.a.to_string().substr(0, 15);
        w.a = term();  // frees 200,000 list cells
        w.b = term();
        w.deep = term();  // frees 200,000 nested tuples
      },
      &w);
  EXPECT_EQ(w.length, std::size_t(kLength));
  EXPECT_TRUE(w.exact);
  EXPECT_TRUE(w.arithmetic);
  EXPECT_TRUE(w.ordered_equal);
  EXPECT_TRUE(w.hashes_match);
  EXPECT_TRUE(w.deep_equal);
  EXPECT_EQ(w.printed, "[199999,199998,");
}

// Freeing walks the dead blocks without recursion, so nesting through list heads, first
// tuple elements or map values (not just list tails) frees on a small stack too.
TEST(Term, DeeplyNestedTermsOfEveryShapeFreeWithoutRecursion) {
  constexpr int kDepth = 200'000;
  struct work {
    term heads = term::nil(), first_elements = 0, map_values = 0;
  } w;
  for (int i = 0; i < kDepth; ++i) {
    w.heads = cons(std::move(w.heads), term::nil());                 // [[[...]]]
    w.first_elements = tuple(std::move(w.first_elements), i);        // {{{...}, 1}, 2}
    w.map_values = map({{1, std::move(w.map_values)}, {2, "x"}});  // #{1 => #{1 => ...}, 2 => <<"x">>}
  }
  run_on_small_stack(
      [](void* p) {
        auto& w = *static_cast<work*>(p);
        w.heads = term();
        w.first_elements = term();
        w.map_values = term();
      },
      &w);
  EXPECT_EQ(w.heads, atoms::undefined);
}

TEST(Term, FreeingStopsAtSharedParts) {
  std::vector<term> items;
  for (int i = 0; i < 1000; ++i) items.push_back(tuple(i, std::to_string(i)));
  term whole = list(items);
  term middle = whole;
  for (int i = 0; i < 500; ++i) middle = middle.tail();
  const term kept_item = items[700];
  items.clear();
  whole = term();  // frees the first 500 cells only
  EXPECT_EQ(middle.length(), 500u);
  EXPECT_EQ(middle.head(), tuple(500, "500"));
  EXPECT_EQ(kept_item.use_count(), 2u);  // here and in `middle`
  middle = term();
  EXPECT_EQ(kept_item.use_count(), 1u);
  EXPECT_EQ(kept_item.element(1).as_binary(), "700");
}

TEST(Term, CopiesFromManyThreadsKeepTheCountRight) {
  const term shared = tuple("payload", list({1, 2, 3}));
  constexpr int kThreads = 8;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      std::vector<term> copies;
      for (int i = 0; i < 20000; ++i) {
        copies.push_back(shared);
        if (copies.size() > 64) copies.clear();
      }
      EXPECT_EQ(shared.element(0).as_binary(), "payload");
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(shared.use_count(), 1u);
}

// ---------------------------------------------------------------- equality and order

// The order of kinds, from the Erlang reference manual ("Term Comparisons"):
//   number < atom < reference < fun < port < pid < tuple < map < nil < list < bit string
// (funs and ports do not exist in Athanor yet). One test per adjacent pair.
TEST(TermOrder, RuleNumberLessThanAtom) { EXPECT_LT(term(1e300), term(""_a)); }
TEST(TermOrder, RuleAtomLessThanReference) { EXPECT_LT(term("zzz"_a), term(ref(0, 0))); }
TEST(TermOrder, RuleReferenceLessThanPid) { EXPECT_LT(term(ref(99, UINT64_MAX)), term(pid())); }
TEST(TermOrder, RulePidLessThanTuple) { EXPECT_LT(term(pid(99, 1, 1)), tuple()); }
TEST(TermOrder, RuleTupleLessThanMap) { EXPECT_LT(tuple(1, 2, 3, 4, 5), map({})); }
TEST(TermOrder, RuleMapLessThanNil) { EXPECT_LT(map({{1, 2}, {3, 4}}), term::nil()); }
TEST(TermOrder, RuleNilLessThanList) { EXPECT_LT(term::nil(), list({0})); }
TEST(TermOrder, RuleListLessThanBitString) { EXPECT_LT(list({"zzz"}), term("")); }

// Erlang's lists:sort/1 of the same terms gives
//   [0.5,1.0,1,2,a,#Ref<...>,<0.9.0>,{},#{},[],[a],<<>>]
// (1.0 and 1 are equal to Erlang's sort, which is stable; our strong order puts 1 first).
TEST(TermOrder, SortsAMixOfKindsAsErlangDoes) {
  std::vector<term> terms = {1.0, 1, term::nil(), list({"a"_a}), "", tuple(), map({}), pid(0, 9, 0),
                             make_ref(), "a"_a, 2, 0.5};
  std::sort(terms.begin(), terms.end());
  std::string printed;
  for (const term& t : terms) printed += (t.is_reference() ? std::string("#Ref") : t.to_string()) + " ";
  EXPECT_EQ(printed, "0.5 1 1.0 2 a #Ref <0.9.0> {} #{} [] [a] <<>> ");
}

// Manual: "When comparing an integer to a float, the term with the lesser precision is
// converted into the type of the other term" — i.e. by value: 1 < 2.4, 3 > 2.99999, 5 == 5.0.
TEST(TermOrder, RuleIntegersAndFloatsCompareByValue) {
  EXPECT_LT(term(1), term(2.4));
  EXPECT_GT(term(3), term(2.99999));
  EXPECT_LT(term(-3.5), term(-3));
  EXPECT_TRUE(equal(5, 5.0));
  EXPECT_FALSE(equal(5, 5.5));
}

// Checked with erl: 9007199254740993 == 9007199254740992.0 is false and > is true; the
// comparison is exact even where a double cannot hold the integer.
TEST(TermOrder, RuleIntegerFloatComparisonIsExact) {
  const std::int64_t two53_plus_1 = (std::int64_t(1) << 53) + 1;
  EXPECT_FALSE(equal(two53_plus_1, 9007199254740992.0));
  EXPECT_GT(term(two53_plus_1), term(9007199254740992.0));
  const std::int64_t max = std::numeric_limits<std::int64_t>::max();
  EXPECT_LT(term(max), term(9223372036854775808.0));  // 2^63 as a double
  EXPECT_GT(term(std::numeric_limits<std::int64_t>::min()), term(-1e19));
  EXPECT_TRUE(equal(std::numeric_limits<std::int64_t>::min(), -9223372036854775808.0));
  EXPECT_LT(term(2), term(2.0000000000000004));
  EXPECT_GT(term(-2), term(-2.0000000000000004));
}

// =:= (operator==) tells 1 and 1.0 apart; == (equal) does not. For a strong order, the
// integer comes first when the values are equal, as in Erlang's map key order.
TEST(TermOrder, RuleExactEqualityTellsIntegersFromFloats) {
  EXPECT_NE(term(1), term(1.0));
  EXPECT_TRUE(equal(1, 1.0));
  EXPECT_LT(term(1), term(1.0));
  EXPECT_GT(term(1.0), term(1));
  EXPECT_LT(term(1.0), term(2));
}

// The strong order only breaks ties between terms Erlang calls equal as a whole; found by
// a randomised cross-check against erl: [0,1] < [0.0|{}] is false (0 == 0.0, then
// [1] > {}), and [1.0] < [1,[]] is true.
TEST(TermOrder, RuleNumbersEqualInValueLeaveTheDecisionToLaterElements) {
  EXPECT_GT(list({0, 1}), cons(0.0, tuple()));
  EXPECT_LT(list({1.0}), list({1, term::nil()}));
  EXPECT_LT(tuple(1.0, 1), tuple(1, 2));
  EXPECT_LT(tuple(1, 2.0), tuple(1.0, 2));  // otherwise equal: the first difference breaks the tie
  EXPECT_LT(map({{"a"_a, 1.0}, {"b"_a, 1}}), map({{"a"_a, 1}, {"b"_a, 2}}));
}

// OTP 27 made 0.0 =:= -0.0 false (they were equal before); 0.0 == -0.0 stays true.
TEST(TermOrder, RuleNegativeZeroIsExactlyDifferentButArithmeticallyEqual) {
  EXPECT_NE(term(0.0), term(-0.0));
  EXPECT_TRUE(equal(0.0, -0.0));
  EXPECT_LT(term(-0.0), term(0.0));
  EXPECT_TRUE(equal(0, -0.0));
}

TEST(TermOrder, RuleAtomsCompareByNameNotCreationOrder) {
  const term later = "aaa_term_order"_a;  // created after 'ok' yet sorts before it
  EXPECT_LT(later, term(atoms::ok));
  EXPECT_LT(term(atoms::DOWN), term(atoms::EXIT));
}

// Manual: "Tuples are ordered by size, two tuples with the same size are compared element
// by element." erl: {1,2} < {3} is false.
TEST(TermOrder, RuleTuplesBySizeThenElements) {
  EXPECT_GT(tuple(1, 2), tuple(3));
  EXPECT_LT(tuple(1, 2), tuple(1, 3));
  EXPECT_LT(tuple(1, 2, "a"_a), tuple(1, 2, "b"_a));
  EXPECT_LT(tuple(), tuple(0));
}

// Manual: "Maps are ordered by size, two maps with the same size are compared by keys in
// ascending term order and then by values in key order." erl:
// #{a => 2, b => 1} < #{a => 1, c => 1} is true (keys decide before any value).
TEST(TermOrder, RuleMapsBySizeThenKeysThenValues) {
  EXPECT_LT(map({{"z"_a, 1}}), map({{"a"_a, 1}, {"b"_a, 1}}));
  EXPECT_LT(map({{"a"_a, 2}, {"b"_a, 1}}), map({{"a"_a, 1}, {"c"_a, 1}}));
  EXPECT_LT(map({{"a"_a, 2}}), map({{"b"_a, 1}}));
  EXPECT_LT(map({{"a"_a, 1}, {"b"_a, 1}}), map({{"a"_a, 1}, {"b"_a, 2}}));
  EXPECT_LT(map({{"a"_a, 1}, {"b"_a, 2}}), map({{"a"_a, 2}, {"b"_a, 1}}));
}

// Manual: "In maps key order integers types are considered less than floats types."
// erl: #{1 => a} < #{1.0 => a} is true; #{1 => a} == #{1.0 => a} is false, but
// #{a => 1} == #{a => 1.0} is true (values compare arithmetically).
// erl: #{2 => a} < #{1.5 => a} is true: in map key order the integer comes first
// whatever its value.
TEST(TermOrder, RuleMapKeysOrderIntegersBeforeFloats) {
  EXPECT_LT(map({{1, "a"_a}}), map({{1.0, "a"_a}}));
  EXPECT_LT(map({{2, "a"_a}}), map({{1.5, "a"_a}}));
  EXPECT_LT(map({{tuple(2), "a"_a}}), map({{tuple(1.5), "a"_a}}));
  EXPECT_LT(term(1.5), term(2));  // outside map keys, by value as usual
  EXPECT_FALSE(equal(map({{1, "a"_a}}), map({{1.0, "a"_a}})));
  EXPECT_TRUE(equal(map({{"a"_a, 1}}), map({{"a"_a, 1.0}})));
  EXPECT_NE(map({{"a"_a, 1}}), map({{"a"_a, 1.0}}));
}

// Manual: "Lists are compared element by element." A shorter prefix comes first ([] is
// less than any list cell), and an improper tail compares as a term: [1|2] < [1,2].
TEST(TermOrder, RuleListsElementByElement) {
  EXPECT_LT(list({1, 2}), list({1, 3}));
  EXPECT_LT(list({1, 2}), list({1, 2, 3}));
  EXPECT_GT(list({2}), list({1, 2, 3}));  // not by length: 2 > 1 decides
  EXPECT_LT(cons(1, 2), list({1, 2}));
  EXPECT_LT(cons(1, 2), cons(1, 3));
  EXPECT_GT(list({1, 2, 3}), list({1, 2}));
}

// Bit strings compare byte by byte (unsigned), a prefix first. erl: <<1,2>> < <<1,2,3>>
// and <<2>> > <<1,2,3>>.
TEST(TermOrder, RuleBinariesByteByByte) {
  EXPECT_LT(term::binary({1, 2}), term::binary({1, 2, 3}));
  EXPECT_GT(term::binary({2}), term::binary({1, 2, 3}));
  EXPECT_GT(term::binary({255}), term::binary({1}));
  EXPECT_LT(term(""), term::binary({0}));
}

// erl: list_to_pid("<0.100.0>") < list_to_pid("<0.99.1>") is true: the serial (pid's
// generation) weighs more than the index.
TEST(TermOrder, PidsOrderBySerialBeforeIndexAsErlang) {
  EXPECT_LT(term(pid(0, 100, 0)), term(pid(0, 99, 1)));
  EXPECT_GT(term(pid(0, 100, 0)), term(pid(0, 99, 0)));
}

TEST(TermOrder, PidsAndReferencesUseTheirOwnOrder) {
  EXPECT_LT(term(ref(0, 5)), term(ref(0, 6)));
  EXPECT_LT(term(ref(0, 6)), term(ref(1, 0)));
  EXPECT_EQ(compare(term(pid(0, 3, 1)), term(pid(0, 3, 1))), std::strong_ordering::equal);
  EXPECT_EQ(compare(pid(0, 4, 0), pid(0, 3, 1)), pid(0, 4, 0) <=> pid(0, 3, 1));
}

TEST(TermOrder, IsAConsistentStrongOrder) {
  const std::vector<term> terms = {
      0,        1,           1.0,          -0.0,          0.0,         2.5,        "a"_a,       "b"_a,
      ref(0, 1), pid(0, 1, 0), tuple(),     tuple(1),      tuple(1.0),  map({}),    map({{1, 2}}), map({{1.0, 2}}),
      term::nil(), list({1}),  list({1.0}), cons(1, 2),    "",          "a",        "b",         term::binary({0})};
  for (const term& a : terms) {
    for (const term& b : terms) {
      SCOPED_TRACE(a.to_string() + " vs " + b.to_string());
      const auto ab = compare(a, b);
      EXPECT_EQ(ab == 0, a == b);
      EXPECT_EQ(compare(b, a), 0 <=> ab);
      EXPECT_EQ(a < b, ab < 0);
      EXPECT_EQ(a <=> b, ab);
      for (const term& c : terms) {
        if (ab < 0 && compare(b, c) < 0) {
          EXPECT_TRUE(compare(a, c) < 0) << c;
        }
      }
    }
  }
}

TEST(TermOrder, WorksAsAStdMapKey) {
  std::map<term, int> m;
  m[list({1})] = 1;
  m["ok"_a] = 2;
  m[3] = 3;
  m[tuple("x"_a)] = 4;
  m["ok"_a] = 5;
  ASSERT_EQ(m.size(), 4u);
  std::vector<int> order;
  for (const auto& [key, value] : m) order.push_back(value);
  EXPECT_EQ(order, (std::vector<int>{3, 5, 4, 1}));
}

TEST(TermEquality, ExactEqualityIsStructural) {
  EXPECT_EQ(tuple(atoms::ok, list({1, "x"})), tuple(atoms::ok, list({1, "x"})));
  EXPECT_NE(tuple(atoms::ok, list({1, "x"})), tuple(atoms::ok, list({1, "y"})));
  EXPECT_NE(tuple(1), list({1}));
  EXPECT_EQ(term(atoms::ok), atoms::ok);
  EXPECT_EQ(term(5), 5);
  EXPECT_EQ("text", term("text"));
  EXPECT_NE(term("ok"), term(atoms::ok));  // a binary is not an atom
}

TEST(TermEquality, ArithmeticEqualityReachesInsideContainers) {
  EXPECT_TRUE(equal(tuple(1, list({2, 3})), tuple(1.0, list({2.0, 3}))));
  EXPECT_FALSE(equal(tuple(1, 2), tuple(1, 2, 3)));
  EXPECT_TRUE(equal(cons(1, 2), cons(1.0, 2.0)));
  EXPECT_FALSE(equal("a"_a, "b"_a));
  EXPECT_TRUE(athanor::equal(term("x"), term("x")));  // also callable qualified
}

// ---------------------------------------------------------------- hashing

TEST(TermHash, EqualTermsHashAlike) {
  std::hash<term> hash;
  auto build = [] {
    return std::vector<term>{1, 2.5, -0.0, "ok"_a, ref(1, 2), pid(0, 5, 1), tuple(1, "a"), map({{"k"_a, list({1})}}),
                             term::nil(), cons(1, 2), "bytes", tuple(), map({}), ""};
  };
  const std::vector<term> a = build(), b = build();
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i], b[i]);
    EXPECT_EQ(hash(a[i]), hash(b[i])) << a[i];
  }
}

TEST(TermHash, WorksInUnorderedContainers) {
  std::unordered_map<term, std::string> m;
  m[tuple("user"_a, 42)] = "alice";
  m[1] = "int";
  m[1.0] = "float";  // a different key: == is exact
  m["1"] = "binary";
  EXPECT_EQ(m.size(), 4u);
  EXPECT_EQ(m.at(tuple("user"_a, 42)), "alice");
  EXPECT_EQ(m.at(1.0), "float");
  std::unordered_set<term> set;
  for (int i = 0; i < 1000; ++i) set.insert(list({i, i + 1}));
  for (int i = 0; i < 1000; ++i) set.insert(list({i, i + 1}));
  EXPECT_EQ(set.size(), 1000u);
}

// ---------------------------------------------------------------- printing

// The expected strings below are Erlang/OTP 25's own output for the same terms, from
// erl -noshell -eval 'io:format("~w~n", [T]), halt().' — except binaries, which follow
// io:format("~tp") (text as <<"Alice">>; ~w always prints bytes, <<65,108,...>>).
TEST(TermPrint, MixedTermAsErlangPrintsIt) {
  const term t = tuple(atoms::ok, map({{"name"_a, "Alice"}}), 1.0, cons(1, 2), atoms::EXIT);
  EXPECT_EQ(t.to_string(), "{ok,#{name => <<\"Alice\">>},1.0,[1|2],'EXIT'}");
}

TEST(TermPrint, FloatsAsErlangPrintsThem) {
  const std::pair<double, const char*> cases[] = {
      {1.0, "1.0"},
      {0.1, "0.1"},
      {1.0e10, "1.0e10"},
      {100.0, "100.0"},
      {1000.0, "1.0e3"},
      {1.0e-5, "1.0e-5"},
      {0.001, "0.001"},
      {0.0001, "0.0001"},
      {123456.789, "123456.789"},
      {1.0e15, "1.0e15"},
      {1.5e300, "1.5e300"},
      {-0.0, "-0.0"},
      {0.0, "0.0"},
      {2.0e-323, "2.0e-323"},
      {5.0e-324, "5.0e-324"},
      {1.7976931348623157e308, "1.7976931348623157e308"},
      {0.30000000000000004, "0.30000000000000004"},
      {12345678901234567890.0, "1.2345678901234567e19"},
      {1.0e22, "1.0e22"},
      {123.0e20, "1.23e22"},
      {-2.5, "-2.5"},
      {12340.0, "12340.0"},
      {123400.0, "1.234e5"},
      {12345678900.0, "12345678900.0"},
      {0.001234, "0.001234"},
      {0.0001234, "1.234e-4"},
      {-218470626061754140.0, "-2.1847062606175414e17"},
      {9007199254740990.0, "9007199254740990.0"},
      {9007199254740992.0, "9.007199254740992e15"},  // 2^53: whole numbers from here on are scientific
      {9007199254740994.0, "9.007199254740994e15"},
  };
  for (const auto& [value, expected] : cases) EXPECT_EQ(term(value).to_string(), expected) << value;
  EXPECT_EQ(list({1.0, 0.1, 1.0e10}).to_string(), "[1.0,0.1,1.0e10]");
}

TEST(TermPrint, IntegersAtomsPidsAndRefs) {
  EXPECT_EQ(term(-5).to_string(), "-5");
  EXPECT_EQ(term(std::numeric_limits<std::int64_t>::min()).to_string(), "-9223372036854775808");
  EXPECT_EQ(term("hello world"_a).to_string(), "'hello world'");
  EXPECT_EQ(term(atoms::ok).to_string(), "ok");
  EXPECT_EQ(term(pid(0, 12, 0)).to_string(), "<0.12.0>");
  EXPECT_EQ(term(ref(0, 1)).to_string(), "#Ref<0.0.0.1>");
}

TEST(TermPrint, PidsAndRefsFormatWithFmtAndStreamsAsErlangPrintsThem) {
  EXPECT_EQ(fmt::format("{} {}", pid(0, 12, 3), ref(0, 1)), "<0.12.3> #Ref<0.0.0.1>");
  std::ostringstream out;
  out << pid(1, 2, 3);
  EXPECT_EQ(out.str(), "<1.2.3>");
}

TEST(TermPrint, ContainersAsErlangPrintsThem) {
  EXPECT_EQ(list({97, 98}).to_string(), "[97,98]");  // ~w never guesses strings in lists
  EXPECT_EQ(term::nil().to_string(), "[]");
  EXPECT_EQ(tuple().to_string(), "{}");
  EXPECT_EQ(map({}).to_string(), "#{}");
  EXPECT_EQ(tuple(list({1, 2}, 3), list({term::nil()}), list({tuple()})).to_string(), "{[1,2|3],[[]],[{}]}");
  EXPECT_EQ(map({{"a"_a, 1}, {"b"_a, 2}, {1, "x"_a}, {1.0, "y"_a}}).to_string(), "#{1 => x,1.0 => y,a => 1,b => 2}");
  EXPECT_EQ(map({{2, "a"_a}, {1.5, "b"_a}}).to_string(), "#{2 => a,1.5 => b}");
  EXPECT_EQ(map({{"k", list({1})}}).to_string(), "#{<<\"k\">> => [1]}");
  EXPECT_EQ(tuple(tuple(tuple())).to_string(), "{{{}}}");
}

// Binaries follow io:format("~tp") with the Unicode printable range (erl +pc unicode):
// these strings are erl's output. Bytes that are not valid printable UTF-8 print as
// numbers (where ~tp would fall back to Latin-1 text: <<200>> would be <<"È">>).
TEST(TermPrint, BinariesAsTextWhenPrintable) {
  EXPECT_EQ(term("Alice").to_string(), "<<\"Alice\">>");
  EXPECT_EQ(term::binary({1, 2, 3}).to_string(), "<<1,2,3>>");
  EXPECT_EQ(term("a\nb\"c\\").to_string(), "<<\"a\\nb\\\"c\\\\\">>");
  EXPECT_EQ(term("\x1B\t\r\v\b\f\n").to_string(), "<<\"\\e\\t\\r\\v\\b\\f\\n\">>");
  EXPECT_EQ(term("a'b").to_string(), "<<\"a'b\">>");
  EXPECT_EQ(term("").to_string(), "<<>>");
  EXPECT_EQ(term("\xC3\xA9").to_string(), "<<\"\xC3\xA9\"/utf8>>");              // é
  EXPECT_EQ(term("\xD0\xB6").to_string(), "<<\"\xD0\xB6\"/utf8>>");              // ж
  EXPECT_EQ(term("\xEF\xBF\xBD").to_string(), "<<\"\xEF\xBF\xBD\"/utf8>>");      // U+FFFD
  EXPECT_EQ(term("a\x7F").to_string(), "<<97,127>>");                            // DEL is not printable
  EXPECT_EQ(term("a\x07").to_string(), "<<97,7>>");
  EXPECT_EQ(term::binary({0}).to_string(), "<<0>>");
  EXPECT_EQ(term::binary({97, 98, 0}).to_string(), "<<97,98,0>>");
  EXPECT_EQ(term("\xC2\x80").to_string(), "<<194,128>>");                        // U+0080, a control
  EXPECT_EQ(term("\xEF\xBF\xBE").to_string(), "<<239,191,190>>");                // U+FFFE
  EXPECT_EQ(term("\xC2\xA0").to_string(), "<<\"\xC2\xA0\"/utf8>>");              // no-break space
  EXPECT_EQ(term::binary({200}).to_string(), "<<200>>");                         // not UTF-8
}

TEST(TermPrint, StreamAndFmt) {
  const term t = tuple(atoms::error, "bad");
  std::ostringstream out;
  out << t;
  EXPECT_EQ(out.str(), "{error,<<\"bad\">>}");
  EXPECT_EQ(fmt::format("reason: {}", t), "reason: {error,<<\"bad\">>}");
  EXPECT_EQ(fmt::format("[{:<8}]", term(42)), "[42      ]");
}

}  // namespace
}  // namespace athanor
