// The Athanor demo: a million processes, a crash contained to one of them, and messages flowing.
// Run with ./scripts/demo.sh (builds and runs this), or build/release/demo [--n N].
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include <athanor/athanor.h>

using namespace athanor;
using namespace athanor::literals;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

struct stop {};
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
proc worker(process& self) {
  for (;;) {
    bool keep_going = co_await self.receive(
        on([](work& w) {
          send(w.reply_to, done{w.value * 2});
          return true;
        }),
        on([](crash_now&) -> bool { throw std::runtime_error("worker hit a bad record"); }),
        on([](stop&) { return false; }));
    if (!keep_going) co_return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  long n = 1'000'000;
  if (argc == 3 && std::string(argv[1]) == "--n") n = std::stol(argv[2]);

  runtime rt;
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
      workers.push_back(spawn(worker));
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
    for (pid p : workers) send(p, stop{});
    fmt::print("\n5. stopping all workers...\n");
    (void)t2;
  });
  rt.wait();
  fmt::print("   done: {} processes left\n", process_count());
  return 0;
}
