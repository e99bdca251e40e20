// receive_any() and aliases (Erlang/OTP 24's alias/0, unalias/1 and send through an alias).
#include "test_util.h"

namespace athanor::testing {
namespace {

using namespace athanor::literals;

struct note { int n; };
struct other { std::string s; };
struct done {};

TEST_F(RuntimeTest, ReceiveAnyTakesMessagesOfEveryTypeInArrivalOrder) {
  run([](process& self) -> proc {
    send(self.self(), note{1});
    send(self.self(), other{"two"});
    send(self.self(), term("three"_a));
    message a = co_await self.receive_any();
    message b = co_await self.receive_any();
    message c = co_await self.receive_any();
    EXPECT_TRUE(a.is<note>());
    EXPECT_EQ(a.get<note>().n, 1);
    EXPECT_FALSE(a.is<other>());
    EXPECT_EQ(a.get_if<other>(), nullptr);
    EXPECT_NE(b.get_if<other>(), nullptr);
    EXPECT_EQ(b.get<other>().s, "two");
    EXPECT_EQ(b.type(), detail::type_of<other>());
    EXPECT_TRUE(c.is<term>());
    EXPECT_EQ(c.get<term>(), term("three"_a));
    EXPECT_EQ(self.message_queue_len(), 0u);
  });
}

TEST_F(RuntimeTest, ReceiveAnyForTimesOutWithAnEmptyMessage) {
  run([](process& self) -> proc {
    message m = co_await self.receive_any_for(5ms);
    EXPECT_FALSE(m);
    send(self.self(), note{7});
    message n = co_await self.receive_any_for(1s);
    EXPECT_TRUE(n);
    EXPECT_EQ(n.get<note>().n, 7);
    message moved = std::move(n);
    EXPECT_FALSE(n);  // NOLINT: moved-from is empty by contract
    EXPECT_TRUE(moved.is<note>());
  });
}

TEST_F(RuntimeTest, ReceiveAnyAfterASelectiveReceiveSeesTheSkippedMessages) {
  run([](process& self) -> proc {
    send(self.self(), note{1});
    send(self.self(), other{"x"});
    other o = co_await self.receive<other>();  // skips note
    EXPECT_EQ(o.s, "x");
    message m = co_await self.receive_any();
    EXPECT_EQ(m.get<note>().n, 1);
  });
}

TEST_F(RuntimeTest, MessageThroughAnActiveAliasIsReceived) {
  run([](process& self) -> proc {
    ref a = alias();
    pid me = self.self();
    spawn([me, a](process&) -> proc {
      EXPECT_TRUE(send_alias(me, a, note{42}));
      co_return;
    });
    note n = co_await self.receive<note>();
    EXPECT_EQ(n.n, 42);
    EXPECT_TRUE(unalias(a));
    EXPECT_FALSE(unalias(a));
  });
}

TEST_F(RuntimeTest, MessageThroughAnInactiveAliasIsDropped) {
  // OTP: "messages sent using an alias that has been deactivated are dropped".
  run([](process& self) -> proc {
    ref a = alias();
    unalias(a);
    pid me = self.self();
    spawn([me, a](process&) -> proc {
      send_alias(me, a, note{1});
      send(me, done{});  // sent after: arrives after the aliased message (per-pair order)
      co_return;
    });
    co_await self.receive<done>();
    EXPECT_EQ(self.message_queue_len(), 0u);
    auto late = co_await self.receive_for<note>(0ms);
    EXPECT_FALSE(late.has_value());
  });
}

TEST_F(RuntimeTest, AnExistingReferenceCanBecomeAnAlias) {
  run([](process& self) -> proc {
    ref r = make_ref();
    alias(r);
    alias(r);  // idempotent
    send_alias(self.self(), r, note{5});
    note n = co_await self.receive<note>();
    EXPECT_EQ(n.n, 5);
    EXPECT_TRUE(unalias(r));
    EXPECT_FALSE(unalias(r));
  });
}

TEST_F(RuntimeTest, SendAliasToAnEndedProcessReturnsFalse) {
  run([](process& self) -> proc {
    auto [p, m] = spawn_monitor([](process&) -> proc { co_return; });
    co_await self.receive<down>();
    EXPECT_FALSE(send_alias(p, make_ref(), note{1}));
  });
}

// OTP's aliases name their process (what lets another node's ALIAS_SEND find it); references
// from make_ref() and monitor() name none.
TEST_F(RuntimeTest, AnAliasNamesItsOwnerAndOtherReferencesNoOne) {
  outcome<std::vector<pid>> owners;
  outcome<pid> me;
  run([&](process& self) -> proc {
    me.set(self.self());
    const ref a = alias();
    const ref b = alias();
    auto [child, m] = spawn_monitor([](process&) -> proc { co_return; });
    (void)child;
    co_await self.receive<down>();
    owners.set({alias_owner(a), alias_owner(b), alias_owner(make_ref()), alias_owner(m), alias_owner(ref(3, 7))});
    EXPECT_NE(a, b);
    EXPECT_EQ(a.word_count(), 5u);
  });
  const pid owner = me.get();
  EXPECT_EQ(owners.get(), (std::vector<pid>{owner, owner, pid(), pid(), pid()}));
}

// A pid naming a slot the runtime never constructed (one from another node's message, or
// forged) is like an ended process's: nothing is pushed into the slot's future inbox.
TEST_F(RuntimeTest, SendsToASlotNeverConstructedAreRefused) {
  const pid beyond(0, std::uint32_t(system_info().process_limit) - 1, 0);
  EXPECT_FALSE(is_alive(beyond));
  EXPECT_FALSE(send_alias(beyond, make_ref(), note{1}));
}

TEST(AliasOutsideProcess, AliasNeedsAProcess) {
  runtime rt;
  EXPECT_THROW(alias(), std::logic_error);
  EXPECT_THROW(unalias(make_ref()), std::logic_error);
}

}  // namespace
}  // namespace athanor::testing
