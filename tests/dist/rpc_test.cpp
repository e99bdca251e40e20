// Calls by name between nodes (rpc.h): C++ functions exposed to erpc/rpc/spawn, erpc_call and
// rpc_call from C++ (to this node and to a real Erlang node), and the node BIFs of node.h
// (nodes(), connect_node, monitor_node, monitor_nodes). Each rule is erpc.erl's or rpc.erl's.
#include <future>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "athanor/dist/rpc.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;
using namespace athanor::literals;

// The value of an erpc call, or what it raised as {erpc_error, Kind, Reason, Stack}.
task<term> outcome(task<term> call) {
  try {
    co_return co_await std::move(call);
  } catch (const erpc_error& e) {
    co_return tuple(term("erpc_error"_a), term(e.kind), e.reason, e.stack);
  }
}

// What a failed erpc_call threw, as in_process returns it.
term raised(atom kind, term reason, term stack = list({})) { return tuple(term("erpc_error"_a), term(kind), reason, stack); }
term stack_of(const char* m, const char* f, int arity) { return list({tuple(atom(m), atom(f), arity, list({}))}); }

// A runtime and a node of this process, serving its own EPMD on a free port.
struct local_node {
  runtime rt{runtime_config{.schedulers = 2}};
  std::uint16_t epmd_port = free_port();
  node n;
  explicit local_node(const std::string& cookie, std::chrono::milliseconds ticktime = 60000ms) {
    n = start({.name = unique_name("cpprpc"), .cookie = cookie, .epmd = {.epmd = {.port = epmd_port}}, .net_ticktime = ticktime});
  }
  std::string host() const { return std::string(n.full_name().host()); }
};

// The functions the tests call.
void expose_test_functions() {
  expose("rpc_test", "add", [](std::int64_t a, std::int64_t b) { return a + b; });
  expose("rpc_test", "greet", [](std::string name) { return "Hello, " + name; });
  expose("rpc_test", "nothing", [] {});
  expose("rpc_test", "fail_error", [](term why) -> term { throw error_exception(why, "fail_error"); });
  expose("rpc_test", "fail_exit", [](term why) -> term { athanor::exit(why); });
  expose("rpc_test", "fail_cpp", []() -> term { throw std::runtime_error("out of widgets"); });
  expose("rpc_test", "sleep_then", [](std::int64_t ms, term value) -> task<term> {
    co_await this_process().sleep(std::chrono::milliseconds(ms));
    co_return value;
  });
  expose("rpc_test", "whoami", []() -> term { return term(athanor::self()); });
  expose("rpc_test", "args", 3, [](std::vector<term> args) -> task<term> { co_return list(args); });
}

TEST(Expose, FunctionsAreFoundByModuleFunctionAndArity) {
  expose_test_functions();
  EXPECT_TRUE(is_exposed("rpc_test", "add", 2));
  EXPECT_FALSE(is_exposed("rpc_test", "add", 3)) << "the arity is part of the name";
  EXPECT_TRUE(is_exposed("rpc_test", "nothing", 0));
  EXPECT_TRUE(is_exposed("rpc_test", "args", 3));
  expose("rpc_test", "temporary", [] { return 1; });
  EXPECT_TRUE(unexpose("rpc_test", "temporary", 0));
  EXPECT_FALSE(unexpose("rpc_test", "temporary", 0));
  EXPECT_FALSE(is_exposed("rpc_test", "temporary", 0));
  EXPECT_THROW(expose("", "f", 0, [](std::vector<term>) -> task<term> { co_return term(1); }), std::invalid_argument);
  EXPECT_THROW(expose("m", "f", 0, rpc_function{}), std::invalid_argument);
}

// erpc:call(node(), ...) runs on the calling node: the same rules without a wire.
TEST(ErpcCall, CallsOnThisNodeFollowErpcsRules) {
  expose_test_functions();
  local_node local("rpc-self");
  const atom me = local.n.name();
  EXPECT_EQ(this_node(), me);
  auto call = [me](const char* f, term args, std::chrono::milliseconds timeout = 5s) {
    return in_process([=](process&) -> task<term> { co_return co_await outcome(erpc_call(me, "rpc_test"_a, atom(f), args, timeout)); });
  };
  EXPECT_EQ(call("add", list({term(1), term(2)})), term(3));
  EXPECT_EQ(call("greet", list({term("Ada")})), term("Hello, Ada"));
  EXPECT_EQ(call("nothing", list({})), term("ok"_a));
  EXPECT_EQ(call("args", list({term(1), term("b"_a), term("c")})), list({term(1), term("b"_a), term("c")}));
  EXPECT_EQ(call("sleep_then", list({term(1), term("late"_a)})), term("late"_a));
  EXPECT_EQ(call("fail_error", list({term("boom"_a)})), raised("error"_a, term("boom"_a), stack_of("rpc_test", "fail_error", 1)));
  EXPECT_EQ(call("fail_exit", list({term("bye"_a)})), raised("exit"_a, term("bye"_a)));
  EXPECT_EQ(call("fail_cpp", list({})),
            raised("error"_a, tuple("cpp_exception"_a, term("out of widgets")), stack_of("rpc_test", "fail_cpp", 0)));
  EXPECT_EQ(call("add", list({term("one"_a), term(2)})), raised("error"_a, term("badarg"_a), stack_of("rpc_test", "add", 2)));
  EXPECT_EQ(call("add", list({term(1)})), raised("error"_a, term("undef"_a), stack_of("rpc_test", "add", 1)));
  EXPECT_EQ(call("sleep_then", list({term(10000), term(1)}), 50ms), raised("erpc"_a, term("timeout"_a)));
  // Each call runs in a process of its own.
  term a = call("whoami", list({})), b = call("whoami", list({}));
  ASSERT_TRUE(a.is_pid() && b.is_pid());
  EXPECT_NE(a, b);
  EXPECT_THROW(in_process([](process&) -> task<term> { co_return co_await erpc_call(this_node(), "rpc_test"_a, "add"_a, term(1)); }),
               std::invalid_argument)
      << "arguments that are not a list are refused";
}

// rpc:call's answers: the value, a thrown value, {badrpc, {'EXIT', ...}}, {badrpc, timeout}.
TEST(RpcCall, FailuresComeBackAsBadrpcTerms) {
  expose_test_functions();
  local_node local("rpc-self2");
  const atom me = local.n.name();
  auto call = [me](const char* f, term args, std::chrono::milliseconds timeout = 5s) {
    return in_process([=](process&) -> task<term> { co_return co_await rpc_call(me, "rpc_test"_a, atom(f), args, timeout); });
  };
  const term badrpc("badrpc"_a), exit_tag("EXIT"_a);
  EXPECT_EQ(call("add", list({term(40), term(2)})), term(42));
  EXPECT_EQ(call("fail_exit", list({term("bye"_a)})), tuple(badrpc, tuple(exit_tag, "bye"_a)));
  EXPECT_EQ(call("fail_error", list({term("boom"_a)})),
            tuple(badrpc, tuple(exit_tag, tuple("boom"_a, stack_of("rpc_test", "fail_error", 1)))));
  EXPECT_EQ(call("missing", list({})), tuple(badrpc, tuple(exit_tag, tuple("undef"_a, stack_of("rpc_test", "missing", 0)))));
  EXPECT_EQ(call("sleep_then", list({term(10000), term(1)}), 50ms), tuple(badrpc, "timeout"_a));
}

TEST(RpcCall, AnUnreachableNodeIsNodedown) {
  local_node local("rpc-none");
  const atom nobody(unique_name("nobody") + "@" + local.host());
  term r = in_process([nobody](process&) -> task<term> { co_return co_await rpc_call(nobody, "m"_a, "f"_a, list({})); });
  EXPECT_EQ(r, tuple("badrpc"_a, "nodedown"_a));
  term e = in_process([nobody](process&) -> task<term> { co_return co_await outcome(erpc_call(nobody, "m"_a, "f"_a, list({}))); });
  EXPECT_EQ(e, raised("erpc"_a, term("noconnection"_a)));
}

// A real Erlang node calls this node's functions with its own erpc, rpc and spawn.
TEST(ErpcFromErlang, ErlangCallsExposedFunctionsWithItsOwnRpc) {
  ATHANOR_REQUIRE_ERL();
  expose_test_functions();
  local_node local("rpc-erl");
  auto seen = std::make_shared<std::promise<term>>();
  expose("rpc_test", "report", [seen](term t) {
    seen->set_value(t);
    return term("noted"_a);
  });
  temp_dir home;
  const std::string target = local.n.full_name().full();
  child erl({"erl", "-sname", unique_name("caller"), "-setcookie", "rpc-erl", "-noshell", "-eval",
             "N = list_to_atom(\"" + target + "\"), "
             "P = fun(Tag, V) -> io:format(\"~s ~0p~n\", [Tag, V]) end, "
             "P(erpc, erpc:call(N, rpc_test, add, [1, 2])), "
             "P(rpc, rpc:call(N, rpc_test, greet, [<<\"Erlang\">>])), "
             "P(undef, rpc:call(N, rpc_test, nope, [1])), "
             "P(error, catch erpc:call(N, rpc_test, fail_error, [boom])), "
             "P(exit, catch erpc:call(N, rpc_test, fail_exit, [bye])), "
             "P(badarg, rpc:call(N, rpc_test, add, [a, 2])), "
             "P(block, rpc:block_call(N, rpc_test, add, [5, 6])), "
             "P(slow, rpc:call(N, rpc_test, sleep_then, [10000, x], 100)), "
             "P(cast, erpc:cast(N, rpc_test, report, [from_cast])), "
             "Pid = spawn(N, rpc_test, nothing, []), P(spawned, node(Pid) =:= N), "
             "halt()."},
            erl_env(home.path(), local.epmd_port));
  EXPECT_EQ(erl.wait(), 0) << erl.output();
  const std::string out = erl.output();
  EXPECT_NE(out.find("erpc 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("rpc <<\"Hello, Erlang\">>\n"), std::string::npos) << out;
  EXPECT_NE(out.find("undef {badrpc,{'EXIT',{undef,[{rpc_test,nope,1,[]}]}}}\n"), std::string::npos) << out;
  EXPECT_NE(out.find("error {'EXIT',{{exception,boom,[{rpc_test,fail_error,1,[]}]}"), std::string::npos) << out;
  EXPECT_NE(out.find("exit {'EXIT',{exception,bye}}\n"), std::string::npos) << out;
  EXPECT_NE(out.find("badarg {badrpc,{'EXIT',{badarg,[{rpc_test,add,2,[]}]}}}\n"), std::string::npos) << out;
  EXPECT_NE(out.find("block 11\n"), std::string::npos) << out;
  EXPECT_NE(out.find("slow {badrpc,timeout}\n"), std::string::npos) << out;
  EXPECT_NE(out.find("cast ok\n"), std::string::npos) << out;
  EXPECT_NE(out.find("spawned true\n"), std::string::npos) << out;
  std::future<term> f = seen->get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready) << "erpc:cast did not run the function";
  EXPECT_EQ(f.get(), term("from_cast"_a));
}

// An Erlang node for the C++ side to call: it runs until its registered `callee` gets `stop`.
struct erlang_callee {
  temp_dir home;
  std::string name = unique_name("callee");
  child process;
  erlang_callee(std::uint16_t epmd_port, const std::string& cookie)
      : process({"erl", "-sname", name, "-setcookie", cookie, "-noshell", "-eval",
                 "register(callee, self()), io:format(\"ready~n\"), receive stop -> ok after 120000 -> ok end, halt()."},
                erl_env(home.path(), epmd_port)) {}
  bool ready() {
    std::optional<std::string> line;
    while ((line = process.line()) && *line != "ready") {
    }
    return line.has_value();
  }
};

TEST(ErpcToErlang, CxxCallsErlangFunctionsWithErpcsClasses) {
  ATHANOR_REQUIRE_ERL();
  local_node local("rpc-out");
  erlang_callee callee(local.epmd_port, "rpc-out");
  ASSERT_TRUE(callee.ready()) << callee.process.output();
  const atom peer(callee.name + "@" + local.host());
  auto call = [peer](const char* m, const char* f, term args, std::chrono::milliseconds timeout = 10s) {
    return in_process([=](process&) -> task<term> { co_return co_await outcome(erpc_call(peer, atom(m), atom(f), args, timeout)); });
  };
  EXPECT_EQ(call("lists", "reverse", list({list({term(1), term(2), term(3)})})), list({term(3), term(2), term(1)}));
  EXPECT_EQ(call("erlang", "node", list({})), term(peer));
  term err = call("erlang", "error", list({term("boom"_a)}));
  ASSERT_TRUE(err.is_tuple() && err.tuple_size() == 4) << err.to_string();
  EXPECT_EQ(err.element(1), term("error"_a));
  EXPECT_EQ(err.element(2), term("boom"_a));
  EXPECT_TRUE(err.element(3).is_list()) << "the Erlang stack comes with an error";
  EXPECT_EQ(call("erlang", "exit", list({term("bye"_a)})), raised("exit"_a, term("bye"_a)));
  EXPECT_EQ(call("erlang", "throw", list({term("ball"_a)})), raised("throw"_a, term("ball"_a)));
  EXPECT_EQ(call("timer", "sleep", list({term(10000)}), 100ms), raised("erpc"_a, term("timeout"_a)));
  // Output of the remote function goes to this node's group leader (its log), and does not block.
  EXPECT_EQ(call("io", "format", list({term("hello from erlang~n")})), term("ok"_a));
  term r = in_process([peer](process&) -> task<term> {
    co_return co_await rpc_call(peer, "erlang"_a, "throw"_a, list({term("caught"_a)}));
  });
  EXPECT_EQ(r, term("caught"_a)) << "rpc:call returns a thrown value";
  // The connection going down during a call ends it with noconnection.
  term down = in_process([peer](process& self) -> task<term> {
    spawn([peer](process& p) -> proc {
      co_await p.sleep(200ms);  // the call below is in flight by now (it runs for 10 s)
      send(name_on_node{"callee"_a, peer}, "stop"_a);
    });
    co_return co_await outcome(erpc_call(peer, "timer"_a, "sleep"_a, list({term(10000)}), 30s));
  });
  EXPECT_EQ(down, raised("erpc"_a, term("noconnection"_a)));
}

TEST(NodeMonitors, ConnectNodeNodesAndMonitorNodeFollowErlang) {
  ATHANOR_REQUIRE_ERL();
  local_node local("rpc-mon");
  erlang_callee callee(local.epmd_port, "rpc-mon");
  ASSERT_TRUE(callee.ready()) << callee.process.output();
  const atom peer(callee.name + "@" + local.host());
  const atom nobody(unique_name("nobody") + "@" + local.host());
  EXPECT_TRUE(nodes().empty());
  term first = in_process([peer, nobody](process& self) -> task<term> {
    monitor_nodes(true);
    const bool up = co_await connect_node(peer);
    const bool again = co_await connect_node(peer);
    const bool none = co_await connect_node(nobody);
    nodeup u = co_await self.receive<nodeup>();
    monitor_node(nobody, true);  // cannot be reached: nodedown at once
    nodedown d = co_await self.receive<nodedown>();
    monitor_node(peer, true);
    monitor_node(peer, true);  // two monitors: two nodedowns
    co_return tuple(term(up), term(again), term(none), term(u.node), term(d.node));
  });
  EXPECT_EQ(first, tuple(term(true), term(true), term(false), term(peer), term(nobody)));
  EXPECT_EQ(nodes(), std::vector<atom>{peer});
  EXPECT_EQ(local.n.connected_nodes(), std::vector<atom>{peer});
  term second = in_process([peer](process& self) -> task<term> {
    monitor_nodes(true);
    monitor_node(peer, true);
    monitor_node(peer, true);
    monitor_node(peer, false);  // one of the two removed
    send(name_on_node{"callee"_a, peer}, "stop"_a);
    std::vector<term> got;
    for (int i = 0; i < 2; ++i) {
      auto m = co_await self.receive<nodedown>();
      got.push_back(term(m.node));
    }
    // All of them were sent at once, before the first arrived: a third would be here already.
    auto extra = co_await self.receive_for<nodedown>(0ms);  // none: the removed monitor is silent
    co_return tuple(list(got), term(!extra.has_value()));
  });
  EXPECT_EQ(second, tuple(list({term(peer), term(peer)}), term(true)));
  EXPECT_TRUE(nodes().empty());
  EXPECT_EQ(node_of(pid()), this_node());
}

}  // namespace
}  // namespace athanor::dist::testing
