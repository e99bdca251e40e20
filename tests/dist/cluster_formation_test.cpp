// Cluster formation (cluster.h): a keeper connects this node to the nodes a static list or a DNS
// query names, with real `erl` nodes as peers: nodes up before and after the keeper, a peer
// killed with kill -9 and started again under the same name, a node that never answers the
// handshake next to ones that do, a DNS name resolving to 127.0.0.1 with long names, the keeper
// under a supervisor, and the options a keeper refuses. Every wait is on an event (a nodeup or
// nodedown message, a line of a child's output, a process's answer) and bounded.
#include <signal.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <variant>

#include "../runtime/log_capture.h"
#include "athanor/athanor.h"
#include "athanor/dist/cluster.h"
#include "athanor/dist/node.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;
using namespace athanor::literals;

// Intervals short enough that a retry comes within a test's patience, long enough not to spin.
constexpr auto kInterval = 100ms;

// A runtime and a node of this process, serving its own EPMD on a free port.
struct local_node {
  runtime rt{runtime_config{.schedulers = 2}};
  std::uint16_t epmd_port = free_port();
  node n;
  explicit local_node(const std::string& cookie, naming_mode naming = naming_mode::short_names,
                      std::chrono::milliseconds setup_time = default_setup_time) {
    const std::string name = unique_name("cppcluster") + (naming == naming_mode::long_names ? "@127.0.0.1" : "");
    n = start({.name = name, .naming = naming, .cookie = cookie, .epmd = {.epmd = {.port = epmd_port}}, .setup_time = setup_time});
  }
  std::string host() const { return std::string(n.full_name().host()); }
};

// The node events this node sees, from a process subscribed with monitor_nodes(true), for the
// test thread to wait on.
class node_events {
 public:
  node_events() {
    std::promise<void> subscribed;
    std::future<void> ready = subscribed.get_future();
    ended_ = done_->get_future();
    watcher_ = spawn([this, subscribed = std::move(subscribed), done = done_](process& self) mutable -> proc {
      monitor_nodes(true);
      subscribed.set_value();
      for (;;) {
        auto m = co_await self.receive<nodeup, nodedown, atom>();
        if (std::holds_alternative<atom>(m)) break;  // the destructor's stop: `this` is not touched after
        std::lock_guard lock(mu_);
        if (auto* up = std::get_if<nodeup>(&m)) events_.push_back({true, up->node});
        else events_.push_back({false, std::get<nodedown>(m).node});
        cv_.notify_all();
      }
      done->set_value();
    });
    ready.wait();
  }
  ~node_events() {
    send(watcher_, "stop"_a);
    ended_.wait_for(30s);
  }
  // Waits (at most `limit`) for the first nodeup (up = true) or nodedown of `node` not waited
  // for before, and takes it; false if none came.
  bool wait_for(bool up, const std::string& node, std::chrono::milliseconds limit = 30s) {
    std::unique_lock lock(mu_);
    const atom want(node);
    return cv_.wait_for(lock, limit, [&] {
      auto it = std::find(events_.begin(), events_.end(), std::pair<bool, atom>(up, want));
      if (it == events_.end()) return false;
      events_.erase(it);  // the others stay for later waits, in order
      return true;
    });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<bool, atom>> events_;
  std::shared_ptr<std::promise<void>> done_ = std::make_shared<std::promise<void>>();
  std::future<void> ended_;
  pid watcher_;
};

// A real Erlang node that prints "ready" once it is up and registered, then waits.
struct erlang_peer {
  temp_dir home;
  std::string name;
  std::optional<child> process;
  erlang_peer(std::string alive, std::uint16_t epmd_port, const std::string& cookie, bool long_name = false)
      : name(std::move(alive)) {
    start(epmd_port, cookie, long_name);
  }
  // Starts the node; true once it printed "ready". A start can fail when the name was just freed
  // (kill -9) and EPMD has not yet noticed: then it is tried again, at most 5 times.
  bool start(std::uint16_t epmd_port, const std::string& cookie, bool long_name = false) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      process.emplace(std::vector<std::string>{"erl", long_name ? "-name" : "-sname", name, "-setcookie", cookie, "-noshell",
                                               "-eval", "io:format(\"ready~n\"), receive after infinity -> ok end."},
                      erl_env(home.path(), epmd_port));
      std::optional<std::string> line;
      while ((line = process->line(30s)) && *line != "ready") {
      }
      if (line) return true;
    }
    return false;
  }
  void kill() {
    process->signal(SIGKILL);
    process->wait(30s);
  }
};

std::vector<atom> atoms_of(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  std::vector<atom> out;
  for (const auto& n : names) out.emplace_back(n);
  return out;
}

bool logged_now(const athanor::testing::log_capture& logs, const std::string& text) {
  for (const log_event& e : logs.events())
    if (e.part == "cluster" && e.level == log_level::info && e.text == text) return true;
  return false;
}

// True once the keeper has logged `text` (waiting up to 10 s: the keeper logs a nodeup when it
// takes the message, which may be after the test's own subscriber took its copy). Call it
// before stopping the keeper, which may otherwise end with the message still queued.
bool logged(const athanor::testing::log_capture& logs, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!logged_now(logs, text)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(ClusterFormation, StaticListConnectsNodesStartedBeforeAndAfterTheKeeper) {
  ATHANOR_REQUIRE_ERL();
  athanor::testing::log_capture logs(log_level::info);
  local_node local("cluster-static");
  node_events events;
  erlang_peer early(unique_name("early"), local.epmd_port, "cluster-static");
  ASSERT_TRUE(early.process->started());
  const std::string early_node = early.name + "@" + local.host();
  const std::string late_name = unique_name("late");
  const std::string late_node = late_name + "@" + local.host();

  cluster keeper = start_cluster({.nodes = {early_node, late_node}, .reconnect_interval = kInterval});
  ASSERT_TRUE(events.wait_for(true, early_node)) << "the keeper did not connect to a node that was up";
  cluster_status s = keeper.status();
  EXPECT_EQ(s.wanted, atoms_of({early_node, late_node}));
  EXPECT_EQ(s.connected, atoms_of({early_node}));
  EXPECT_TRUE(s.rejected.empty());

  erlang_peer late(late_name, local.epmd_port, "cluster-static");  // joins when it comes up
  ASSERT_TRUE(events.wait_for(true, late_node)) << "the keeper did not connect to a node started after it";
  s = keeper.status();
  EXPECT_EQ(s.connected, atoms_of({early_node, late_node}));
  EXPECT_TRUE(s.connecting.empty());

  EXPECT_TRUE(logged(logs, "nodeup " + early_node));
  EXPECT_TRUE(logged(logs, "nodeup " + late_node));
  const pid k = keeper.keeper();
  keeper.stop();
  EXPECT_FALSE(is_alive(k));
  EXPECT_FALSE(keeper.keeper());
  EXPECT_THROW((void)keeper.status(), std::runtime_error);
  keeper.stop();  // idempotent
  EXPECT_EQ(nodes(), atoms_of({early_node, late_node})) << "stopping the keeper leaves the connections up";
}

TEST(ClusterFormation, ReconnectsToAPeerKilledAndStartedAgainUnderItsName) {
  ATHANOR_REQUIRE_ERL();
  athanor::testing::log_capture logs(log_level::info);
  local_node local("cluster-restart");
  node_events events;
  erlang_peer peer(unique_name("phoenix"), local.epmd_port, "cluster-restart");
  const std::string peer_node = peer.name + "@" + local.host();
  cluster keeper = start_cluster({.nodes = {peer_node}, .reconnect_interval = kInterval});
  ASSERT_TRUE(events.wait_for(true, peer_node));

  peer.kill();  // kill -9: the socket closes, the node sees nodedown at once
  ASSERT_TRUE(events.wait_for(false, peer_node));
  ASSERT_TRUE(peer.start(local.epmd_port, "cluster-restart")) << peer.process->output();
  ASSERT_TRUE(events.wait_for(true, peer_node)) << "the keeper did not reconnect to the restarted node";
  EXPECT_EQ(keeper.status().connected, atoms_of({peer_node}));

  // Once more: a second loss and return are handled the same way.
  peer.kill();
  ASSERT_TRUE(events.wait_for(false, peer_node));
  ASSERT_TRUE(peer.start(local.epmd_port, "cluster-restart")) << peer.process->output();
  ASSERT_TRUE(events.wait_for(true, peer_node));
  EXPECT_TRUE(logged(logs, "nodedown " + peer_node));
  keeper.stop();
}

// One peer registered with EPMD but frozen (SIGSTOP: the kernel accepts its connections, nobody
// answers the handshake, so an attempt lasts the whole setup_time, 30 s here), listed first; a
// name nobody runs; malformed and wrong-mode names. The two live peers must come up long before
// the frozen attempt could end.
TEST(ClusterFormation, AnUnreachableOrMalformedNameDoesNotHoldUpTheOthers) {
  ATHANOR_REQUIRE_ERL();
  athanor::testing::log_capture logs(log_level::info);
  local_node local("cluster-slow", naming_mode::short_names, 30s);
  node_events events;
  erlang_peer frozen(unique_name("a_frozen"), local.epmd_port, "cluster-slow");
  frozen.process->signal(SIGSTOP);
  erlang_peer a(unique_name("alive_a"), local.epmd_port, "cluster-slow");
  erlang_peer b(unique_name("alive_b"), local.epmd_port, "cluster-slow");
  const std::string frozen_node = frozen.name + "@" + local.host();
  const std::string ghost_node = unique_name("ghost") + "@" + local.host();
  const std::string a_node = a.name + "@" + local.host(), b_node = b.name + "@" + local.host();

  cluster keeper = start_cluster({.nodes = {frozen_node, "not a node name", ghost_node, "long@10.1.2.3", a_node, b_node},
                                  .reconnect_interval = kInterval});
  ASSERT_TRUE(events.wait_for(true, a_node, 20s)) << "a frozen node listed first held up the others";
  ASSERT_TRUE(events.wait_for(true, b_node, 20s));
  const cluster_status s = keeper.status();
  EXPECT_EQ(s.wanted, atoms_of({frozen_node, ghost_node, a_node, b_node}));
  EXPECT_EQ(s.connected, atoms_of({a_node, b_node}));
  EXPECT_NE(std::find(s.connecting.begin(), s.connecting.end(), atom(frozen_node)), s.connecting.end())
      << "the frozen node's attempt is still waiting for its handshake";
  EXPECT_EQ(s.rejected, (std::vector<std::string>{"not a node name", "long@10.1.2.3"}));
  keeper.stop();  // with the frozen attempt in flight: terminate ends it
  frozen.kill();  // and its half-open connection ends here, not after 30 s
}

// The DNS strategy: "localhost" resolves to 127.0.0.1 (/etc/hosts), which names
// <basename>@127.0.0.1, an `erl -name` node; this node runs with long names, as IP names need.
TEST(ClusterFormation, DnsStrategyConnectsToTheNodesANameResolvesTo) {
  ATHANOR_REQUIRE_ERL();
  athanor::testing::log_capture logs(log_level::info);
  local_node local("cluster-dns", naming_mode::long_names);
  node_events events;
  const std::string base = unique_name("dnsbase");
  const std::string peer_node = base + "@127.0.0.1";
  erlang_peer peer(peer_node, local.epmd_port, "cluster-dns", true);
  ASSERT_TRUE(peer.process->started());
  // A query that names nothing (.invalid never resolves) must not hold up the one that does.
  cluster keeper = start_cluster({.dns = {{.query = "no-such-host.invalid", .basename = base}, {.query = "localhost", .basename = base}},
                                  .reconnect_interval = kInterval,
                                  .dns_poll_interval = kInterval});
  ASSERT_TRUE(events.wait_for(true, peer_node)) << "the keeper did not connect to the node DNS names";
  const cluster_status s = keeper.status();
  EXPECT_EQ(s.wanted, atoms_of({peer_node}));
  EXPECT_EQ(s.connected, atoms_of({peer_node}));
  EXPECT_TRUE(logged(logs, "DNS query localhost names " + peer_node));
  EXPECT_TRUE(logged(logs, "nodeup " + peer_node));
  keeper.stop();
}

// Under a supervisor, as libcluster's Cluster.Supervisor: started as a child, stopped by the
// supervisor's shutdown (terminate_child), started again, and gone with the supervisor.
TEST(ClusterFormation, KeeperRunsAndStopsUnderASupervisor) {
  athanor::testing::log_capture logs(log_level::info);
  local_node local("cluster-sup");
  const std::string ghost = unique_name("ghost") + "@" + local.host();
  const term outcome = in_process<term>([ghost](process&) -> task<term> {
    std::vector<child_spec> children{
        cluster_child({.nodes = {ghost}, .reconnect_interval = kInterval, .name = "cluster_keeper"_a}, "formation"_a)};
    pid sup = (co_await supervisor::start({.strategy = one_for_one, .intensity = 3, .period = 5s}, std::move(children))).value();
    cluster_status s = co_await cluster_status_of("cluster_keeper"_a);
    if (s.wanted != std::vector<atom>{atom(ghost)}) co_return term("wrong_wanted"_a);
    if (!s.connected.empty()) co_return term("ghost_connected"_a);
    const pid first = whereis("cluster_keeper"_a);
    if (co_await supervisor::terminate_child(sup, "formation"_a) != term(atoms::ok)) co_return term("terminate_failed"_a);
    if (is_alive(first) || whereis("cluster_keeper"_a)) co_return term("still_running"_a);
    if (!(co_await supervisor::restart_child(sup, "formation"_a)).ok()) co_return term("restart_failed"_a);
    s = co_await cluster_status_of("cluster_keeper"_a);
    if (s.wanted != std::vector<atom>{atom(ghost)}) co_return term("wrong_wanted_after_restart"_a);
    const pid second = whereis("cluster_keeper"_a);
    co_await athanor::stop(sup, term(atoms::shutdown));
    co_return term(is_alive(second) ? "survived_supervisor"_a : "ok"_a);
  });
  EXPECT_EQ(outcome, term("ok"_a));
}

TEST(ClusterFormation, OptionsThatCannotWorkFailTheStart) {
  {
    runtime rt(runtime_config{.schedulers = 2});  // no node: nothing to connect from
    EXPECT_THROW((void)start_cluster({.nodes = {"a@b"}}), std::invalid_argument);
    const term r = in_process<term>([](process& self) -> task<term> {
      self.trap_exit(true);  // as a supervisor does: a failed init ends the new process, linked to us
      co_return (co_await start_cluster_link({})).to_term();
    });
    EXPECT_EQ(r, tuple(atoms::error, "not_alive"_a));
  }
  local_node local("cluster-bad");
  auto refused = [](cluster_options o) {
    try {
      cluster c = start_cluster(std::move(o));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("started");
  };
  EXPECT_NE(refused({.reconnect_interval = 0ms}).find("reconnect_interval"), std::string::npos);
  EXPECT_NE(refused({.dns_poll_interval = -1ms}).find("dns_poll_interval"), std::string::npos);
  EXPECT_NE(refused({.max_concurrent_connects = 0}).find("max_concurrent_connects"), std::string::npos);
  EXPECT_NE(refused({.dns = {{.query = "", .basename = "app"}}}).find("empty query"), std::string::npos);
  EXPECT_NE(refused({.dns = {{.query = "localhost", .basename = "a@b"}}}).find("basename"), std::string::npos);
  EXPECT_NE(refused({.dns = {{.query = "localhost", .basename = "app"}}}).find("long_names"), std::string::npos)
      << "IP names are long names: a short-names node cannot use the DNS strategy";
  // From a process, the blocking form refuses to block a scheduler thread.
  const term r = in_process<term>([](process&) -> task<term> {
    try {
      cluster c = start_cluster({});
    } catch (const std::logic_error&) {
      co_return term("refused"_a);
    }
    co_return term("blocked"_a);
  });
  EXPECT_EQ(r, term("refused"_a));
  // A name already taken.
  cluster first = start_cluster({.name = "taken_keeper"_a});
  EXPECT_NE(refused({.name = "taken_keeper"_a}).find("already_started"), std::string::npos);
}

}  // namespace
}  // namespace athanor::dist::testing
