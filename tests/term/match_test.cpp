#include "athanor/term/match.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../support/counting_new.h"  // this binary's operator new counts (t_counting, t_allocations)

using athanor::testing_support::t_allocations;
using athanor::testing_support::t_counting;

namespace athanor {
namespace {

using namespace athanor::literals;

// Counts this thread's allocations during its lifetime.
class allocation_counter {
 public:
  allocation_counter() {
    t_allocations = 0;
    t_counting = true;
  }
  ~allocation_counter() { t_counting = false; }
  long count() const { return t_allocations; }
};

term user_reply() { return tuple("ok"_a, map({{"name"_a, "Alice"}, {"age"_a, 42}})); }

// ---------------------------------------------------------------- literals and captures

TEST(Match, LiteralsMatchExactly) {
  EXPECT_TRUE(matches(term("ok"_a), "ok"_a));
  EXPECT_FALSE(matches(term("error"_a), "ok"_a));
  EXPECT_TRUE(matches(term(42), 42));
  EXPECT_FALSE(matches(term(42), 43));
  EXPECT_FALSE(matches(term(1.0), 1));  // =:=, not ==
  EXPECT_FALSE(matches(term(1), 1.0));
  EXPECT_TRUE(matches(term(1.5), 1.5));
  EXPECT_TRUE(matches(term("Alice"), "Alice"));
  EXPECT_TRUE(matches(term("Alice"), std::string("Alice")));
  EXPECT_FALSE(matches(term("Alice"), "Bob"));
  EXPECT_FALSE(matches(term("ok"_a), "ok"));  // an atom is not a binary
  EXPECT_TRUE(matches(term(true), true));
  EXPECT_FALSE(matches(term(false), true));
  term any = list({1, 2, 3});
  EXPECT_TRUE(matches(list({1, 2, 3}), any));
  EXPECT_FALSE(matches(list({1, 2}), any));
  EXPECT_TRUE(matches(term(pid::from_bits(0)), lit(term(pid::from_bits(0)))));
}

TEST(Match, WildcardMatchesAnythingAndBindsNothing) {
  auto m = match(user_reply(), _);
  EXPECT_TRUE(m);
  EXPECT_EQ(std::tuple_size_v<decltype(m.captures())>, 0u);
}

TEST(Match, TypedCapturesCheckTheKindAndHandOverTheValue) {
  auto m = match(tuple(7, 2.5, "ok"_a, "text", true, term::nil(), pid::from_bits(0)),
                 tuple(_i, _f, _a, _s, _bool, _list, _pid));
  ASSERT_TRUE(m);
  auto [i, f, a, s, b, l, p] = m.captures();
  EXPECT_EQ(i, 7);
  EXPECT_EQ(f, 2.5);
  EXPECT_EQ(a, "ok"_a);
  EXPECT_EQ(s, "text");
  EXPECT_TRUE(b);
  EXPECT_TRUE(l.is_nil());
  EXPECT_EQ(p, pid::from_bits(0));
  EXPECT_EQ(m.get<0>(), 7);
  EXPECT_EQ(m.get<3>(), "text");

  EXPECT_FALSE(matches(term(1.0), _i));
  EXPECT_FALSE(matches(term(1), _f));
  EXPECT_FALSE(matches(term("x"), _a));
  EXPECT_FALSE(matches(term("x"_a), _s));
  EXPECT_FALSE(matches(term("x"_a), _bool));
  EXPECT_FALSE(matches(term(1), _tuple));
  EXPECT_FALSE(matches(term(1), _map));
  EXPECT_FALSE(matches(term(1), _pid));
  EXPECT_FALSE(matches(term(1), _ref));
  EXPECT_TRUE(matches(term(1), _t));
  EXPECT_TRUE(matches(map({}), _map));
  EXPECT_TRUE(matches(tuple(), _tuple));
}

TEST(Match, BytesCaptureGivesTheBinary) {
  auto m = match(term::binary({1, 2, 255}), _bytes);
  ASSERT_TRUE(m);
  auto bytes = m.get<0>();
  ASSERT_EQ(bytes.size(), 3u);
  EXPECT_EQ(bytes[2], std::byte{255});
}

TEST(Match, RefCapture) {
  ref r(1, 2);
  auto m = match(tuple("DOWN"_a, r), tuple("DOWN"_a, _ref));
  ASSERT_TRUE(m);
  EXPECT_EQ(m.get<0>(), r);
}

// ---------------------------------------------------------------- compound patterns

TEST(Match, TupleNeedsTheExactSize) {
  EXPECT_TRUE(matches(tuple("ok"_a, 1), tuple("ok"_a, _)));
  EXPECT_FALSE(matches(tuple("ok"_a, 1, 2), tuple("ok"_a, _)));
  EXPECT_FALSE(matches(tuple("ok"_a), tuple("ok"_a, _)));
  EXPECT_FALSE(matches(list({"ok"_a, 1}), tuple("ok"_a, _)));
  EXPECT_FALSE(matches(tuple("error"_a, 1), tuple("ok"_a, _)));
}

TEST(Match, TheIssueExampleNamedBindingInAMap) {
  term t = user_reply();
  auto m = match(t, tuple("ok"_a, map_with("name"_a, bind<std::string>("name"))));
  ASSERT_TRUE(m);
  EXPECT_EQ(m["name"], term("Alice"));
  EXPECT_EQ(m.get<std::string_view>("name"), "Alice");
  EXPECT_EQ(m.get<std::string>("name"), "Alice");
  EXPECT_TRUE(m.has("name"));
  EXPECT_FALSE(m.has("age"));
  EXPECT_THROW(m["age"], std::out_of_range);
  EXPECT_THROW(m.get<std::int64_t>("name"), bad_term_access);
}

TEST(Match, MapWithNeedsEveryKeyButAllowsOthers) {
  term t = map({{"name"_a, "Alice"}, {"age"_a, 42}});
  EXPECT_TRUE(matches(t, map_with("age"_a, 42)));
  EXPECT_TRUE(matches(t, map_with("age"_a, _i, "name"_a, _s)));
  EXPECT_FALSE(matches(t, map_with("age"_a, 43)));
  EXPECT_FALSE(matches(t, map_with("email"_a, _)));
  EXPECT_FALSE(matches(term(1), map_with("age"_a, _)));
  auto m = match(t, map_with("name"_a, _s, "age"_a, _i));
  ASSERT_TRUE(m);
  auto [name, age] = m.captures();  // in the order written, not the map's order
  EXPECT_EQ(name, "Alice");
  EXPECT_EQ(age, 42);
  // Keys match exactly: 1 and 1.0 are different keys.
  EXPECT_FALSE(matches(map({{1, "x"}}), map_with(1.0, _)));
  EXPECT_TRUE(matches(map({{"k", "x"}}), map_with("k", "x")));
}

TEST(Match, BoundTypesRestrictTheValue) {
  term t = tuple(300, "x");
  EXPECT_TRUE(matches(t, tuple(bind<int>("n"), _)));
  EXPECT_FALSE(matches(t, tuple(bind<std::uint8_t>("n"), _)));  // out of range
  EXPECT_FALSE(matches(t, tuple(bind<std::string>("n"), _)));
  EXPECT_FALSE(matches(t, tuple(bind<double>("n"), _)));
  auto m = match(t, tuple(bind<std::int16_t>("n"), bind<std::string_view>("s")));
  ASSERT_TRUE(m);
  EXPECT_EQ(m.get<std::int16_t>("n"), 300);
  EXPECT_EQ(m.get<int>("n"), 300);
  EXPECT_THROW(m.get<std::uint8_t>("n"), bad_term_access);
  EXPECT_EQ(m.get<term>("s"), term("x"));
}

TEST(Match, GetConvertsOtherTypesWithFromTerm) {
  auto m = match(tuple("ok"_a, list({1, 2, 3})), tuple("ok"_a, bind("xs")));
  ASSERT_TRUE(m);
  EXPECT_EQ(m.get<std::vector<int>>("xs"), (std::vector<int>{1, 2, 3}));
  EXPECT_THROW(m.get<std::vector<std::string>>("xs"), term_conversion_error);
  EXPECT_THROW(m.get<std::vector<int>>("ys"), std::out_of_range);
}

TEST(Match, ARepeatedNameMustBindEqualValues) {
  auto same = tuple(bind("x"), bind("x"));
  EXPECT_TRUE(matches(tuple(1, 1), same));
  EXPECT_TRUE(matches(tuple(list({1, "a"}), list({1, "a"})), same));
  EXPECT_FALSE(matches(tuple(1, 2), same));
  EXPECT_FALSE(matches(tuple(1, 1.0), same));  // =:=: 1 and 1.0 differ
  auto m = match(tuple(5, 5), same);
  ASSERT_TRUE(m);
  EXPECT_EQ(m["x"], term(5));
}

TEST(Match, BindWithAPatternBindsTheWholeValue) {
  auto m = match(tuple("ok"_a, tuple(1, 2)), tuple("ok"_a, bind("pair", tuple(_i, _i))));
  ASSERT_TRUE(m);
  EXPECT_EQ(m["pair"], tuple(1, 2));
  EXPECT_EQ(m.get<0>(), 1);
  EXPECT_EQ(m.get<1>(), 2);
  EXPECT_FALSE(matches(tuple("ok"_a, tuple(1, "x")), tuple("ok"_a, bind("pair", tuple(_i, _i)))));
}

TEST(Match, ListPatterns) {
  term l = list({1, 2, 3});
  EXPECT_TRUE(matches(l, list(_i, _i, _i)));
  EXPECT_FALSE(matches(l, list(_i, _i)));          // exactly these elements
  EXPECT_FALSE(matches(l, list(_i, _i, _i, _i)));
  EXPECT_FALSE(matches(term::nil(), list(_)));
  auto m = match(l, list(_i, rest(_t)));
  ASSERT_TRUE(m);
  EXPECT_EQ(m.get<0>(), 1);
  EXPECT_EQ(m.get<1>(), list({2, 3}));
  auto all = match(l, list(1, 2, 3, rest(_t)));
  ASSERT_TRUE(all);
  EXPECT_TRUE(all.get<0>().is_nil());
  EXPECT_TRUE(matches(l, list(1, rest())));
  EXPECT_FALSE(matches(l, list(2, rest())));
  EXPECT_FALSE(matches(term(1), list(_, rest())));
}

TEST(Match, ConsMatchesHeadAndTail) {
  auto m = match(list({"a", "b"}), cons(_s, _list));
  ASSERT_TRUE(m);
  auto [head, tail] = m.captures();
  EXPECT_EQ(head, "a");
  EXPECT_EQ(tail, list({"b"}));
  EXPECT_FALSE(matches(term::nil(), cons(_, _)));
  // An improper list: [1 | 2].
  auto improper = match(cons(1, 2), cons(_i, _i));
  ASSERT_TRUE(improper);
  EXPECT_EQ(improper.get<1>(), 2);
  EXPECT_TRUE(matches(list({1}), cons(1, term::nil())));
}

TEST(Match, PrefixMatchesTheRestOfABinaryWithoutCopying) {
  term req = "GET /index.html";
  auto m = match(req, prefix("GET ", _s));
  ASSERT_TRUE(m);
  EXPECT_EQ(m.get<0>(), "/index.html");
  EXPECT_EQ(m.get<0>().data(), req.as_binary().data() + 4);  // a view into the binary
  EXPECT_FALSE(matches(term("POST /"), prefix("GET ", _s)));
  EXPECT_FALSE(matches(term("GE"), prefix("GET ")));
  EXPECT_FALSE(matches(term("GET "_a), prefix("GET ")));
  EXPECT_TRUE(matches(term("GET "), prefix("GET ", "")));
  EXPECT_TRUE(matches(term("GET /x"), prefix("GET ", "/x")));
  EXPECT_FALSE(matches(term("GET /x"), prefix("GET ", "/y")));
  EXPECT_TRUE(matches(term("GET /x"), prefix("GET ", prefix("/", "x"))));

  auto named = match(req, prefix(std::string("GET "), bind("path")));
  ASSERT_TRUE(named);
  EXPECT_EQ(named["path"], term("/index.html"));
  EXPECT_EQ(named.get<std::string_view>("path"), "/index.html");
  EXPECT_THROW(named.get<std::int64_t>("path"), bad_term_access);

  auto bytes = match(req, prefix("GET /", _bytes));
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes.get<0>().size(), 10u);
}

TEST(Match, ARepeatedNameComparesBinaryRestsByBytes) {
  EXPECT_TRUE(matches(tuple("a/x", "x"), tuple(prefix("a/", bind("v")), bind("v"))));
  EXPECT_FALSE(matches(tuple("a/x", "y"), tuple(prefix("a/", bind("v")), bind("v"))));
  EXPECT_TRUE(matches(tuple("x", "a/x"), tuple(bind("v"), prefix("a/", bind("v")))));
  EXPECT_FALSE(matches(tuple(1, "a/x"), tuple(bind("v"), prefix("a/", bind("v")))));
}

// ---------------------------------------------------------------- guards

TEST(Match, GuardOnCaptures) {
  auto positive = _i.when([](std::int64_t x) { return x > 0; });
  EXPECT_TRUE(matches(term(3), positive));
  EXPECT_FALSE(matches(term(-3), positive));
  EXPECT_FALSE(matches(term("x"), positive));
  auto ordered = tuple(_i, _i).when([](std::int64_t a, std::int64_t b) { return a < b; });
  EXPECT_TRUE(matches(tuple(1, 2), ordered));
  EXPECT_FALSE(matches(tuple(2, 1), ordered));
  // A guard deep inside a pattern sees only its own captures.
  auto inner = tuple(_s, tuple(_i, _i).when([](std::int64_t a, std::int64_t b) { return a == b; }));
  auto m = match(tuple("eq", tuple(4, 4)), inner);
  ASSERT_TRUE(m);
  EXPECT_EQ(m.get<0>(), "eq");
  EXPECT_FALSE(matches(tuple("eq", tuple(4, 5)), inner));
}

TEST(Match, GuardOnTheTermWhenThereAreNoCaptures) {
  auto short_list = _.when([](const term& t) { return t.is_list() && t.length() < 3; });
  EXPECT_TRUE(matches(list({1, 2}), short_list));
  EXPECT_FALSE(matches(list({1, 2, 3}), short_list));
  auto even_path = prefix("/", _.when([](std::string_view rest) { return rest.size() % 2 == 0; }));
  EXPECT_TRUE(matches(term("/ab"), even_path));
  EXPECT_FALSE(matches(term("/abc"), even_path));
  auto long_rest = prefix("/", _s.when([](std::string_view rest) { return rest.size() > 2; }));
  EXPECT_TRUE(matches(term("/abc"), long_rest));
  EXPECT_FALSE(matches(term("/ab"), long_rest));
}

// ---------------------------------------------------------------- results

TEST(Match, AResultOutlivesTheTermAndPatternItCameFrom) {
  auto keep = [] {
    return match(tuple("ok"_a, std::string(100, 'x')), tuple("ok"_a, bind("v")));
  };
  auto m = keep();
  ASSERT_TRUE(m);
  EXPECT_EQ(m.get<std::string_view>("v").size(), 100u);
  // Copying keeps bindings that point at the whole term valid.
  std::optional<match_result<detail::named<detail::any_kind, detail::wildcard>>> copy;
  {
    auto whole = match(term("abc"), bind("all"));
    copy.emplace(whole);
  }
  EXPECT_EQ((*copy)["all"], term("abc"));
  EXPECT_EQ(copy->value(), term("abc"));
}

TEST(Match, AFailedMatchIsFalseAndBindsNothing) {
  auto m = match(term(1), tuple(bind("x")));
  EXPECT_FALSE(m);
  EXPECT_FALSE(m.has("x"));
  EXPECT_THROW(m["x"], std::out_of_range);
}

TEST(Match, MatchingDoesNotAllocate) {
#ifdef ATHANOR_NO_COUNTING_NEW
  GTEST_SKIP() << "operator new cannot be replaced under clang's TSan";
#endif
  term t = tuple("ok"_a, map({{"name"_a, "Alice"}, {"age"_a, 42}}), list({1, 2, 3}), "GET /x");
  auto pattern = tuple("ok"_a, map_with("name"_a, bind<std::string_view>("name"), "age"_a, _i.when([](std::int64_t a) {
                                          return a > 18;
                                        })),
                       list(1, rest(bind("tail"))), prefix("GET ", _s));
  long allocations = -1;
  bool matched = false;
  std::string_view name, path;
  {
    allocation_counter counter;
    auto m = match(t, pattern);
    matched = bool(m);
    if (m) {
      name = m.get<std::string_view>("name");
      path = m.get<1>();
    }
    auto miss = match(t, tuple("ok"_a, map_with("name"_a, "Bob"), _, _));
    matched = matched && !miss;
    allocations = counter.count();
  }
  EXPECT_TRUE(matched);
  EXPECT_EQ(name, "Alice");
  EXPECT_EQ(path, "/x");
  EXPECT_EQ(allocations, 0);
  // The counter works: building a term allocates.
  {
    allocation_counter counter;
    term built = list({1, 2});
    EXPECT_GT(counter.count(), 0);
  }
}

TEST(Match, OnePatternMatchedFromManyThreads) {
  const auto pattern = tuple("n"_a, _i);
  std::atomic<long> total{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      long sum = 0;
      for (int i = 0; i < 1000; ++i) {
        auto m = match(tuple("n"_a, k), pattern);
        if (m) sum += m.get<0>();
      }
      total += sum;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(total.load(), 1000 * (0 + 1 + 2 + 3));
}

// ---------------------------------------------------------------- clauses

TEST(Clauses, FirstMatchingClauseWins) {
  auto area = clauses(on(tuple("square"_a, _i), [](std::int64_t s) { return s * s; }),
                      on(tuple("rect"_a, _i, _i), [](std::int64_t w, std::int64_t h) { return w * h; }),
                      on(tuple("rect"_a, _, _), [] { return std::int64_t(-1); }));
  EXPECT_EQ(area(tuple("square"_a, 3)), 9);
  EXPECT_EQ(area(tuple("rect"_a, 2, 5)), 10);
  EXPECT_EQ(area(tuple("rect"_a, 2, "x")), -1);
}

TEST(Clauses, NoMatchThrowsFunctionClauseWithTheTerm) {
  auto f = clauses(on(lit("ping"_a), [] { return 1; }));
  EXPECT_EQ(f(term("ping"_a)), 1);
  try {
    f(tuple("pong"_a, 1));
    FAIL() << "expected function_clause_error";
  } catch (const function_clause_error& e) {
    EXPECT_EQ(e.value(), tuple("pong"_a, 1));
    EXPECT_STREQ(e.what(), "no function clause matching {pong,1}");
  }
}

TEST(Clauses, GuardsSeeTheCaptures) {
  auto sign = clauses(on(_i, [](std::int64_t x) { return x > 0; }, [](std::int64_t) { return "positive"; }),
                      on(_i, [](std::int64_t x) { return x < 0; }, [](std::int64_t) { return "negative"; }),
                      on(lit(0), [] { return "zero"; }));
  EXPECT_STREQ(sign(term(5)), "positive");
  EXPECT_STREQ(sign(term(-5)), "negative");
  EXPECT_STREQ(sign(term(0)), "zero");
  EXPECT_THROW(sign(term(0.0)), function_clause_error);
}

TEST(Clauses, HandlersMayTakeTheMatch) {
  auto greet = clauses(on(tuple("hello"_a, bind<std::string_view>("name")), [](const auto& m) {
                         return "Hello, " + std::string(m.template get<std::string_view>("name")) + "!";
                       }),
                       on(_, [](const auto& m) { return "what is " + m.value().to_string() + "?"; }));
  EXPECT_EQ(greet(tuple("hello"_a, "Alice")), "Hello, Alice!");
  EXPECT_EQ(greet(term(1)), "what is 1?");
}

TEST(Clauses, GuardsMayUseNamedBindings) {
  auto f = clauses(
      on(tuple(bind<std::int64_t>("a"), bind<std::int64_t>("b")),
         [](const auto& m) { return m.template get<std::int64_t>("a") < m.template get<std::int64_t>("b"); },
         [](const auto&) { return "ascending"; }),
      on(_, [] { return "other"; }));
  EXPECT_STREQ(f(tuple(1, 2)), "ascending");
  EXPECT_STREQ(f(tuple(2, 1)), "other");
}

TEST(Clauses, VoidHandlers) {
  int hits = 0;
  auto f = clauses(on(_i, [&](std::int64_t x) { hits += int(x); }), on(_, [&] { hits += 100; }));
  f(term(2));
  f(term("x"));
  EXPECT_EQ(hits, 102);
}

TEST(Clauses, CallingDoesNotAllocate) {
#ifdef ATHANOR_NO_COUNTING_NEW
  GTEST_SKIP() << "operator new cannot be replaced under clang's TSan";
#endif
  auto f = clauses(on(tuple("add"_a, _i, _i), [](std::int64_t a, std::int64_t b) { return a + b; }),
                   on(tuple("neg"_a, _i), [](std::int64_t a) { return -a; }));
  term add = tuple("add"_a, 2, 3), neg = tuple("neg"_a, 4);
  std::int64_t sum = 0;
  long allocations = -1;
  {
    allocation_counter counter;
    sum = f(add) + f(neg);
    allocations = counter.count();
  }
  EXPECT_EQ(sum, 1);
  EXPECT_EQ(allocations, 0);
}

}  // namespace
}  // namespace athanor
