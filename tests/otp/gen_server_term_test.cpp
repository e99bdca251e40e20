// gen_server in Erlang's own protocol, with terms: call(server, term) as gen_server:call makes it,
// and servers whose handle_call / handle_cast take terms answering {'$gen_call', From, Request}
// and {'$gen_cast', Request} (what an Erlang or Elixir caller sends across nodes).
#include "../runtime/test_util.h"
#include "athanor/otp/gen_server.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

// A key-value store speaking terms, as an Elixir GenServer would.
struct kv : gen_server<kv> {
  std::map<term, term> data;
  term handle_call(term request) {
    if (request.is_tuple() && request.tuple_size() == 2 && request.element(0) == term("get"_a)) {
      auto it = data.find(request.element(1));
      return it == data.end() ? term("nil"_a) : it->second;
    }
    if (request == term("stop"_a)) {
      stop("normal"_a);
      return term("ok"_a);
    }
    return tuple("error"_a, "unknown_request"_a);
  }
  void handle_cast(term request) {
    if (request.is_tuple() && request.tuple_size() == 3 && request.element(0) == term("put"_a)) {
      data[request.element(1)] = request.element(2);
    }
  }
};

// A server whose call handler waits (a coroutine), answering after it.
struct slow_echo : gen_server<slow_echo> {
  task<term> handle_call(term request) {
    co_await this_process().sleep(1ms);
    co_return tuple("echo"_a, request);
  }
};

TEST_F(RuntimeTest, TermCallsAndCastsReachTermHandlers) {
  run([](process&) -> proc {
    pid s = (co_await start<kv>(server_options{.name = "kv"_a})).value();
    send(s, tuple("$gen_cast"_a, tuple("put"_a, "k"_a, 42)));  // what gen_server:cast sends
    term got = co_await call("kv", tuple("get"_a, "k"_a));
    EXPECT_EQ(got, term(42));
    EXPECT_EQ(co_await call(s, tuple("get"_a, "other"_a)), term("nil"_a));
    EXPECT_EQ(co_await call(s, term("what"_a)), tuple("error"_a, "unknown_request"_a));
    EXPECT_EQ(co_await call(s, term("stop"_a)), term("ok"_a));
  });
}

TEST_F(RuntimeTest, ARawGenCallMessageGetsItsTagBack) {
  // An Erlang caller's message, built by hand: the reply is {Tag, Reply} to the caller's pid,
  // whatever the tag is ([alias | Ref] from OTP 24+, a plain reference before).
  run([](process& self) -> proc {
    pid s = (co_await start<kv>()).value();
    send(s, tuple("$gen_cast"_a, tuple("put"_a, 1, "one"_a)));
    const term tag = list({term("alias"_a)}, term(make_ref()));
    send(s, tuple("$gen_call"_a, tuple(self.self(), tag), tuple("get"_a, 1)));
    term reply = co_await self.receive<term>();
    EXPECT_EQ(reply, tuple(tag, "one"_a));
    co_await stop(s);
  });
}

TEST_F(RuntimeTest, ACoroutineTermHandlerRepliesWhenItIsDone) {
  run([](process&) -> proc {
    pid s = (co_await start<slow_echo>()).value();
    EXPECT_EQ(co_await call(s, term(7)), tuple("echo"_a, 7));
    co_await stop(s);
  });
}

TEST_F(RuntimeTest, TermCallsFailAsGenServerCallDoes) {
  run([](process& self) -> proc {
    // Nothing registered under that name: noproc at once.
    try {
      (void)co_await call("nobody", term(1), 1000ms);
      ADD_FAILURE() << "no exception";
    } catch (const call_error& e) {
      EXPECT_EQ(e.why, term("noproc"_a));
    }
    // A process that never answers: timeout, and no late reply left in the mailbox afterwards.
    pid mute = spawn([](process& me) -> proc { (void)co_await me.receive<term>(); co_await me.receive<int>(); });
    try {
      (void)co_await call(mute, term(1), 20ms);
      ADD_FAILURE() << "no exception";
    } catch (const call_error& e) {
      EXPECT_EQ(e.why, term("timeout"_a));
    }
    EXPECT_EQ(self.message_queue_len(), 0u);
    // A server that ends instead of answering: its exit reason.
    pid dying = spawn([](process& me) -> proc {
      (void)co_await me.receive<term>();
      exit(term("gone"_a));
    });
    try {
      (void)co_await call(dying, term(1), 1000ms);
      ADD_FAILURE() << "no exception";
    } catch (const call_error& e) {
      EXPECT_EQ(e.why, term("gone"_a));
    }
    send(mute, 0);
  });
}

}  // namespace
}  // namespace athanor::testing
