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
inline constexpr std::uint8_t kHeld = kHeldFlag;  // held by back-pressure: not run until released (remote.h)

// ---- signals ----------------------------------------------------------------
struct sig_exit { pid from; term reason; bool via_link; };
struct sig_link { pid from; };
struct sig_unlink { pid from; };
struct sig_monitor { pid from; ref mref; };
struct sig_demonitor { pid from; ref mref; };
struct sig_down { ref mref; pid from; term reason; };
struct sig_wake { std::uint32_t token; bool edge = false; };  // edge: from an attached fd (any wait)
struct sig_release {};  // ends a hold (remote_signals::release_hold)
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
  std::vector<std::pair<ref, name_on_node>> name_monitors;  // ... on {Name, Node} of other nodes
  std::vector<std::pair<ref, pid>> monitored_by;  // monitors on this process: ref -> watcher
  std::vector<ref> aliases;                        // active aliases (alias.h)
  term exit_reason;
  std::size_t max_heap_bytes = 0;
};

// ---- per-process memory -----------------------------------------------------
inline constexpr std::size_t kProcessBlockBytes = 128;

// ---- hog detection (sysmon) ------------------------------------------------------
// The decisions below are pure functions of what sysmon reads, with the times passed in: sysmon
// passes steady_clock and the worker threads' CPU clocks, tests pass made-up values (the clocks
// are injected, so every case, a preempted thread, a VM, a 2 ms poll arriving late, can be
// replayed exactly). The essay at the top of scheduler.cpp says why they are shaped so.

// What sysmon reads from one scheduler slot at one look.
struct slot_sample {
  std::int64_t wall_ns = 0;      // now, on a monotonic clock
  std::int64_t cpu_ns = -1;      // CPU time used so far by the slot's worker thread; < 0: unknown
  std::uint64_t dispatches = 0;  // the slot's dispatch counter
  bool in_process = false;       // its thread is inside process code
  bool queued = false;           // processes wait in its ring or runnext
  std::uint64_t taken = 0;       // thefts from its ring or runnext and spills of its ring, so far
};

// How long a queue has held work that nobody took. `taken` is a counter bumped whenever someone
// takes from the queue: work that keeps being taken (stolen in halves, say) is not stranded,
// however long the queue stays non-empty.
class queue_watch {
 public:
  void observe(std::int64_t now_ns, bool nonempty, std::uint64_t taken) noexcept {
    if (!seen_ || !nonempty || taken != taken_) {
      seen_ = true;
      since_ns_ = now_ns;
      taken_ = taken;
    }
  }
  // Starts counting afresh: the queue was just served another way (sysmon moved it to the global
  // queue, or started a relief thread for it).
  void restart(std::int64_t now_ns) noexcept { since_ns_ = now_ns; }
  // How long the queue has held work with nobody taking any, as of the last observe().
  std::int64_t stranded_ns(std::int64_t now_ns) const noexcept { return seen_ ? now_ns - since_ns_ : 0; }

 private:
  bool seen_ = false;
  std::int64_t since_ns_ = 0;
  std::uint64_t taken_ = 0;
};

// Decides, one look at a time, whether a slot is hogged: its thread has spent `threshold` of CPU
// time inside one dispatch. CPU time rather than wall time, because a thread the OS preempted has
// not been running its process: on a loaded 2-core machine a 10 ms wall-clock stall of a busy
// worker is routine. The window starts at the
// first look that sees the dispatch, so the CPU time counted is never more than the dispatch used.
class hog_detector {
 public:
  // Returns true while the slot is hogged (from the look that sees threshold_ns of CPU used until
  // the dispatch ends).
  bool observe(const slot_sample& s, std::int64_t threshold_ns) noexcept {
    if (!s.in_process || !watching_ || s.dispatches != dispatches_) {
      // A new dispatch (or none): the owner is serving its own queue, nothing is stuck.
      watching_ = s.in_process;
      dispatches_ = s.dispatches;
      since_ns_ = s.wall_ns;
      cpu_at_since_ns_ = s.cpu_ns;
      hog_ = false;
      queue_.observe(s.wall_ns, false, s.taken);  // its owner takes from its queue between dispatches
      return false;
    }
    queue_.observe(s.wall_ns, s.queued, s.taken);
    if (!hog_) {
      // Without a CPU clock only wall time is left (a preempted thread then looks like a hog).
      std::int64_t used = s.cpu_ns >= 0 && cpu_at_since_ns_ >= 0 ? s.cpu_ns - cpu_at_since_ns_ : s.wall_ns - since_ns_;
      hog_ = used >= threshold_ns;
    }
    return hog_;
  }
  bool hogged() const noexcept { return hog_; }
  // How long processes queued on the slot have waited while it is hogged with no thread taking
  // any of them (0 while it is not hogged).
  std::int64_t stranded_ns(std::int64_t now_ns) const noexcept { return hog_ ? queue_.stranded_ns(now_ns) : 0; }
  void restart_stranded(std::int64_t now_ns) noexcept { queue_.restart(now_ns); }

 private:
  bool watching_ = false;  // in process code at the last look, in dispatch `dispatches_`
  bool hog_ = false;
  std::uint64_t dispatches_ = 0;
  std::int64_t since_ns_ = 0;         // first look at this dispatch
  std::int64_t cpu_at_since_ns_ = 0;  // the thread's CPU time then
  queue_watch queue_;
};

// What sysmon does about work stranded behind hogs: processes that have waited `stranded_ns` in a
// hogged slot's ring or runnext (`in_hogged_slot`), or in the global queue while a slot is
// hogged, with no thread taking any. `unhogged_workers`: active workers not hogged (busy, idle,
// or preempted by the OS); `idle_workers`: those asleep.
enum class relief_action {
  none,
  wake_worker,   // wake an idle worker: it will find the work
  share_queue,   // move the hogged slot's queue to the global queue, which every worker serves
  start_relief,  // start a relief worker: every worker is hogged
};
inline relief_action decide_relief(std::int64_t stranded_ns, std::int64_t threshold_ns, bool in_hogged_slot,
                                   unsigned unhogged_workers, int idle_workers) noexcept {
  if (stranded_ns < threshold_ns) return relief_action::none;
  // No thread but a new one can run the work.
  if (unhogged_workers == 0) return relief_action::start_relief;
  // Another worker can: a busy one takes from the global queue every other dispatch (it steals
  // from rings only when it has nothing of its own), an idle one is woken by the push.
  if (in_hogged_slot) return relief_action::share_queue;
  // Already in the global queue: its workers are asleep (wake one) or were not running (the OS
  // preempted them: a thread more would not run either).
  return idle_workers > 0 ? relief_action::wake_worker : relief_action::none;
}

// ---- the scheduler's "P": a run queue and its statistics ----------------------
struct scheduler_slot {
  run_ring ring;
  std::atomic<process*> runnext{nullptr};
  std::atomic<std::uint64_t> dispatches{0};  // bumped at every dispatch: sysmon's progress signal
  std::atomic<bool> in_process{false};       // its thread is inside process code now
  std::atomic<bool> hogged{false};           // sysmon saw it stuck on the CPU in one dispatch
  std::atomic<bool> active{false};           // owned by a running worker
  // Thefts from its ring or runnext (counted by the thieves), and spills of its ring to the global
  // queue (by its owner): sysmon's sign that its queue is being served while its thread is stuck.
  std::atomic<std::uint64_t> taken{0};
  std::atomic<std::uint64_t> idle_ns{0};   // time asleep (utilisation = 1 - idle/uptime)
  std::atomic<std::uint64_t> runs{0};
  std::atomic<std::uint64_t> steals{0};
  unsigned id = 0;
  bool relief = false;                        // an extra slot started for hogs
  std::atomic<std::int64_t> started_ns{0};      // steady_clock, when it (last) started
  hog_detector hog;                            // sysmon thread only
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
  std::atomic<std::uint64_t> global_taken{0};  // pops so far (written under global_mu): sysmon's sign it is served

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
  detail::queue_watch global_watch;  // sysmon thread only
  detail::run_ring sysmon_ring;      // sysmon thread only: what it takes from a hogged slot, on its way to the global queue

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
  // After a batch of deferred wake-ups (io_ring::handle_batch): wakes an idle worker if the
  // calling worker's ring holds more than the one process it takes next.
  void wake_if_queued_more_than_one() noexcept;
  void worker_main(unsigned slot, detail::worker* w);
  void sleep_idle(detail::worker& w, detail::scheduler_slot& s);
  bool leave_idle(detail::worker* w) noexcept;
  void sysmon_main();
  void start_relief();
  void share_queue(detail::scheduler_slot& hogged);

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
  // Set while a wake_batch lives on this thread (below).
  bool defer_wakes = false;
  std::uint32_t deferred_wakes = 0;
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

// While one lives on a worker, the processes that I/O readiness makes runnable go to the worker's
// own ring without a wake-up each; when the outermost one ends, one idle worker is woken if the
// ring holds more than the worker takes next. For the batches of readiness a worker collects
// itself (io_ring::handle_batch, netpoll::poll) just before it looks for work: a wake-up per
// event made every distribution round trip a cross-thread hand-off (an eventfd write, the other
// worker's wake-up and a steal or a race: 75 us per round trip with 2 schedulers against 41 us
// with 1), and the other worker seldom found anything the collecting one would not run first.
class wake_batch {
 public:
  wake_batch() noexcept : outer_(!tls().defer_wakes) { tls().defer_wakes = true; }
  ~wake_batch();
  wake_batch(const wake_batch&) = delete;
  wake_batch& operator=(const wake_batch&) = delete;

 private:
  bool outer_;
};
}  // namespace detail
}  // namespace athanor
