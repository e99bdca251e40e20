// Shared helpers for the runtime tests.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>

// The runtime's own headers only: the tests of a part never include a higher part.
#include "athanor/runtime/alias.h"
#include "athanor/runtime/dirty.h"
#include "athanor/runtime/io.h"
#include "athanor/runtime/proc.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/runtime.h"
#include "athanor/runtime/timer.h"
#include "athanor/term/atom.h"
#include "athanor/term/etf.h"
#include "athanor/term/term.h"

namespace athanor::testing {

using namespace std::chrono_literals;

// A runtime per test; tests run process bodies with run() and wait for every process to end.
class RuntimeTest : public ::testing::Test {
 protected:
  virtual runtime_config config() {
    runtime_config c;
    c.schedulers = 2;
    return c;
  }
  void SetUp() override { rt_ = std::make_unique<runtime>(config()); }
  void TearDown() override { rt_.reset(); }

  // Spawns `body` and blocks until no process is left (bounded: fails the test after 30 s).
  template <class F>
  void run(F&& body) {
    spawn(std::forward<F>(body));
    ASSERT_TRUE(rt_->wait_for(30s)) << "processes still alive after 30 s";
  }

  std::unique_ptr<runtime> rt_;
};

class SingleSchedulerTest : public RuntimeTest {
 protected:
  runtime_config config() override {
    runtime_config c;
    c.schedulers = 1;
    return c;
  }
};

// A value a test thread can wait for, set once from a process.
template <class T>
class outcome {
 public:
  void set(T v) { p_.set_value(std::move(v)); }
  // Waits up to 30 s; fails the test (and returns T{}) on timeout.
  T get() {
    auto f = p_.get_future();
    if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      ADD_FAILURE() << "outcome not set within 30 s";
      return T{};
    }
    return f.get();
  }

 private:
  std::promise<T> p_;
};

}  // namespace athanor::testing
