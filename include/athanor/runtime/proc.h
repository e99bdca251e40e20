// athanor::proc and athanor::task<T>: the coroutine types that process code is written in. Not thread-safe:
// a coroutine belongs to one process, and a process runs on one scheduler thread at a time.
//
// A process body is a C++20 coroutine returning `proc`:
//
//   athanor::spawn([](athanor::process& self) -> athanor::proc {
//     hello h = co_await self.receive<hello>();
//     ...
//   });
//
// Frames come from the runtime's pool and are charged to the process's memory.
// An exception that escapes the body ends the process with reason
// {exception, <<"what()">>} (exit_exception and error_exception: their reason); it never escapes
// into the scheduler. As the BEAM does, such an uncaught error is logged ("Error in process ...",
// logger.h), while an exit(reason) is not.
//
// `task<T>` is for helper coroutines called from a process
// (`int n = co_await fetch_count(self);`): lazily started, resumed by
// symmetric transfer, and destroyed with the frame that awaits it (so killing a
// process also unwinds the helpers it is inside).
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <utility>

#include "athanor/runtime/pool.h"
#include "athanor/toolchain.h"

namespace athanor {

class process;

namespace detail {
// Frame allocation, charged to the process whose code is running (or being spawned).
void* allocate_frame(std::size_t size);
void free_frame(void* p, std::size_t size) noexcept;
// Called when a process's top-level coroutine ends, normally or by exception.
void process_body_returned(std::exception_ptr error) noexcept;
}  // namespace detail

class proc {
 public:
  struct promise_type {
    proc get_return_object() { return proc(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    // The runtime destroys the frame after the process's exit is handled.
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept { detail::process_body_returned(nullptr); }
    void unhandled_exception() noexcept { detail::process_body_returned(std::current_exception()); }
    static void* operator new(std::size_t size) { return detail::allocate_frame(size); }
    static void operator delete(void* p, std::size_t size) noexcept { detail::free_frame(p, size); }
  };

  proc(proc&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  proc& operator=(proc&&) = delete;
  ~proc() { if (h_) h_.destroy(); }

  // Gives up ownership of the frame (the runtime takes it).
  std::coroutine_handle<promise_type> release() { return std::exchange(h_, {}); }

 private:
  explicit proc(std::coroutine_handle<promise_type> h) : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

template <class T = void>
class task;

namespace detail {

struct task_promise_base {
  std::coroutine_handle<> continuation;
  std::exception_ptr error;

  std::suspend_always initial_suspend() noexcept { return {}; }
  struct final_awaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      return h.promise().continuation;
    }
    void await_resume() noexcept {}
  };
  final_awaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* p, std::size_t size) noexcept { free_frame(p, size); }
};

template <class T>
struct task_promise : task_promise_base {
  std::optional<T> value;
  task<T> get_return_object();
  template <class U>
  void return_value(U&& v) { value.emplace(std::forward<U>(v)); }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct task_promise<void> : task_promise_base {
  task<void> get_return_object();
  void return_void() noexcept {}
  void take() { if (error) std::rethrow_exception(error); }
};

}  // namespace detail

template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;

  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&&) = delete;
  ~task() { if (h_) h_.destroy(); }

  bool await_ready() const noexcept { return false; }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> caller) noexcept {
    h_.promise().continuation = caller;
    return h_;
  }
  T await_resume() { return h_.promise().take(); }

 private:
  friend struct detail::task_promise<T>;
  explicit task(std::coroutine_handle<promise_type> h) : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() {
  return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() {
  return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace athanor
