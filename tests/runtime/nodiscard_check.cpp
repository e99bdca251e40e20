// A compile-only check, not a gtest: every awaitable the runtime returns is [[nodiscard]], so a
// forgotten co_await (`self.sleep(10ms);`, which does nothing at all) is a warning, not a silent
// bug. Compiled with clang's -verify, which succeeds only if each line marked as expecting a
// warning warns and nothing else does; removing [[nodiscard]] from any awaitable makes it fail:
//
//   clang++-19 -std=c++20 -fsyntax-only -Wall -Wextra -Xclang -verify -Iinclude tests/runtime/nodiscard_check.cpp
//
// (Not a *_test.cpp file: it is not part of runtime_tests.)
#include <chrono>
#include <string>

#include "athanor/runtime/dirty.h"
#include "athanor/runtime/io.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/runtime.h"

namespace athanor {

struct ping {};

task<int> helper() { co_return 1; }

proc forgets_every_co_await(process& self) {
  using namespace std::chrono_literals;
  self.receive<ping>();                                          // expected-warning {{ignoring return value}}
  self.receive<ping, int>();                                     // expected-warning {{ignoring return value}}
  self.receive_for<ping>(10ms);                                  // expected-warning {{ignoring return value}}
  self.receive(on<ping>([](ping&) {}), after(10ms, [] {}));      // expected-warning {{ignoring return value}}
  self.receive_any();                                            // expected-warning {{ignoring return value}}
  self.receive_any_for(10ms);                                    // expected-warning {{ignoring return value}}
  self.yield();                                                  // expected-warning {{ignoring return value}}
  self.consume(1);                                               // expected-warning {{ignoring return value}}
  self.sleep(10ms);                                              // expected-warning {{ignoring return value}}
  dirty_io([] { return 1; });                                    // expected-warning {{ignoring return value}}
  dirty_cpu([] {});                                              // expected-warning {{ignoring return value}}
  io_wait(0, io_readable, 10ms);                                 // expected-warning {{ignoring return value}}
  io_wait_or_message<ping>(0, io_readable, 10ms);                // expected-warning {{ignoring return value}}
  detail::fd_wait{0, io_readable};                               // expected-warning {{ignoring return value}}
  helper();                                                      // expected-warning {{ignoring return value}}
  process_info_async(self.self());                               // expected-warning {{ignoring return value}}
  co_return;
}

// The same calls, awaited, compile without a warning.
proc awaits_everything(process& self) {
  using namespace std::chrono_literals;
  co_await self.receive<ping>();
  co_await self.receive_for<ping>(10ms);
  co_await self.receive(on<ping>([](ping&) {}), after(10ms, [] {}));
  co_await self.receive_any();
  co_await self.yield();
  co_await self.consume(1);
  co_await self.sleep(10ms);
  co_await dirty_io([] { return 1; });
  co_await io_wait(0, io_readable, 10ms);
  co_await detail::fd_wait{0, io_readable};
  co_await helper();
  co_await process_info_async(self.self());
}

}  // namespace athanor
