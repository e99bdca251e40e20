// The OTP workloads: gen_call (a gen_server call round trip) and supervised_chaos (supervised
// servers serving calls while some are killed). gen_call exists in Erlang too (bench/erlang).
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <vector>

#include "athanor/otp/gen_server.h"
#include "athanor/otp/supervisor.h"
#include "bench.h"

using namespace athanor;
using namespace athanor::bench;
using namespace std::chrono_literals;

namespace {

// ---- gen_call ---------------------------------------------------------------------------------
// One client calls one server n times, waiting for each reply (gen_server:call/3 in a loop).

struct add_one : gen_server<add_one> {
  long handle_call(long x) { return x + 1; }
};

void gen_call(const options& o) {
  long n = o.n > 0 ? o.n : 1'000'000;
  runtime rt(config_for(o));
  std::atomic<double> ns{0};
  spawn([n, &ns](process&) -> proc {
    pid server = (co_await start_link<add_one>()).value();
    long x = 0;
    for (long i = 0; i < 1000; ++i) x = co_await call<add_one>(server, x);  // warm-up
    auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) x = co_await call<add_one>(server, x);
    ns = ns_since(t0);
    co_await stop(server);
  });
  rt.wait();
  print_line(fmt::format(R"({{"bench":"gen_call","system":"athanor","n":{},"schedulers":{},"ns_per_call":{:.1f}}})", n,
                         effective_schedulers(rt), ns.load() / double(n)));
}

// ---- supervised_chaos -------------------------------------------------------------------------
// n gen_servers under n/1000 one_for_one supervisors (under one top supervisor), registered by
// name; c clients call random servers by name; a killer kills 1% of the servers every second.
// rss_start_mb is read one second into the run, rss_mid_mb halfway, rss_end_mb at its end.
// p50/p99 are of every call; with c closed-loop clients on S cores the queue is long by design
// (the mean is c over the throughput, by Little's law), and a client-server pair keeps its core
// for a time slice.
// Every call either returns or raises with a reason: calls_lost counts calls that did neither
// (a client still waiting when the run ends, after its timeout has long passed).

struct work {};
struct chaos_worker : gen_server<chaos_worker> {
  long served = 0;
  long handle_call(work) { return ++served; }
};

struct histogram {
  // Log-linear buckets of microseconds: 0..1023 exact, then 64 sub-buckets per power of two.
  std::vector<std::uint64_t> counts = std::vector<std::uint64_t>(1024 + 64 * 40, 0);
  static std::size_t bucket(std::uint64_t us) {
    if (us < 1024) return us;
    int p = 63 - __builtin_clzll(us);  // >= 10
    std::uint64_t sub = (us >> (p - 6)) & 63;
    return std::min<std::size_t>(1024 + std::size_t(p - 10) * 64 + sub, 1024 + 64 * 40 - 1);
  }
  static std::uint64_t value(std::size_t b) {
    if (b < 1024) return b;
    std::size_t p = (b - 1024) / 64 + 10, sub = (b - 1024) % 64;
    return (std::uint64_t(1) << p) + (sub << (p - 6));
  }
  void add(std::uint64_t us) { ++counts[bucket(us)]; }
  void merge(const histogram& h) {
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] += h.counts[i];
  }
  std::uint64_t percentile(double q) const {
    std::uint64_t total = 0;
    for (auto c : counts) total += c;
    std::uint64_t want = std::uint64_t(double(total) * q), seen = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      seen += counts[i];
      if (seen > want) return value(i);
    }
    return 0;
  }
};

struct chaos_totals {
  std::mutex mu;
  long served = 0, started = 0, finished = 0;
  std::map<std::string, long> failed;
  histogram latency;
};

void supervised_chaos(const options& o) {
  long n = o.n > 0 ? o.n : 100'000;
  long seconds = o.get("seconds", 30);
  long clients = o.get("clients", 1000);
  long per_sup = 1000;
  long kill_permille = o.get("kill_permille", 10);  // per second: 10 = 1%
  runtime_config cfg = config_for(o);
  runtime rt(cfg);
  logger::set_level(log_level::critical);  // thousands of expected crash reports would dominate the run
  auto totals = std::make_shared<chaos_totals>();
  std::atomic<long> kills{0};
  std::atomic<long> rss_start{0};
  std::atomic<long> rss_end{0};
  std::atomic<long> rss_mid{0};
  std::atomic<long> restarts{0};
  std::atomic<bool> gave_up{false};
  std::vector<atom> names;
  names.reserve(std::size_t(n));
  for (long i = 0; i < n; ++i) names.push_back(atom("chaos_" + std::to_string(i)));

  spawn([&](process& self) -> proc {
    self.trap_exit(true);
    std::vector<child_spec> sups;
    for (long s = 0; s * per_sup < n; ++s) {
      std::vector<child_spec> kids;
      for (long i = s * per_sup; i < std::min(n, (s + 1) * per_sup); ++i) kids.push_back(child<chaos_worker>(names[std::size_t(i)]));
      sups.push_back(supervisor::spec(term(s), {.strategy = one_for_one, .intensity = 1000, .period = 1s}, std::move(kids)));
    }
    start_result top_r = co_await supervisor::start_link({.strategy = one_for_one, .intensity = 10, .period = 1s}, std::move(sups));
    pid top = top_r.value();
    auto t_end = clock_type::now() + std::chrono::seconds(seconds);
    std::atomic<long> clients_left{clients};
    for (long c = 0; c < clients; ++c) {
      spawn([&, c, t_end](process&) -> proc {
        std::mt19937_64 rng(std::uint64_t(c) * 7919 + 1);
        histogram h;
        long served = 0, started = 0, finished = 0;
        std::map<std::string, long> failed;
        while (clock_type::now() < t_end) {
          atom name = names[rng() % std::size_t(n)];
          auto t0 = clock_type::now();
          ++started;
          try {
            long v = co_await call<chaos_worker>(name, work{}, 1s);
            (void)v;
            ++served;
          } catch (const call_error& e) {
            term why = e.why;
            ++failed[why.is_tuple() ? why.element(0).to_string() : why.to_string()];
          }
          ++finished;
          h.add(std::uint64_t(ns_since(t0) / 1000));
        }
        {
          std::lock_guard l(totals->mu);
          totals->served += served;
          totals->started += started;
          totals->finished += finished;
          for (auto& [k, v] : failed) totals->failed[k] += v;
          totals->latency.merge(h);
        }
        --clients_left;
      });
    }
    // The killer: every 100 ms, kill kill_permille/10000 of the servers (1% per second).
    std::mt19937_64 rng(42);
    long per_tick = std::max<long>(1, n * kill_permille / 10000);
    // Memory is first read one second in, once the clients run and hold what they need (their
    // latency histograms: ~28 KB each); from then on it must not grow.
    const auto t_settled = clock_type::now() + std::chrono::seconds(std::min<long>(1, seconds));
    const auto t_half = clock_type::now() + std::chrono::milliseconds(seconds * 500);
    while (clock_type::now() < t_end) {
      co_await self.sleep(100ms);
      if (rss_start == 0 && clock_type::now() >= t_settled) rss_start = rss_bytes();
      if (rss_mid == 0 && clock_type::now() >= t_half) rss_mid = rss_bytes();
      for (long k = 0; k < per_tick; ++k) {
        pid victim = whereis(names[rng() % std::size_t(n)]);
        if (victim) {
          exit(victim, term(atoms::kill));
          ++kills;
        }
      }
    }
    while (clients_left.load() > 0) co_await self.sleep(10ms);
    rss_end = rss_bytes();
    // Let the last restarts finish, then count them.
    co_await self.sleep(200ms);
    std::vector<child_info> mids = co_await supervisor::which_children(top);
    long total_restarts = 0;
    for (auto& m : mids) {
      if (!m.process) {
        gave_up = true;
        continue;
      }
      total_restarts += long(m.restarts) * per_sup;  // a restarted mid supervisor restarted all its children
      std::vector<child_info> kids = co_await supervisor::which_children(m.process);
      for (auto& k : kids) total_restarts += long(k.restarts);
      if (m.restarts) gave_up = true;
    }
    restarts = total_restarts;
    if (!is_alive(top)) gave_up = true;
    unlink(top);
    exit(top, term(atoms::shutdown));
    co_return;
  });
  rt.wait();
  std::string failed_json;
  for (auto& [k, v] : totals->failed) failed_json += fmt::format(R"({}"{}":{})", failed_json.empty() ? "" : ",", k, v);
  print_line(fmt::format(R"({{"bench":"supervised_chaos","system":"athanor","n":{},"schedulers":{},"seconds":{},"clients":{},)"
                         R"("calls_served":{},"calls_failed":{{{}}},"calls_lost":{},"kills":{},"restarts":{},"gave_up":{},)"
                         R"("p50_us":{},"p99_us":{},"rss_start_mb":{:.1f},"rss_mid_mb":{:.1f},"rss_end_mb":{:.1f}}})",
                         n, effective_schedulers(rt), seconds, clients, totals->served, failed_json,
                         totals->started - totals->finished, kills.load(), restarts.load(), gave_up.load() ? "true" : "false",
                         totals->latency.percentile(0.50), totals->latency.percentile(0.99), double(rss_start.load()) / 1048576.0, double(rss_mid.load()) / 1048576.0,
                         double(rss_end.load()) / 1048576.0));
}

}  // namespace

ATHANOR_BENCH_WORKLOAD("gen_call", gen_call);
ATHANOR_BENCH_WORKLOAD("supervised_chaos", supervised_chaos);
