// An Elixir node and an Athanor node calling each other's GenServers: the README's example.
#include <future>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;

bool have_elixir() { return std::system("command -v elixir >/dev/null 2>&1") == 0; }

// An Athanor gen_server that Elixir calls: GenServer.call({:counter, node}, :get) and {:add, n}.
struct counter : gen_server<counter> {
  std::int64_t n = 0;
  term handle_call(term request) {
    if (request.is_tuple() && request.tuple_size() == 2 && request.element(0) == term(atom("add"))) {
      n += request.element(1).as_int();
      return term(n);
    }
    if (request == term(atom("get"))) return term(n);
    return tuple(atom("error"), atom("unknown"));
  }
};

TEST(Elixir, AnElixirNodeAndAnAthanorNodeCallEachOthersGenServers) {
  if (!have_elixir()) GTEST_SKIP() << "elixir is not installed (scripts/install-deps.sh --test installs it)";
  temp_dir home;
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppx"), .cookie = "elixir-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  std::promise<void> started;
  spawn([&](process&) -> proc {
    (void)co_await start<counter>(server_options{.name = atom("counter")});
    started.set_value();
    co_await this_process().receive<int>();  // keeps the counter's parent alive
  });
  started.get_future().wait();
  const std::string ex_name = unique_name("ex");
  child elixir({"elixir", "--sname", ex_name, "--cookie", "elixir-cookie", "-e",
                "defmodule KV do\n"
                "  use GenServer\n"
                "  def init(state), do: {:ok, state}\n"
                "  def handle_call({:get, k}, _from, state), do: {:reply, Map.get(state, k), state}\n"
                "end\n"
                "{:ok, _} = GenServer.start(KV, %{k: 42}, name: :kv)\n"
                "[cpp] = System.argv()\n"
                "cpp = String.to_atom(cpp)\n"
                "IO.puts(\"add: #{inspect(GenServer.call({:counter, cpp}, {:add, 5}))}\")\n"
                "IO.puts(\"get: #{inspect(GenServer.call({:counter, cpp}, :get))}\")\n"
                "IO.puts(\"hidden: #{inspect(Node.list(:hidden))}\")\n"
                "IO.puts(\"ready\")\n"
                "Process.sleep(60_000)\n",
                "--", n.full_name().full()},
               erl_env(home.path(), epmd_port));
  std::optional<std::string> line;
  while ((line = elixir.line(60s)) && *line != "ready") {
  }
  ASSERT_TRUE(line) << elixir.output();
  EXPECT_NE(elixir.output().find("add: 5\n"), std::string::npos) << elixir.output();
  EXPECT_NE(elixir.output().find("get: 5\n"), std::string::npos) << elixir.output();
  EXPECT_NE(elixir.output().find(n.full_name().full()), std::string::npos) << elixir.output();
  // And the other way: C++ calls the Elixir GenServer.
  const atom ex_node(ex_name + "@" + std::string(n.full_name().host()));
  std::promise<std::pair<term, term>> result;
  spawn([&](process&) -> proc {
    term got = co_await call(server_ref(atom("kv"), ex_node), tuple(atom("get"), atom("k")));
    term missing;
    try {
      (void)co_await call(server_ref(atom("nobody"), ex_node), term(atom("get")), 5000ms);
    } catch (const call_error& e) {
      missing = e.why;
    }
    result.set_value({got, missing});
  });
  auto [got, missing] = result.get_future().get();
  EXPECT_EQ(got, term(42));
  EXPECT_EQ(missing, term(atom("noproc")));
}

}  // namespace
}  // namespace athanor::dist::testing
