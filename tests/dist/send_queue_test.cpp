// A connection's send queue against a real Erlang node that stops reading (SIGSTOP): large
// messages go out in fragments between other senders' packets, each sender's order is kept,
// busy senders are held (Erlang's dist_buf_busy_limit) and a sender past the hard limit is
// refused loudly.
#include <csignal>
#include <future>
#include <thread>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "erl_util.h"

namespace athanor::dist::testing {
namespace {

using namespace std::chrono_literals;

// An Erlang node whose `sink` records what it receives: an atom as itself, {Tag, Binary} as
// {Tag, byte_size(Binary)}; {report, From, N} answers {order, Seen} once it has seen N messages
// (messages of different senders may overtake each other) and starts over; {ping, From} answers
// pong.
struct sink_peer {
  temp_dir home;
  std::string name = unique_name("sink");
  child process;
  sink_peer(std::uint16_t epmd_port, const std::string& cookie)
      : process({"erl", "-sname", name, "-setcookie", cookie, "-noshell", "-eval",
                 "Loop = fun L(Acc, Report) -> case Report of "
                 "{RF, RN} when length(Acc) >= RN -> RF ! {order, lists:reverse(Acc)}, L([], none); "
                 "_ -> receive {ping, F} -> F ! pong, L(Acc, Report); "
                 "{report, F, N} -> L(Acc, {F, N}); "
                 "{Tag, B} when is_binary(B) -> L([{Tag, byte_size(B)} | Acc], Report); "
                 "A when is_atom(A) -> L([A | Acc], Report) end end end, "
                 "register(sink, spawn(fun() -> Loop([], none) end)), "
                 "io:format(\"ready~n\"), timer:sleep(300000), halt()."},
                erl_env(home.path(), epmd_port)) {}
  bool ready() { return wait_for_line(process, "ready"); }
};

// Sends {ping, self()} to the sink and waits for pong: the connection is up and the sink serves.
bool ping(const name_on_node& sink) {
  return in_process([sink](process& self) -> task<term> {
           send(sink, tuple(atom("ping"), self.self()));
           std::optional<term> r = co_await self.receive_for<term>(30s);
           co_return r ? *r : term(atom("timeout"));
         }) == term(atom("pong"));
}

term report(const name_on_node& sink, std::size_t count) {
  return in_process([sink, count](process& self) -> task<term> {
    send(sink, tuple(atom("report"), self.self(), term(std::int64_t(count))));
    std::optional<term> r = co_await self.receive_for<term>(60s);
    co_return r ? *r : term(atom("timeout"));
  });
}

// Waits (bounded) until `p` has the process_info status `want`.
bool reaches_status(pid p, process_info_t::status_t want) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<process_info_t> info = process_info(p);
    if (info && info->status == want) return true;
    std::this_thread::yield();
  }
  return false;
}

term binary_of(std::size_t n) {
  std::string bytes(n, 'x');
  return term::binary(std::as_bytes(std::span(bytes)));
}

// Erlang keeps the order of two processes' signals, not of different senders' messages: a small
// message sent while another process's 100 MB message is on its way is not queued behind it (OTP
// sends large messages in fragments; so does this node, 64 KiB each), while each sender's own
// messages arrive in the order it sent them. The peer is stopped while the messages are queued,
// so the 100 MB message is still going out when the small one comes. The senders, past the busy
// limit, are held (status `suspended`) until the queue drains.
TEST(SendQueue, ALargeMessageGoesInFragmentsBetweenOtherSendersMessagesInEachSendersOrder) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppq"), .cookie = "queue-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  sink_peer peer(epmd_port, "queue-cookie");
  ASSERT_TRUE(peer.ready()) << peer.process.output();
  const name_on_node sink{atom("sink"), atom(peer.name + "@" + std::string(n.full_name().host()))};
  ASSERT_TRUE(ping(sink));

  peer.process.signal(SIGSTOP);
  constexpr std::size_t kLarge = 100u << 20;
  std::promise<pid> large_sent;
  std::promise<void> go_on;
  std::shared_future<void> go = go_on.get_future().share();
  auto a_done = std::make_shared<std::promise<void>>();
  const pid a = spawn([&, a_done](process& self) -> proc {
    send(sink, tuple(atom("a_large"), binary_of(kLarge)));
    send(sink, atom("a_after"));
    large_sent.set_value(self.self());
    (void)co_await self.receive<term>();  // held here: the queue is far past the busy limit
    a_done->set_value();
  });
  ASSERT_EQ(large_sent.get_future().get(), a);
  std::promise<void> b_sent;
  spawn([&](process&) -> proc {
    send(sink, atom("b_small"));
    b_sent.set_value();
    co_return;
  });
  b_sent.get_future().wait();
  EXPECT_TRUE(reaches_status(a, process_info_t::status_t::suspended));
  send(a, term(atom("go")));  // a message does not wake a held process...
  EXPECT_TRUE(reaches_status(a, process_info_t::status_t::suspended));
  peer.process.signal(SIGCONT);  // ...the queue draining does
  EXPECT_EQ(a_done->get_future().wait_for(60s), std::future_status::ready);

  const term order = report(sink, 3);
  EXPECT_EQ(order, tuple(atom("order"), list({term(atom("b_small")), tuple(atom("a_large"), term(std::int64_t(kLarge))),
                                              term(atom("a_after"))})))
      << order.to_string();
}

// Past send_queue_hard_limit_bytes a send fails loudly (send_refused), from a plain thread and
// from a process that never suspends; what was accepted before still arrives, in order.
TEST(SendQueue, PastTheHardLimitASendIsRefusedLoudlyAndNothingAcceptedIsLost) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node_config cfg{.name = unique_name("cpph"), .cookie = "hard-cookie", .epmd = {.epmd = {.port = epmd_port}}};
  cfg.busy_limit_bytes = 1u << 20;
  cfg.send_queue_hard_limit_bytes = 8u << 20;
  node n = start(cfg);
  sink_peer peer(epmd_port, "hard-cookie");
  ASSERT_TRUE(peer.ready()) << peer.process.output();
  const name_on_node sink{atom("sink"), atom(peer.name + "@" + std::string(n.full_name().host()))};
  ASSERT_TRUE(ping(sink));

  peer.process.signal(SIGSTOP);
  // A plain thread: 1 MiB messages until refused.
  int accepted = 0;
  std::string error;
  for (int i = 0; i < 1000 && error.empty(); ++i) {
    try {
      send(sink, tuple(atom("thread"), binary_of(1u << 20)));
      ++accepted;
    } catch (const send_refused& e) {
      error = e.what();
    }
  }
  EXPECT_NE(error.find("overloaded"), std::string::npos) << error;
  // The socket takes some (a few MiB on loopback), the queue the rest up to the limit.
  EXPECT_GE(accepted, 8);
  EXPECT_LT(accepted, 1000);
  // A process may send once more (it is held at its next suspension point); one that goes on
  // sending without ever reaching one is refused as the thread was.
  const term in_loop = in_process([sink](process&) -> task<term> {
    for (int i = 0; i < 1000; ++i) {
      try {
        send(sink, atom("never"));
      } catch (const send_refused&) {
        co_return term(atom("refused"));
      }
    }
    co_return term(atom("accepted"));
  });
  EXPECT_EQ(in_loop, term(atom("refused")));
  peer.process.signal(SIGCONT);

  const term order = report(sink, std::size_t(accepted) + 1);
  ASSERT_TRUE(order.is_tuple() && order.tuple_size() == 2) << order.to_string();
  const term seen = order.element(1);
  // Every message accepted arrived: the thread's and the one the process could send (which may
  // overtake the thread's, sent in fragments: another sender).
  std::size_t from_thread = 0, from_process = 0, other = 0;
  for (term t = seen; t.is_list() && !t.is_nil(); t = t.tail()) {
    if (t.head() == tuple(atom("thread"), term(std::int64_t(1) << 20))) ++from_thread;
    else if (t.head() == term(atom("never"))) ++from_process;
    else ++other;
  }
  EXPECT_EQ(from_thread, std::size_t(accepted)) << seen.to_string();
  EXPECT_EQ(from_process, 1u) << seen.to_string();
  EXPECT_EQ(other, 0u) << seen.to_string();
}

// A sender held by a busy connection is let go when the connection ends (the peer dies): it is
// never left waiting for a queue nobody drains.
TEST(SendQueue, HeldSendersAreReleasedWhenTheConnectionEnds) {
  ATHANOR_REQUIRE_ERL();
  const std::uint16_t epmd_port = free_port();
  runtime rt(runtime_config{.schedulers = 2});
  node n = start({.name = unique_name("cppr"), .cookie = "release-cookie", .epmd = {.epmd = {.port = epmd_port}}});
  sink_peer peer(epmd_port, "release-cookie");
  ASSERT_TRUE(peer.ready()) << peer.process.output();
  const name_on_node sink{atom("sink"), atom(peer.name + "@" + std::string(n.full_name().host()))};
  ASSERT_TRUE(ping(sink));

  peer.process.signal(SIGSTOP);
  std::promise<pid> sent;
  auto resumed = std::make_shared<std::promise<void>>();
  spawn([&, resumed](process& self) -> proc {
    send(sink, tuple(atom("big"), binary_of(32u << 20)));
    sent.set_value(self.self());
    co_await self.yield();
    resumed->set_value();
  });
  const pid held = sent.get_future().get();
  EXPECT_TRUE(reaches_status(held, process_info_t::status_t::suspended));
  peer.process.signal(SIGKILL);
  EXPECT_EQ(resumed->get_future().wait_for(30s), std::future_status::ready);
}

}  // namespace
}  // namespace athanor::dist::testing
