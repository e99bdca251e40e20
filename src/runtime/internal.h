// Internal structures of the runtime shared by its .cpp files. Not a public API.
#pragma once

#include <atomic>
#include <chrono>
#include <ctime>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "athanor/runtime/runtime.h"
#include "runtime/run_queue.h"
#include "runtime/timer_wheel.h"

namespace athanor {

// Grants the runtime's .cpp files access to process internals.
struct process_access {
  static detail::process_state& st(process* p) noexcept { return p->st_; }
  static process* construct(void* mem) { return ::new (mem) process(); }
};

namespace detail {

// ---- the inbox word -------------------------------------------------------
// bits 48..63: low 16 bits of the slot generation; bits 0..47: envelope* or a marker.
inline constexpr std::uintptr_t kInboxEmpty = 0;
inline constexpr std::uintptr_t kInboxParked = 1;  // empty, and the owner waits for a push to wake it
inline constexpr std::uintptr_t kInboxClosed = 2;  // the process has ended
inline constexpr std::uintptr_t kPtrMask = (std::uintptr_t(1) << 48) - 1;
inline constexpr std::uintptr_t inbox_word(std::uint32_t generation, std::uintptr_t ptr) {
  return (std::uintptr_t(generation & 0xFFFF) << 48) | ptr;
}
inline constexpr std::uint32_t inbox_tag(std::uintptr_t w) { return std::uint32_t(w >> 48); }
inline constexpr std::uintptr_t inbox_ptr(std::uintptr_t w) { return w & kPtrMask; }

// flags_ bits
inline constexpr std::uint8_t kTrapExit = 1;
inline constexpr std::uint8_t kExiting = 2;       // an exit is decided; the process ends at the next chance
inline constexpr std::uint8_t kEventFired = 4;    // the awaited event (sleep, I/O, dirty job) happened
inline constexpr std::uint8_t kDirtyPending = 8;  // a dirty job writes into the frame: must not be destroyed
inline constexpr std::uint8_t kRunning = 16;      // being run by a scheduler (for process_info)
inline constexpr std::uint8_t kEdgeWaiting = 32;  // waiting on its attached fd (netpoll::attach)
inline constexpr std::uint8_t kEdgePending = 64;  // an edge of its attached fd came while it was not waiting

// ---- signals ----------------------------------------------------------------
struct sig_exit { pid from; term reason; bool via_link; };
struct sig_link { pid from; };
struct sig_unlink { pid from; };
struct sig_monitor { pid from; ref mref; };
struct sig_demonitor { pid from; ref mref; };
struct sig_down { ref mref; pid from; term reason; };
struct sig_wake { std::uint32_t token; bool edge = false; };  // edge: from an attached fd (any wait)
// Runs fn in the target process's context (alive: dying == false; or while it ends: dying == true).
struct sig_apply { std::function<void(process&, bool dying)> fn; };
// A message sent through an alias: becomes a message if the alias is active on arrival, else is dropped.
struct sig_alias {
  ref alias;
  envelope* inner;
  sig_alias(const ref& a, envelope* e) noexcept : alias(a), inner(e) {}
  sig_alias(const sig_alias&) = delete;
  ~sig_alias() {
    if (inner) destroy_envelope(inner);
  }
};

struct process_extras {
  std::vector<pid> links;
  std::vector<std::pair<ref, pid>> monitors;      // monitors this process holds: ref -> target
  std::vector<std::pair<ref, pid>> monitored_by;  // monitors on this process: ref -> watcher
  std::vector<ref> aliases;                        // active aliases (alias.h)
  term exit_reason;
  std::size_t max_heap_bytes = 0;
};

// ---- per-process memory -----------------------------------------------------
inline constexpr std::size_t kProcessBlockBytes = 128;

// ---- the scheduler's "P": a run queue and its statistics ----------------------
struct scheduler_slot {
  run_ring ring;
  std::atomic<process*> runnext{nullptr};
  std::atomic<std::uint64_t> dispatches{0};  // bumped at every dispatch: sysmon's progress signal
  std::atomic<bool> in_process{false};       // its thread is inside process code now
  std::atomic<bool> hogged{false};           // sysmon saw it stuck; relief was sent
  std::atomic<bool> active{false};           // owned by a running worker
  std::atomic<std::uint64_t> idle_ns{0};   // time asleep (utilisation = 1 - idle/uptime)
  std::atomic<std::uint64_t> runs{0};
  std::atomic<std::uint64_t> steals{0};
  unsigned id = 0;
  bool relief = false;                        // an extra slot started for hogs
  std::atomic<std::int64_t> started_ns{0};      // steady_clock, when it (last) started
  // sysmon bookkeeping (sysmon thread only)
  std::uint64_t seen_dispatches = 0;
  std::chrono::steady_clock::time_point seen_since{};
  std::int64_t seen_cpu_ns = 0;                // the worker thread's CPU time at seen_since
  std::atomic<clockid_t> cpu_clock{0};         // CPU-time clock of the worker thread owning the slot
  std::atomic<bool> has_cpu_clock{false};
};

class timer_service;
class netpoll;
class dirty_pools;
struct worker;

}  // namespace detail

struct runtime::impl {
  runtime_config cfg;

  // Process table: max_processes blocks reserved as address space, touched as used; a slot's
  // memory only ever holds a process, so a stale pid's inbox CAS is always on valid memory.
  process* table = nullptr;
  std::atomic<std::uint32_t> fresh_index{1};  // index 0 is never used (the null pid)
  // Slots below `constructed` hold a process object (constructed a chunk at a time, under
  // construct_mu, with a closed inbox until first used), so processes() may read any of them
  // without racing with a constructor. At least fresh_index once a fresh slot is handed out.
  std::atomic<std::uint32_t> constructed{1};
  std::mutex construct_mu;
  std::mutex free_mu;
  std::vector<std::uint32_t> free_indices;
  std::atomic<std::int64_t> live{0};
  std::mutex wait_mu;
  std::condition_variable wait_cv;

  // Schedulers.
  static constexpr unsigned kMaxSlots = 256;
  detail::scheduler_slot slots[kMaxSlots];
  std::atomic<unsigned> slot_count{0};      // slots ever created (prefix of `slots`)
  unsigned base_schedulers = 0;
  std::atomic<unsigned> relief_started{0};
  std::vector<std::thread> threads;
  std::mutex threads_mu;

  // Global run queue (from non-scheduler threads, overflow, retiring slots).
  std::mutex global_mu;
  process* global_head = nullptr;
  process* global_tail = nullptr;
  std::atomic<std::size_t> global_len{0};

  // Idle workers.
  std::mutex idle_mu;
  std::vector<detail::worker*> idle;        // workers asleep on their futex word
  std::atomic<int> idle_count{0};
  std::atomic<int> spinning{0};
  std::atomic<bool> poller_active{false};  // a worker is blocked in epoll_wait
  std::atomic<bool> poll_interrupted{false};  // its eventfd has been written since it went to sleep
  std::atomic<bool> stopping{false};

  // Timers, I/O, dirty pools.
  detail::timer_service* timers = nullptr;
  detail::netpoll* poll = nullptr;
  detail::dirty_pools* dirty = nullptr;

  // Sysmon.
  std::thread sysmon;
  std::mutex sysmon_mu;
  std::condition_variable sysmon_cv;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  // Registered names, both ways (a process has at most one name).
  std::shared_mutex names_mu;
  std::unordered_map<atom, pid> names;
  std::unordered_map<pid, atom> name_of;

  // ---- operations (scheduler.cpp) ----
  void make_runnable(process* p, bool next) noexcept;  // p was just woken or spawned
  void global_push(process* p) noexcept;
  void global_push_batch(process* head, process* tail, std::size_t n) noexcept;
  process* global_pop() noexcept;
  process* global_pop_batch(detail::run_ring& into, std::uint32_t max) noexcept;
  void wake_worker() noexcept;
  void worker_main(unsigned slot, detail::worker* w);
  void sleep_idle(detail::worker& w, detail::scheduler_slot& s);
  bool leave_idle(detail::worker* w) noexcept;
  void sysmon_main();
  void start_relief(unsigned hogged_slot);

  // ---- process lifecycle (process.cpp) ----
  process* slot_of(pid p) const noexcept { return table + p.index(); }
  process* allocate_process();
  void construct_slots_through(std::uint32_t index);
  void release_process(process* p) noexcept;
  void finish(process* p) noexcept;
  void process_ended() noexcept;
};

extern runtime::impl* g_rt;  // the current runtime (set while one exists)

namespace detail {
// thread-local scheduling context
struct worker;
// The scheduling context of this thread. Reached through functions rather than `extern
// thread_local` variables: with g++ 12 and UBSan, the null check on a TLS address tests CPU
// flags that the linker's TLS relaxation (initial-exec to local-exec: add becomes lea) no longer
// sets, which yields false "store to null pointer" reports. Under sanitizers the accessors are
// out of line, so the check sees a real pointer; otherwise they inline to a plain TLS access.
class io_ring;
struct thread_context {
  worker* w = nullptr;
  io_ring* ring = nullptr;  // the worker's completion ring (uring.h), if it has one
  process* current = nullptr;
  process* spawning = nullptr;
};
#ifdef ATHANOR_SANITIZED
thread_context& tls() noexcept;
#else
extern thread_local thread_context t_context;
inline thread_context& tls() noexcept { return t_context; }
#endif

// Pushes e to p's inbox if p still is the incarnation `generation` names. Returns:
// 0 pushed, 1 pushed and p was parked (the caller must make it runnable), -1 refused (ended/stale).
int inbox_push(process* p, std::uint32_t generation, envelope* e) noexcept;

// Sends a runtime signal.
template <class S, class... A>
bool signal(pid to, A&&... a) {
  return deliver(to, make_envelope<S>(true, std::forward<A>(a)...));
}

std::uint64_t now_ms() noexcept;
}  // namespace detail
}  // namespace athanor
