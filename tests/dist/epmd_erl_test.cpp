// The embedded EPMD server used by real Erlang nodes (OTP's erl, started by the test with
// ERL_EPMD_PORT pointing at the server, a temporary HOME and -start_epmd false): they register,
// net_adm:names() lists them, they find and ping each other through it, a taken name is refused,
// and after a takeover new erl nodes use the server of the node that took the port over.
// Skipped when erl is not installed (CI installs it).
#include <gtest/gtest.h>

#include <algorithm>
#include <future>

#include "athanor/dist/epmd.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/runtime.h"
#include "epmd_test_util.h"

namespace athanor::dist {
namespace {

using namespace std::chrono_literals;
using namespace testing;

class EpmdErlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!erl_installed()) GTEST_SKIP() << "erl is not installed";
    rt_ = std::make_unique<runtime>(runtime_config{.schedulers = 2});
  }
  void TearDown() override { rt_.reset(); }
  std::unique_ptr<runtime> rt_;
};

// An erl -eval expression that lists the EPMD's names as "names [...]" (sorted) and returns.
const std::string print_names =
    "Names = case net_adm:names() of {ok, N1} -> N1; _ -> {ok, N2} = net_adm:names(\"localhost\"), N2 end, "
    "io:format(\"names ~p~n\", [lists:sort([N || {N, _} <- Names])]), ";

TEST_F(EpmdErlTest, ErlNodesRegisterListAndPingEachOtherThroughTheEmbeddedServer) {
  epmd_server srv = epmd_server::start({.addresses = {"127.0.0.1"}, .port = 0});
  temp_dir home;
  const std::string a = unique_name("a"), b = unique_name("b");
  erl_node node_a(a, srv.port(),
                  "register(t, self()), io:format(\"up~n\"), "
                  "receive {stop, From} -> monitor_node(node(From), true), From ! stopped, io:format(\"stopped~n\"), "
                  "receive {nodedown, _} -> ok after 10000 -> ok end "
                  "after 60000 -> io:format(\"no stop~n\") end, halt().",
                  home.path());
  ASSERT_TRUE(node_a.process().wait_for_output("up\n")) << node_a.process().output();
  // erl registers before it runs -eval: a normal node with versions 6 and 5.
  std::vector<epmd_registered_node> regs = srv.registered();
  ASSERT_EQ(regs.size(), 1u);
  EXPECT_EQ(regs[0].node.name, a);
  EXPECT_EQ(regs[0].node.node_type, epmd_normal_node);
  EXPECT_EQ(regs[0].node.highest_version, 6);
  EXPECT_NE(regs[0].creation, 0u);

  erl_node node_b(b, srv.port(),
                  print_names + "io:format(\"ping ~p~n\", [net_adm:ping('" + a + "@localhost')]), {t, '" + a +
                      "@localhost'} ! {stop, self()}, "
                      "receive stopped -> ok after 10000 -> io:format(\"no reply~n\") end, halt().",
                  home.path());
  EXPECT_EQ(node_b.process().wait(), 0) << node_b.process().output();
  EXPECT_NE(node_b.process().output().find("names [\"" + a + "\",\"" + b + "\"]"), std::string::npos)
      << node_b.process().output();
  EXPECT_NE(node_b.process().output().find("ping pong"), std::string::npos) << node_b.process().output();
  EXPECT_EQ(node_b.process().output().find("no reply"), std::string::npos) << node_b.process().output();
  EXPECT_EQ(node_a.process().wait(), 0);
  EXPECT_NE(node_a.process().output().find("stopped"), std::string::npos) << node_a.process().output();
  // Both have halted: their registrations went with their connections.
  EXPECT_TRUE(eventually([&] { return srv.registered().empty(); }));
  EXPECT_TRUE(std::filesystem::is_empty(home.path())) << "erl wrote into HOME";
}

// A node process that registers through ensure_epmd, reports, and keeps its registration until
// told to quit. It forwards its keeper's re-registration to `reregistered`.
struct quit {};
struct athanor_node {
  std::promise<void> up;
  std::promise<epmd_reregistered> reregistered;
  bool started_server = false;
};

pid spawn_athanor_node(athanor_node& n, const std::string& name, std::uint16_t node_port, std::uint16_t epmd_port) {
  return spawn([&n, name, node_port, epmd_port](process& self) -> proc {
    epmd_options o;
    o.epmd = {.host = "127.0.0.1", .port = epmd_port};
    o.server.addresses = {"127.0.0.1"};
    o.max_retry_interval = 200ms;
    epmd_keeper k = co_await ensure_epmd(epmd_node{.name = name, .port = node_port}, o);
    n.started_server = k.started_server();
    n.up.set_value();
    auto m = co_await self.receive<quit, epmd_reregistered>();
    if (auto* r = std::get_if<epmd_reregistered>(&m)) {
      n.reregistered.set_value(*r);
      co_await self.receive<quit>();
    }
  });
}

TEST_F(EpmdErlTest, ErlNodesUseTheServerAKeeperStartsAndTheOneThatTakesOver) {
  std::uint16_t port = free_port();
  temp_dir home;
  const std::string first = unique_name("cpp1"), second = unique_name("cpp2");

  // An Athanor node finds no EPMD and becomes it; a second one registers with it.
  athanor_node n1, n2;
  pid p1 = spawn_athanor_node(n1, first, 9101, port);
  auto up1 = n1.up.get_future();
  ASSERT_EQ(up1.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(n1.started_server);
  pid p2 = spawn_athanor_node(n2, second, 9102, port);
  auto up2 = n2.up.get_future();
  ASSERT_EQ(up2.wait_for(30s), std::future_status::ready);
  EXPECT_FALSE(n2.started_server);

  // erl cannot take a name an Athanor node holds...
  erl_node dup(first, port, "io:format(\"started anyway~n\"), halt().", home.path());
  EXPECT_NE(dup.process().wait(), 0);
  EXPECT_NE(dup.process().output().find("seems to be in use"), std::string::npos) << dup.process().output();
  // ...and sees both in net_adm:names().
  const std::string e1 = unique_name("e");
  erl_node lister(e1, port, print_names + "halt().", home.path());
  EXPECT_EQ(lister.process().wait(), 0);
  std::vector<std::string> sorted{first, second, e1};
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(lister.process().output().find("names [\"" + sorted[0] + "\",\"" + sorted[1] + "\",\"" + sorted[2] + "\"]"),
            std::string::npos)
      << lister.process().output();

  // The first node dies, and its server with it: the second takes the port over...
  exit(p1, atoms::kill);
  auto again = n2.reregistered.get_future();
  ASSERT_EQ(again.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(again.get().serving);
  // ...and new erl nodes register with it and find each other.
  const std::string e2 = unique_name("e"), e3 = unique_name("e");
  erl_node target(e2, port, "register(t, self()), io:format(\"up~n\"), "
                  "receive {stop, From} -> monitor_node(node(From), true), From ! stopped, "
                  "receive {nodedown, _} -> ok after 10000 -> ok end after 60000 -> ok end, halt().",
                  home.path());
  ASSERT_TRUE(target.process().wait_for_output("up\n")) << target.process().output();
  erl_node pinger(e3, port,
                  print_names + "io:format(\"ping ~p~n\", [net_adm:ping('" + e2 + "@localhost')]), {t, '" + e2 +
                      "@localhost'} ! {stop, self()}, "
                      "receive stopped -> ok after 10000 -> io:format(\"no reply~n\") end, halt().",
                  home.path());
  EXPECT_EQ(pinger.process().wait(), 0) << pinger.process().output();
  std::vector<std::string> now{second, e2, e3};
  std::sort(now.begin(), now.end());
  EXPECT_NE(pinger.process().output().find("names [\"" + now[0] + "\",\"" + now[1] + "\",\"" + now[2] + "\"]"),
            std::string::npos)
      << pinger.process().output();
  EXPECT_NE(pinger.process().output().find("ping pong"), std::string::npos) << pinger.process().output();
  EXPECT_EQ(pinger.process().output().find("no reply"), std::string::npos) << pinger.process().output();
  EXPECT_EQ(target.process().wait(), 0);
  send(p2, quit{});
}

}  // namespace
}  // namespace athanor::dist
