// A C++ struct declared with ATHANOR_ELIXIR_STRUCT, sent to a pid on a real Elixir node, is an
// Elixir struct there (%MyApp.User{} patterns match it), and the %MyApp.User{} Elixir sends back
// converts to the C++ struct.
#include <optional>
#include <string>
#include <tuple>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;
using namespace athanor::literals;

bool have_elixir() { return std::system("command -v elixir >/dev/null 2>&1") == 0; }

struct user {
  std::string name;
  int age = 0;
  friend bool operator==(const user&, const user&) = default;
};
ATHANOR_ELIXIR_STRUCT(user, "MyApp.User", name, age)

// The Elixir side: a `users` process that answers {:hello, from} with its pid, then takes one
// %MyApp.User{} (saying on stdout how it matched) and sends a %MyApp.User{} back. Every receive
// is bounded, and the last one keeps the node up until the test ends. The receiving code is in a
// module of its own because `elixir -e` expands its top level at once, before MyApp.User exists.
const char* const elixir_script =
    "defmodule MyApp.User do\n"
    "  defstruct [:name, :age]\n"
    "end\n"
    "defmodule Users do\n"
    "  def run do\n"
    "    Process.register(self(), :users)\n"
    "    IO.puts(\"ready\")\n"
    "    from = receive do\n"
    "      {:hello, from} -> send(from, {:pid, self()}); from\n"
    "    after 60_000 -> IO.puts(\"no hello\"); System.halt(1)\n"
    "    end\n"
    "    receive do\n"
    "      %MyApp.User{name: name, age: age} = u ->\n"
    "        IO.puts(\"matched #{name} #{age} struct=#{is_struct(u, MyApp.User)} #{inspect(u)}\")\n"
    "        send(from, %MyApp.User{name: name <> \" and Grace\", age: age + 9})\n"
    "      other -> IO.puts(\"unmatched #{inspect(other)}\")\n"
    "    after 60_000 -> IO.puts(\"no user\")\n"
    "    end\n"
    "    receive do\n"
    "      :stop -> :ok\n"
    "    after 60_000 -> :ok\n"
    "    end\n"
    "  end\n"
    "end\n"
    "Users.run()\n";

TEST(ElixirStruct, AStructTypeArrivesAsAnElixirStructAndComesBack) {
  if (!have_elixir()) GTEST_SKIP() << "elixir is not installed (scripts/install-deps.sh --test installs it)";
  temp_dir home;
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppstruct"), .cookie = "struct-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  const std::string ex_name = unique_name("exstruct");
  child elixir({"elixir", "--sname", ex_name, "--cookie", "struct-cookie", "-e", elixir_script}, erl_env(home.path(), epmd_port));
  std::optional<std::string> line;
  while ((line = elixir.line(60s)) && *line != "ready") {
  }
  ASSERT_TRUE(line) << elixir.output();
  const atom ex_node(ex_name + "@" + std::string(n.full_name().host()));

  // The struct goes to the Elixir process's pid (not its name): a remote pid takes any
  // convertible type, as to_term converts it.
  term reply = in_process([ex_node](process& self) -> task<term> {
    send(name_on_node{"users"_a, ex_node}, tuple("hello"_a, self.self()));
    std::optional<term> hello = co_await self.receive_for<term>(30s);
    if (!hello) co_return term("no_pid"_a);
    const pid elixir_pid = std::get<1>(from_term<std::tuple<atom, pid>>(*hello));
    send(elixir_pid, user{"Ada", 36});
    std::optional<term> back = co_await self.receive_for<term>(30s);
    send(elixir_pid, "stop"_a);
    co_return back ? *back : term("no_reply"_a);
  });

  while ((line = elixir.line(30s)) && !line->starts_with("matched") && !line->starts_with("unmatched")) {
  }
  ASSERT_TRUE(line) << elixir.output();
  EXPECT_EQ(line->substr(0, line->find(" %")), "matched Ada 36 struct=true") << elixir.output();
  EXPECT_NE(line->find(" %MyApp.User{"), std::string::npos) << "Elixir inspects it as a struct: " << *line;

  ASSERT_TRUE(reply.is_map()) << reply.to_string();
  const term* module = reply.find("__struct__"_a);
  ASSERT_NE(module, nullptr) << reply.to_string();
  EXPECT_EQ(*module, term("Elixir.MyApp.User"_a));
  EXPECT_EQ(from_term<user>(reply), (user{"Ada and Grace", 45}));
  EXPECT_EQ(elixir.wait(30s), 0) << elixir.output();
}

}  // namespace
}  // namespace athanor::dist::testing
