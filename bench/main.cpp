// athanor-bench <workload> [--n N] [--schedulers S] [--laps L] [--hogs H] [--checkpoint 0|1] [--name value]...
//
// Prints one JSON object per line. The workloads live in bench/*_bench.cpp; the same workloads
// exist in Erlang (bench/erlang) and CAF (bench/caf); bench/compare.sh runs them all in one go
// and prints the ratios.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench.h"

int main(int argc, char** argv) {
  using namespace athanor::bench;
  auto usage = [] {
    std::string names;
    for (auto& [name, fn] : workloads()) names += (names.empty() ? "" : "|") + name;
    std::fprintf(stderr,
                 "usage: athanor-bench <%s> [--n N] [--schedulers S] [--laps L] [--hogs H] [--checkpoint 0|1] "
                 "[--name value]...\n",
                 names.c_str());
    return 2;
  };
  if (argc < 2) return usage();
  options o;
  o.workload = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) return usage();
    long v = std::strtol(argv[i + 1], nullptr, 10);
    if (k == "--n") o.n = v;
    else if (k == "--schedulers") o.schedulers = unsigned(v);
    else if (k == "--laps") o.laps = v;
    else if (k == "--hogs") o.hogs = int(v);
    else if (k == "--checkpoint") o.checkpoint = v != 0;
    else o.extra[k.substr(2)] = argv[i + 1];
  }
  auto it = workloads().find(o.workload);
  if (it == workloads().end()) return usage();
  it->second(o);
  return 0;
}
