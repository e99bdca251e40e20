// Dirty schedulers: run blocking or long CPU-bound work off the scheduler threads. Call from a process.
//
//   std::string text = co_await athanor::dirty_io([&] { return read_whole_file(path); });
//   auto digest     = co_await athanor::dirty_cpu([&] { return sha256(big_buffer); });
//
// The calling process is suspended (it uses no scheduler thread) until the function returns;
// its value or exception comes back through co_await. If the process is killed meanwhile, it
// ends as soon as the function returns (the function's frame references stay valid until then,
// as with the BEAM's dirty NIFs).
#pragma once

#include <coroutine>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace athanor {
namespace detail {
enum class dirty_kind { cpu, io };
// Suspends the current process until `job` has run on a dirty thread. Throws std::logic_error
// outside a process.
void submit_dirty(dirty_kind kind, std::function<void()> job, std::coroutine_handle<> h);

template <class F>
struct [[nodiscard]] dirty_awaiter {
  using R = std::invoke_result_t<F&>;
  dirty_kind kind;
  F fn;
  std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> result{};
  std::exception_ptr error;

  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    submit_dirty(kind, [this] {
      try {
        if constexpr (std::is_void_v<R>) {
          fn();
          result = true;
        } else {
          result.emplace(fn());
        }
      } catch (...) {
        error = std::current_exception();
      }
    }, h);
  }
  R await_resume() {
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>) return std::move(*result);
  }
};
}  // namespace detail

// co_await dirty_cpu(f): runs f() on the dirty CPU pool (one thread per core by default).
template <class F>
auto dirty_cpu(F f) { return detail::dirty_awaiter<F>{detail::dirty_kind::cpu, std::move(f), {}, {}}; }
// co_await dirty_io(f): runs f() on the dirty I/O pool (for blocking system calls).
template <class F>
auto dirty_io(F f) { return detail::dirty_awaiter<F>{detail::dirty_kind::io, std::move(f), {}, {}}; }

}  // namespace athanor
