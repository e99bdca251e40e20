#include "athanor/term/convert.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

namespace app {

struct user {
  std::string name;
  int age = 0;
  std::optional<std::string> email;
  friend bool operator==(const user&, const user&) = default;
};
ATHANOR_TERM_STRUCT(user, name, age, email)

struct team {
  std::string title;
  std::vector<user> members;
};
ATHANOR_TERM_STRUCT(team, title, members)

// Elixir structs: %MyApp.Account{}, %MyApp.Address{} (its module written with the prefix
// already there) and %MyApp.Customer{}, whose fields hold the other two.
struct account {
  std::string name;
  int age = 0;
  friend bool operator==(const account&, const account&) = default;
};
ATHANOR_ELIXIR_STRUCT(account, "MyApp.Account", name, age)

struct address {
  std::string city;
  friend bool operator==(const address&, const address&) = default;
};
ATHANOR_ELIXIR_STRUCT(address, "Elixir.MyApp.Address", city)

struct customer {
  account who;
  address home;
  std::vector<address> past;
  friend bool operator==(const customer&, const customer&) = default;
};
ATHANOR_ELIXIR_STRUCT(customer, "MyApp.Customer", who, home, past)

// A type converted by a trait specialization instead of the macro.
struct point {
  int x = 0, y = 0;
  friend bool operator==(const point&, const point&) = default;
};

// A type that knows its own term (as the otp handles do).
struct handle {
  int id;
  athanor::term to_term() const { return athanor::tuple(athanor::atom("handle"), id); }
};

}  // namespace app

template <>
struct athanor::term_traits<app::point> {
  static term to(const app::point& p) { return tuple(p.x, p.y); }
  static app::point from(const term& t, const term_path& at) {
    auto [x, y] = from_term<std::pair<int, int>>(t, at);
    return {x, y};
  }
};

namespace athanor {
namespace {

using namespace athanor::literals;

template <class T>
std::string conversion_message(const term& t) {
  try {
    (void)from_term<T>(t);
  } catch (const term_conversion_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Convert, Integers) {
  EXPECT_EQ(to_term(42), term(42));
  EXPECT_EQ(from_term<int>(term(42)), 42);
  EXPECT_EQ(from_term<std::uint8_t>(term(255)), 255);
  EXPECT_EQ(from_term<std::int64_t>(term(std::numeric_limits<std::int64_t>::min())),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(conversion_message<std::uint8_t>(term(256)), "expected integer in 0..255, got 256");
  EXPECT_EQ(conversion_message<int>(term(-1.5)), "expected integer in -2147483648..2147483647, got -1.5");
  EXPECT_THROW(from_term<unsigned>(term(-1)), term_conversion_error);
  EXPECT_THROW(from_term<int>(term("1")), term_conversion_error);
}

TEST(Convert, Uint64BeyondInt64RoundTrips) {
  std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
  term t = to_term(big);
  EXPECT_EQ(from_term<std::uint64_t>(t), big);
  EXPECT_THROW(from_term<std::int64_t>(t), term_conversion_error);
}

TEST(Convert, FloatsAndBools) {
  EXPECT_EQ(to_term(1.5), term(1.5));
  EXPECT_EQ(from_term<double>(term(1.5)), 1.5);
  EXPECT_EQ(from_term<double>(term(2)), 2.0);  // an integer converts, as float/1
  EXPECT_FLOAT_EQ(from_term<float>(term(0.25)), 0.25f);
  EXPECT_THROW(from_term<double>(term("x"_a)), term_conversion_error);
  EXPECT_EQ(to_term(true), term(atoms::true_));
  EXPECT_FALSE(from_term<bool>(term(false)));
  EXPECT_TRUE(from_term<bool>(term(true)));
  EXPECT_EQ(conversion_message<bool>(term(1)), "expected true or false, got 1");
}

TEST(Convert, StringsAreBinaries) {
  EXPECT_EQ(to_term(std::string("Alice")), term("Alice"));
  EXPECT_EQ(to_term(std::string_view("Alice")), term("Alice"));
  EXPECT_EQ(to_term("Alice"), term("Alice"));
  const char* c = "Bob";
  EXPECT_EQ(to_term(c), term("Bob"));
  EXPECT_EQ(from_term<std::string>(term("Alice")), "Alice");
  term t("view");
  std::string_view v = from_term<std::string_view>(t);
  EXPECT_EQ(v.data(), t.as_binary().data());
  EXPECT_EQ(conversion_message<std::string>(term("Alice"_a)), "expected binary, got 'Alice'");
}

TEST(Convert, AtomsPidsRefsAndTermsAreThemselves) {
  EXPECT_EQ(to_term("ok"_a), term("ok"_a));
  EXPECT_EQ(from_term<atom>(term("ok"_a)), "ok"_a);
  pid p = pid::from_bits(0);
  EXPECT_EQ(from_term<pid>(to_term(p)), p);
  ref r(3, 4);
  EXPECT_EQ(from_term<ref>(to_term(r)), r);
  term t = tuple(1, "x");
  EXPECT_EQ(from_term<term>(to_term(t)), t);
  EXPECT_THROW(from_term<atom>(term("ok")), term_conversion_error);
  EXPECT_THROW(from_term<pid>(term(1)), term_conversion_error);
  EXPECT_THROW(from_term<ref>(term(1)), term_conversion_error);
}

TEST(Convert, SequencesAreLists) {
  std::vector<int> v{1, 2, 3};
  EXPECT_EQ(to_term(v), list({1, 2, 3}));
  EXPECT_EQ(from_term<std::vector<int>>(list({1, 2, 3})), v);
  EXPECT_EQ(from_term<std::list<std::string>>(list({"a", "b"})), (std::list<std::string>{"a", "b"}));
  EXPECT_EQ(from_term<std::deque<int>>(term::nil()), std::deque<int>{});
  EXPECT_EQ(to_term(std::vector<int>{}), term::nil());
  EXPECT_EQ(conversion_message<std::vector<int>>(list({1, 2, "x"})), "at [2]: expected integer in -2147483648..2147483647, got <<\"x\">>");
  EXPECT_EQ(conversion_message<std::vector<int>>(cons(1, 2)), "expected proper list, got [1|2]");
  EXPECT_EQ(conversion_message<std::vector<int>>(term(1)), "expected list, got 1");
}

TEST(Convert, AssociativeContainersAreMaps) {
  std::map<std::string, int> m{{"a", 1}, {"b", 2}};
  EXPECT_EQ(to_term(m), map({{"a", 1}, {"b", 2}}));
  EXPECT_EQ((from_term<std::map<std::string, int>>(map({{"a", 1}, {"b", 2}}))), m);
  std::unordered_map<atom, std::vector<int>> u{{"xs"_a, {1}}};
  EXPECT_EQ(to_term(u), map({{"xs"_a, list({1})}}));
  EXPECT_EQ((from_term<std::unordered_map<atom, std::vector<int>>>(to_term(u))), u);
  EXPECT_EQ((conversion_message<std::map<std::string, int>>(map({{"a", "x"}}))),
            "at [<<\"a\">>]: expected integer in -2147483648..2147483647, got <<\"x\">>");
  EXPECT_EQ((conversion_message<std::map<std::string, int>>(list({1}))), "expected map, got [1]");
}

TEST(Convert, TuplesAndPairs) {
  EXPECT_EQ(to_term(std::make_tuple("ok"_a, 1, std::string("x"))), tuple("ok"_a, 1, "x"));
  EXPECT_EQ((from_term<std::tuple<atom, int>>(tuple("ok"_a, 1))), std::make_tuple("ok"_a, 1));
  EXPECT_EQ((from_term<std::pair<int, std::string>>(tuple(1, "x"))), std::make_pair(1, std::string("x")));
  EXPECT_EQ((conversion_message<std::pair<int, int>>(tuple(1, 2, 3))), "expected tuple of size 2, got {1,2,3}");
  EXPECT_EQ((conversion_message<std::pair<int, int>>(tuple(1, "2"))),
            "at [1]: expected integer in -2147483648..2147483647, got <<\"2\">>");
}

TEST(Convert, OptionalIsNil) {
  EXPECT_EQ(to_term(std::optional<int>()), term(atoms::nil));
  EXPECT_EQ(to_term(std::optional<int>(3)), term(3));
  EXPECT_EQ(from_term<std::optional<int>>(term(atoms::nil)), std::nullopt);
  EXPECT_EQ(from_term<std::optional<int>>(term(3)), 3);
  EXPECT_THROW(from_term<std::optional<int>>(term(atoms::undefined)), term_conversion_error);
}

TEST(Convert, VariantTakesTheFirstAlternativeThatConverts) {
  using V = std::variant<int, std::string, std::vector<int>>;
  EXPECT_EQ(to_term(V(std::string("x"))), term("x"));
  EXPECT_EQ(from_term<V>(term(1)), V(1));
  EXPECT_EQ(from_term<V>(term("x")), V(std::string("x")));
  EXPECT_EQ(from_term<V>(list({1})), V(std::vector<int>{1}));
  EXPECT_EQ(conversion_message<V>(term(1.5)), "expected a value for one of the variant's alternatives, got 1.5");
}

TEST(Convert, StructsAreMapsWithAtomKeys) {
  app::user alice{"Alice", 42, std::nullopt};
  term t = to_term(alice);
  EXPECT_EQ(t, map({{"name"_a, "Alice"}, {"age"_a, 42}, {"email"_a, atoms::nil}}));
  EXPECT_EQ(from_term<app::user>(t), alice);
  // Extra keys are ignored; every field's key is needed.
  EXPECT_EQ(from_term<app::user>(map({{"name"_a, "Bob"}, {"age"_a, 7}, {"email"_a, "b@x"}, {"extra"_a, 1}})),
            (app::user{"Bob", 7, "b@x"}));
  EXPECT_EQ(conversion_message<app::user>(map({{"name"_a, "Bob"}, {"email"_a, atoms::nil}})),
            "at .age: expected a map with key age, got #{email => nil,name => <<\"Bob\">>}");
  EXPECT_EQ(conversion_message<app::user>(term(1)), "expected map (user), got 1");
}

TEST(Convert, ErrorsGiveThePathIntoNestedValues) {
  term t = list({to_term(app::user{"A", 1, {}}), to_term(app::user{"B", 2, {}}),
                 map({{"name"_a, 42}, {"age"_a, 3}, {"email"_a, atoms::nil}})});
  try {
    (void)from_term<std::vector<app::user>>(t);
    FAIL() << "expected term_conversion_error";
  } catch (const term_conversion_error& e) {
    EXPECT_STREQ(e.what(), "at [2].name: expected binary, got 42");
    EXPECT_EQ(e.path(), "[2].name");
    EXPECT_EQ(e.expected(), "binary");
    EXPECT_EQ(e.got(), term(42));
  }
  term nested = to_term(app::team{"core", {{"A", 1, {}}}});
  EXPECT_EQ(from_term<app::team>(nested).members.at(0).name, "A");
  EXPECT_EQ(conversion_message<app::team>(map({{"title"_a, "t"}, {"members"_a, list({map({{"name"_a, "A"}})})}})),
            "at .members[0].age: expected a map with key age, got #{name => <<\"A\">>}");
}

TEST(Convert, PlainStructsIgnoreAStructTag) {
  app::user alice{"Alice", 42, std::nullopt};
  EXPECT_EQ(to_term(alice).find("__struct__"_a), nullptr);
  // Whatever __struct__ holds is an extra key like any other.
  EXPECT_EQ(from_term<app::user>(map({{"__struct__"_a, "Elixir.MyApp.Anything"_a}, {"name"_a, "Alice"}, {"age"_a, 42},
                                      {"email"_a, atoms::nil}})),
            alice);
  EXPECT_EQ(from_term<app::user>(map({{"__struct__"_a, 1}, {"name"_a, "Alice"}, {"age"_a, 42}, {"email"_a, atoms::nil}})), alice);
}

TEST(Convert, ElixirStructsAreTaggedWithTheirModule) {
  app::account ada{"Ada", 36};
  term t = to_term(ada);
  EXPECT_EQ(t, map({{"__struct__"_a, "Elixir.MyApp.Account"_a}, {"name"_a, "Ada"}, {"age"_a, 36}}));
  EXPECT_EQ(t.to_string(), "#{'__struct__' => 'Elixir.MyApp.Account',age => 36,name => <<\"Ada\">>}");
  EXPECT_EQ(from_term<app::account>(t), ada);
  // A module written with its "Elixir." prefix is not prefixed again.
  EXPECT_EQ(to_term(app::address{"Paris"}), map({{"__struct__"_a, "Elixir.MyApp.Address"_a}, {"city"_a, "Paris"}}));
}

TEST(Convert, ElixirStructsAcceptTheUntaggedMap) {
  // Erlang code builds the plain map; Elixir keys beyond the C++ fields are ignored.
  EXPECT_EQ(from_term<app::account>(map({{"name"_a, "Ada"}, {"age"_a, 36}})), (app::account{"Ada", 36}));
  EXPECT_EQ(from_term<app::account>(map({{"__struct__"_a, "Elixir.MyApp.Account"_a}, {"name"_a, "Ada"}, {"age"_a, 36}, {"role"_a, "admin"}})),
            (app::account{"Ada", 36}));
  EXPECT_EQ(conversion_message<app::account>(map({{"__struct__"_a, "Elixir.MyApp.Account"_a}, {"name"_a, "Ada"}})),
            "at .age: expected a map with key age, got #{'__struct__' => 'Elixir.MyApp.Account',name => <<\"Ada\">>}");
}

TEST(Convert, ElixirStructsRefuseAnotherModule) {
  term admin = map({{"__struct__"_a, "Elixir.MyApp.Admin"_a}, {"name"_a, "Ada"}, {"age"_a, 36}});
  try {
    (void)from_term<app::account>(admin);
    FAIL() << "expected term_conversion_error";
  } catch (const term_conversion_error& e) {
    EXPECT_STREQ(e.what(), "at .__struct__: expected 'Elixir.MyApp.Account', got 'Elixir.MyApp.Admin'");
    EXPECT_EQ(e.path(), ".__struct__");
    EXPECT_EQ(e.expected(), "'Elixir.MyApp.Account'");
    EXPECT_EQ(e.got(), term("Elixir.MyApp.Admin"_a));
  }
  // The module without its prefix is another atom, and a binary is no module.
  EXPECT_EQ(conversion_message<app::account>(map({{"__struct__"_a, "MyApp.Account"_a}, {"name"_a, "Ada"}, {"age"_a, 36}})),
            "at .__struct__: expected 'Elixir.MyApp.Account', got 'MyApp.Account'");
  EXPECT_EQ(conversion_message<app::account>(map({{"__struct__"_a, "Elixir.MyApp.Account"}, {"name"_a, "Ada"}, {"age"_a, 36}})),
            "at .__struct__: expected 'Elixir.MyApp.Account', got <<\"Elixir.MyApp.Account\">>");
  EXPECT_EQ(conversion_message<app::account>(term(1)), "expected map (account), got 1");
  EXPECT_EQ(try_from_term<app::account>(admin), std::nullopt);
}

TEST(Convert, NestedElixirStructsAreEachTagged) {
  app::customer c{{"Ada", 36}, {"Paris"}, {{"Lyon"}, {"Nice"}}};
  term t = to_term(c);
  term paris = map({{"__struct__"_a, "Elixir.MyApp.Address"_a}, {"city"_a, "Paris"}});
  EXPECT_EQ(t, map({{"__struct__"_a, "Elixir.MyApp.Customer"_a},
                    {"who"_a, map({{"__struct__"_a, "Elixir.MyApp.Account"_a}, {"name"_a, "Ada"}, {"age"_a, 36}})},
                    {"home"_a, paris},
                    {"past"_a, list({to_term(app::address{"Lyon"}), to_term(app::address{"Nice"})})}}));
  EXPECT_EQ(from_term<app::customer>(t), c);
  // A wrong tag deep inside is reported where it is.
  term wrong = map({{"who"_a, to_term(app::account{"Ada", 36})}, {"home"_a, paris},
                    {"past"_a, list({paris, to_term(app::account{"Ada", 36})})}});
  EXPECT_EQ(conversion_message<app::customer>(wrong),
            "at .past[1].__struct__: expected 'Elixir.MyApp.Address', got 'Elixir.MyApp.Account'");
}

TEST(Convert, VectorsOfElixirStructsAreListsOfTaggedMaps) {
  std::vector<app::account> accounts{{"Ada", 36}, {"Grace", 45}};
  term t = to_term(accounts);
  ASSERT_TRUE(t.is_list());
  EXPECT_EQ(t, list({map({{"__struct__"_a, "Elixir.MyApp.Account"_a}, {"name"_a, "Ada"}, {"age"_a, 36}}),
                     map({{"__struct__"_a, "Elixir.MyApp.Account"_a}, {"name"_a, "Grace"}, {"age"_a, 45}})}));
  EXPECT_EQ(from_term<std::vector<app::account>>(t), accounts);
  EXPECT_EQ(conversion_message<std::vector<app::account>>(list({to_term(accounts[0]), to_term(app::address{"Paris"})})),
            "at [1].__struct__: expected 'Elixir.MyApp.Account', got 'Elixir.MyApp.Address'");
}

TEST(Convert, TraitSpecializationsAndToTermMembers) {
  EXPECT_EQ(to_term(app::point{1, 2}), tuple(1, 2));
  EXPECT_EQ(from_term<app::point>(tuple(1, 2)), (app::point{1, 2}));
  EXPECT_EQ(to_term(std::vector<app::point>{{1, 2}}), list({tuple(1, 2)}));
  EXPECT_EQ(to_term(app::handle{7}), tuple("handle"_a, 7));
}

TEST(Convert, TryFromTermGivesNulloptOnMismatch) {
  EXPECT_EQ(try_from_term<int>(term(1)), 1);
  EXPECT_EQ(try_from_term<int>(term("1")), std::nullopt);
  EXPECT_EQ(try_from_term<app::user>(term(1)), std::nullopt);
}

TEST(Convert, RoundTripsAMessage) {
  using msg = std::tuple<atom, std::map<std::string, std::vector<std::optional<double>>>>;
  msg m{"data"_a, {{"xs", {1.5, std::nullopt}}}};
  EXPECT_EQ(from_term<msg>(to_term(m)), m);
}

}  // namespace
}  // namespace athanor
