// Timers: send_after, cancel_timer, read_timer. Thread-safe; callable from any thread while a runtime exists.
//
// Timers live in one hierarchical timing wheel with millisecond resolution; arming and
// cancelling are O(1) and a million pending timers cost about 64 bytes each. Receive timeouts
// (`after(...)`, `receive_for`) and `co_await self.sleep(d)` use the same wheel.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "athanor/runtime/message.h"
#include "athanor/term/pid.h"

namespace athanor {

// Identifies an armed timer. A default-constructed timer_ref refers to no timer.
struct timer_ref {
  std::uint64_t handle = 0;
  explicit operator bool() const { return handle != 0; }
  friend bool operator==(timer_ref, timer_ref) = default;
};

namespace detail {
std::uint64_t start_timer(std::int64_t ms, pid target, envelope* payload);
}

// Sends `msg` to `to` after `delay` (Erlang's erlang:send_after/3). Returns the timer's reference.
// Throws std::logic_error if no runtime exists.
template <class Rep, class Period, class T>
timer_ref send_after(std::chrono::duration<Rep, Period> delay, pid to, T&& msg) {
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(delay).count();
  return timer_ref{detail::start_timer(ms, to, detail::make_envelope<std::remove_cvref_t<T>>(false, std::forward<T>(msg)))};
}

// Cancels a timer. Returns true if it had not fired yet (its message will never be sent), false
// if it already fired or was cancelled.
bool cancel_timer(timer_ref t) noexcept;

// Time left before the timer fires, or nullopt if it is not pending.
std::optional<std::chrono::milliseconds> read_timer(timer_ref t) noexcept;

}  // namespace athanor
