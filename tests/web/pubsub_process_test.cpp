// Processes subscribed to PubSub topics (pubsub.h: subscribe, unsubscribe, broadcast,
// local_broadcast), as Phoenix.PubSub's subscribers: what a LiveView or any server process uses
// to hear a topic's broadcasts.
#include <gtest/gtest.h>

#include <string>

#include "athanor/athanor.h"
#include "athanor/web/channel_test.h"
#include "athanor/web/pubsub.h"

namespace athanor::web::testing {
namespace {

using namespace std::chrono_literals;

template <class F>
void in_process(F body) {
  runtime rt;
  spawn([body = std::move(body)](process& self) mutable -> proc { return body(self); });
  rt.wait();
}

TEST(PubSubProcesses, ASubscriberGetsEveryBroadcastToItsTopicAsABroadcastMessage) {
  in_process([](process& self) -> proc {
    pubsub::subscribe("news:1");
    pubsub::subscribe("news:1");  // twice is once
    EXPECT_EQ(web::broadcast("news:1", "headline", map({{term("text"), term("hi")}})), 0u);  // no channels
    EXPECT_EQ(pubsub::broadcast("news:2", "other", map({})), 0u);                          // another topic
    auto m = co_await self.receive_for<pubsub::broadcast_message>(5s);
    EXPECT_TRUE(m.has_value());
    if (m) {
      EXPECT_EQ(m->topic, "news:1");
      EXPECT_EQ(m->event, "headline");
      EXPECT_EQ(m->payload, map({{term("text"), term("hi")}}));
    }
    EXPECT_FALSE((co_await self.receive_for<pubsub::broadcast_message>(50ms)).has_value());  // once, not twice
    EXPECT_EQ(pubsub::local_broadcast("news:1", "again", map({})), 1u);
    EXPECT_TRUE((co_await self.receive_for<pubsub::broadcast_message>(5s)).has_value());
    EXPECT_TRUE(pubsub::unsubscribe("news:1"));
    EXPECT_FALSE(pubsub::unsubscribe("news:1"));
    EXPECT_EQ(pubsub::local_broadcast("news:1", "gone", map({})), 0u);
    EXPECT_FALSE((co_await self.receive_for<pubsub::broadcast_message>(50ms)).has_value());
  });
}

TEST(PubSubProcesses, ASubscriberThatEndedIsDroppedAndNotCounted) {
  in_process([](process& self) -> proc {
    spawn_monitor([](process&) -> proc {
      pubsub::subscribe("news:3");
      co_return;
    });
    (void)co_await self.receive<down>();
    EXPECT_EQ(pubsub::local_broadcast("news:3", "x", map({})), 0u);
  });
}

// A channel's broadcast reaches subscribed processes too (and a process's broadcast the channel).
struct shouter : channel<shouter> {
  join_reply join(std::string_view, const term&, socket&) { return join_reply::ok(); }
  in_reply handle_in(std::string_view, const term& payload, socket& s) {
    s.broadcast("shout", payload);
    return in_reply::noreply();
  }
};

TEST(PubSubProcesses, ChannelsAndProcessesHearEachOthersBroadcasts) {
  endpoint ep;
  socket_handler& h = ep.socket("/socket").channel<shouter>("hall:*");
  in_process([&](process& self) -> proc {
    pubsub::subscribe("hall:1");
    test_socket client(h);
    (void)co_await client.join("hall:1");
    (void)client.push("hall:1", "go", map({{term("n"), term(1)}}));
    auto heard = co_await self.receive_for<pubsub::broadcast_message>(5s);
    EXPECT_TRUE(heard.has_value());
    if (heard) EXPECT_EQ(heard->payload, map({{term("n"), term(1)}}));
    EXPECT_EQ(pubsub::broadcast("hall:1", "from_process", map({{term("n"), term(2)}})), 1u);
    EXPECT_EQ(co_await client.pushed("hall:1", "from_process"), map({{term("n"), term(2)}}));
  });
}

}  // namespace
}  // namespace athanor::web::testing
