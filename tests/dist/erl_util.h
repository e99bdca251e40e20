// Helpers for the distribution tests that run real Erlang nodes: child processes with their own
// environment (a temporary HOME, so no developer's ~/.erlang.cookie is read or written, and their
// own EPMD port). Free ports, temporary directories and unique names come from epmd_test_util.h.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "athanor/athanor.h"

#include "../support/child_process.h"
#include "epmd_test_util.h"

namespace athanor::dist::testing {

inline bool have_erl() { return std::system("command -v erl >/dev/null 2>&1 && command -v escript >/dev/null 2>&1") == 0; }

#define ATHANOR_REQUIRE_ERL()                                                                  \
  do {                                                                                          \
    if (!::athanor::dist::testing::have_erl())                                                  \
      GTEST_SKIP() << "erl is not installed (scripts/install-deps.sh --test installs erlang)"; \
  } while (0)

using child = ::athanor::testing_support::child;

// The environment of an Erlang node started by a test: its own HOME (so no developer's cookie is
// read or written), its own EPMD port, and no crash dump left in the working directory.
inline std::vector<std::string> erl_env(const std::string& home, std::uint16_t epmd_port) {
  return {"HOME=" + home, "ERL_EPMD_PORT=" + std::to_string(epmd_port), "ERL_CRASH_DUMP_SECONDS=0"};
}

// Reads `c`'s output lines until one equals `want` (what a test's Erlang node prints when it is
// ready); false if the output ends first.
inline bool wait_for_line(child& c, std::string_view want) {
  std::optional<std::string> line;
  while ((line = c.line()) && *line != want) {
  }
  return line.has_value();
}

// Runs `body` (a coroutine taking the process, returning task<T>) in a new process and returns
// its value, or rethrows what it threw; throws std::runtime_error if it has not finished within
// `limit` (every wait inside should be bounded: this only catches a body stuck elsewhere).
template <class T = term, class F>
T in_process(F body, std::chrono::seconds limit = std::chrono::seconds(60)) {
  auto result = std::make_shared<std::promise<T>>();
  std::future<T> f = result->get_future();
  spawn([body, result](process& self) mutable -> proc {
    try {
      result->set_value(co_await body(self));
    } catch (...) {
      result->set_exception(std::current_exception());
    }
  });
  if (f.wait_for(limit) != std::future_status::ready) throw std::runtime_error("in_process: no answer in time");
  return f.get();
}

}  // namespace athanor::dist::testing
