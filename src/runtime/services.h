// The runtime's services beside the schedulers: timers, the I/O poller, dirty pools. Internal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "athanor/runtime/message.h"
#include "athanor/term/pid.h"
#include "runtime/timer_wheel.h"

namespace athanor::detail {

// Timers: one hierarchical wheel behind a mutex (timers are armed far less often than messages
// are sent; a per-scheduler wheel would need cross-thread cancellation anyway). Thread-safe.
// A fired timer pushes its envelope into the target's inbox; cancel and fire race under the
// lock: whichever takes the lock first wins, and cancel() says which.
class timer_service {
 public:
  timer_service();
  ~timer_service();

  // Arms a timer: after `ms` milliseconds `payload` is delivered to `target`. Returns a handle
  // (never 0) for cancel().
  std::uint64_t start(std::int64_t ms, pid target, envelope* payload);
  // Returns true if the timer was pending and is now cancelled (its payload destroyed); false if it
  // already fired or was cancelled.
  bool cancel(std::uint64_t handle) noexcept;
  // Milliseconds left before the timer fires, or -1 if it is not pending.
  std::int64_t remaining(std::uint64_t handle) noexcept;
  // Delivers every due timer. Cheap when nothing is due (one atomic load).
  void fire_due(std::uint64_t now_ms);
  bool due(std::uint64_t now_ms) const noexcept { return next_due_.load(std::memory_order_acquire) <= now_ms; }
  // True if a timer has been due for at least `slack_ms` (nobody fired it).
  bool overdue(std::uint64_t now_ms, std::uint64_t slack_ms) const noexcept {
    return next_due_.load(std::memory_order_acquire) + slack_ms <= now_ms;
  }
  // Milliseconds until the next timer (0 if due), or -1 if none.
  std::int64_t ms_until_next(std::uint64_t now_ms) const noexcept;
  std::uint64_t pending() const noexcept { return pending_.load(std::memory_order_relaxed); }

 private:
  struct entry : timer_node {
    pid target;
    envelope* payload = nullptr;
    std::uint32_t seq = 0;
    std::uint32_t next_free = 0;
    std::uint32_t index = 0;
  };
  static constexpr std::uint32_t kChunk = 4096;
  entry& at(std::uint32_t index) { return chunks_[index / kChunk][index % kChunk]; }

  mutable std::mutex mu_;
  timer_wheel wheel_;
  std::vector<entry*> chunks_;
  std::uint32_t free_head_ = 0;  // index + 1; 0: none
  std::uint32_t used_ = 0;
  std::atomic<std::uint64_t> next_due_{UINT64_MAX};
  std::atomic<std::uint64_t> pending_{0};
  std::vector<entry*> firing_;
};

// The I/O poller: one epoll instance for the node. Thread-safe. Registrations carry the waiting
// process (index, generation) and a 16-bit wait token; readiness pushes a wake signal to it.
class netpoll {
 public:
  netpoll();
  ~netpoll();
  // Waits up to timeout_ms (0: just look) and delivers wake-ups. Returns events handled.
  int poll(int timeout_ms);
  // Makes a blocked poll() return promptly.
  void interrupt() noexcept;
  // Arms one-shot interest in `events` (EPOLLIN/EPOLLOUT) of fd for process p with token.
  // Returns 0 or an errno value.
  int arm(int fd, std::uint32_t events, pid p, std::uint32_t token) noexcept;
  // Registers fd once, edge-triggered, for both directions, on behalf of process p: every
  // readiness edge becomes a sig_wake with edge = true, and waits on fd need no arm(). From
  // then on every wait on fd must be an attached fd_wait_for (an arm() would make it one-shot
  // again). Returns 0 or an errno value.
  int attach(int fd, pid p) noexcept;
  // Forgets fd (before it is closed).
  void forget(int fd) noexcept;
  // The epoll instance's descriptor (a ring watches it while its worker sleeps as the poller).
  int fd() const noexcept { return epfd_; }

 private:
  int epfd_ = -1;
  int eventfd_ = -1;
  std::mutex reg_mu_;
  std::vector<std::uint8_t> registered_;  // fd -> added to epoll
};

// Dirty pools: threads for work that would block a scheduler. Thread-safe.
class dirty_pools {
 public:
  dirty_pools(unsigned cpu_threads, unsigned io_threads);
  ~dirty_pools();
  enum class kind { cpu, io };
  void submit(kind k, std::function<void()> job);

 private:
  struct pool {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> jobs;
    std::vector<std::thread> threads;
    bool stop = false;
  };
  void start(pool& p, unsigned n);
  pool cpu_, io_;
};

}  // namespace athanor::detail
