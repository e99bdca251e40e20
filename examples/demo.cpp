// The Athanor demo: a million processes, a crash contained to one of them, messages flowing, then
// a supervision tree healing itself (the three restart strategies side by side, escalation).
// Run with ./scripts/demo.sh (builds and runs this), or build/release/demo [--n N] [node settings]
// (demo --help lists them; they also come from ATHANOR_<KEY> variables and a --config file).
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include <athanor/athanor.h>
#include <athanor/runtime/config.h>
#include <athanor/otp/gen_server.h>
#include <athanor/otp/supervisor.h>

using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct quit {};
struct work { pid reply_to; long value; };
struct done { long value; };
struct crash_now {};

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

long rss_mb() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE) / (1024 * 1024);
}

// A worker: waits for work, doubles the value, replies; or crashes when told to.
proc demo_worker(process& self) {
  for (;;) {
    bool keep_going = co_await self.receive(
        on([](work& w) {
          send(w.reply_to, done{w.value * 2});
          return true;
        }),
        on([](crash_now&) -> bool { throw std::runtime_error("worker hit a bad record"); }),
        on([](quit&) { return false; }));
    if (!keep_going) co_return;
  }
}

// ---- supervision ---------------------------------------------------------------------------------

// An account server: holds a balance; a bad request crashes it ("let it crash": no defensive code).
struct deposit { long amount; };
struct balance {};
struct bad_request {};
struct account : gen_server<account> {
  long cents = 0;
  long handle_call(deposit d) { return cents += d.amount; }
  long handle_call(balance) { return cents; }
  long handle_call(bad_request) { throw std::runtime_error("corrupt record"); }
};

// One line per crash or supervisor report instead of the full multi-line reports.
void compact_reports() {
  logger::add_handler("demo", [](const log_event& e) {
    if (e.domain == "crash_report") {
      fmt::print("     crash report: {} died: {}\n", e.get("name").to_string(), e.get("reason").to_string());
    } else if (e.domain == "supervisor_report") {
      fmt::print("     supervisor {}: {} {} ({})\n", e.get("supervisor").to_string(), e.get("errorContext").to_string(),
                 e.get("offender").element(1).to_string(), e.get("reason").to_string());
    }
  });
}

std::vector<child_spec> accounts(const std::string& group) {
  return {child<account>(group + ".a"), child<account>(group + ".b"), child<account>(group + ".c")};
}

// Waits (bounded) until `name` is registered to a process other than `old`.
task<pid> restarted(process& self, atom name, pid old) {
  for (int i = 0; i < 2000; ++i) {
    pid p = whereis(name);
    if (p && p != old) co_return p;
    co_await self.sleep(1ms);
  }
  co_return pid();
}

task<void> supervision_demo(process& self) {
  compact_reports();
  fmt::print("\n6. A supervision tree: one supervisor per restart strategy, three account servers each\n");
  std::vector<child_spec> groups{
      supervisor::spec("one_for_one"_a, {.strategy = one_for_one, .intensity = 3, .period = 5s}, accounts("one_for_one"), "one_for_one"_a),
      supervisor::spec("one_for_all"_a, {.strategy = one_for_all, .intensity = 3, .period = 5s}, accounts("one_for_all"), "one_for_all"_a),
      supervisor::spec("rest_for_one"_a, {.strategy = rest_for_one, .intensity = 3, .period = 5s}, accounts("rest_for_one"), "rest_for_one"_a)};
  start_result top_started = co_await supervisor::start_link({.strategy = one_for_one, .intensity = 3, .period = 5s}, std::move(groups), "bank"_a);
  pid top = top_started.value();
  std::string tree = co_await supervisor::describe_tree(top);
  fmt::print("{}", tree);

  fmt::print("\n   Each .b account gets a request that makes it crash:\n");
  for (std::string group : {"one_for_one", "one_for_all", "rest_for_one"}) {
    atom b(group + ".b");
    pid old = whereis(b);
    try {
      co_await call<account>(b, bad_request{});
    } catch (const call_error& e) {
      fmt::print("   call to {} failed in the caller with {}\n", group + ".b", e.why.to_string());
    }
    co_await restarted(self, b, old);
    atom c(group + ".c");
    if (group != "one_for_one") co_await restarted(self, c, pid());
  }
  fmt::print("\n   The tree after the crashes (restarts=N: restarted by its supervisor):\n");
  std::string healed = co_await supervisor::describe_tree(top);
  fmt::print("{}", healed);
  fmt::print("   one_for_one restarted only .b; one_for_all restarted all three; rest_for_one restarted .b and .c.\n");

  long balance_now = co_await call<account>("one_for_one.a", deposit{250});
  fmt::print("   one_for_one.a kept its state through its neighbour's crash: balance {}\n", balance_now);

  fmt::print("\n7. Escalation: one_for_one.a keeps crashing; its supervisor allows 3 restarts in 5 s\n");
  pid group_sup = whereis("one_for_one"_a);
  int crashes = 0;
  while (whereis("one_for_one"_a) == group_sup && crashes < 10) {
    pid old = whereis("one_for_one.a"_a);
    try {
      co_await call<account>("one_for_one.a", bad_request{});
    } catch (const call_error&) {
    }
    ++crashes;
    co_await restarted(self, "one_for_one.a"_a, old);
  }
  pid group_sup_now = co_await restarted(self, "one_for_one"_a, group_sup);
  fmt::print("   after {} more crashes (4 restarts within 5 s, counting .b's), the one_for_one supervisor gave up;\n"
             "   the bank supervisor restarted it with fresh children: {} -> {}\n",
             crashes, group_sup.to_string(), group_sup_now.to_string());
  std::string after = co_await supervisor::describe_tree(top);
  fmt::print("{}", after);

  fmt::print("\n8. Shutting the tree down (children stop in reverse start order)\n");
  unlink(top);
  ref m = monitor(top);
  exit(top, term(atoms::shutdown));
  down d = co_await self.receive(on<down>([m](const down& x) { return x.monitor == m; }, [](down& x) { return x; }));
  fmt::print("   bank supervisor ended with {}; {} processes left besides this one\n", d.reason.to_string(), process_count() - 1);
  logger::remove_handler("demo");
}

void print_usage() {
  std::printf(
      "Usage: demo [options]\n"
      "\n"
      "Spawns N processes, crashes one, sends a request to every one and collects the replies, then\n"
      "builds a supervision tree and shows each restart strategy and escalation at work.\n"
      "\n"
      "Options:\n"
      "  --n N                         processes to spawn, 1..50000000 (default 1000000)\n"
      "  --help                        this text\n"
      "\n"
      "%s",
      node_settings_help().c_str());
}

// Reports a command-line mistake on one line and returns the exit status for it.
int usage_error(const std::string& message) {
  std::fprintf(stderr, "demo: %s; try --help\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // --help first: it must work whatever the environment holds.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      print_usage();
      return 0;
    }
  }
  node_settings settings;
  try {
    settings = load_settings({}, argc, argv);
  } catch (const config_error& e) {
    return usage_error(e.what());
  }
  long n = 1'000'000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a != "--n") return usage_error((a.starts_with("-") ? "unknown flag '" : "unexpected argument '") + a + "'");
    if (i + 1 >= argc) return usage_error("--n: expected a value after it");
    const std::string v = argv[++i];
    const bool digits = !v.empty() && v.size() <= 9 && v.find_first_not_of("0123456789") == std::string::npos;
    n = digits ? std::stol(v) : 0;
    if (n < 1 || n > 50'000'000) return usage_error("--n: expected an integer from 1 to 50000000, got '" + v + "'");
  }
  // The workers, this process and the supervision tree's: a smaller limit would end the demo
  // halfway with system_limit.
  if (settings.max_processes && *settings.max_processes < std::size_t(n) + 1000) {
    return usage_error("max_processes " + std::to_string(*settings.max_processes) + " is too small for --n " +
                       std::to_string(n) + ": give at least " + std::to_string(n + 1000));
  }
  if (settings.log_level) logger::set_level(log_level(*find_log_level(*settings.log_level)));

  runtime rt(to_runtime_config(settings));
  fmt::print("Athanor demo: {} scheduler threads on {} cores\n\n", rt.config().schedulers,
             std::thread::hardware_concurrency());

  spawn([n](process& self) -> proc {
    pid me = self.self();

    // 1. A million processes, each a coroutine waiting in receive.
    long rss_before = rss_mb();
    auto t0 = clock_type::now();
    std::vector<pid> workers;
    workers.reserve(std::size_t(n));
    for (long i = 0; i < n; ++i) {
      workers.push_back(spawn(demo_worker));
      co_await self.consume(1);  // a checkpoint: long loops let other processes run
    }
    double spawn_ms = ms_since(t0);
    fmt::print("1. spawned {} processes in {:.0f} ms ({:.0f} ns each)\n", n, spawn_ms, spawn_ms * 1e6 / double(n));
    fmt::print("   process count: {}, memory: {} MB more ({:.0f} bytes per process)\n", process_count(),
               rss_mb() - rss_before, double(rss_mb() - rss_before) * 1048576.0 / double(n));

    // 2. One of them crashes: only that one ends; we learn why through a monitor.
    pid victim = workers[std::size_t(n / 2)];
    ref m = monitor(victim);
    send(victim, crash_now{});
    down d = co_await self.receive(on<down>([m](const down& x) { return x.monitor == m; }, [](down& x) { return x; }));
    fmt::print("\n2. {} crashed with reason {}\n", d.from.to_string(), d.reason.to_string());
    fmt::print("   the other {} workers are untouched: {} processes alive (workers + this one)\n", n - 1, process_count());
    workers[std::size_t(n / 2)] = pid();  // sends to a dead pid would be dropped anyway

    // 3. Messages flowing: every worker gets a job and replies.
    auto t1 = clock_type::now();
    long sent = 0;
    for (long i = 0; i < n; ++i) {
      if (!workers[std::size_t(i)]) continue;
      send(workers[std::size_t(i)], work{me, i});
      ++sent;
      co_await self.consume(1);
    }
    long sum = 0;
    for (long i = 0; i < sent; ++i) {
      done r = co_await self.receive<done>();
      sum += r.value;
    }
    double flow_ms = ms_since(t1);
    fmt::print("\n3. {} requests and {} replies in {:.0f} ms ({:.1f} million messages/s), checksum {}\n", sent, sent,
               flow_ms, 2.0 * double(sent) / flow_ms / 1000.0, sum);

    // 4. Introspection.
    system_info_t info = system_info();
    fmt::print("\n4. system_info: {} processes, {} MB resident, scheduler utilisation", info.process_count,
               info.memory_total_bytes >> 20);
    for (auto& s : info.scheduler) fmt::print(" {:.0f}%", s.utilization * 100);
    fmt::print(", relief threads started for CPU hogs: {}\n", info.relief_threads);

    // 5. Shut down: every worker ends normally.
    auto t2 = clock_type::now();
    for (pid p : workers) send(p, quit{});
    fmt::print("\n5. stopping all workers...\n");
    while (process_count() > 1) co_await self.sleep(1ms);
    fmt::print("   all stopped in {:.0f} ms\n", ms_since(t2));

    co_await supervision_demo(self);
  });
  rt.wait();
  fmt::print("\ndone: {} processes left\n", process_count());
  return 0;
}
