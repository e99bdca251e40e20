// athanor-bench <workload> [--n N] [--schedulers S] [--laps L] [--hogs H] [--checkpoint 0|1] [--name value]...
//
// Prints one JSON object per line. The workloads live in bench/*_bench.cpp; the same workloads
// exist in Erlang (bench/erlang) and CAF (bench/caf); bench/compare.sh runs them all in one go
// and prints the ratios. `athanor-bench --help` lists the workloads and flags.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "athanor/runtime/config.h"
#include "bench.h"
#include "command_line.h"

namespace {

// The flags that workloads read with options::get(), beyond the common ones. A flag missing here
// is refused: a misspelt one (--clinets) would otherwise be ignored without a word.
// Each value has a range, so that a typo (--n -1, --hogs 100000) is refused rather than becoming
// a huge allocation or thread count.
struct workload_flag {
  const char* name;
  long min, max;
  const char* help;
};
constexpr long kBig = 1'000'000'000;
constexpr workload_flag kWorkloadFlags[] = {
    {"seconds", 1, 86400,
     "supervised_chaos: run time (default 30); dist_*, tcp_throughput, channel_roundtrip/_broadcast: measured "
     "time (3); channel_clients: lifetime (600)"},
    {"size", 1, 64 << 20, "dist_throughput (default 100), tcp_throughput (1048576): bytes per message"},
    {"window", 1, kBig,
     "dist_throughput: most messages unacknowledged (default: 8 MB, 8..8000 messages); channel_broadcast: "
     "broadcasts not yet delivered to every client (1)"},
    {"clients", 1, kBig,
     "supervised_chaos: client processes (default 1000); channel_broadcast (10000), channel_roundtrip (1): "
     "WebSocket clients, in a child process; channel_clients (10000): clients in this process; channel_node "
     "(19000): clients it serves"},
    {"port", 0, 65535, "channel_node: TCP port to serve on (default 0: any); channel_clients: the node's port"},
    {"node_number", 0, 9999, "channel_node: its number K, node athanor_million<K>; nodes K > 0 join node 0 (0)"},
    {"nodes", 1, 10000, "channel_node: the cluster's size; node 0 says when every other node has joined (1)"},
    {"source", 0, 60000, "channel_clients: connect from 127.<1+K/256>.<K%256>.1-8 (0)"},
    {"broadcasts", 1, 1000, "channel_clients: broadcasts to wait for before only holding on (1)"},
    {"join_seconds", 1, 86400, "channel_clients: clients not joined this long after the start count as lost "
                               "(default: --seconds)"},
    {"kill_permille", 0, 1000, "supervised_chaos: workers killed per second, in permille (default 10)"},
    {"batch", 1, kBig, "task workloads: tasks per batch (default 1000)"},
    {"reps", 1, kBig, "term_codec: repetitions (default 100)"},
};
// The common flags, which have fields in options.
constexpr workload_flag kCommonFlags[] = {
    {"n", 1, kBig, ""}, {"laps", 1, kBig, ""}, {"hogs", 0, 1024, ""}, {"checkpoint", 0, 1, ""}};

std::string workload_names() {
  std::string names;
  for (auto& [name, fn] : athanor::bench::workloads()) names += (names.empty() ? "" : "|") + name;
  return names;
}

void print_usage() {
  std::printf(
      "Usage: athanor-bench <%s> [options]\n"
      "\n"
      "Runs one workload and prints its results as one JSON object per line.\n"
      "\n"
      "Options:\n"
      "  --n N                         workload size: processes, messages... (default: the workload's)\n"
      "  --laps L                      ring: laps around the ring (default 1000)\n"
      "  --hogs H                      fairness: CPU-bound processes (default 4)\n"
      "  --checkpoint 0|1              fairness: whether the hogs yield (default 1)\n",
      workload_names().c_str());
  for (const workload_flag& f : kWorkloadFlags) {
    const std::string left = std::string("--") + f.name + " N";
    std::printf("  %-28s  %s\n", left.c_str(), f.help);
  }
  std::printf(
      "  --help                        this text\n"
      "\n"
      "%s"
      "The workloads size their own runtimes: of the node settings, only --schedulers and\n"
      "--log-level apply.\n",
      athanor::node_settings_help().c_str());
}

int usage_error(const std::string& message) { return athanor::tools::usage_error("athanor-bench", message); }

}  // namespace

int main(int argc, char** argv) {
  using namespace athanor::bench;
  // --help first: it must work whatever the environment holds.
  if (athanor::tools::asks_for_help(argc, argv)) {
    print_usage();
    return 0;
  }
  athanor::node_settings settings;
  try {
    settings = athanor::load_settings({}, argc, argv);
  } catch (const athanor::config_error& e) {
    return usage_error(e.what());
  }
  // config_for() (bench.h) builds each workload's runtime from options: the settings it does not
  // take would be silently ignored, so they are refused.
  if (settings.max_processes || settings.max_heap_bytes || settings.reductions_per_slice || settings.hog_threshold ||
      settings.max_relief_threads || settings.dirty_cpu_threads || settings.dirty_io_threads || settings.io_uring) {
    return usage_error("of the node settings, the workloads take only schedulers and log_level");
  }
  if (settings.log_level) athanor::logger::set_level(athanor::log_level(*athanor::find_log_level(*settings.log_level)));

  if (argc < 2) return usage_error("expected a workload: " + workload_names());
  options o;
  o.workload = argv[1];
  if (o.workload.starts_with("-")) {
    bool known = false;
    for (const workload_flag& f : kCommonFlags) known = known || o.workload == std::string("--") + f.name;
    for (const workload_flag& f : kWorkloadFlags) known = known || o.workload == std::string("--") + f.name;
    return usage_error(known ? "expected the workload before " + o.workload : "unknown flag '" + o.workload + "'");
  }
  if (workloads().find(o.workload) == workloads().end()) {
    return usage_error("unknown workload '" + o.workload + "' (known: " + workload_names() + ")");
  }
  o.schedulers = settings.schedulers.value_or(0);
  for (int i = 2; i < argc; ++i) {
    const std::string k = argv[i];
    if (!k.starts_with("--")) return usage_error("unexpected argument '" + k + "'");
    const std::string name = k.substr(2);
    const workload_flag* flag = nullptr;
    for (const workload_flag& f : kCommonFlags) flag = name == f.name ? &f : flag;
    for (const workload_flag& f : kWorkloadFlags) flag = name == f.name ? &f : flag;
    if (!flag) return usage_error("unknown flag '" + k + "'");
    if (i + 1 >= argc) return usage_error(k + ": expected a value after it");
    const std::optional<std::uint64_t> parsed =
        athanor::tools::parse_integer(argv[++i], std::uint64_t(flag->min), std::uint64_t(flag->max));
    if (!parsed) {
      return usage_error(k + ": expected an integer from " + std::to_string(flag->min) + " to " +
                         std::to_string(flag->max) + ", got '" + argv[i] + "'");
    }
    const long v = long(*parsed);
    if (name == "n") o.n = v;
    else if (name == "laps") o.laps = v;
    else if (name == "hogs") o.hogs = int(v);
    else if (name == "checkpoint") o.checkpoint = v != 0;
    else o.extra[name] = argv[i];
  }
  workloads().at(o.workload)(o);
  return 0;
}
