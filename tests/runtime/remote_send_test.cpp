// The runtime's hook to other nodes (remote.h): what send() does with a pid of another node.
#include <mutex>
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
  void send(pid from, pid to, term msg) noexcept override {
    std::lock_guard lock(mu);
    sends.push_back({from, to, std::move(msg)});
  }
  void send_named(pid from, atom name, atom node, term msg) noexcept override {
    std::lock_guard lock(mu);
    named.push_back({from, name, node, std::move(msg)});
  }
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
