// The channel registry under concurrency (issue 14): a broadcast pushes to a snapshot of its
// topic's subscribers with no lock held, while other processes join and leave that topic and
// other topics. Every subscriber joined for a whole broadcast gets it, one broadcaster's
// broadcasts arrive in the order made, and nothing crashes. Meant for TSan as much as for the
// release build: the lists are changed in place, copied on write, and read unlocked, all at once.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "athanor/athanor.h"
#include "athanor/web/channel_test.h"

namespace athanor::web::testing {
namespace {

constexpr std::string_view kTopic = "reg:main";
constexpr int kBroadcasters = 2;
constexpr std::int64_t kMinBroadcasts = 150;  // each; more while the churners have not done enough
constexpr int kSteady = 10;                   // joined for the whole run: half fastlane, half intercepting
constexpr int kChurners = 4;                  // join and leave over and over meanwhile
constexpr std::int64_t kMinChurnCycles = 40;  // joins of kTopic, all churners together
// Every wait's bound (they end as soon as what they wait for comes): generous, for TSan on a
// loaded 2-core machine.
constexpr test_socket::duration kWait{10'000};

// Answers "sync" once joined: its reply means the channel is subscribed (it subscribes right after
// its join, before it takes any message).
struct ticker : channel<ticker> {
  join_reply join(std::string_view, const term&, socket&) { return join_reply::ok(); }
  in_reply handle_in(std::string_view, const term&, socket&) { return in_reply::ok(); }
};
// The same, with "tick" broadcasts through its process (intercepted; pushed unchanged).
struct intercepting_ticker : ticker {
  static inline const std::vector<std::string> intercepts{"tick"};
};

struct ready {};
struct churner_done {
  std::int64_t cycles;
};
struct broadcaster_done {
  int b;
  std::int64_t count;
};
struct check {
  std::array<std::int64_t, kBroadcasters> counts;
};
struct verdict {
  int who;
  std::int64_t ticks;
};

// Broadcaster b's progress: `started` is set to i + 1 just before its broadcast i, `finished` just
// after it returned.
struct progress {
  std::atomic<std::int64_t> started{0};
  std::atomic<std::int64_t> finished{0};
};

struct shared_state {
  std::array<progress, kBroadcasters> broadcasters;
  std::atomic<std::int64_t> churn_cycles{0};
  std::atomic<bool> stop{false};
};

// The (broadcaster, index) of a tick frame, or {-1, -1} for any other frame.
std::pair<int, std::int64_t> tick_of(const channel_message& m) {
  if (m.topic != kTopic || m.event != "tick") return {-1, -1};
  return {int(m.payload.find(term("b"))->as_int()), m.payload.find(term("i"))->as_int()};
}

// Joins `topic` and waits until the channel is subscribed.
task<bool> join_and_sync(test_socket& s, std::string topic) {
  auto joined = co_await s.join(topic, map({}), kWait);
  if (!joined || joined->status != "ok") co_return false;
  auto synced = co_await s.reply_to(s.push(topic, "sync", map({})), kWait);
  co_return synced && synced->status == "ok";
}

TEST(ChannelRegistry, BroadcastsReachEverySubscriberJoinedThroughoutWhileOthersJoinAndLeave) {
  endpoint ep;
  socket_handler& fastlane = ep.socket("/a").channel<ticker>("reg:*");
  socket_handler& intercepting = ep.socket("/b").channel<intercepting_ticker>("reg:*");
  shared_state st;
  runtime rt(runtime_config{.schedulers = 4});
  spawn([&](process& self) -> proc {
    const pid coordinator = self.self();

    // Subscribers joined (and subscribed) before the first broadcast, until the end.
    std::vector<pid> steady;
    for (int k = 0; k < kSteady; ++k) {
      socket_handler& h = k % 2 ? intercepting : fastlane;
      steady.push_back(spawn([&h, k, coordinator](process& me) -> proc {
        test_socket s(h);
        EXPECT_TRUE(co_await join_and_sync(s, std::string(kTopic)));
        send(coordinator, ready{});
        const check c = co_await me.receive<check>();
        // Every broadcast, exactly once, each broadcaster's in order.
        std::array<std::int64_t, kBroadcasters> next{};
        std::int64_t total = 0, expected = 0;
        for (std::int64_t n : c.counts) expected += n;
        while (total < expected) {
          std::optional<term> tick = co_await s.pushed(std::string(kTopic), "tick", kWait);
          if (!tick) break;
          const int b = int(tick->find(term("b"))->as_int());
          const std::int64_t i = tick->find(term("i"))->as_int();
          EXPECT_EQ(i, next[std::size_t(b)]) << "steady subscriber " << k << ", broadcaster " << b;
          next[std::size_t(b)] = i + 1;
          ++total;
        }
        for (int b = 0; b < kBroadcasters; ++b) EXPECT_EQ(next[std::size_t(b)], c.counts[std::size_t(b)]);
        const std::vector<channel_message> rest = co_await s.received();
        for (const channel_message& m : rest) EXPECT_EQ(tick_of(m).first, -1) << "a tick more than once";
        send(coordinator, verdict{k, total});
      }));
    }
    for (int k = 0; k < kSteady; ++k) (void)co_await self.receive<ready>();

    // Churners: each joins kTopic (alternating the two channel types), checks what it got, leaves,
    // and joins and leaves a topic of its own, until the broadcasters are done.
    for (int c = 0; c < kChurners; ++c) {
      spawn([&, c, coordinator](process& me) -> proc {
        std::int64_t cycles = 0;
        std::array<std::int64_t, kBroadcasters> last{};  // per broadcaster, the last index seen
        last.fill(-1);
        test_socket s(c % 2 ? intercepting : fastlane);
        const std::string own = "reg:own:" + std::to_string(c);
        while (!st.stop.load()) {
          if (!co_await join_and_sync(s, std::string(kTopic))) {
            ADD_FAILURE() << "churner " << c << " could not join";
            break;
          }
          // Subscribed now: every broadcast that starts from here on includes this channel...
          std::array<std::int64_t, kBroadcasters> from{}, to{};
          for (int b = 0; b < kBroadcasters; ++b) from[std::size_t(b)] = st.broadcasters[std::size_t(b)].started.load();
          st.churn_cycles.fetch_add(1);
          (void)co_await s.join(own, map({}), kWait);  // another topic, meanwhile
          co_await me.yield();
          // ... and every one finished by now was queued before the leave below.
          for (int b = 0; b < kBroadcasters; ++b) to[std::size_t(b)] = st.broadcasters[std::size_t(b)].finished.load();
          auto left = co_await s.leave(std::string(kTopic), kWait);
          EXPECT_TRUE(left.has_value());
          (void)co_await s.leave(own, kWait);
          std::array<std::set<std::int64_t>, kBroadcasters> got;
          for (const channel_message& m : co_await s.received()) {
            const auto [b, i] = tick_of(m);
            if (b < 0) continue;
            // A broadcast may come twice around a leave and a rejoin (the old channel is still
            // subscribed until its process ends, as in Phoenix), never out of order.
            EXPECT_GE(i, last[std::size_t(b)]) << "churner " << c << ", broadcaster " << b;
            last[std::size_t(b)] = i;
            got[std::size_t(b)].insert(i);
          }
          for (int b = 0; b < kBroadcasters; ++b) {
            for (std::int64_t i = from[std::size_t(b)]; i < to[std::size_t(b)]; ++i) {
              EXPECT_TRUE(got[std::size_t(b)].contains(i)) << "churner " << c << " missed broadcast " << i << " of "
                                                           << b << " (joined through [" << from[std::size_t(b)]
                                                           << ", " << to[std::size_t(b)] << "))";
            }
          }
          ++cycles;
        }
        send(coordinator, churner_done{cycles});
      });
    }

    // Broadcasters: at least kMinBroadcasts each, and on until the churners have done enough.
    for (int b = 0; b < kBroadcasters; ++b) {
      spawn([&, b, coordinator](process& me) -> proc {
        progress& p = st.broadcasters[std::size_t(b)];
        std::int64_t i = 0;
        for (; i < kMinBroadcasts || st.churn_cycles.load() < kMinChurnCycles; ++i) {
          p.started.store(i + 1);
          broadcast(kTopic, "tick", map({{term("b"), term(b)}, {term("i"), term(i)}}));
          p.finished.store(i + 1);
          co_await me.yield();
        }
        send(coordinator, broadcaster_done{b, i});
      });
    }

    check c{};
    for (int b = 0; b < kBroadcasters; ++b) {
      const broadcaster_done d = co_await self.receive<broadcaster_done>();
      c.counts[std::size_t(d.b)] = d.count;
    }
    st.stop.store(true);
    std::int64_t cycles = 0;
    for (int k = 0; k < kChurners; ++k) cycles += (co_await self.receive<churner_done>()).cycles;
    EXPECT_GE(cycles, kMinChurnCycles);
    for (pid p : steady) send(p, c);
    for (int k = 0; k < kSteady; ++k) {
      const verdict v = co_await self.receive<verdict>();
      EXPECT_EQ(v.ticks, c.counts[0] + c.counts[1]) << "steady subscriber " << v.who;
    }
  });
  rt.wait();
}

// A topic whose last subscriber leaves goes from the registry, possibly while a broadcast still
// pushes to its list, and comes back with the next join: over and over, with broadcasts to it all
// along. Nothing crashes, and each join still ends subscribed.
TEST(ChannelRegistry, TopicsEmptiedAndRefilledDuringBroadcastsStayConsistent) {
  endpoint ep;
  socket_handler& h = ep.socket("/socket").channel<ticker>("reg:*");
  runtime rt(runtime_config{.schedulers = 4});
  std::atomic<bool> stop{false};
  spawn([&](process& self) -> proc {
    const pid coordinator = self.self();
    constexpr int kJoiners = 4;
    // Joiners: the topic's last subscriber leaves (the topic goes) and a first one joins (it comes
    // back), over and over, while a broadcaster sends to it.
    for (int j = 0; j < kJoiners; ++j) {
      spawn([&, coordinator](process&) -> proc {
        std::int64_t cycles = 0;
        while (!stop.load()) {
          test_socket s(h);
          EXPECT_TRUE(co_await join_and_sync(s, "reg:flicker"));
          EXPECT_TRUE((co_await s.leave("reg:flicker", kWait)).has_value());
          ++cycles;
        }
        send(coordinator, churner_done{cycles});
      });
    }
    std::int64_t sent = 0;
    for (; sent < 2000; ++sent) {
      (void)broadcast("reg:flicker", "tick", map({{term("b"), term(0)}, {term("i"), term(sent)}}));
      if (sent % 8 == 0) co_await self.yield();
    }
    stop.store(true);
    for (int j = 0; j < kJoiners; ++j) (void)co_await self.receive<churner_done>();
  });
  rt.wait();
}

}  // namespace
}  // namespace athanor::web::testing
