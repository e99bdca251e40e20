// The runtime's hook to other nodes (remote.h): what send() does with a pid of another node.
#include <mutex>
#include <thread>
#include <vector>

#include "athanor/runtime/remote.h"
#include "test_util.h"

namespace athanor::testing {

struct order_line {
  std::string item;
  int quantity = 0;
};
ATHANOR_TERM_STRUCT(order_line, item, quantity)

struct not_a_term {
  int fd = -1;
};

namespace {

// Records what the runtime hands to the distribution layer.
class recording_nodes final : public remote_nodes {
 public:
  struct sent {
    pid from, to;
    term msg;
  };
  bool send(pid from, pid to, term msg) noexcept override {
    std::lock_guard lock(mu);
    if (refuse) return false;
    sends.push_back({from, to, std::move(msg)});
    if (hold_senders) held.push_back(remote_signals::hold_current_process());
    return true;
  }
  bool send_named(pid from, atom name, atom node, term msg) noexcept override {
    std::lock_guard lock(mu);
    if (refuse) return false;
    named.push_back({from, name, node, std::move(msg)});
    return true;
  }
  bool send_alias(pid from, ref alias, term msg) noexcept override {
    std::lock_guard lock(mu);
    if (refuse) return false;
    aliased.push_back({from, alias, std::move(msg)});
    return true;
  }
  struct sent_aliased {
    pid from;
    ref alias;
    term msg;
  };
  std::vector<sent_aliased> aliased;
  bool refuse = false;        // as a connection past its hard limit
  bool hold_senders = false;  // as a busy connection: every sender is held
  std::vector<pid> held;      // what hold_current_process() returned
  void link(pid from, pid to) noexcept override { record("link", from, to, term()); }
  void unlink(pid from, pid to) noexcept override { record("unlink", from, to, term()); }
  void exit(pid from, pid to, term reason, bool via_link) noexcept override {
    record(via_link ? "exit_via_link" : "exit", from, to, std::move(reason));
  }
  void monitor(pid watcher, pid target, ref r) noexcept override { record("monitor", watcher, target, term(r)); }
  void demonitor(pid watcher, pid target, ref r) noexcept override { record("demonitor", watcher, target, term(r)); }
  void monitor_name(pid watcher, atom name, atom node, ref r) noexcept override {
    record("monitor_name", watcher, pid(), tuple(name, node, r));
  }
  void demonitor_name(pid watcher, atom name, atom node, ref r) noexcept override {
    record("demonitor_name", watcher, pid(), tuple(name, node, r));
  }
  struct signal {
    std::string what;
    pid from, to;
    term detail;
  };
  void record(std::string what, pid from, pid to, term detail) {
    std::lock_guard lock(mu);
    signals.push_back({std::move(what), from, to, std::move(detail)});
  }
  std::vector<signal> signals;
  struct sent_named {
    pid from;
    atom name, node;
    term msg;
  };
  std::mutex mu;
  std::vector<sent> sends;
  std::vector<sent_named> named;
};

// Installs a recording_nodes for one test, and uninstalls it after.
struct installed {
  recording_nodes nodes;
  remote_nodes* before = install_remote_nodes(&nodes);
  ~installed() { install_remote_nodes(before); }
};

using RemoteSendTest = RuntimeTest;

// Waits (at most 30 s) until `p`'s process_info status is `suspended`: parked at a suspension
// point by a hold. Once it is, it stays so until released.
bool becomes_suspended(pid p) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<process_info_t> info = process_info(p);
    if (info && info->status == process_info_t::status_t::suspended) return true;
    std::this_thread::yield();
  }
  return false;
}

TEST_F(RemoteSendTest, MessagesToAnotherNodesPidGoToTheInstalledHookAsTerms) {
  installed hook;
  const pid remote(3, 42, 1);
  outcome<pid> sender;
  run([&](process& self) -> proc {
    sender.set(self.self());
    send(remote, tuple(atom("hello"), 1));
    send(remote, order_line{"tea", 2});          // converted by ATHANOR_TERM_STRUCT
    send(remote, std::string("text"));           // a binary
    co_return;
  });
  const pid from = sender.get();
  std::lock_guard lock(hook.nodes.mu);
  ASSERT_EQ(hook.nodes.sends.size(), 3u);
  for (const auto& s : hook.nodes.sends) {
    EXPECT_EQ(s.to, remote);
    EXPECT_EQ(s.from, from);
  }
  EXPECT_EQ(hook.nodes.sends[0].msg, tuple(atom("hello"), 1));
  EXPECT_EQ(hook.nodes.sends[1].msg, to_term(order_line{"tea", 2}));
  EXPECT_EQ(hook.nodes.sends[2].msg, term("text"));
}

TEST_F(RemoteSendTest, ATypeThatDoesNotConvertFailsLoudlyNotSilently) {
  installed hook;
  outcome<std::string> error;
  run([&](process&) -> proc {
    try {
      send(pid(3, 42, 1), not_a_term{7});
      error.set("no exception");
    } catch (const std::invalid_argument& e) {
      error.set(e.what());
    }
    co_return;
  });
  const std::string what = error.get();
  EXPECT_NE(what.find("not_a_term"), std::string::npos) << what;
  EXPECT_NE(what.find("ATHANOR_TERM_STRUCT"), std::string::npos) << what;
  std::lock_guard lock(hook.nodes.mu);
  EXPECT_TRUE(hook.nodes.sends.empty());
}

TEST_F(RemoteSendTest, WithoutAHookARemotePidIsLikeAnEndedOne) {
  ASSERT_EQ(installed_remote_nodes(), nullptr);
  outcome<bool> done;
  run([&](process&) -> proc {
    send(pid(3, 42, 1), term(1));  // dropped, as a send to a node that cannot be reached
    done.set(true);
    co_return;
  });
  EXPECT_TRUE(done.get());
}

TEST_F(RemoteSendTest, LocalSendsNeverReachTheHook) {
  installed hook;
  outcome<term> got;
  run([&](process&) -> proc {
    pid child = spawn([&](process& me) -> proc { got.set(co_await me.receive<term>()); });
    send(child, term(5));
    co_return;
  });
  EXPECT_EQ(got.get(), term(5));
  std::lock_guard lock(hook.nodes.mu);
  EXPECT_TRUE(hook.nodes.sends.empty());
}

TEST_F(RemoteSendTest, SendsToANameOnANodeGoToTheHookWithTheName) {
  installed hook;
  run([&](process&) -> proc {
    send(name_on_node{atom("kv"), atom("app@host")}, tuple(atom("get"), atom("k")));
    send(name_on_node{atom("kv"), atom("app@host")}, order_line{"cake", 1});
    co_return;
  });
  std::lock_guard lock(hook.nodes.mu);
  ASSERT_EQ(hook.nodes.named.size(), 2u);
  EXPECT_EQ(hook.nodes.named[0].name, atom("kv"));
  EXPECT_EQ(hook.nodes.named[0].node, atom("app@host"));
  EXPECT_EQ(hook.nodes.named[0].msg, tuple(atom("get"), atom("k")));
  EXPECT_EQ(hook.nodes.named[1].msg, to_term(order_line{"cake", 1}));
}

// Erlang's Alias ! Msg: another node's alias goes to the hook with the alias; a local one is
// delivered here, only while active.
TEST_F(RemoteSendTest, SendsThroughAnotherNodesAliasGoToTheHookAndLocalAliasesStayHere) {
  installed hook;
  const std::uint32_t words[3] = {7, 8, 9};
  const ref remote_alias = ref::from_words(3, words);
  outcome<pid> sender;
  run([&](process& self) -> proc {
    sender.set(self.self());
    EXPECT_TRUE(send_alias(remote_alias, tuple(atom("reply"), 1)));
    const ref mine = alias();
    EXPECT_TRUE(send_alias(mine, term(atom("here"))));
    EXPECT_EQ(co_await self.receive<term>(), term(atom("here")));
    unalias(mine);
    (void)send_alias(mine, term(atom("dropped")));
    send(self.self(), term(atom("after")));
    EXPECT_EQ(co_await self.receive<term>(), term(atom("after")));  // the aliased one was dropped
    EXPECT_FALSE(send_alias(make_ref(), term(atom("no_owner"))));  // a plain ref names no process
    {
      std::lock_guard lock(hook.nodes.mu);
      hook.nodes.refuse = true;
    }
    EXPECT_THROW((void)send_alias(remote_alias, term(2)), send_refused);
  });
  std::lock_guard lock(hook.nodes.mu);
  ASSERT_EQ(hook.nodes.aliased.size(), 1u);
  EXPECT_EQ(hook.nodes.aliased[0].from, sender.get());
  EXPECT_EQ(hook.nodes.aliased[0].alias, remote_alias);
  EXPECT_EQ(hook.nodes.aliased[0].msg, tuple(atom("reply"), 1));
  EXPECT_TRUE(hook.nodes.sends.empty());
}

// Links, exits and monitors with a remote end go to the hook; the answers come back through
// remote_signals with the runtime's own semantics.
TEST_F(RemoteSendTest, SignalsToAnotherNodesPidGoToTheHookAndAnswersComeBack) {
  installed hook;
  const pid remote(3, 42, 1);
  outcome<std::string> result;
  run([&](process& self) -> proc {
    self.trap_exit(true);
    link(remote);
    ref m = monitor(remote);
    exit(remote, term(atom("please")));
    // The other node answers: the monitor fires, then the link breaks.
    remote_signals::down(self.self(), m, remote, term(atom("gone")));
    down d = co_await self.receive<down>();
    remote_signals::exit(remote, self.self(), term(atom("bye")), true);
    exit_signal x = co_await self.receive<exit_signal>();
    // A second exit through the same (now broken) link is dropped, as in Erlang.
    remote_signals::exit(remote, self.self(), term(atom("again")), true);
    std::optional<exit_signal> none = co_await self.receive_for<exit_signal>(0ms);  // signals to self are handled first
    result.set(d.reason.to_string() + " " + x.reason.to_string() + " " + (none ? "extra" : "none"));
  });
  EXPECT_EQ(result.get(), "gone bye none");
  std::lock_guard lock(hook.nodes.mu);
  ASSERT_EQ(hook.nodes.signals.size(), 3u);
  EXPECT_EQ(hook.nodes.signals[0].what, "link");
  EXPECT_EQ(hook.nodes.signals[1].what, "monitor");
  EXPECT_EQ(hook.nodes.signals[2].what, "exit");
  EXPECT_EQ(hook.nodes.signals[2].detail, term(atom("please")));
  for (const auto& s : hook.nodes.signals) EXPECT_EQ(s.to, remote);
}

TEST_F(RemoteSendTest, AProcessEndingTellsItsRemoteLinksAndDropsItsRemoteMonitors) {
  installed hook;
  const pid remote(3, 42, 1);
  outcome<pid> who;
  run([&](process& self) -> proc {
    who.set(self.self());
    link(remote);
    (void)monitor(remote);
    unlink(remote);
    link(remote);
    co_return;  // ends normally: its link carries `normal`, its monitor is taken down
  });
  const pid me = who.get();
  std::lock_guard lock(hook.nodes.mu);
  std::vector<std::string> seen;
  for (const auto& s : hook.nodes.signals) {
    seen.push_back(s.what);
    EXPECT_EQ(s.from, me);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"link", "monitor", "unlink", "link", "exit_via_link", "demonitor"}));
  EXPECT_EQ(hook.nodes.signals[4].detail, term(atom("normal")));
}

TEST_F(RemoteSendTest, MonitorsOfANameOnAnotherNodeGoToTheHookAndFireOnce) {
  installed hook;
  const name_on_node kv{atom("kv"), atom("app@host")};
  outcome<std::string> result;
  run([&](process& self) -> proc {
    ref fired = monitor(kv);
    ref removed = monitor(kv);
    const bool was_active = demonitor(removed);
    remote_signals::down(self.self(), removed, pid(), term(atom("late")));  // after demonitor: dropped
    remote_signals::down(self.self(), fired, pid(), term(atom("noproc")));
    down d = co_await self.receive<down>();
    std::optional<down> extra = co_await self.receive_for<down>(0ms);
    ref left = monitor(kv);  // still active when the process ends: taken down then
    (void)left;
    result.set(std::string(was_active ? "active " : "inactive ") + d.reason.to_string() + (d.from ? " pid" : " nopid") +
               (d.monitor == fired ? " same" : " other") + (extra ? " extra" : ""));
  });
  EXPECT_EQ(result.get(), "active noproc nopid same");
  std::lock_guard lock(hook.nodes.mu);
  std::vector<std::string> seen;
  for (const auto& s : hook.nodes.signals) seen.push_back(s.what);
  EXPECT_EQ(seen, (std::vector<std::string>{"monitor_name", "monitor_name", "demonitor_name", "monitor_name",
                                            "demonitor_name"}));
  EXPECT_EQ(hook.nodes.signals[0].detail.element(0), term(atom("kv")));
  EXPECT_EQ(hook.nodes.signals[0].detail.element(1), term(atom("app@host")));
}

TEST_F(RemoteSendTest, WithoutAHookAMonitorOfANameOnAnotherNodeFiresNoconnection) {
  outcome<term> reason;
  run([&](process& self) -> proc {
    ref r = monitor(name_on_node{atom("kv"), atom("app@host")});
    down d = co_await self.receive<down>();
    reason.set(d.monitor == r ? d.reason : term(atom("wrong_ref")));
  });
  EXPECT_EQ(reason.get(), term(atom("noconnection")));
}

TEST_F(RemoteSendTest, RemoteSignalsToALocalProcessThatEndedReportNoProcess) {
  const pid ended = [&] {
    outcome<pid> p;
    run([&](process& self) -> proc {
      p.set(self.self());
      co_return;
    });
    return p.get();
  }();
  EXPECT_FALSE(remote_signals::link(pid(3, 42, 1), ended));
  EXPECT_FALSE(remote_signals::unlink(pid(3, 42, 1), ended));
  EXPECT_FALSE(remote_signals::exit(pid(3, 42, 1), ended, term(atom("x")), false));
  EXPECT_FALSE(remote_signals::down(ended, ref(0, 1), pid(3, 42, 1), term(atom("x"))));
}

// Back-pressure (Erlang's dist_buf_busy_limit): a busy connection holds the sender, which goes on
// to its next suspension point and stays there until released.
TEST_F(RemoteSendTest, AHeldSenderStopsAtItsNextSuspensionPointUntilReleased) {
  installed hook;
  hook.nodes.hold_senders = true;
  outcome<pid> sent;
  outcome<bool> resumed;
  std::atomic<bool> released{false};
  std::atomic<bool> held_after_send{false};
  spawn([&](process& self) -> proc {
    send(pid(3, 42, 1), term(1));
    held_after_send = remote_signals::current_process_held();
    sent.set(self.self());  // the send itself never stops the process in the middle of its code
    send(self.self(), term(2));  // ready to receive, yet held
    (void)co_await self.receive<term>();
    resumed.set(released.load());
  });
  const pid sender = sent.get();
  // Erlang's process_info status `suspended`: parked although its receive could complete, until
  // released (the flag below is set before the release: `resumed` sees it).
  ASSERT_TRUE(becomes_suspended(sender));
  released = true;
  remote_signals::release_hold(sender);
  EXPECT_TRUE(resumed.get());
  EXPECT_TRUE(held_after_send);
  ASSERT_TRUE(rt_->wait_for(30s));
  std::lock_guard lock(hook.nodes.mu);
  EXPECT_EQ(hook.nodes.held, std::vector<pid>{sender});
}

// consume() is a suspension point too: a loop that sends and only checkpoints with consume()
// stops there (its time slice not used up).
TEST_F(RemoteSendTest, AHeldSenderStopsAtConsume) {
  installed hook;
  hook.nodes.hold_senders = true;
  outcome<pid> sent;
  outcome<bool> resumed;
  std::atomic<bool> released{false};
  spawn([&](process& self) -> proc {
    send(pid(3, 42, 1), term(1));
    sent.set(self.self());
    co_await self.consume(1);
    resumed.set(released.load());
  });
  const pid sender = sent.get();
  ASSERT_TRUE(becomes_suspended(sender));
  released = true;
  remote_signals::release_hold(sender);
  EXPECT_TRUE(resumed.get());
  ASSERT_TRUE(rt_->wait_for(30s));
}

TEST_F(RemoteSendTest, AHeldProcessCanStillBeKilled) {
  installed hook;
  hook.nodes.hold_senders = true;
  outcome<term> reason;
  run([&](process& self) -> proc {
    pid held = spawn([](process& me) -> proc {
      send(pid(3, 42, 1), term(1));
      (void)co_await me.receive<term>();
    });
    ref m = monitor(held);
    (void)m;
    exit(held, term(atom("kill")));
    down d = co_await self.receive<down>();
    reason.set(d.reason);
  });
  EXPECT_EQ(reason.get(), term(atom("killed")));
}

TEST_F(RemoteSendTest, AHoldOutsideAProcessHoldsNothingAndAReleaseOfNoOneIsIgnored) {
  EXPECT_EQ(remote_signals::hold_current_process(), pid());
  EXPECT_FALSE(remote_signals::current_process_held());
  remote_signals::release_hold(pid());
  outcome<pid> ended;
  run([&](process& self) -> proc {
    ended.set(self.self());
    co_return;
  });
  remote_signals::release_hold(ended.get());  // ended: ignored
}

TEST_F(RemoteSendTest, ARefusedSendThrowsSendRefusedAndSendsNothing) {
  installed hook;
  hook.nodes.refuse = true;
  outcome<std::string> errors;
  run([&](process&) -> proc {
    std::string seen;
    try {
      send(pid(3, 42, 1), term(1));
    } catch (const send_refused& e) {
      seen += std::string(e.what()).find("overloaded") != std::string::npos ? "pid " : "pid? ";
    }
    try {
      send(name_on_node{atom("kv"), atom("app@host")}, term(1));
    } catch (const send_refused& e) {
      seen += std::string(e.what()).find("kv") != std::string::npos ? "name" : "name?";
    }
    errors.set(seen);
    co_return;
  });
  EXPECT_EQ(errors.get(), "pid name");
  // From a plain thread too.
  EXPECT_THROW(send(pid(3, 42, 1), term(1)), send_refused);
  std::lock_guard lock(hook.nodes.mu);
  EXPECT_TRUE(hook.nodes.sends.empty());
  EXPECT_TRUE(hook.nodes.named.empty());
}

TEST(RemoteNodes, InstallReturnsThePreviousHook) {
  recording_nodes a, b;
  EXPECT_EQ(install_remote_nodes(&a), nullptr);
  EXPECT_EQ(installed_remote_nodes(), &a);
  EXPECT_EQ(install_remote_nodes(&b), &a);
  EXPECT_EQ(install_remote_nodes(nullptr), &b);
  EXPECT_EQ(installed_remote_nodes(), nullptr);
}

}  // namespace
}  // namespace athanor::testing
