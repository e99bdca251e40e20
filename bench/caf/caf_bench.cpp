// caf_bench: the Athanor benchmark workloads written with CAF 0.17 (the C++
// Actor Framework), the library a C++ programmer would otherwise reach for.
//
// Build:  g++ -O2 -std=c++17 bench/caf/caf_bench.cpp -lcaf_core -o build/bench-caf/caf_bench
// Run:    caf_bench <workload> [--n N] [--schedulers S] [--hogs H]
//                   [--checkpoint 0|1] [--laps L]
// Output: one JSON object on one line on stdout (same shape as athanor-bench,
//         plus "system":"caf"); diagnostics go to stderr.
//
// All actors are event-based (function-based actors returning a behavior),
// scheduled by CAF's default work-stealing scheduler with
// scheduler.max-threads = S.  Wherever the Erlang version uses a "main"
// process, this uses an event-based driver actor; the main thread only starts
// it and waits for a `done` message through a scoped_actor, taking the clock
// readings around that.

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// caf::ping_atom, caf::pong_atom and caf::tick_atom are predefined.
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using go_atom = caf::atom_constant<caf::atom("go")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using next_atom = caf::atom_constant<caf::atom("next")>;
using req_atom = caf::atom_constant<caf::atom("req")>;
using rep_atom = caf::atom_constant<caf::atom("rep")>;
using work_atom = caf::atom_constant<caf::atom("work")>;

using clock_type = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           clock_type::now().time_since_epoch())
    .count();
}

// VmRSS of this process in bytes.
int64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
  throw std::runtime_error("VmRSS not found in /proc/self/status");
}

// Bounded wait for a condition polled from the main thread.
template <class Pred>
bool poll_until(Pred pred, std::chrono::seconds cap) {
  auto deadline = clock_type::now() + cap;
  while (!pred()) {
    if (clock_type::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

// Waits for a `done` message from a driver actor (bounded).
void await_done(caf::scoped_actor& self, std::chrono::seconds cap,
                const char* what) {
  bool ok = false;
  self->receive([&](done_atom) { ok = true; },
                caf::after(cap) >> [&] {});
  if (!ok)
    throw std::runtime_error(std::string(what) + ": no result within the time cap");
}

void await_running(caf::actor_system& sys, size_t expected) {
  sys.registry().await_running_count_equal(expected);
}

// ---------------------------------------------------------------------------
// JSON output: a flat object, printed on one line.
// ---------------------------------------------------------------------------

class json_line {
public:
  json_line& str(const char* k, const std::string& v) {
    add(k, "\"" + v + "\"");
    return *this;
  }
  json_line& num(const char* k, int64_t v) {
    add(k, std::to_string(v));
    return *this;
  }
  json_line& num(const char* k, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    add(k, buf);
    return *this;
  }
  json_line& opt(const char* k, std::optional<double> v) {
    if (v)
      return num(k, *v);
    add(k, "null");
    return *this;
  }
  json_line& boolean(const char* k, bool v) {
    add(k, v ? "true" : "false");
    return *this;
  }
  void print() const {
    std::printf("{%s}\n", body_.c_str());
    std::fflush(stdout);
  }

private:
  void add(const char* k, const std::string& v) {
    if (!body_.empty())
      body_ += ',';
    body_ += '"';
    body_ += k;
    body_ += "\":";
    body_ += v;
  }
  std::string body_;
};

struct options {
  std::string bench;
  int64_t n = -1;
  int64_t schedulers = -1;
  int64_t hogs = 4;
  bool checkpoint = true;
  int64_t laps = 1000;
  std::string policy = "stealing"; // CAF's default scheduler policy
};

// ---------------------------------------------------------------------------
// spawn_idle: N actors that wait for `stop`.
// ---------------------------------------------------------------------------

std::atomic<int64_t> g_initialized{0};

caf::behavior idle_actor(caf::event_based_actor* self) {
  g_initialized.fetch_add(1, std::memory_order_relaxed);
  return {[=](stop_atom) { self->quit(); }};
}

void spawn_idle(caf::actor_system& sys, int64_t n, json_line& out) {
  // The handle array is allocated and touched before the baseline (as in
  // athanor-bench), so it is not part of bytes_per_process.
  std::vector<caf::actor> actors(static_cast<size_t>(n));
  auto baseline = sys.registry().running();
  g_initialized = 0;
  auto rss0 = rss_bytes();
  auto t0 = now_ns();
  for (int64_t i = 0; i < n; ++i)
    actors[static_cast<size_t>(i)] = sys.spawn(idle_actor);
  auto t1 = now_ns();
  // CAF runs each actor's initialisation (the function above) later on a
  // worker thread; wait for that before reading the RSS.
  if (!poll_until([&] { return g_initialized.load() == n; },
                  std::chrono::seconds(600)))
    throw std::runtime_error("spawn_idle: actors did not start");
  auto t2 = now_ns();
  auto rss1 = rss_bytes();
  for (auto& a : actors)
    caf::anon_send(a, stop_atom::value);
  actors.clear();
  await_running(sys, baseline);
  out.num("ns_per_spawn", double(t1 - t0) / n)
    .num("bytes_per_process", double(rss1 - rss0) / n)
    .num("ns_per_spawn_started", double(t2 - t0) / n);
}

// ---------------------------------------------------------------------------
// ping_pong: two actors, N round trips.
// ---------------------------------------------------------------------------

caf::behavior ponger(caf::event_based_actor* self) {
  return {
    [](caf::ping_atom) { return caf::pong_atom::value; }, // reply to sender
    [=](stop_atom) { self->quit(); },
  };
}

struct pinger_state {
  int64_t left = 0;
};

caf::behavior pinger(caf::stateful_actor<pinger_state>* self, caf::actor pong,
                     int64_t n, caf::actor report) {
  self->state.left = n;
  return {
    [=](go_atom) { self->send(pong, caf::ping_atom::value); },
    [=](caf::pong_atom) {
      if (--self->state.left == 0) {
        self->send(report, done_atom::value);
        self->quit();
      } else {
        self->send(pong, caf::ping_atom::value);
      }
    },
  };
}

void ping_pong(caf::actor_system& sys, int64_t n, json_line& out) {
  caf::scoped_actor self{sys};
  auto pong = sys.spawn(ponger);
  auto ping = sys.spawn(pinger, pong, n, caf::actor_cast<caf::actor>(self));
  auto t0 = now_ns();
  self->send(ping, go_atom::value);
  await_done(self, std::chrono::seconds(600), "ping_pong");
  auto t1 = now_ns();
  self->send(pong, stop_atom::value);
  out.num("ns_per_roundtrip", double(t1 - t0) / n);
}

// ---------------------------------------------------------------------------
// ring: N actors in a ring, a token passed N * laps hops.
// ---------------------------------------------------------------------------

struct ring_state {
  caf::actor next;
};

caf::behavior ring_node(caf::stateful_actor<ring_state>* self,
                        caf::actor report) {
  g_initialized.fetch_add(1, std::memory_order_relaxed);
  return {
    [=](next_atom, caf::actor next) { self->state.next = std::move(next); },
    [=](int64_t hops) {
      if (hops == 0)
        self->send(report, done_atom::value);
      else
        self->send(self->state.next, hops - 1);
    },
    [=](stop_atom) {
      self->state.next = nullptr; // break the reference cycle
      self->quit();
    },
  };
}

void ring(caf::actor_system& sys, int64_t n, int64_t laps, json_line& out) {
  caf::scoped_actor self{sys};
  auto me = caf::actor_cast<caf::actor>(self);
  std::vector<caf::actor> nodes;
  nodes.reserve(static_cast<size_t>(n));
  g_initialized = 0;
  for (int64_t i = 0; i < n; ++i)
    nodes.push_back(sys.spawn(ring_node, me));
  for (int64_t i = 0; i < n; ++i)
    caf::anon_send(nodes[i], next_atom::value, nodes[(i + 1) % n]);
  if (!poll_until([&] { return g_initialized.load() == n; },
                  std::chrono::seconds(600)))
    throw std::runtime_error("ring: nodes did not start");
  auto t0 = now_ns();
  self->send(nodes[0], n * laps); // the token counts the hops still to go
  await_done(self, std::chrono::seconds(600), "ring");
  auto t1 = now_ns();
  for (auto& a : nodes)
    caf::anon_send(a, stop_atom::value);
  out.num("laps", laps).num("hops_per_sec", double(n * laps) / ((t1 - t0) / 1e9));
}

// ---------------------------------------------------------------------------
// fan_out: a driver sends a request to each of N idle actors and collects
// the N replies.
// ---------------------------------------------------------------------------

// Replies once (to the sender), then terminates normally.
caf::behavior fan_worker(caf::event_based_actor* self) {
  g_initialized.fetch_add(1, std::memory_order_relaxed);
  return {
    [=](req_atom) {
      self->quit();
      return rep_atom::value;
    },
  };
}

struct fan_state {
  int64_t left = 0;
};

caf::behavior
fan_driver(caf::stateful_actor<fan_state>* self,
           std::shared_ptr<const std::vector<caf::actor>> workers,
           caf::actor report) {
  return {
    [=](go_atom) {
      self->state.left = static_cast<int64_t>(workers->size());
      for (auto& w : *workers)
        self->send(w, req_atom::value);
    },
    [=](rep_atom) {
      if (--self->state.left == 0) {
        self->send(report, done_atom::value);
        self->quit();
      }
    },
  };
}

void fan_out(caf::actor_system& sys, int64_t n, json_line& out) {
  caf::scoped_actor self{sys};
  auto baseline = sys.registry().running();
  g_initialized = 0;
  auto workers = std::make_shared<std::vector<caf::actor>>();
  workers->reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    workers->push_back(sys.spawn(fan_worker));
  if (!poll_until([&] { return g_initialized.load() == n; },
                  std::chrono::seconds(600)))
    throw std::runtime_error("fan_out: workers did not start");
  auto driver = sys.spawn(fan_driver, workers, caf::actor_cast<caf::actor>(self));
  auto t0 = now_ns();
  self->send(driver, go_atom::value);
  await_done(self, std::chrono::seconds(600), "fan_out");
  auto t1 = now_ns();
  workers.reset();
  driver = nullptr;
  await_running(sys, baseline);
  out.num("msgs_per_sec", double(2 * n) / ((t1 - t0) / 1e9));
}

// ---------------------------------------------------------------------------
// create_destroy: N x (spawn + monitor, the actor terminates at once,
// receive its down_msg), strictly in sequence.
// ---------------------------------------------------------------------------

// An actor without a behavior terminates (normally) right after starting.
void ephemeral(caf::event_based_actor*) {
}

struct cd_state {
  int64_t left = 0;
};

caf::behavior cd_driver(caf::stateful_actor<cd_state>* self, int64_t n,
                        caf::actor report) {
  self->state.left = n;
  self->set_down_handler([=](caf::down_msg&) {
    if (--self->state.left == 0) {
      self->send(report, done_atom::value);
      self->quit();
    } else {
      self->spawn<caf::monitored>(ephemeral);
    }
  });
  return {[=](go_atom) { self->spawn<caf::monitored>(ephemeral); }};
}

void create_destroy(caf::actor_system& sys, int64_t n, json_line& out) {
  caf::scoped_actor self{sys};
  auto driver = sys.spawn(cd_driver, n, caf::actor_cast<caf::actor>(self));
  auto t0 = now_ns();
  self->send(driver, go_atom::value);
  await_done(self, std::chrono::seconds(600), "create_destroy");
  auto t1 = now_ns();
  out.num("ns_per_cycle", double(t1 - t0) / n);
}

// ---------------------------------------------------------------------------
// fairness: H CPU hogs + an echo actor + a pinger actor that pings the echo
// every 10 ms and records the send-to-reply latency.
//
// CAF cannot preempt a running handler.  --checkpoint 0: each hog runs one
// endless loop inside a single message handler (how CPU-bound work in an actor
// looks by default).  --checkpoint 1: the cooperative CAF equivalent of a
// checkpoint: a hog does a slice of work per message and sends itself a
// `work` message to continue, with scheduler.max-throughput = 1 so that the
// worker thread moves on to other actors between slices.
// ---------------------------------------------------------------------------

std::atomic<bool> g_hogs_stop{false};
std::atomic<uint64_t> g_sink{0};
constexpr int64_t hog_slice_iterations = 20000; // roughly 20-40 us per slice

inline uint64_t lcg(uint64_t x) {
  return (x * 1103515245u + 12345u) & 0x3ffffffu; // same as the Erlang hog
}

caf::behavior hog(caf::event_based_actor* self, bool checkpoint) {
  return {
    [=](work_atom, uint64_t x) {
      if (!checkpoint) {
        while (!g_hogs_stop.load(std::memory_order_relaxed))
          for (int i = 0; i < 1024; ++i)
            x = lcg(x);
      } else {
        for (int64_t i = 0; i < hog_slice_iterations; ++i)
          x = lcg(x);
      }
      if (g_hogs_stop.load(std::memory_order_relaxed)) {
        g_sink += x;
        self->quit();
      } else {
        self->send(self, work_atom::value, x);
      }
    },
  };
}

caf::behavior echo(caf::event_based_actor*) {
  return {[](caf::ping_atom) { return caf::pong_atom::value; }};
}

struct fairness_result {
  std::mutex mtx;
  std::vector<double> samples_us;
};

struct fair_pinger_state {
  int64_t start = 0;
  int64_t sent_at = 0;
  int64_t i = 0;
};

caf::behavior fair_pinger(caf::stateful_actor<fair_pinger_state>* self,
                          caf::actor echo_actor, int64_t n,
                          std::shared_ptr<fairness_result> result,
                          caf::actor report) {
  constexpr int64_t interval_ns = 10'000'000;
  auto schedule_tick = [=] {
    auto deadline = self->state.start + (self->state.i + 1) * interval_ns;
    auto delay = deadline - now_ns();
    if (delay > 0)
      self->delayed_send(self, std::chrono::nanoseconds(delay),
                         caf::tick_atom::value);
    else
      self->send(self, caf::tick_atom::value);
  };
  self->state.start = now_ns();
  schedule_tick();
  return {
    [=](caf::tick_atom) {
      self->state.sent_at = now_ns();
      self->send(echo_actor, caf::ping_atom::value);
    },
    [=](caf::pong_atom) {
      auto us = (now_ns() - self->state.sent_at) / 1000.0;
      {
        std::lock_guard<std::mutex> guard{result->mtx};
        result->samples_us.push_back(us);
      }
      if (++self->state.i == n) {
        self->send(report, done_atom::value);
        self->quit();
      } else {
        schedule_tick();
      }
    },
  };
}

// Percentile of a sorted, non-empty vector: element floor(p * size) counting
// from 0 (the same rule as athanor-bench).
double percentile(const std::vector<double>& sorted, double p) {
  auto i = static_cast<size_t>(p * static_cast<double>(sorted.size()));
  return sorted[std::min(i, sorted.size() - 1)];
}

void fairness(caf::actor_system& sys, int64_t n, int64_t hogs, bool checkpoint,
              int64_t schedulers, json_line& out) {
  caf::scoped_actor self{sys};
  auto result = std::make_shared<fairness_result>();
  std::vector<caf::actor> hog_actors;
  for (int64_t i = 0; i < hogs; ++i) {
    hog_actors.push_back(sys.spawn(hog, checkpoint));
    caf::anon_send(hog_actors.back(), work_atom::value, uint64_t(i + 1));
  }
  auto echo_actor = sys.spawn(echo);
  auto pinger_actor = sys.spawn(fair_pinger, echo_actor, n, result,
                                caf::actor_cast<caf::actor>(self));
  // Bounded: the pings take n * 10 ms; allow 15 s on top (20 s at n = 500).
  auto cap = std::chrono::seconds(n / 100 + 15);
  bool finished = false;
  self->receive([&](done_atom) { finished = true; },
                caf::after(cap) >> [&] {});
  // Release the worker threads, then tear everything down.
  g_hogs_stop = true;
  self->send_exit(pinger_actor, caf::exit_reason::user_shutdown);
  self->send_exit(echo_actor, caf::exit_reason::user_shutdown);
  std::vector<double> samples;
  {
    std::lock_guard<std::mutex> guard{result->mtx};
    samples = result->samples_us;
  }
  out.num("hogs", hogs).boolean("checkpoint", checkpoint);
  if (finished && static_cast<int64_t>(samples.size()) == n) {
    std::sort(samples.begin(), samples.end());
    out.num("p50_us", percentile(samples, 0.50))
      .num("p99_us", percentile(samples, 0.99))
      .num("max_us", samples.back());
  } else {
    char msg[200];
    std::snprintf(msg, sizeof msg,
                  "only %zu of %" PRId64 " pings answered within %lld s: %" PRId64
                  " hogs occupy all %" PRId64
                  " scheduler threads and CAF cannot preempt a running handler",
                  samples.size(), n, static_cast<long long>(cap.count()), hogs,
                  schedulers);
    out.opt("p50_us", std::nullopt)
      .opt("p99_us", std::nullopt)
      .opt("max_us", std::nullopt)
      .num("samples", static_cast<int64_t>(samples.size()))
      .str("error", msg);
  }
}

// ---------------------------------------------------------------------------

int64_t default_n(const std::string& bench) {
  if (bench == "spawn_idle") return 1'000'000;
  if (bench == "ping_pong") return 2'000'000;
  if (bench == "ring") return 10'000;
  if (bench == "fan_out") return 1'000'000;
  if (bench == "create_destroy") return 1'000'000;
  if (bench == "fairness") return 500;
  throw std::runtime_error("unknown workload: " + bench);
}

int64_t parse_int(const char* s, const char* what, int64_t min) {
  char* end = nullptr;
  auto v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || v < min)
    throw std::runtime_error(std::string("bad value for ") + what + ": " + s);
  return v;
}

options parse_args(int argc, char** argv) {
  if (argc < 2)
    throw std::runtime_error(
      "usage: caf_bench <spawn_idle|ping_pong|ring|fan_out|create_destroy|"
      "fairness> [--n N] [--schedulers S] [--hogs H] [--checkpoint 0|1] "
      "[--laps L] [--caf-policy stealing|sharing]");
  options o;
  o.bench = argv[1];
  for (int i = 2; i < argc; i += 2) {
    std::string k = argv[i];
    if (i + 1 >= argc)
      throw std::runtime_error("missing value for " + k);
    const char* v = argv[i + 1];
    if (k == "--n") o.n = parse_int(v, "--n", 1);
    else if (k == "--schedulers") o.schedulers = parse_int(v, "--schedulers", 1);
    else if (k == "--hogs") o.hogs = parse_int(v, "--hogs", 0);
    else if (k == "--laps") o.laps = parse_int(v, "--laps", 1);
    else if (k == "--checkpoint") o.checkpoint = parse_int(v, "--checkpoint", 0) != 0;
    else if (k == "--caf-policy") o.policy = v;
    else throw std::runtime_error("unknown argument: " + k);
  }
  if (o.n < 0)
    o.n = default_n(o.bench);
  else
    default_n(o.bench); // validates the workload name
  if (o.schedulers < 0)
    o.schedulers = o.bench == "fairness"
                     ? 2
                     : std::max<int64_t>(1, std::thread::hardware_concurrency());
  return o;
}

int run(const options& o) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<size_t>(o.schedulers));
  if (o.policy != "stealing" && o.policy != "sharing")
    throw std::runtime_error("--caf-policy must be stealing or sharing");
  cfg.set("scheduler.policy", caf::atom_from_string(o.policy));
  if (o.bench == "fairness" && o.checkpoint)
    cfg.set("scheduler.max-throughput", size_t{1});
  caf::actor_system sys{cfg};
  json_line out;
  out.str("bench", o.bench).str("system", "caf").num("n", o.n)
    .num("schedulers", o.schedulers);
  if (o.policy != "stealing")
    out.str("caf_policy", o.policy);
  if (o.bench == "spawn_idle")
    spawn_idle(sys, o.n, out);
  else if (o.bench == "ping_pong")
    ping_pong(sys, o.n, out);
  else if (o.bench == "ring")
    ring(sys, o.n, o.laps, out);
  else if (o.bench == "fan_out")
    fan_out(sys, o.n, out);
  else if (o.bench == "create_destroy")
    create_destroy(sys, o.n, out);
  else if (o.bench == "fairness")
    fairness(sys, o.n, o.hogs, o.checkpoint, o.schedulers, out);
  out.print();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  try {
    return run(parse_args(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "caf_bench: %s\n", e.what());
    return 1;
  }
}
