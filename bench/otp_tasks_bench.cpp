// OTP workloads for dynamic supervisors and tasks.
//
// dynamic_churn: one client starts N children under a dynamic_supervisor and terminates them
// again, `--batch` children alive at a time (each start_child and terminate_child is a call
// into the supervisor, the child a plain linked process); then it starts N children at once
// and stops the supervisor, which shuts them all down concurrently. Reports children started
// and stopped per second for both phases.
#include <chrono>
#include <vector>

#include "athanor/otp/dynamic_supervisor.h"
#include "bench.h"

using namespace athanor;
using namespace athanor::bench;
using namespace std::chrono_literals;

namespace {

struct never {};

child_spec idle_child() {
  child_spec c;
  c.id = term(atom("idle"));
  c.restart = temporary;
  c.start = []() -> task<start_result> {
    co_return start_result::ok(spawn_link([](process& self) -> proc { co_await self.receive<never>(); }));
  };
  return c;
}

void dynamic_churn(const options& o) {
  long n = o.n > 0 ? o.n : 200'000;
  long batch = std::max(1L, o.get("batch", 1000L));
  runtime rt(config_for(o));
  struct result {
    double churn_ns = 0, shutdown_ns = 0;
    bool ok = true;
  } r;
  spawn([&](process& self) -> proc {
    self.trap_exit(true);  // the supervisor's own exit at the end arrives as a message
    child_spec spec = idle_child();
    pid sup = (co_await dynamic_supervisor::start_link()).value();
    std::vector<pid> alive;
    alive.reserve(std::size_t(batch));
    auto t0 = clock_type::now();
    for (long done = 0; done < n;) {
      long k = std::min(batch, n - done);
      for (long i = 0; i < k; ++i) {
        start_result s = co_await dynamic_supervisor::start_child(sup, spec);
        alive.push_back(s.pid());
      }
      for (pid p : alive) {
        term t = co_await dynamic_supervisor::terminate_child(sup, p);
        if (t != term(atoms::ok)) r.ok = false;
      }
      alive.clear();
      done += k;
    }
    r.churn_ns = ns_since(t0);
    for (long i = 0; i < n; ++i) {
      start_result s = co_await dynamic_supervisor::start_child(sup, spec);
      if (!s.ok()) r.ok = false;
    }
    auto t1 = clock_type::now();
    co_await stop(sup, term(atoms::shutdown));
    r.shutdown_ns = ns_since(t1);
    co_await self.receive<exit_signal>();
  });
  rt.wait();
  double churn_s = r.churn_ns / 1e9, shutdown_s = r.shutdown_ns / 1e9;
  print_line(fmt::format(
      R"({{"bench":"dynamic_churn","system":"athanor","n":{},"batch":{},"schedulers":{},"children_per_sec":{:.0f},"us_per_start_and_stop":{:.2f},"shutdown_children_per_sec":{:.0f},"ok":{}}})",
      n, batch, effective_schedulers(rt), double(n) / churn_s, r.churn_ns / 1e3 / double(n), double(n) / shutdown_s,
      r.ok ? "true" : "false"));
}

}  // namespace

ATHANOR_BENCH_WORKLOAD("dynamic_churn", dynamic_churn);
