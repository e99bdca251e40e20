// Shared pieces of athanor-bench: options, measurement helpers and the workload registry.
// Each bench/<part>_bench.cpp defines workloads and registers them with ATHANOR_BENCH_WORKLOAD.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include <fmt/core.h>

#include "athanor/athanor.h"

namespace athanor::bench {

using clock_type = std::chrono::steady_clock;

// The command line: `athanor-bench <workload> [--name value]...`. The common flags have fields;
// any other `--name value` pair lands in `extra` for the workload to read with get().
struct options {
  std::string workload;
  long n = -1;
  unsigned schedulers = 0;
  long laps = 1000;
  int hogs = 4;
  bool checkpoint = true;
  std::map<std::string, std::string> extra;

  // The value of `--name`, or `fallback` when absent.
  long get(const std::string& name, long fallback) const {
    auto it = extra.find(name);
    return it == extra.end() ? fallback : std::strtol(it->second.c_str(), nullptr, 10);
  }
  std::string get(const std::string& name, const std::string& fallback) const {
    auto it = extra.find(name);
    return it == extra.end() ? fallback : it->second;
  }
};

// Resident set size of this process, in bytes.
inline long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

inline double ns_since(clock_type::time_point t) {
  return double(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t).count());
}

inline runtime_config config_for(const options& o) {
  runtime_config c;
  c.schedulers = o.schedulers;
  c.max_processes = std::size_t(std::max<long>(o.n + 1000, 1 << 20));
  return c;
}

// Prints one result line, adding how many relief threads the runtime had to start for CPU hogs
// (a loop without a checkpoint): a figure measured with relief threads running is not typical.
inline void print_line(std::string json) {
  if (!json.empty() && json.back() == '}' && json.find("\"relief_threads\"") == std::string::npos)
    json.insert(json.size() - 1, fmt::format(R"(,"relief_threads":{})", system_info().relief_threads));
  std::fwrite(json.data(), 1, json.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

inline unsigned effective_schedulers(const runtime& rt) { return rt.config().schedulers; }

using workload_fn = void (*)(const options&);
// All registered workloads by name.
inline std::map<std::string, workload_fn>& workloads() {
  static std::map<std::string, workload_fn> all;
  return all;
}
struct workload_registrar {
  workload_registrar(const char* name, workload_fn fn) { workloads()[name] = fn; }
};

}  // namespace athanor::bench

// Registers `fn` (void(const options&)) as workload `name`.
#define ATHANOR_BENCH_WORKLOAD(name, fn) \
  static const ::athanor::bench::workload_registrar athanor_bench_registrar_##fn{name, fn}
