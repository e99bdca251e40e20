// The runtime's workloads: spawn_idle, ping_pong, ring, fan_out, create_destroy, fairness, timers.
// The same workloads exist in Erlang (bench/erlang) and CAF (bench/caf).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include "bench.h"

using namespace athanor;
using namespace athanor::bench;
using namespace std::chrono_literals;

namespace {

struct stop {};
struct request { pid from; };
struct reply {};
struct token { long hops_left; };
struct ping { pid from; };
struct pong {};

// ---- spawn_idle -------------------------------------------------------------------------------
void spawn_idle(const options& o) {
  long n = o.n > 0 ? o.n : 1'000'000;
  runtime rt(config_for(o));
  std::vector<pid> pids(static_cast<std::size_t>(n));  // allocated and touched before the baseline
  std::atomic<long> started{0};
  struct result { double spawn_ns; long rss_before, rss_after; double exit_ns; };
  result r{};
  spawn([&](process& self) -> proc {
    r.rss_before = rss_bytes();
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) {
      pids[std::size_t(i)] = spawn([&started](process& child) -> proc {
        started.fetch_add(1, std::memory_order_relaxed);
        co_await child.receive<stop>();
      });
      co_await self.consume(1);  // long loops checkpoint (Erlang's scheduler preempts them by itself)
    }
    r.spawn_ns = ns_since(t0);
    while (started.load(std::memory_order_relaxed) < n) co_await self.sleep(1ms);
    r.rss_after = rss_bytes();
    auto t1 = clock_type::now();
    for (pid p : pids) {
      send(p, stop{});
      co_await self.consume(1);
    }
    (void)t1;
  });
  rt.wait();
  print_line(fmt::format(
      R"({{"bench":"spawn_idle","system":"athanor","n":{},"schedulers":{},"ns_per_spawn":{:.1f},"bytes_per_process":{:.1f},"rss_mb":{:.1f}}})",
      n, effective_schedulers(rt), r.spawn_ns / double(n), double(r.rss_after - r.rss_before) / double(n),
      double(r.rss_after) / 1048576.0));
}

// Answers every ping with a pong until told to stop.
proc echo(process& self) {
  for (;;) {
    auto m = co_await self.receive<ping, stop>();
    if (m.index() == 1) co_return;
    send(std::get<0>(m).from, pong{});
  }
}

// ---- ping_pong --------------------------------------------------------------------------------
void ping_pong(const options& o) {
  long n = o.n > 0 ? o.n : 2'000'000;
  runtime rt(config_for(o));
  double ns = 0;
  spawn([&](process& self) -> proc {
    pid ponger = spawn(echo);
    pid me = self.self();
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) {
      send(ponger, ping{me});
      co_await self.receive<pong>();
    }
    ns = ns_since(t0);
    send(ponger, stop{});
  });
  rt.wait();
  print_line(fmt::format(R"({{"bench":"ping_pong","system":"athanor","n":{},"schedulers":{},"ns_per_roundtrip":{:.1f}}})", n,
                         effective_schedulers(rt), ns / double(n)));
}

// ---- ring -------------------------------------------------------------------------------------
void ring(const options& o) {
  long n = o.n > 0 ? o.n : 10'000;
  long laps = o.laps;
  runtime rt(config_for(o));
  double ns = 0;
  spawn([&](process& self) -> proc {
    pid me = self.self();
    // Each member forwards the token to the next; the last one links back to the driver's
    // choice of first member, set by a message once the ring is complete.
    std::vector<pid> members(static_cast<std::size_t>(n));
    // Every loop of spawns or sends checkpoints: send() and spawn() charge a reduction but are
    // not suspension points, so without one the driver holds its thread for the whole loop
    // (tens of ms at n = 10,000 on a slow VM) and sysmon counts it as a CPU hog.
    for (long i = 0; i < n; ++i) {
      members[std::size_t(i)] = spawn([me](process& s) -> proc {
        pid next = co_await s.receive<pid>();
        for (;;) {
          auto m = co_await s.receive<token, stop>();
          if (m.index() == 1) co_return;
          token t = std::get<0>(m);
          if (t.hops_left == 0) send(me, t);
          else send(next, token{t.hops_left - 1});
        }
      });
      co_await self.consume(1);
    }
    for (long i = 0; i < n; ++i) {
      send(members[std::size_t(i)], members[std::size_t((i + 1) % n)]);
      co_await self.consume(1);
    }
    auto t0 = clock_type::now();
    send(members[0], token{n * laps - 1});
    co_await self.receive<token>();
    ns = ns_since(t0);
    for (pid p : members) {
      send(p, stop{});
      co_await self.consume(1);
    }
  });
  rt.wait();
  double hops = double(n) * double(laps);
  print_line(fmt::format(R"({{"bench":"ring","system":"athanor","n":{},"laps":{},"schedulers":{},"hops_per_sec":{:.0f}}})", n, laps,
                         effective_schedulers(rt), hops / (ns / 1e9)));
}

// ---- fan_out ----------------------------------------------------------------------------------
void fan_out(const options& o) {
  long n = o.n > 0 ? o.n : 1'000'000;
  runtime rt(config_for(o));
  double ns = 0;
  // Allocated here, not in the driver: zeroing 8 MB of fresh pages takes 10 ms on a slow VM,
  // which in process code is a CPU hog.
  std::vector<pid> workers(static_cast<std::size_t>(n));
  spawn([&](process& self) -> proc {
    std::atomic<long> ready{0};
    for (long i = 0; i < n; ++i) {
      workers[std::size_t(i)] = spawn([&ready](process& s) -> proc {
        ready.fetch_add(1, std::memory_order_relaxed);
        request r = co_await s.receive<request>();
        send(r.from, reply{});
      });
      co_await self.consume(1);  // spawns are not suspension points (see ring)
    }
    while (ready.load(std::memory_order_relaxed) < n) co_await self.sleep(1ms);
    pid me = self.self();
    auto t0 = clock_type::now();
    for (pid w : workers) {
      send(w, request{me});
      co_await self.consume(1);
    }
    for (long i = 0; i < n; ++i) co_await self.receive<reply>();
    ns = ns_since(t0);
  });
  rt.wait();
  print_line(fmt::format(R"({{"bench":"fan_out","system":"athanor","n":{},"schedulers":{},"msgs_per_sec":{:.0f}}})", n,
                         effective_schedulers(rt), 2.0 * double(n) / (ns / 1e9)));
}

// ---- create_destroy -----------------------------------------------------------------------------
void create_destroy(const options& o) {
  long n = o.n > 0 ? o.n : 1'000'000;
  runtime rt(config_for(o));
  double ns = 0;
  spawn([&](process& self) -> proc {
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) {
      spawn_monitor([](process&) -> proc { co_return; });
      co_await self.receive<down>();
    }
    ns = ns_since(t0);
  });
  rt.wait();
  print_line(fmt::format(R"({{"bench":"create_destroy","system":"athanor","n":{},"schedulers":{},"ns_per_cycle":{:.1f}}})", n,
                         effective_schedulers(rt), ns / double(n)));
}

// ---- fairness -----------------------------------------------------------------------------------
volatile long g_sink;

void fairness(const options& o) {
  long samples = o.n > 0 ? o.n : 500;
  options oo = o;
  if (oo.schedulers == 0) oo.schedulers = 2;
  runtime rt(config_for(oo));
  std::atomic<bool> stop_hogs{false};
  for (int h = 0; h < o.hogs; ++h) {
    if (o.checkpoint) {
      spawn([&stop_hogs](process& self) -> proc {
        long x = 1;
        while (!stop_hogs.load(std::memory_order_relaxed)) {
          for (int i = 0; i < 64; ++i) x = x * 6364136223846793005L + 1442695040888963407L;
          g_sink = x;
          co_await self.consume(1);
        }
      });
    } else {
      spawn([&stop_hogs](process&) -> proc {
        long x = 1;
        while (!stop_hogs.load(std::memory_order_relaxed)) {
          for (int i = 0; i < 64; ++i) x = x * 6364136223846793005L + 1442695040888963407L;
          g_sink = x;
        }
        co_return;
      });
    }
  }
  std::vector<double> lat;
  spawn([&](process& self) -> proc {
    pid echo_pid = spawn(echo);
    pid me = self.self();
    for (long i = 0; i < samples; ++i) {
      co_await self.sleep(10ms);
      auto t0 = clock_type::now();
      send(echo_pid, ping{me});
      co_await self.receive<pong>();
      lat.push_back(ns_since(t0) / 1000.0);
    }
    send(echo_pid, stop{});
    stop_hogs = true;
  });
  rt.wait();
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, std::size_t(q * double(lat.size())))]; };
  print_line(fmt::format(
      R"({{"bench":"fairness","system":"athanor","n":{},"schedulers":{},"hogs":{},"checkpoint":{},"p50_us":{:.1f},"p99_us":{:.1f},"max_us":{:.1f},"relief_threads":{}}})",
      samples, oo.schedulers, o.hogs, o.checkpoint ? "true" : "false", pct(0.5), pct(0.99), lat.empty() ? 0.0 : lat.back(),
      system_info().relief_threads));
}

// ---- timers -------------------------------------------------------------------------------------
// Arms N timers (deadlines spread over 10..20 s), then cancels them all: cost per timer.
void timers(const options& o) {
  long n = o.n > 0 ? o.n : 1'000'000;
  runtime rt(config_for(o));
  double arm_ns = 0, cancel_ns = 0;
  long rss_before = 0, rss_after = 0;
  std::vector<timer_ref> refs(static_cast<std::size_t>(n));
  spawn([&](process& self) -> proc {
    rss_before = rss_bytes();
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) {
      refs[std::size_t(i)] = send_after(std::chrono::milliseconds(10'000 + i % 10'000), self.self(), stop{});
      co_await self.consume(1);  // long loops checkpoint (see ring)
    }
    arm_ns = ns_since(t0);
    rss_after = rss_bytes();
    auto t1 = clock_type::now();
    long cancelled = 0;
    for (timer_ref t : refs) {
      cancelled += cancel_timer(t);
      co_await self.consume(1);
    }
    cancel_ns = ns_since(t1);
    if (cancelled != n) std::fprintf(stderr, "timers: only %ld of %ld cancelled\n", cancelled, n);
    co_return;
  });
  rt.wait();
  print_line(fmt::format(
      R"({{"bench":"timers","system":"athanor","n":{},"schedulers":{},"ns_per_arm":{:.1f},"ns_per_cancel":{:.1f},"bytes_per_timer":{:.1f}}})",
      n, effective_schedulers(rt), arm_ns / double(n), cancel_ns / double(n), double(rss_after - rss_before) / double(n)));
}

}  // namespace

ATHANOR_BENCH_WORKLOAD("spawn_idle", spawn_idle);
ATHANOR_BENCH_WORKLOAD("ping_pong", ping_pong);
ATHANOR_BENCH_WORKLOAD("ring", ring);
ATHANOR_BENCH_WORKLOAD("fan_out", fan_out);
ATHANOR_BENCH_WORKLOAD("create_destroy", create_destroy);
ATHANOR_BENCH_WORKLOAD("fairness", fairness);
ATHANOR_BENCH_WORKLOAD("timers", timers);
