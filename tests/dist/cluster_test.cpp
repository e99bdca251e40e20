// A three-node cluster of two Athanor nodes and one Erlang node, every one a real OS-level peer:
// node A is this test process (dist::start), node B is tools/athanor-node (a child process), and
// node E is a real `erl` running cluster_relay.escript, whose registered process `relay` makes
// Erlang processes link, monitor and exit on command and reports what they saw back to A. The
// tests check that messages, links, monitors and exit signals cross every pair of nodes, and that
// the death of one node reaches the monitors and links on both others as noconnection.
//
// Every wait is bounded (a report that never comes fails the test instead of hanging it), and
// everything is synchronised by messages and by the children's output lines, never by sleeps.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;

#ifdef ATHANOR_NODE_BIN

std::string relay_script() {
  return (std::filesystem::path(__FILE__).parent_path() / "cluster_relay.escript").string();
}

// How long one expected message may take. Generous (it bounds only a failing test), but well
// under the 60 s net_ticktime: a noconnection that arrives within it came from the closed
// connection, not from the tick timeout.
constexpr auto kReportLimit = 15s;

// The next term message that is a tuple of at least two elements starting with `first` and
// `second` (`second` unset: any), or the atom `timeout` after `limit`. Other messages stay in the
// mailbox, so the order in which different nodes' reports arrive does not matter.
task<term> next_tagged(process& self, term first, std::optional<term> second = std::nullopt,
                       std::chrono::milliseconds limit = kReportLimit) {
  co_return co_await self.receive(
      on<term>(
          [first, second](const term& t) {
            return t.is_tuple() && t.tuple_size() >= 2 && t.element(0) == first &&
                   (!second || t.element(1) == *second);
          },
          [](term& t) { return t; }),
      after(limit, [] { return term("timeout"_a); }));
}

// A report of E's relay: {relay, Kind, ...}.
task<term> relay_report(process& self, atom kind) { return next_tagged(self, term("relay"_a), term(kind)); }

// The next exit_signal / down as a term ({'EXIT', From, Reason} / {'DOWN', Ref, From, Reason}),
// or the atom `timeout`.
task<term> next_exit(process& self) {
  std::optional<exit_signal> x = co_await self.receive_for<exit_signal>(kReportLimit);
  co_return x ? tuple("EXIT"_a, x->from, x->reason) : term("timeout"_a);
}
task<term> next_down(process& self) {
  std::optional<down> d = co_await self.receive_for<down>(kReportLimit);
  co_return d ? tuple("DOWN"_a, d->monitor, d->from, d->reason) : term("timeout"_a);
}

// Element i of t, or the atom `none` when t is not a tuple that long (a timeout instead of the
// expected message): the comparison then fails with the whole term in the message.
term el(const term& t, std::size_t i) { return t.is_tuple() && t.tuple_size() > i ? t.element(i) : term("none"_a); }

std::vector<atom> sorted(std::vector<atom> nodes) {
  std::sort(nodes.begin(), nodes.end(), [](atom x, atom y) { return x.name() < y.name(); });
  return nodes;
}

// The three nodes. A is started first so that its embedded EPMD serves the test's own EPMD port
// (no epmd runs there): B and E register with it, and it outlives them both.
class ThreeNodeCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    ATHANOR_REQUIRE_ERL();
    a_ = start({.name = unique_name("cpp_a"), .cookie = cookie_, .epmd = {.epmd = {.port = epmd_port_}}});
    b_.emplace(std::vector<std::string>{ATHANOR_NODE_BIN, "--sname", unique_name("cpp_b"), "--cookie", cookie_},
               env_);
    ASSERT_TRUE(b_->started());
    std::optional<std::string> b_name = b_->line();  // athanor-node prints its name once reachable
    ASSERT_TRUE(b_name && b_name->find('@') != std::string::npos) << "athanor-node: " << b_->output();
    b_node_ = atom(*b_name);
    const std::string e_name = unique_name("erl_e");
    e_.emplace(std::vector<std::string>{"escript", relay_script(), e_name, cookie_}, env_);
    ASSERT_TRUE(e_->started());
    std::optional<std::string> line;
    while ((line = e_->line(30s)) && *line != "ready") {
    }
    ASSERT_TRUE(line) << "the relay node did not start: " << e_->output();
    e_node_ = atom(e_name + "@" + std::string(a_.full_name().host()));
  }

  name_on_node relay() const { return {"relay"_a, e_node_}; }
  name_on_node cpp_echo() const { return {"cpp_echo"_a, b_node_}; }

  temp_dir home_;
  const std::uint16_t epmd_port_ = free_port();
  const std::vector<std::string> env_ = erl_env(home_.path(), epmd_port_);
  const std::string cookie_ = "three-node-cookie";
  runtime rt_{runtime_config{.schedulers = 2}};
  node a_;
  std::optional<child> b_;  // declared after a_: killed before A stops
  std::optional<child> e_;
  atom b_node_;
  atom e_node_;
};

// A reaches B's registered process by name and by pid, calls it as a gen_server, and a pid of A
// that travels A -> E -> B still names A's process: B's reply to it arrives at A.
TEST_F(ThreeNodeCluster, MessagesReachTheRightProcessWhicheverNodesTheyPassThrough) {
  const atom b = b_node_;
  const name_on_node echo = cpp_echo(), relay_name = relay();
  term got = in_process([=](process& self) -> task<term> {
    send(echo, tuple(self.self(), "hello"_a));
    term first = co_await next_tagged(self, term("echo"_a));
    const term echo_pid = el(first, 2);
    // The pid B sent is as good as a name: a message to it reaches the same process.
    if (echo_pid.is_pid()) send(echo_pid.as_pid(), tuple(self.self(), "by_pid"_a));
    term second = co_await next_tagged(self, term("echo"_a));
    term reply = co_await call(server_ref("cpp_echo"_a, b), term("req1"_a), 10000ms);
    // E forwards {Self, via_erlang} to {cpp_echo, B}: B answers the pid E passed on.
    send(relay_name, tuple(self.self(), "forward"_a, tuple("cpp_echo"_a, b), tuple(self.self(), "via_erlang"_a)));
    term third = co_await next_tagged(self, term("echo"_a));
    send(relay_name, tuple(self.self(), "ping"_a));
    term pong = co_await relay_report(self, "pong"_a);
    co_return tuple(el(first, 1), echo_pid, el(second, 1), term(el(second, 2) == echo_pid), reply, el(third, 1),
                    term(el(third, 2) == echo_pid), el(pong, 2));
  });
  ASSERT_TRUE(got.is_tuple() && got.tuple_size() == 8) << got.to_string();
  EXPECT_EQ(got.element(0), term("hello"_a));
  ASSERT_TRUE(got.element(1).is_pid()) << got.to_string();
  EXPECT_EQ(a_.node_of(got.element(1).as_pid()), b_node_) << "the echo came from B's process";
  EXPECT_EQ(got.element(2), term("by_pid"_a));
  EXPECT_EQ(got.element(3), term(true)) << "the reply to the pid came from the same process";
  EXPECT_EQ(got.element(4), tuple("echo"_a, "req1"_a));
  EXPECT_EQ(got.element(5), term("via_erlang"_a));
  EXPECT_EQ(got.element(6), term(true)) << "the reply to a pid passed on by E came from the same process";
  ASSERT_TRUE(got.element(7).is_pid()) << got.to_string();
  EXPECT_EQ(a_.node_of(got.element(7).as_pid()), e_node_) << "the relay runs on E";
  EXPECT_EQ(sorted(a_.connected_nodes()), sorted({b_node_, e_node_}));
}

// cpp_echo on B, told exit_me, ends its link to A's process with reason bye (athanor-node's
// contract): A's trapping process gets {'EXIT', EchoPid, bye} and is no longer linked, while
// cpp_echo goes on answering. A monitor by name on B's process works like one by pid, and one on
// a name nothing has on B is answered with noproc.
TEST_F(ThreeNodeCluster, AnExitSignalFromTheOtherAthanorNodeReachesALinkedTrappingProcess) {
  const name_on_node echo = cpp_echo();
  const atom b = b_node_;
  term got = in_process([=](process& self) -> task<term> {
    self.trap_exit(true);
    send(echo, tuple(self.self(), "hello"_a));
    term first = co_await next_tagged(self, term("echo"_a));
    if (!el(first, 2).is_pid()) co_return tuple("no_echo"_a, first);
    const pid echo_pid = el(first, 2).as_pid();
    link(echo_pid);
    send(echo_pid, tuple(self.self(), "exit_me"_a));
    term x = co_await next_exit(self);
    send(echo_pid, tuple(self.self(), "still_there"_a));
    term after_exit = co_await next_tagged(self, term("echo"_a));
    const ref missing = monitor(name_on_node{"no_such_process"_a, b});
    term noproc = co_await next_down(self);
    co_return tuple(term(el(x, 1) == term(echo_pid)), el(x, 2), el(after_exit, 1),
                    term(el(noproc, 1) == term(missing)), el(noproc, 3));
  });
  EXPECT_EQ(got, tuple(true, "bye"_a, "still_there"_a, true, "noproc"_a)) << got.to_string();
}

// B dies with kill -9. A's process had linked to and monitored (by pid and by name) B's cpp_echo;
// E's processes had monitored {cpp_echo, B} and B itself, and linked to cpp_echo. Every one of
// them hears noconnection (nodedown for the node monitor) at once, from the closed connections,
// and A and E stay connected to each other.
TEST_F(ThreeNodeCluster, KillingAnAthanorNodeGivesNoconnectionToMonitorsOnBothOtherNodes) {
  const name_on_node echo = cpp_echo(), relay_name = relay();
  const atom b = b_node_;
  auto armed = std::make_shared<std::promise<term>>();
  auto result = std::make_shared<std::promise<term>>();
  spawn([=](process& self) -> proc {
    self.trap_exit(true);
    send(echo, tuple(self.self(), "hello"_a));
    term first = co_await next_tagged(self, term("echo"_a));
    if (!el(first, 2).is_pid()) {
      armed->set_value(tuple("no_echo"_a, first));
      co_return;
    }
    const pid echo_pid = el(first, 2).as_pid();
    link(echo_pid);
    const ref by_pid = monitor(echo_pid);
    const ref by_name = monitor(echo);
    // E watches {cpp_echo, B} (monitor and monitor_node, in place once reported) and links to it.
    send(relay_name, tuple(self.self(), "watch"_a, tuple("cpp_echo"_a, b)));
    term watching = co_await relay_report(self, "watching"_a);
    send(relay_name, tuple(self.self(), "linker"_a));
    term linker = co_await relay_report(self, "linker"_a);
    if (!el(linker, 2).is_pid()) {
      armed->set_value(tuple("no_linker"_a, watching, linker));
      co_return;
    }
    const pid e_linker = el(linker, 2).as_pid();
    send(e_linker, tuple("link"_a, echo_pid));
    term linked = co_await relay_report(self, "linked"_a);
    // E's monitor is in place at B (E's watch waited for an echo sent behind it on the E-B
    // connection), and E's link was made before its report. (For the noconnection checks it would
    // not matter: A and E each deliver noconnection themselves when their connection to B drops;
    // being in place makes the scene real: B has links and monitors from both nodes when it dies.)
    armed->set_value(tuple(el(watching, 0), el(linked, 0)));

    term x = co_await next_exit(self);
    term d1 = co_await self.receive(
        on<down>([by_pid](const down& d) { return d.monitor == by_pid; },
                 [echo_pid](down& d) { return tuple("DOWN"_a, term(d.from == echo_pid), d.reason); }),
        after(kReportLimit, [] { return term("timeout"_a); }));
    term d2 = co_await self.receive(
        on<down>([by_name](const down& d) { return d.monitor == by_name; },
                 [](down& d) { return tuple("DOWN"_a, term(d.from == pid()), d.reason); }),  // by name: no pid
        after(kReportLimit, [] { return term("timeout"_a); }));
    term e_down = co_await relay_report(self, "down"_a);
    term e_nodedown = co_await relay_report(self, "nodedown"_a);
    term e_exit = co_await relay_report(self, "exit"_a);
    // A and E still talk.
    send(relay_name, tuple(self.self(), "ping"_a));
    term pong = co_await relay_report(self, "pong"_a);
    result->set_value(tuple(tuple(term(el(x, 1) == term(echo_pid)), el(x, 2)),
                            tuple(el(d1, 1), el(d1, 2)), tuple(el(d2, 1), el(d2, 2)),
                            tuple(el(e_down, 2), el(e_down, 3)), el(e_nodedown, 2),
                            tuple(term(el(e_exit, 2) == term(e_linker)), term(el(e_exit, 3) == term(echo_pid)),
                                  el(e_exit, 4)),
                            el(pong, 1)));
  });
  std::future<term> ready = armed->get_future();
  ASSERT_EQ(ready.wait_for(60s), std::future_status::ready) << "the watches were never in place";
  term r = ready.get();
  ASSERT_EQ(r, tuple("relay"_a, "relay"_a)) << r.to_string();
  const auto killed_at = std::chrono::steady_clock::now();
  b_->signal(SIGKILL);
  std::future<term> done = result->get_future();
  ASSERT_EQ(done.wait_for(90s), std::future_status::ready);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
  term got = done.get();
  EXPECT_EQ(got, tuple(tuple(true, "noconnection"_a), tuple(true, "noconnection"_a), tuple(true, "noconnection"_a),
                       tuple(tuple("cpp_echo"_a, b), "noconnection"_a), term(b), tuple(true, true, "noconnection"_a),
                       "pong"_a))
      << got.to_string();
  EXPECT_EQ(a_.connected_nodes(), std::vector<atom>{e_node_});
  std::printf("kill -9 of B: every noconnection on A and E reported within %lld ms\n",
              static_cast<long long>(took.count()));
}

// Links between a process of E and one of A carry exit reasons in both directions, whichever side
// made the link: E's process exits -> A's trapping process gets {'EXIT', EPid, from_erlang}; A's
// process exits -> E's trapping process reports {'EXIT', APid, from_athanor}.
TEST_F(ThreeNodeCluster, ErlangAndAthanorProcessesLinkedAcrossNodesReceiveEachOthersExitReasons) {
  const name_on_node relay_name = relay();
  term got = in_process([=](process& self) -> task<term> {
    self.trap_exit(true);
    // E -> A, linked from A.
    send(relay_name, tuple(self.self(), "linker"_a));
    term l1 = co_await relay_report(self, "linker"_a);
    if (!el(l1, 2).is_pid()) co_return tuple("no_linker"_a, l1);
    const pid e1 = el(l1, 2).as_pid();
    link(e1);
    send(e1, tuple("exit"_a, "from_erlang"_a));  // after the link, on the same connection
    term x = co_await next_exit(self);
    // A -> E, linked from E.
    send(relay_name, tuple(self.self(), "linker"_a));
    term l2 = co_await relay_report(self, "linker"_a);
    if (!el(l2, 2).is_pid()) co_return tuple("no_linker"_a, l2);
    const pid e2 = el(l2, 2).as_pid();
    const pid a_proc = spawn([](process& me) -> proc {
      term stop = co_await me.receive<term>();
      exit(stop);  // ends with the reason it was sent
    });
    send(e2, tuple("link"_a, a_proc));
    term linked = co_await relay_report(self, "linked"_a);
    send(a_proc, term("from_athanor"_a));
    term reported = co_await relay_report(self, "exit"_a);
    co_return tuple(term(el(x, 1) == term(e1)), el(x, 2), term(el(linked, 2) == term(a_proc)),
                    term(el(reported, 2) == term(e2)), term(el(reported, 3) == term(a_proc)), el(reported, 4));
  });
  EXPECT_EQ(got, tuple(true, "from_erlang"_a, true, true, true, "from_athanor"_a)) << got.to_string();
}

// An Athanor process that does not trap exits, linked to an Erlang process, dies with the Erlang
// process's reason, as an Erlang process would; a monitor on it from A and one from E both report
// that reason.
TEST_F(ThreeNodeCluster, AnErlangProcessExitKillsALinkedAthanorProcessThatDoesNotTrapExits) {
  const name_on_node relay_name = relay();
  term got = in_process([=](process& self) -> task<term> {
    send(relay_name, tuple(self.self(), "linker"_a));
    term l = co_await relay_report(self, "linker"_a);
    if (!el(l, 2).is_pid()) co_return tuple("no_linker"_a, l);
    const pid e_proc = el(l, 2).as_pid();
    const pid driver = self.self();
    const pid victim = spawn([e_proc, driver](process& me) -> proc {
      link(e_proc);
      send(driver, term("victim_linked"_a));
      (void)co_await me.receive<int>();  // never comes: only the exit signal ends this process
    });
    const ref mine = monitor(victim);
    (void)co_await self.receive_for<term>(kReportLimit);  // victim_linked
    send(relay_name, tuple(self.self(), "watch"_a, victim));
    term watching = co_await relay_report(self, "watching"_a);
    send(e_proc, tuple("exit"_a, "boom"_a));
    term d = co_await next_down(self);
    term e_down = co_await relay_report(self, "down"_a);
    co_return tuple(el(watching, 0), term(el(d, 1) == term(mine)), term(el(d, 2) == term(victim)), el(d, 3),
                    term(el(e_down, 2) == term(victim)), el(e_down, 3));
  });
  EXPECT_EQ(got, tuple("relay"_a, true, true, "boom"_a, true, "boom"_a)) << got.to_string();
}

#endif  // ATHANOR_NODE_BIN

}  // namespace
}  // namespace athanor::dist::testing
