#include "athanor/term/pipe.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <list>
#include <ranges>
#include <string>
#include <vector>

namespace athanor {
namespace {

using namespace athanor::literals;
using namespace athanor::pipes;

enum flags : unsigned { a = 1, b = 2 };

TEST(Pipe, TheIssueExample) {
  auto lengths = "hello world" | upcase | split(" ") | map(length);
  EXPECT_EQ(lengths, (std::vector<std::size_t>{5, 5}));
}

TEST(Pipe, IsPlainFunctionApplicationLeftToRight) {
  std::vector<int> order;
  auto add = [&](int k) {
    return [&order, k](int x) {
      order.push_back(k);
      return x + k;
    };
  };
  int r = 1 | add(10) | add(100);
  EXPECT_EQ(r, 111);
  EXPECT_EQ(order, (std::vector<int>{10, 100}));
  // A function pointer works when the left side is a class (C++ applies only built-in
  // operators when neither operand is a class or an enumeration).
  auto size_of = +[](const std::string& s) { return s.size(); };
  EXPECT_EQ(std::string("abc") | size_of, 3u);
  EXPECT_EQ(std::string("x") | [](const std::string& s) { return s + s; }, "xx");
}

TEST(Pipe, StringAdapters) {
  EXPECT_EQ("Hello, Wörld" | upcase, "HELLO, WöRLD");  // ASCII only: UTF-8 passes through
  EXPECT_EQ("Hello" | downcase, "hello");
  EXPECT_EQ(" \t x y \n" | trim, "x y");
  EXPECT_EQ("a,b,,c" | split(","), (std::vector<std::string>{"a", "b", "", "c"}));
  EXPECT_EQ("" | split(","), (std::vector<std::string>{""}));
  EXPECT_EQ("a--b" | split("--"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ("ab" | split(""), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ("a b c" | split(" ") | join("-"), "a-b-c");
  EXPECT_EQ("hello" | length, 5u);
}

TEST(Pipe, SequenceAdapters) {
  std::vector<int> v{1, 2, 3, 4};
  EXPECT_EQ(v | map([](int x) { return x * 10; }), (std::vector<int>{10, 20, 30, 40}));
  EXPECT_EQ(v | filter([](int x) { return x % 2 == 0; }), (std::vector<int>{2, 4}));
  EXPECT_EQ(v | sum, 10);
  EXPECT_EQ(v | length, 4u);
  EXPECT_EQ(v | map([](int x) { return x * 10; }) | join(","), "10,20,30,40");
  EXPECT_EQ((std::list<double>{0.5, 0.25} | sum), 0.75);
  EXPECT_EQ(std::vector<int>{} | sum, 0);
  EXPECT_EQ(std::vector<int>{} | join(","), "");
}

TEST(Pipe, TermListsAreSequences) {
  term l = list({1, 2, 3});
  EXPECT_EQ(l | sum, 6);
  EXPECT_EQ(l | length, 3u);
  EXPECT_EQ(l | map([](const term& t) { return t.as_int() * 2; }), (std::vector<std::int64_t>{2, 4, 6}));
  EXPECT_EQ(l | filter([](const term& t) { return t.as_int() > 1; }), (std::vector<term>{term(2), term(3)}));
  EXPECT_EQ(list({"a"_a, "b"_a}) | join(" "), "a b");
}

TEST(Pipe, DoesNotChangeOtherOperators) {
  // Built-in |, flag enums and std::ranges pipelines keep their meaning with athanor::pipes in scope.
  EXPECT_EQ(5 | 2, 7);
  EXPECT_EQ(a | b, 3u);
  std::vector<int> v{1, 2, 3, 4};
  auto evens = v | std::views::filter([](int x) { return x % 2 == 0; });
  std::vector<int> got(evens.begin(), evens.end());
  EXPECT_EQ(got, (std::vector<int>{2, 4}));
  auto doubled = v | std::views::transform([](int x) { return 2 * x; }) | std::views::take(2);
  EXPECT_EQ(std::vector<int>(doubled.begin(), doubled.end()), (std::vector<int>{2, 4}));
}

}  // namespace
}  // namespace athanor
