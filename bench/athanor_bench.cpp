// athanor-bench <workload> [--n N] [--schedulers S] [--laps L] [--hogs H] [--checkpoint 0|1]
//
// Prints one JSON object per line. The same workloads exist in Erlang (bench/erlang) and CAF
// (bench/caf); bench/compare.sh runs all three in one go and prints the ratios.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "athanor/athanor.h"

using namespace athanor;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
  std::string workload;
  long n = -1;
  unsigned schedulers = 0;
  long laps = 1000;
  int hogs = 4;
  bool checkpoint = true;
};

long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

double ns_since(clock_type::time_point t) {
  return double(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t).count());
}

struct stop {};
struct request { pid from; };
struct reply {};
struct token { long hops_left; };
struct ping { pid from; };
struct pong {};

runtime_config config_for(const options& o) {
  runtime_config c;
  c.schedulers = o.schedulers;
  c.max_processes = std::size_t(std::max<long>(o.n + 1000, 1 << 20));
  return c;
}

// Prints one result line, adding how many relief threads the runtime had to start for CPU hogs
// (a loop without a checkpoint): a figure measured with relief threads running is not typical.
void print_line(std::string json) {
  if (!json.empty() && json.back() == '}' && json.find("\"relief_threads\"") == std::string::npos)
    json.insert(json.size() - 1, fmt::format(R"(,"relief_threads":{})", system_info().relief_threads));
  std::fwrite(json.data(), 1, json.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

unsigned effective_schedulers(const runtime& rt) { return rt.config().schedulers; }

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
    for (pid p : pids) send(p, stop{});
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
    }
    for (long i = 0; i < n; ++i) send(members[std::size_t(i)], members[std::size_t((i + 1) % n)]);
    auto t0 = clock_type::now();
    send(members[0], token{n * laps - 1});
    co_await self.receive<token>();
    ns = ns_since(t0);
    for (pid p : members) send(p, stop{});
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
  spawn([&](process& self) -> proc {
    std::vector<pid> workers(static_cast<std::size_t>(n));
    std::atomic<long> ready{0};
    for (long i = 0; i < n; ++i) {
      workers[std::size_t(i)] = spawn([&ready](process& s) -> proc {
        ready.fetch_add(1, std::memory_order_relaxed);
        request r = co_await s.receive<request>();
        send(r.from, reply{});
      });
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
    for (long i = 0; i < n; ++i) refs[std::size_t(i)] = send_after(std::chrono::milliseconds(10'000 + i % 10'000), self.self(), stop{});
    arm_ns = ns_since(t0);
    rss_after = rss_bytes();
    auto t1 = clock_type::now();
    long cancelled = 0;
    for (timer_ref t : refs) cancelled += cancel_timer(t);
    cancel_ns = ns_since(t1);
    if (cancelled != n) std::fprintf(stderr, "timers: only %ld of %ld cancelled\n", cancelled, n);
    co_return;
  });
  rt.wait();
  print_line(fmt::format(
      R"({{"bench":"timers","system":"athanor","n":{},"schedulers":{},"ns_per_arm":{:.1f},"ns_per_cancel":{:.1f},"bytes_per_timer":{:.1f}}})",
      n, effective_schedulers(rt), arm_ns / double(n), cancel_ns / double(n), double(rss_after - rss_before) / double(n)));
}

int usage() {
  std::fprintf(stderr,
               "usage: athanor-bench <spawn_idle|ping_pong|ring|fan_out|create_destroy|fairness|timers> [--n N] "
               "[--schedulers S] [--laps L] [--hogs H] [--checkpoint 0|1]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  options o;
  o.workload = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    long v = std::strtol(argv[i + 1], nullptr, 10);
    if (k == "--n") o.n = v;
    else if (k == "--schedulers") o.schedulers = unsigned(v);
    else if (k == "--laps") o.laps = v;
    else if (k == "--hogs") o.hogs = int(v);
    else if (k == "--checkpoint") o.checkpoint = v != 0;
    else return usage();
  }
  static const std::map<std::string, void (*)(const options&)> workloads = {
      {"spawn_idle", spawn_idle}, {"ping_pong", ping_pong},           {"ring", ring},
      {"fan_out", fan_out},       {"create_destroy", create_destroy}, {"fairness", fairness},
      {"timers", timers},
  };
  auto it = workloads.find(o.workload);
  if (it == workloads.end()) return usage();
  it->second(o);
  return 0;
}
