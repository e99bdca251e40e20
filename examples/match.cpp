// Pattern matching, function heads, receive over terms, conversion and pipes: the Elixir
// idioms of the seed, each followed by its Athanor spelling. Runs and exits 0.
#include <fmt/core.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <athanor/athanor.h>
#include <athanor/term/convert.h>
#include <athanor/term/match.h>
#include <athanor/term/pipe.h>

namespace demo {

struct user {
  std::string name;
  int age = 0;
  std::optional<std::string> email;
};
// %{name: ..., age: ..., email: ...} as a map with atom keys.
ATHANOR_TERM_STRUCT(user, name, age, email)

}  // namespace demo

using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;

// def get_user(1), do: {:ok, %{name: "Alice", age: 42, email: nil}}
// def get_user(_), do: {:error, :not_found}
term get_user(std::int64_t id) {
  if (id == 1) return tuple("ok"_a, to_term(demo::user{"Alice", 42, std::nullopt}));
  return tuple("error"_a, "not_found"_a);
}

int main() {
  // ---- 1. {:ok, user} = get_user(1)
  if (auto m = match(get_user(1), tuple("ok"_a, bind("user")))) {
    demo::user u = m.get<demo::user>("user");
    fmt::print("1. {{:ok, user}} = get_user(1)      -> user = {} (name {}, age {})\n", m["user"], u.name, u.age);
  }
  // case get_user(2) do {:ok, %{name: name}} -> name; {:error, reason} -> reason end
  auto m2 = match(get_user(2), tuple("error"_a, _a));
  fmt::print("   case get_user(2) ...              -> {{:error, {}}}\n", m2 ? m2.get<0>().name() : "?");

  // ---- 2. Function heads:
  // def area({:square, s}), do: s * s
  // def area({:rect, w, h}) when w > 0 and h > 0, do: w * h
  // def area(:unit), do: 1
  auto area = clauses(
      on(tuple("square"_a, _i), [](std::int64_t s) { return s * s; }),
      on(tuple("rect"_a, _i, _i), [](std::int64_t w, std::int64_t h) { return w > 0 && h > 0; },
         [](std::int64_t w, std::int64_t h) { return w * h; }),
      on(lit("unit"_a), [] { return std::int64_t(1); }));
  fmt::print("2. area({{:square, 3}}) = {}, area({{:rect, 2, 5}}) = {}, area(:unit) = {}\n",
             area(tuple("square"_a, 3)), area(tuple("rect"_a, 2, 5)), area(term("unit"_a)));
  try {
    area(tuple("rect"_a, -1, 5));
  } catch (const function_clause_error& e) {
    fmt::print("   area({{:rect, -1, 5}}) raises: {}\n", e.what());
  }

  // ---- 3. receive with patterns, mixed with a typed clause, and after:
  // receive do
  //   {:hello, name} -> "Hello, #{name}!"
  //   {:EXIT, pid, reason} -> "exit: #{inspect reason}"
  //   "GET " <> path -> "path #{path}"
  // after 100 -> "nothing"
  // end
  runtime rt(runtime_config{.schedulers = 2});
  pid server = spawn([](process& self) -> proc {
    for (int i = 0; i < 5; ++i) {
      std::string line = co_await self.receive(
          on(tuple("hello"_a, _s), [](std::string_view name) { return fmt::format("Hello, {}!", name); }),
          on(tuple("EXIT"_a, _pid, _t), [](pid from, const term& reason) {
            return fmt::format("exit from {}: {}", term(from), reason);
          }),
          on(prefix("GET ", _s), [](std::string_view path) { return fmt::format("path {}", path); }),
          on([](int n) { return fmt::format("an int message: {}", n); }),  // a typed C++ message
          after(100ms, [] { return std::string("nothing within 100 ms"); }));
      fmt::print("3. received: {}\n", line);
    }
  });
  send(server, tuple("hello"_a, "Alice"));
  send(server, term("GET /index.html"));
  send(server, 7);
  send(server, tuple("EXIT"_a, server, "normal"_a));
  rt.wait();

  // ---- 4. Pipes:
  // "hello world" |> String.upcase() |> String.split(" ") |> Enum.map(&String.length/1)
  {
    using namespace athanor::pipes;
    std::vector<std::size_t> lengths = "hello world" | upcase | split(" ") | map(length);
    std::string shout = "hello world" | upcase | split(" ") | join("! ");
    fmt::print("4. lengths = [{}, {}], shout = \"{}!\"\n", lengths.at(0), lengths.at(1), shout);
  }

  // ---- 5. Conversion: a C++ value to a term and back, with a clear error on a bad shape.
  term users = to_term(std::vector<demo::user>{{"Alice", 42, std::nullopt}, {"Bob", 7, "bob@example.com"}});
  fmt::print("5. to_term(users) = {}\n", users);
  try {
    from_term<std::vector<demo::user>>(list({map({{"name"_a, 42}, {"age"_a, 1}, {"email"_a, atoms::nil}})}));
  } catch (const term_conversion_error& e) {
    fmt::print("   from_term on a bad shape: {}\n", e.what());
  }
  return 0;
}
