// Aliases across nodes (OTP 24's alias/0 and ALIAS_SEND) against a real Erlang node: a message
// an Erlang process sends through an alias of a process here arrives while the alias is active
// and is dropped after unalias; gen_server calls from here use the alias form ([alias|Alias]
// tags, as OTP 24's gen:call), so a reply after the timeout never reaches the mailbox.
#include <future>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "athanor/otp/gen_server.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;

// `at` answers {alias_test, From, Alias} with Alias ! first, then {again, From2} with
// Alias ! late and From2 ! marker; gen_server calls `quick` at once (gen:reply), `slow` only
// when {reply_now, From3} comes (then From3 ! marker).
struct alias_peer {
  temp_dir home;
  std::string name = unique_name("alias");
  child process;
  alias_peer(std::uint16_t epmd_port, const std::string& cookie)
      : process({"erl", "-sname", name, "-setcookie", cookie, "-noshell", "-eval",
                 "register(at, spawn(fun L() -> receive "
                 "{alias_test, _F, A} -> A ! first, receive {again, F2} -> A ! late, F2 ! marker end, L(); "
                 "{'$gen_call', From, quick} -> gen:reply(From, quick_reply), L(); "
                 "{'$gen_call', From, slow} -> receive {reply_now, F3} -> gen:reply(From, late_reply), F3 ! marker end, L() "
                 "end end)), io:format(\"ready~n\"), timer:sleep(120000), halt()."},
                erl_env(home.path(), epmd_port)) {}
  bool ready() { return wait_for_line(process, "ready"); }
};

TEST(DistAlias, AnErlangProcessReachesAnAliasUntilItIsDeactivated) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppa"), .cookie = "alias-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  alias_peer peer(epmd_port, "alias-cookie");
  ASSERT_TRUE(peer.ready()) << peer.process.output();
  const name_on_node at{atom("at"), atom(peer.name + "@" + std::string(n.full_name().host()))};
  const term outcome = in_process([at](process& self) -> task<term> {
    const ref a = alias();
    send(at, tuple(atom("alias_test"), self.self(), a));
    std::optional<term> first = co_await self.receive_for<term>(30s);
    unalias(a);
    send(at, tuple(atom("again"), self.self()));
    std::optional<term> marker = co_await self.receive_for<term>(30s);  // `late` came first: dropped
    std::optional<term> extra = co_await self.receive_for<term>(0ms);
    co_return tuple(first ? *first : term(atom("none")), marker ? *marker : term(atom("none")),
                    extra ? *extra : term(atom("none")));
  });
  EXPECT_EQ(outcome, tuple(atom("first"), atom("marker"), atom("none"))) << outcome.to_string();
}

TEST(DistAlias, CallsToAnErlangServerGetRepliesThroughAnAliasAndLateRepliesAreDropped) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppc"), .cookie = "call-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  alias_peer peer(epmd_port, "call-cookie");
  ASSERT_TRUE(peer.ready()) << peer.process.output();
  const atom peer_node(peer.name + "@" + std::string(n.full_name().host()));
  const term outcome = in_process([peer_node](process& self) -> task<term> {
    const server_ref at(atom("at"), peer_node);
    term quick = co_await call(at, term(atom("quick")), 30s);
    term slow_reason = term(atom("no_timeout"));
    try {
      (void)co_await call(at, term(atom("slow")), 200ms);
    } catch (const call_error& e) {
      slow_reason = e.why;
    }
    send(name_on_node{atom("at"), peer_node}, tuple(atom("reply_now"), self.self()));
    std::optional<term> marker = co_await self.receive_for<term>(30s);  // the late reply came first: dropped
    std::optional<term> extra = co_await self.receive_for<term>(0ms);
    co_return tuple(quick, slow_reason, marker ? *marker : term(atom("none")), extra ? *extra : term(atom("none")));
  });
  EXPECT_EQ(outcome, tuple(atom("quick_reply"), atom("timeout"), atom("marker"), atom("none"))) << outcome.to_string();
}

// A gen_server here that an Erlang process calls: `quick` is answered at once, `slow` only when
// a `go` message comes (its handler waits for it).
struct late_server : gen_server<late_server> {
  task<term> handle_call(term request) {
    if (request == term(atom("slow"))) {
      (void)co_await this_process().receive<term>();  // `go`
      co_return term(atom("late_reply"));
    }
    co_return term(atom("quick_reply"));
  }
};

// OTP's gen:reply rule for a caller that used the alias form ([alias|Alias], every OTP 24+
// gen_server:call): Alias ! {Tag, Reply}, which reaches the caller only while the call waits. An
// Erlang caller that timed out must not find the late reply in its mailbox.
TEST(DistAlias, OtpRule_RepliesToAnErlangCallerGoThroughItsAliasSoALateReplyIsDropped) {
  ATHANOR_REQUIRE_ERL();
  temp_dir home;
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppl"), .cookie = "late-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  std::promise<void> started;
  spawn([&](process&) -> proc {
    (void)co_await start<late_server>(server_options{.name = atom("late_srv")});
    started.set_value();
    co_await this_process().receive<int>();  // keeps the server's parent alive
  });
  started.get_future().wait();
  // The caller times out on `slow`, lets the server answer it, then calls `quick`: both replies
  // come from the same process over the same connection, so the late one arrived first.
  child caller({"erl", "-sname", unique_name("caller"), "-setcookie", "late-cookie", "-noshell", "-eval",
                "[A] = init:get_plain_arguments(), Cpp = list_to_atom(A), "
                "Slow = case catch gen_server:call({late_srv, Cpp}, slow, 300) of "
                "{'EXIT', {timeout, _}} -> timeout; Other -> Other end, "
                "{late_srv, Cpp} ! go, "
                "Quick = gen_server:call({late_srv, Cpp}, quick, 30000), "
                "{messages, M} = process_info(self(), messages), "
                "io:format(\"result ~p ~p ~p~n\", [Slow, Quick, M]), halt().",
                "-extra", n.full_name().full()},
               erl_env(home.path(), epmd_port));
  std::optional<std::string> line;
  while ((line = caller.line(60s)) && line->rfind("result ", 0) != 0) {
  }
  ASSERT_TRUE(line.has_value()) << caller.output();
  EXPECT_EQ(*line, "result timeout quick_reply []") << caller.output();
}

}  // namespace
}  // namespace athanor::dist::testing
