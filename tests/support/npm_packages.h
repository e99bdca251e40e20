// The npm packages a test drives (tests/<part>/js/package.json, pinned by its lockfile): present,
// or installed with `npm ci` once. ctest runs test processes in parallel and `npm ci` first
// deletes node_modules, so installs go one at a time under a lock, and only if no other process
// installed the packages meanwhile. (scripts/test.sh installs them before ctest; this is for runs
// of one test binary.)
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>

namespace athanor::testing_support {

// True if node_modules in `dir` holds every one of `packages` (after an `npm ci` if needed).
// The answer is kept per directory for the rest of the process.
inline bool ensure_npm_packages(const std::string& dir, std::initializer_list<const char*> packages) {
  static std::mutex mu;
  static std::map<std::string, bool> known;
  std::lock_guard lock(mu);
  if (auto it = known.find(dir); it != known.end()) return it->second;
  std::string test;
  for (const char* package : packages) {
    test += std::string(test.empty() ? "" : " -a ") + "-f node_modules/" + package + "/package.json";
  }
  const std::string cmd = "cd '" + dir + "' && (test " + test + " || flock .npm-ci.lock sh -c 'test " + test +
                          " || npm ci --no-audit --no-fund --loglevel=error') >/dev/null 2>&1";
  return known[dir] = std::system(cmd.c_str()) == 0;
}

}  // namespace athanor::testing_support
