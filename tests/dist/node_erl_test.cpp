// An Athanor node and real Erlang nodes talking: athanor-node driven by the Erlang-side check
// script (erlang-distribution.md §7.2), and a node in this test process dialling an Erlang node.
#include <filesystem>
#include <future>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;

std::string peer_check_script() {
  return (std::filesystem::path(__FILE__).parent_path() / "peer_check.escript").string();
}

#ifdef ATHANOR_NODE_BIN
// Every check of §7.2, and the rpc checks of §8.4.
TEST(AthanorNode, PassesTheErlangPeerCheck) {
  ATHANOR_REQUIRE_ERL();
  temp_dir home;
  const std::vector<std::string> env = erl_env(home.path(), free_port());
  child node({ATHANOR_NODE_BIN, "--sname", unique_name("cpp"), "--cookie", "peer-check-cookie"}, env);
  ASSERT_TRUE(node.started());
  std::optional<std::string> name = node.line();
  ASSERT_TRUE(name) << "athanor-node printed no name: " << node.output();
  ASSERT_NE(name->find('@'), std::string::npos) << *name;
  const std::vector<std::string> checks = {"ping",           "listed_hidden", "reg_send_and_reply",
                                           "gen_server_call", "gen_server_call_noproc", "term_roundtrip",
                                           "big_message",    "link_exit_propagation", "monitor_down_on_disconnect",
                                           "erpc_call",      "rpc_call_errors", "rpc_block_call",
                                           "erpc_cast_and_spawn", "counter_call"};
  std::vector<std::string> argv = {"escript", peer_check_script(), *name, "peer-check-cookie"};
  argv.insert(argv.end(), checks.begin(), checks.end());
  child check(argv, env);
  const int status = check.wait();
  for (const auto& c : checks) EXPECT_NE(check.output().find("PASS " + c + "\n"), std::string::npos) << check.output();
  EXPECT_EQ(status, 0) << check.output();
}

TEST(AthanorNode, AWrongCookieIsRefusedAndTheNodeGoesOn) {
  ATHANOR_REQUIRE_ERL();
  temp_dir home;
  const std::vector<std::string> env = erl_env(home.path(), free_port());
  child node({ATHANOR_NODE_BIN, "--sname", unique_name("cpp"), "--cookie", "right"}, env);
  std::optional<std::string> name = node.line();
  ASSERT_TRUE(name) << node.output();
  child wrong({"escript", peer_check_script(), *name, "wrong", "ping"}, env);
  EXPECT_EQ(wrong.wait(), 1) << wrong.output();
  EXPECT_NE(wrong.output().find("FAIL ping"), std::string::npos) << wrong.output();
  // The node logged the refusal and still serves a peer with the right cookie.
  std::optional<std::string> log_line;
  while ((log_line = node.line(10s)) && log_line->find("wrong cookie") == std::string::npos) {
  }
  EXPECT_TRUE(log_line) << "no log line about the wrong cookie: " << node.output();
  child right({"escript", peer_check_script(), *name, "right", "ping", "reg_send_and_reply"}, env);
  EXPECT_EQ(right.wait(), 0) << right.output();
}
#endif

// This process as a node dialling an Erlang node: {Name, Node} ! Msg connects through EPMD, and
// the reply from the Erlang process arrives with a pid this node can send to.
TEST(DistNode, DialsAnErlangNodeAndTalksToItsRegisteredProcess) {
  ATHANOR_REQUIRE_ERL();
  temp_dir home;
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node_config cfg;
  cfg.name = unique_name("cppd");
  cfg.cookie = "dial-cookie";
  cfg.epmd.epmd.port = epmd_port;  // this node serves EPMD there (none runs): erl registers with it
  node n = start(cfg);
  const std::string srv_name = unique_name("srv");
  child srv({"erl", "-sname", srv_name, "-setcookie", "dial-cookie", "-noshell", "-eval",
             "register(srv, spawn(fun L() -> receive {F, M} -> F ! {srv_reply, M, self()}, L() end end)), "
             "io:format(\"ready~n\"), timer:sleep(60000), halt()."},
            erl_env(home.path(), epmd_port));
  std::optional<std::string> ready;
  while ((ready = srv.line()) && *ready != "ready") {
  }
  ASSERT_TRUE(ready) << srv.output();
  const atom srv_node(srv_name + "@" + std::string(n.full_name().host()));
  std::promise<term> reply;
  spawn([&](process& self) -> proc {
    send(name_on_node{atom("srv"), srv_node}, tuple(self.self(), atom("hello")));
    std::optional<term> got = co_await self.receive_for<term>(20s);
    reply.set_value(got ? *got : term(atom("timeout")));
  });
  term got = reply.get_future().get();
  ASSERT_TRUE(got.is_tuple() && got.tuple_size() == 3) << got.to_string();
  EXPECT_EQ(got.element(0), term(atom("srv_reply")));
  EXPECT_EQ(got.element(1), term(atom("hello")));
  ASSERT_TRUE(got.element(2).is_pid());
  EXPECT_EQ(n.node_of(got.element(2).as_pid()), srv_node);
  EXPECT_EQ(n.connected_nodes(), std::vector<atom>{srv_node});
  // The remote pid works for send() like a local one.
  std::promise<term> again;
  spawn([&, srv_pid = got.element(2).as_pid()](process& self) -> proc {
    send(srv_pid, tuple(self.self(), atom("again")));
    std::optional<term> r = co_await self.receive_for<term>(20s);
    again.set_value(r ? *r : term(atom("timeout")));
  });
  term second = again.get_future().get();
  EXPECT_EQ(second.tuple_size() == 3 ? second.element(1) : second, term(atom("again"))) << second.to_string();
  EXPECT_TRUE(n.disconnect(srv_node));
  n.stop();
}

// An Erlang node for the tests below: `srv` answers {From, Msg} with {srv_reply, Msg, self()}
// and {From, victim} with {victim, Pid} of a process that exits with victim_died on `die`.
struct erlang_peer {
  temp_dir home;
  std::string name;
  child process;
  erlang_peer(std::uint16_t epmd_port, const std::string& cookie, const std::string& ticktime = "60")
      : name(unique_name("srv")),
        process({"erl", "-sname", name, "-setcookie", cookie, "-kernel", "net_ticktime", ticktime, "-noshell", "-eval",
                 "register(victim, spawn(fun() -> receive die -> exit(victim_died) end end)), "
                 "register(srv, spawn(fun L() -> receive {F, victim} -> F ! {victim, whereis(victim)}, L(); "
                 "{F, M} -> F ! {srv_reply, M, self()}, L() end end)), "
                 "io:format(\"ready~n\"), timer:sleep(120000), halt()."},
                erl_env(home.path(), epmd_port)) {}
  bool ready() {
    std::optional<std::string> line;
    while ((line = process.line()) && *line != "ready") {
    }
    return line.has_value();
  }
};

TEST(DistNode, LinksMonitorsAndExitsAcrossNodesFollowErlangsRules) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppl"), .cookie = "link-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  erlang_peer peer(epmd_port, "link-cookie");
  ASSERT_TRUE(peer.ready()) << peer.process.output();
  const atom srv_node(peer.name + "@" + std::string(n.full_name().host()));
  term outcome = in_process([srv_node](process& self) -> task<term> {
    self.trap_exit(true);
    send(name_on_node{atom("srv"), srv_node}, tuple(self.self(), atom("victim")));
    term answer = co_await self.receive<term>();
    const pid victim = answer.element(1).as_pid();
    link(victim);
    ref watch = monitor(victim);
    send(victim, atom("die"));
    exit_signal x = co_await self.receive<exit_signal>();
    down d = co_await self.receive<down>();
    // The victim is gone: a new link gets noproc from its node, a new monitor too.
    link(victim);
    exit_signal gone = co_await self.receive<exit_signal>();
    ref again = monitor(victim);
    down gone_down = co_await self.receive<down>();
    co_return tuple(term(x.from == victim), x.reason, term(d.monitor == watch && d.from == victim), d.reason,
                    gone.reason, term(gone_down.monitor == again), gone_down.reason);
  });
  EXPECT_EQ(outcome, tuple(term(true), atom("victim_died"), term(true), atom("victim_died"), atom("noproc"), term(true),
                           atom("noproc")))
      << outcome.to_string();
}

TEST(DistNode, APeerKilledOrStoppedBringsNoconnectionToLinksAndMonitors) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppk"),
                  .cookie = "kill-cookie",
                  .epmd = {.epmd = {.port = epmd_port}},
                  .net_ticktime = 4000ms});
  // Watches the srv process of `peer` (link and monitor), then `hit` the peer's OS process, and
  // returns what arrived and how long after.
  auto watch_and_hit = [&](erlang_peer& peer, int sig) -> std::pair<term, std::chrono::milliseconds> {
    const atom srv_node(peer.name + "@" + std::string(n.full_name().host()));
    auto linked = std::make_shared<std::promise<void>>();
    auto started = std::make_shared<std::chrono::steady_clock::time_point>();
    auto result = std::make_shared<std::promise<term>>();
    spawn([=](process& self) -> proc {
      self.trap_exit(true);
      send(name_on_node{atom("srv"), srv_node}, tuple(self.self(), atom("hello")));
      term reply = co_await self.receive<term>();
      const pid srv = reply.element(2).as_pid();
      link(srv);
      ref r = monitor(srv);
      linked->set_value();
      exit_signal x = co_await self.receive<exit_signal>();
      down d = co_await self.receive<down>();
      result->set_value(tuple(term(x.from == srv), x.reason, term(d.monitor == r), d.reason));
    });
    linked->get_future().wait();
    *started = std::chrono::steady_clock::now();
    peer.process.signal(sig);
    std::future<term> f = result->get_future();
    if (f.wait_for(30s) != std::future_status::ready) return {term(atom("no_noconnection_in_30s")), 30s};
    term got = f.get();
    return {got, std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - *started)};
  };
  const term expected = tuple(term(true), atom("noconnection"), term(true), atom("noconnection"));
  {
    erlang_peer peer(epmd_port, "kill-cookie", "4");
    ASSERT_TRUE(peer.ready()) << peer.process.output();
    auto [got, after] = watch_and_hit(peer, SIGKILL);  // the socket closes: at once
    EXPECT_EQ(got, expected) << got.to_string();
    std::printf("kill -9: noconnection after %lld ms\n", static_cast<long long>(after.count()));
  }
  {
    erlang_peer peer(epmd_port, "kill-cookie", "4");
    ASSERT_TRUE(peer.ready()) << peer.process.output();
    auto [got, after] = watch_and_hit(peer, SIGSTOP);  // silent: found by the tick timeout (4 s)
    EXPECT_EQ(got, expected) << got.to_string();
    std::printf("SIGSTOP: noconnection after %lld ms (net_ticktime 4 s)\n", static_cast<long long>(after.count()));
    peer.process.signal(SIGCONT);
  }
}

// Senders write to an idle connection's socket themselves; a large message fills the socket
// and its rest goes through the connection. Meanwhile the connection answers the peer's pings
// (its own packets): they must go after the half-written message, never into it.
TEST(DistNode, TheConnectionsOwnPacketsNeverCutIntoAHalfWrittenMessage) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cpph"), .cookie = "half-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  temp_dir home;
  const std::string me = unique_name("pinger");
  const std::string target = n.full_name().full();
  // srv echoes {From, Bin} as {srv_reply, byte_size, erlang:md5(Bin)}; a pinger pings this node
  // until told to stop, counting the pongs.
  child erl({"erl", "-sname", me, "-setcookie", "half-cookie", "-noshell", "-eval",
             "N = list_to_atom(\"" + target + "\"), pong = net_adm:ping(N), "
             "Pinger = spawn(fun L() -> receive {stop, F} -> F ! {pings, done} after 0 -> pong = net_adm:ping(N), L() end end), "
             "register(pinger, Pinger), "
             "register(srv, spawn(fun L() -> receive {F, B} when is_binary(B) -> F ! {srv_reply, byte_size(B), erlang:md5(B)}, L() end end)), "
             "io:format(\"ready~n\"), timer:sleep(120000), halt()."},
            erl_env(home.path(), epmd_port));
  std::optional<std::string> line;
  while ((line = erl.line()) && *line != "ready") {
  }
  ASSERT_TRUE(line) << erl.output();
  const atom peer(me + "@" + std::string(n.full_name().host()));
  term outcome = in_process([peer](process& self) -> task<term> {
    int intact = 0;
    for (int i = 0; i < 12; ++i) {
      std::string bytes(std::size_t(4) << 20, char('a' + i));  // larger than the socket takes at once
      send(name_on_node{atom("srv"), peer}, tuple(self.self(), term(bytes)));
      std::optional<term> r = co_await self.receive_for<term>(20s);
      if (!r) co_return term(atom("no_reply"));
      if (r->element(1) == term(std::int64_t(bytes.size()))) ++intact;
    }
    send(name_on_node{atom("pinger"), peer}, tuple(atom("stop"), self.self()));
    std::optional<term> done = co_await self.receive_for<term>(20s);
    co_return tuple(term(intact), done ? *done : term(atom("no_pinger")));
  });
  EXPECT_EQ(outcome, tuple(term(12), tuple(atom("pings"), atom("done")))) << outcome.to_string() << erl.output();
  EXPECT_EQ(n.connected_nodes(), std::vector<atom>{peer}) << "the connection was dropped (a corrupted packet?)";
}

// Atoms are never freed: past peer_atom_limit, a peer's packet naming a new atom ends its
// connection (logged), and the node goes on with atoms it has.
TEST(DistNode, PeersCannotFillTheAtomTablePastTheLimit) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node_config cfg{.name = unique_name("cppa"), .cookie = "atom-cookie", .epmd = {.epmd = {.port = epmd_port}}};
  for (const char* a : {"", "is_auth", "$gen_call", "alias", "net_kernel", "known", "ok", "error", "yes"}) (void)atom(a);
  cfg.peer_atom_limit = atom::count();  // reached: from now on, no new atoms from peers
  node n = start(cfg);
  auto got = std::make_shared<std::atomic<int>>(0);
  pid sink = spawn([got](process& self) -> proc {
    for (;;) {
      (void)co_await self.receive<term>();
      got->fetch_add(1);
    }
  });
  register_name(atom("sink"), sink);
  temp_dir home;
  const std::string me = unique_name("flood");
  const std::string target = n.full_name().full();
  child erl({"erl", "-sname", me, "-setcookie", "atom-cookie", "-noshell", "-eval",
             "N = list_to_atom(\"" + target + "\"), pong = net_adm:ping(N), monitor_node(N, true), "
             "{sink, N} ! {known, [ok, error]}, "
             "{sink, N} ! [list_to_atom(\"fresh_" + me + "_\" ++ integer_to_list(I)) || I <- lists:seq(1, 100)], "
             "receive {nodedown, N} -> io:format(\"dropped~n\") after 10000 -> io:format(\"kept~n\") end, "
             "io:format(\"~p~n\", [net_adm:ping(N)]), halt()."},
            erl_env(home.path(), epmd_port));
  EXPECT_EQ(erl.wait(), 0) << erl.output();
  EXPECT_NE(erl.output().find("dropped\npong\n"), std::string::npos) << erl.output();
  EXPECT_EQ(got->load(), 1) << "the message of known atoms arrives, the one of new atoms does not";
  EXPECT_FALSE(atom::existing("fresh_" + me + "_1")) << "a peer created an atom past the limit";
  exit(sink, term(atom("kill")));
}

}  // namespace
}  // namespace athanor::dist::testing
