// The scheduler: how processes get onto threads.
//
// Design
// ======
// Concepts (after Go's runtime, whose essay at the top of proc.go this follows in spirit):
//   * a *process* is a stackless coroutine plus a control block (process.h). It is either
//     running (on exactly one thread), runnable (in exactly one run queue), or parked (in no
//     queue; the next push to its inbox makes it runnable again).
//   * a *scheduler slot* ("P" in Go) is a local run queue (a 256-entry FIFO ring plus a
//     `runnext` slot) with statistics. There is one per scheduler thread, plus "relief" slots
//     started when a thread is stuck in a CPU hog.
//   * a *worker* ("M") is an OS thread that owns one slot and runs processes from it.
//   * the *global queue* takes work from threads that are not workers (main, timers' sysmon,
//     dirty pools) and overflow from full rings. A worker takes from it before its own ring
//     whenever it holds anything (what is there has waited longer: a full ring spills its older
//     half), and every 61 dispatches before runnext too.
//   * an *I/O ring* (uring.cpp, when the kernel allows io_uring): each base worker owns one, for
//     the reads and writes of attached sockets. Its operations are queued while processes run
//     and go to the kernel in one io_uring_enter every 16 dispatches, when a round queued many,
//     and whenever the worker runs out of work; the same call collects what completed.
//
// Parking without lost wake-ups. The inbox word of a process (an atomic tagged pointer) is
// both its mailbox and its run state: a process parks by compare-and-swapping its empty inbox
// to the PARKED marker; a sender pushes by compare-and-swapping the head, and a sender that
// replaces PARKED has taken the only right to make the process runnable. So the "am I waiting?"
// and "is there anything for me?" questions are answered by one atomic word and a wake-up can
// never be lost or doubled. Timers, I/O readiness and dirty-job completions wake a process the
// same way: they push a wake signal to its inbox.
//
// Where a woken process goes. A process woken by another process goes to the waker's
// `runnext` slot (it runs as soon as the waker suspends, on the same core: ping-pong costs no
// cross-thread hand-off); the previous `runnext`, if any, moves to the ring, and only then is an
// idle worker considered for waking. Waking a sleeping thread costs ~25 us here, so a worker
// never wakes another for work it will reach itself in a moment.
//
// Idle workers spin briefly (looking at the global queue and stealing half of another ring, and
// at the sockets without blocking, as Go's spinning Ms poll the network),
// then sleep. I/O readiness a worker collects itself (that poll, its ring's completions, the
// poller's epoll) makes processes runnable on that worker's own ring with no wake-up each
// (detail::wake_batch): it runs them next, and one idle worker is woken only if more than one
// is waiting. A remote round trip is then two threads' sends and polls, with no hand-off
// between threads: 12,800 round trips/s between two 2-scheduler nodes before, ~40,000 after
// (raw loopback TCP with blocking reads: ~34,000). At most one sleeping worker is the *poller*, waiting for the epoll instance with a
// timeout set by the next timer: the reactor and the scheduler are one mechanism, and an idle
// runtime has no thread waking up for nothing. The others sleep on a private futex word, or,
// when they own an I/O ring, in io_uring_enter on it (its completions must be collected by that
// thread), with an eventfd read always armed there for wake-ups; a poller with a ring waits in
// the ring, which watches the epoll fd. `wake_worker` wakes a sleeper if there is one (futex or
// eventfd, under the idle lock, so that a worker leaving for good can free its ring), else
// interrupts the poller.
//
// Fairness. Every dispatch gets a budget of reductions (runtime_config::reductions_per_slice);
// send, receive and spawn cost one each and `co_await self.consume(n)` costs n. A process that
// exhausts its budget goes to the back of the ring at its next suspension point. A stackless
// coroutine cannot be preempted between suspension points, so a process that never suspends
// keeps its thread, and so does a loop of sends or spawns: they charge reductions, but send()
// and spawn() are plain calls, not suspension points; such a loop must say `co_await
// self.consume(1)` where the BEAM would preempt it by itself. Sysmon (every 2 ms) watches for
// the processes that do not:
//   * a slot is *hogged* when one dispatch has used runtime_config::hog_threshold of its
//     thread's CPU time (hog_detector, internal.h): the slot's dispatch counter has not moved
//     and its thread has been inside process code at every look since;
//   * what sysmon does is for the work stranded behind a hog, not for the hog. Work is
//     stranded when it has waited a threshold in a hogged slot's ring or runnext, or in the
//     global queue while a slot is hogged, with no thread taking any of it (thefts and spills to
//     the global queue bump the slot's `taken` counter, global pops `global_taken`). If every
//     worker is hogged, a relief worker with a fresh slot starts; it steals the hogged slots'
//     queues (rings are stealable by anyone) and retires when it finds nothing to do and no slot
//     is hogged. If some worker is not hogged, no thread is needed: sysmon moves the hogged
//     slot's queue to the global queue (share_queue), which that worker serves every other
//     dispatch even when its own ring never empties, and wakes it if it sleeps
//     (decide_relief, internal.h).
// Sysmon also fires due timers and polls I/O when no worker has for a while.
//
// Why hog detection is shaped so (issue 12, item 8). ring, fan_out and spawn_idle used to start
// relief threads with no CPU hog in them; on 2 cores a needless relief thread is a third
// runnable thread. What sysmon caught, each time, was pid 1, the benchmark's driver, deep in one
// dispatch: 11,000 to 76,000 reductions charged against a 4,000 budget, in loops of spawns and sends
// without a checkpoint (ring's setup and stop loops, spawn_idle's million stops), or zeroing an
// 8 MB vector (fan_out: 10 ms of page faults at the top of the driver). Those are hogs by any
// definition, and the benchmarks now checkpoint their loops (and fan_out allocates its vector
// outside the driver). The relief was the needless part: it was decided once, at the look that
// found the hog, from "anything queued anywhere, or no idle worker", so the hog's own freshly
// spawned children, which the other worker was busy taking, earned a thread, while a hog that
// queued work only after that look (fan_out's million spawns) got none. Hence the decision is
// taken again at every look, from whether work is stranded, and a thread is started only when
// no existing one can take it. Causes ruled out: VM steal time (this kernel reports none; a
// spinning thread saw 0 or 1 gaps over 1 ms per 8 s in which its CPU clock kept running,
// against about 1,000 in which it was preempted, which the CPU-time test already discounts), and
// the CPU clock's granularity (the kernel adds the running slice when another thread reads it).
// Rejected:
//   * A longer threshold: the hogs were real; a higher number only moves the line.
//   * Wall time alone: a worker the OS preempts on a loaded machine (routine on 2 cores with
//     anything else running) would look stuck; its thread's CPU time tells them apart.
//   * CPU time over 3/4 of the threshold (what this was): a rule of thumb. A dispatch that has
//     used the threshold of CPU is the definition, and since the window starts at sysmon's
//     first look at the dispatch it never counts more than the dispatch used.
//   * Counting reductions to spot loops of sends: the budget does show them (far below zero),
//     but what matters to the other processes is whether their work is stuck, which the
//     queues show directly.
//   * A relief thread whenever a hogged slot's queue is non-empty: a queue that is stolen from
//     in halves, or spills to the global queue, is being served however long it stays non-empty.
//   * A relief thread whenever work is stranded: with the old benchmark loops that still started
//     1 to 4 per spawn_idle run, because the other worker, which serves the global queue every
//     other dispatch, was itself preempted by the OS for 10 ms and more; a thread more would
//     not have run either. A worker that is not hogged is the one to serve stranded work.
//   * Reading the clocks inside the detector: it is a pure function of what sysmon reads (the
//     times are passed in), so its unit tests (hog_detection_test.cpp) replay any sequence of
//     looks exactly, with no sleeping and no timing assertions.
//
// Approaches rejected:
//   * One lock-protected queue for all workers: a contended lock per message.
//   * A Chase-Lev LIFO deque per worker: better cache warmth, but a yielding process would run
//     again before the others, which breaks fairness; the FIFO ring keeps Erlang's round robin.
//   * Waking an idle worker for every runnable process: ~25 us of futex round trip per message.
//   * Signals handled by the sender (taking locks in the receiver): signals must be ordered with
//     messages (Erlang's guarantee), so they travel in the same inbox and the receiver acts on
//     them in its own context.
//   * Preempting hogs with OS signals: a stackless coroutine has no stack to switch away from.
//
// Invariants every change must keep:
//   1. A process is in at most one queue, and only the thread that took it from a queue (or that
//      replaced PARKED in its inbox) may run it or queue it.
//   2. Only the owner of a ring pushes to it; anyone may steal from it.
//   3. A process's frame is destroyed only by the thread running it, after its inbox is CLOSED,
//      and never while a dirty job may write into it (kDirtyPending).
//   4. A slot of the process table is reused only after its process has ended; the generation
//      tag in the inbox word makes every stale push fail.
//   5. No blocking system call on a worker except the poller's epoll_wait, the idle futex, and an
//      idle worker's io_uring_enter on its own ring.
//   6. Only a ring's worker submits to it or reaps it; a thread without a ring hands socket
//      operations to the next ring that polls (ring_orphan).

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <fstream>
#include <random>

#include "athanor/term/memory.h"
#include "runtime/internal.h"
#include "runtime/services.h"
#include "runtime/uring.h"

namespace athanor {

runtime::impl* g_rt = nullptr;

namespace detail {
struct worker {
  std::atomic<std::uint32_t> wake_word{0};
  unsigned slot = 0;
  std::uint64_t last_poll_ms = 0;
  io_ring* ring = nullptr;  // attached sockets' I/O (uring.cpp); a worker with one sleeps in it
};

// Ends a worker's sleep: its futex word, or the eventfd its ring waits on.
static void wake_sleeper(worker* w) noexcept {
  w->wake_word.store(1, std::memory_order_release);
  if (w->ring) w->ring->wake();
  else w->wake_word.notify_one();
}
#ifdef ATHANOR_SANITIZED
static thread_local thread_context t_context;
__attribute__((noinline)) thread_context& tls() noexcept { return t_context; }
#else
thread_local thread_context t_context;
#endif

std::uint64_t now_ms() noexcept {
  using namespace std::chrono;
  return std::uint64_t(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}
}  // namespace detail

using detail::scheduler_slot;
using detail::worker;

// ---- global queue ---------------------------------------------------------------

void runtime::impl::global_push(process* p) noexcept {
  global_push_batch(p, p, 1);
}

void runtime::impl::global_push_batch(process* head, process* tail, std::size_t n) noexcept {
  {
    std::lock_guard lock(global_mu);
    process_access::st(tail).run_link = nullptr;
    if (global_tail) process_access::st(global_tail).run_link = head;
    else global_head = head;
    global_tail = tail;
    global_len.fetch_add(n, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  wake_worker();
}

process* runtime::impl::global_pop_batch(detail::run_ring& into, std::uint32_t max) noexcept {
  if (global_len.load(std::memory_order_relaxed) == 0) return nullptr;
  std::lock_guard lock(global_mu);
  process* first = global_head;
  if (!first) return nullptr;
  process* p = process_access::st(first).run_link;
  std::size_t taken = 1;
  // One lock for a batch: the rest goes to our ring (which the caller owns and found empty).
  while (p && taken < max && into.push(p)) {
    p = process_access::st(p).run_link;
    ++taken;
  }
  global_head = p;
  if (!p) global_tail = nullptr;
  global_len.fetch_sub(taken, std::memory_order_relaxed);
  global_taken.store(global_taken.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // under the lock
  return first;
}

process* runtime::impl::global_pop() noexcept {
  if (global_len.load(std::memory_order_relaxed) == 0) return nullptr;
  std::lock_guard lock(global_mu);
  process* p = global_head;
  if (!p) return nullptr;
  global_head = process_access::st(p).run_link;
  if (!global_head) global_tail = nullptr;
  global_len.fetch_sub(1, std::memory_order_relaxed);
  global_taken.store(global_taken.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // under the lock
  return p;
}

// ---- making processes runnable --------------------------------------------------

void runtime::impl::make_runnable(process* p, bool next) noexcept {
  worker* w = detail::tls().w;
  if (!w) {
    global_push(p);
    return;
  }
  scheduler_slot& s = slots[w->slot];
  if (next) {
    p = s.runnext.exchange(p, std::memory_order_acq_rel);
    if (!p) return;  // the waker's thread runs it next: no other worker is needed
  }
  if (!s.ring.push(p)) {
    // Ring full: move half of it, plus p, to the global queue in one batch.
    process* batch[detail::run_ring::kSize / 2 + 1];
    std::uint32_t n = s.ring.take_half(batch);
    batch[n++] = p;
    // Its older half is served from the global queue now: for sysmon, the ring is not stranded.
    s.taken.fetch_add(1, std::memory_order_relaxed);  // one per 512 pushes at most
    for (std::uint32_t i = 0; i + 1 < n; ++i) process_access::st(batch[i]).run_link = batch[i + 1];
    global_push_batch(batch[0], batch[n - 1], n);
    return;
  }
  if (detail::tls().defer_wakes) {
    ++detail::tls().deferred_wakes;  // io_ring::handle_batch decides once, after the batch
    return;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  wake_worker();
}

detail::wake_batch::~wake_batch() {
  if (!outer_) return;
  thread_context& t = tls();
  t.defer_wakes = false;
  if (std::exchange(t.deferred_wakes, 0) != 0 && g_rt) g_rt->wake_if_queued_more_than_one();
}

void runtime::impl::wake_if_queued_more_than_one() noexcept {
  worker* w = detail::tls().w;
  if (!w) return;
  if (slots[w->slot].ring.size() > 1) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    wake_worker();
  }
}

void runtime::impl::wake_worker() noexcept {
  if (idle_count.load(std::memory_order_seq_cst) == 0) return;
  if (spinning.load(std::memory_order_seq_cst) > 0) return;  // a spinning worker will find the work
  bool woke = false;
  {
    // The wake-up happens under the lock: a worker leaving for good takes the lock before it
    // frees its ring, so no waker is still writing to it.
    std::lock_guard lock(idle_mu);
    if (!idle.empty()) {
      worker* w = idle.back();
      idle.pop_back();
      idle_count.fetch_sub(1, std::memory_order_seq_cst);
      detail::wake_sleeper(w);
      woke = true;
    }
  }
  if (!woke && poller_active.load(std::memory_order_acquire) && !poll_interrupted.exchange(true, std::memory_order_acq_rel)) {
    poll->interrupt();  // once per poller sleep: a write(2) per message would cost more than the wake
  }
}

// ---- the worker loop --------------------------------------------------------------

namespace {

// ~15-20 us of looking before sleeping (a futex round trip costs ~25): longer spins showed up as
// 3-4% of a busy WebSocket server's CPU, taken from whatever shares the cores with it.
constexpr int kSpinRounds = 16;

// `with_ring`: the asking worker has an I/O ring, so socket operations handed over by threads
// without one (ring_orphan) are work for it too.
bool has_stealable_work(runtime::impl& rt, bool with_ring) noexcept {
  if (rt.global_len.load(std::memory_order_seq_cst) > 0) return true;
  if (with_ring && detail::orphans_waiting()) return true;
  unsigned n = rt.slot_count.load(std::memory_order_acquire);
  for (unsigned i = 0; i < n; ++i) {
    scheduler_slot& s = rt.slots[i];
    if (!s.ring.empty()) return true;
    if (s.hogged.load(std::memory_order_relaxed) && s.runnext.load(std::memory_order_relaxed)) return true;
  }
  return false;
}

}  // namespace

// Looks for work: runnext, own ring, global queue, timers and I/O, other rings.
// `chain_budget` is what is left of the current time slice; a process taken from runnext
// inherits it (as in Go), so two processes waking each other cannot keep the ring waiting: once
// the slice is used up, runnext goes to the back of the ring and the ring's head runs.
static process* find_work(runtime::impl& rt, scheduler_slot& s, worker& w, std::uint64_t tick, std::int32_t chain_budget,
                          bool& from_runnext) {
  from_runnext = false;
  if (tick % 61 == 0) {
    if (process* p = rt.global_pop()) return p;
  }
  if (tick % 16 == 0) {
    std::uint64_t now = detail::now_ms();
    rt.timers->fire_due(now);
    if (now - w.last_poll_ms >= 2) {
      w.last_poll_ms = now;
      rt.poll->poll(0);
    }
    if (w.ring && w.ring->busy()) w.ring->poll();  // sends queued by the last 16 dispatches, and completions
  }
  if (process* p = s.runnext.exchange(nullptr, std::memory_order_acq_rel)) {
    if (chain_budget > 0) {
      from_runnext = true;
      return p;
    }
    if (!s.ring.push(p)) return p;  // ring full: run it anyway
  }
  // The global queue before the ring on every other dispatch while it holds anything: what a
  // full ring spilled there is its older half, and most of the rest comes from timers; both have
  // waited longer than what is in the ring (taking it only every 61 dispatches let a spilled
  // process wait for thousands), and every other pick stays local so that a queue fed without
  // pause cannot starve the ring.
  if ((tick & 1) && rt.global_len.load(std::memory_order_relaxed) > 0) {
    if (process* p = rt.global_pop()) return p;
  }
  if (process* p = s.ring.pop()) return p;
  if (process* p = rt.global_pop_batch(s.ring, detail::run_ring::kSize / 2)) return p;
  return nullptr;
}

static process* steal_work(runtime::impl& rt, scheduler_slot& s) {
  unsigned n = rt.slot_count.load(std::memory_order_acquire);
  if (n <= 1) return nullptr;
  thread_local std::minstd_rand rng(std::random_device{}());
  unsigned start = rng() % n;
  for (unsigned k = 0; k < n; ++k) {
    scheduler_slot& v = rt.slots[(start + k) % n];
    if (&v == &s || !v.active.load(std::memory_order_acquire)) continue;
    if (process* p = v.ring.steal_into(s.ring)) {
      s.steals.fetch_add(1, std::memory_order_relaxed);
      v.taken.fetch_add(1, std::memory_order_relaxed);  // tells sysmon v's queue is being served
      return p;
    }
    // A hogged slot's runnext will not run until its hog suspends: take it.
    if (v.hogged.load(std::memory_order_acquire)) {
      if (process* p = v.runnext.exchange(nullptr, std::memory_order_acq_rel)) {
        v.taken.fetch_add(1, std::memory_order_relaxed);
        return p;
      }
    }
  }
  return nullptr;
}

// Takes w off the idle list. Returns false if it was not on it: a waker took it and is waking it.
bool runtime::impl::leave_idle(detail::worker* w) noexcept {
  std::lock_guard lock(idle_mu);
  auto it = std::find(idle.begin(), idle.end(), w);
  if (it == idle.end()) return false;
  idle.erase(it);
  idle_count.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

// Sleeps until a waker sets w.wake_word. A worker with a ring sleeps in it, handling its
// completions as they come; those that make processes runnable here end the sleep early (taking
// the worker off the idle list; if a waker got there first, its wake-up is on the way).
void runtime::impl::sleep_idle(detail::worker& w, scheduler_slot& s) {
  if (!w.ring) {
    w.wake_word.wait(0, std::memory_order_acquire);
    return;
  }
  bool off_list = false;
  while (w.wake_word.load(std::memory_order_acquire) == 0 && !stopping.load(std::memory_order_acquire)) {
    w.ring->wait(-1);
    if (!off_list && (!s.ring.empty() || s.runnext.load(std::memory_order_relaxed))) {
      if (leave_idle(&w)) return;
      off_list = true;
    }
  }
}

// Runs p for at most `budget` reductions; returns what is left of the budget (process.cpp).
std::int32_t run_process(runtime::impl& rt, scheduler_slot& s, process* p, std::int32_t budget);

void runtime::impl::worker_main(unsigned slot_id, worker* w) {
  detail::tls().w = w;
  w->slot = slot_id;
  scheduler_slot& s = slots[slot_id];
  clockid_t cid;
  if (::pthread_getcpuclockid(::pthread_self(), &cid) == 0) {
    s.cpu_clock.store(cid, std::memory_order_relaxed);
    s.has_cpu_clock.store(true, std::memory_order_release);
  }
  if (cfg.io_uring && !s.relief) w->ring = detail::io_ring::create();
  detail::tls().ring = w->ring;
  std::uint64_t tick = 0;
  std::int32_t chain_budget = 0;
  while (!stopping.load(std::memory_order_acquire)) {
    bool from_runnext = false;
    process* p = find_work(*this, s, *w, ++tick, chain_budget, from_runnext);
    if (!p) p = steal_work(*this, s);
    if (p) {
      // Single-writer counters: plain load + store, no locked instruction on the hot path.
      s.dispatches.store(s.dispatches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      s.in_process.store(true, std::memory_order_relaxed);
      chain_budget = run_process(*this, s, p, from_runnext ? chain_budget : cfg.reductions_per_slice);
      s.in_process.store(false, std::memory_order_relaxed);
      if (s.hogged.load(std::memory_order_relaxed)) s.hogged.store(false, std::memory_order_relaxed);
      s.runs.store(s.runs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      if (w->ring && w->ring->queued() >= 32) w->ring->poll();
      continue;
    }
    // Out of local work: hand the kernel what this round queued and take what it finished.
    if (w->ring && w->ring->busy()) {
      w->ring->poll();
      if (!s.ring.empty() || s.runnext.load(std::memory_order_relaxed)) continue;
    }

    // Nothing to do. Relief workers retire when no slot is hogged any more.
    if (s.relief) {
      bool any_hogged = false;
      unsigned n = slot_count.load(std::memory_order_acquire);
      for (unsigned i = 0; i < n; ++i) any_hogged |= slots[i].hogged.load(std::memory_order_relaxed);
      if (!any_hogged) break;
    }

    // Spin a little: new work often arrives within microseconds. Every round looks at the
    // sockets too (without blocking, as Go's spinning Ms poll the network): a reply to what a
    // process just sent is the work most likely to come next, and finding it here instead of
    // after a sleep and a wake-up more than halves a distribution round trip (the wake-up was
    // most of it). A poll costs about as long as the pauses it replaced, so the spin still lasts
    // ~15-20 us. Polling every other round instead: 7% fewer round trips. Every 4th round
    // yields the core (sched_yield): on a machine with more runnable threads than cores, a
    // spinner that keeps its core keeps off it the very thread it waits for (the peer node's,
    // or its own node's other worker), and with a CPU hog beside two nodes round trips fell to
    // 12,000/s (p50 80 us) against Erlang's 20,000; yielding there: 20,600/s. Yielding every
    // round cost a quarter of the round trips on an idle machine; every 4th, ~5%.
    // Only a process made runnable by our own poll counts as ours (found_own): other work
    // found while spinning is someone's to share (see below).
    spinning.fetch_add(1, std::memory_order_seq_cst);
    bool found = false;
    bool found_own = false;  // what our own sockets made runnable (wake_batch): ours to run
    for (int i = 0; i < kSpinRounds && !found; ++i) {
      poll->poll(0);
      if (w->ring && w->ring->busy()) w->ring->poll();
      found_own = !s.ring.empty() || s.runnext.load(std::memory_order_relaxed);
      if (found_own) {
        found = true;
        break;
      }
      found = has_stealable_work(*this, w->ring != nullptr);
      if (!found) {
        for (int j = 0; j < 25; ++j) __builtin_ia32_pause();
        if ((i & 3) == 3) sched_yield();
      }
    }
    spinning.fetch_sub(1, std::memory_order_seq_cst);
    if (found) {
      // We may take one piece of work; make sure someone looks at the rest. Not for the one
      // process our own poll made runnable: this worker runs it now.
      if (!found_own || s.ring.size() > 1 || global_len.load(std::memory_order_relaxed) > 0) wake_worker();
      continue;
    }
    if (timers->due(detail::now_ms())) continue;

    // Sleep: as the poller (epoll_wait until the next timer), or on our futex word.
    auto idle_start = std::chrono::steady_clock::now();
    if (!poller_active.exchange(true, std::memory_order_acq_rel)) {
      idle_count.fetch_add(1, std::memory_order_seq_cst);
      if (!has_stealable_work(*this, w->ring != nullptr) && !stopping.load(std::memory_order_acquire)) {
        std::int64_t timeout = timers->ms_until_next(detail::now_ms());
        if (timeout < 0 || timeout > 1000) timeout = 1000;
        if (w->ring) {
          // The ring watches the epoll fd, so one sleep covers both kinds of socket.
          w->ring->watch_epoll(poll->fd());
          w->ring->wait(int(timeout));
          if (w->ring->take_epoll_ready()) poll->poll(0);
        } else {
          poll->poll(int(timeout));
        }
        poll_interrupted.store(false, std::memory_order_release);
        w->last_poll_ms = detail::now_ms();
      }
      idle_count.fetch_sub(1, std::memory_order_seq_cst);
      poller_active.store(false, std::memory_order_release);
      timers->fire_due(detail::now_ms());
    } else {
      w->wake_word.store(0, std::memory_order_relaxed);
      {
        std::lock_guard lock(idle_mu);
        idle.push_back(w);
        idle_count.fetch_add(1, std::memory_order_seq_cst);
      }
      if (has_stealable_work(*this, w->ring != nullptr) || stopping.load(std::memory_order_acquire) ||
          !poller_active.load(std::memory_order_acquire)) {
        if (!leave_idle(w)) sleep_idle(*w, s);  // a waker is about to notify us
      } else {
        sleep_idle(*w, s);
      }
    }
    s.idle_ns.fetch_add(std::uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - idle_start).count()), std::memory_order_relaxed);
  }
  leave_idle(w);  // under the idle lock (see wake_worker): no waker holds w after this
  delete w->ring;  // waits for what is in flight on it
  w->ring = nullptr;
  detail::tls().ring = nullptr;
  s.active.store(false, std::memory_order_release);
  detail::tls().w = nullptr;
}

// ---- relief for CPU hogs ------------------------------------------------------------

void runtime::impl::start_relief() {
  std::lock_guard lock(threads_mu);
  if (stopping.load()) return;
  unsigned n = slot_count.load(std::memory_order_acquire);
  unsigned active_relief = 0;
  for (unsigned i = 0; i < n; ++i) active_relief += slots[i].relief && slots[i].active.load();
  if (active_relief >= cfg.max_relief_threads) return;
  unsigned id = n;
  for (unsigned i = base_schedulers; i < n; ++i) {
    if (!slots[i].active.load(std::memory_order_acquire) && slots[i].ring.empty()) { id = i; break; }
  }
  if (id == kMaxSlots) return;
  scheduler_slot& s = slots[id];
  s.id = id;
  s.relief = true;
  s.started_ns.store(std::chrono::steady_clock::now().time_since_epoch().count());
  s.idle_ns.store(0);
  s.hogged.store(false);
  s.active.store(true, std::memory_order_release);
  if (id == n) slot_count.store(n + 1, std::memory_order_release);
  relief_started.fetch_add(1, std::memory_order_relaxed);
  auto* w = new worker;
  threads.emplace_back([this, id, w] {
    worker_main(id, w);
    delete w;
  });
}

// Moves what waits in a hogged slot's ring and runnext to the global queue, where the workers that
// are not hogged take it every other dispatch even when their own rings are never empty (they
// steal only when they are). Sysmon may: anyone may steal from a ring, and a hogged slot's
// runnext is anyone's (steal_work); it owns sysmon_ring, the steals' destination.
void runtime::impl::share_queue(scheduler_slot& v) {
  process* head = nullptr;
  process* tail = nullptr;
  std::size_t count = 0;
  auto add = [&](process* p) {
    process_access::st(p).run_link = nullptr;
    if (tail) process_access::st(tail).run_link = p;
    else head = p;
    tail = p;
    ++count;
  };
  if (process* p = v.runnext.exchange(nullptr, std::memory_order_acq_rel)) add(p);
  // Halves at a time, a ring's worth at most: the hog may be filling it as fast.
  while (count < detail::run_ring::kSize) {
    process* p = v.ring.steal_into(sysmon_ring);
    if (!p) break;
    add(p);
    while (process* q = sysmon_ring.pop()) add(q);
  }
  if (!head) return;
  v.taken.fetch_add(1, std::memory_order_relaxed);
  global_push_batch(head, tail, count);  // wakes an idle worker if there is one
}

// CPU time consumed so far by the worker thread of slot s, or -1 if unknown.
static std::int64_t thread_cpu_ns(scheduler_slot& s) {
  if (!s.has_cpu_clock.load(std::memory_order_acquire)) return -1;
  timespec ts{};
  if (::clock_gettime(s.cpu_clock.load(std::memory_order_relaxed), &ts) != 0) return -1;
  return std::int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void runtime::impl::sysmon_main() {
  using namespace std::chrono;
  const std::int64_t threshold_ns = nanoseconds(cfg.hog_threshold).count();
  std::uint64_t last_poll = detail::now_ms();
  std::uint64_t last_trim = last_poll;
  std::unique_lock lock(sysmon_mu);
  while (!stopping.load(std::memory_order_acquire)) {
    sysmon_cv.wait_for(lock, 2ms);
    if (stopping.load(std::memory_order_acquire)) break;
    // Large blocks of decoded terms unused for 2 s go back to the system (athanor/term/memory.h):
    // otherwise an idle node would keep its last large messages' memory.
    if (const std::uint64_t ms = detail::now_ms(); ms - last_trim >= 1000) {
      last_trim = ms;
      release_term_memory(2s);
    }
    const std::int64_t now = steady_clock::now().time_since_epoch().count();
    unsigned n = slot_count.load(std::memory_order_acquire);
    // Hog detection (internal.h): a slot is hogged when one dispatch has used hog_threshold of
    // its thread's CPU time. What is done is for the work stranded behind hogs, not for the hogs.
    unsigned hogged = 0, unhogged = 0;
    for (unsigned i = 0; i < n; ++i) {
      scheduler_slot& s = slots[i];
      if (!s.active.load(std::memory_order_acquire)) continue;
      detail::slot_sample sample;
      sample.wall_ns = now;
      sample.dispatches = s.dispatches.load(std::memory_order_relaxed);
      sample.in_process = s.in_process.load(std::memory_order_relaxed);
      sample.cpu_ns = sample.in_process ? thread_cpu_ns(s) : -1;
      sample.queued = !s.ring.empty() || s.runnext.load(std::memory_order_relaxed);
      sample.taken = s.taken.load(std::memory_order_relaxed);
      if (s.hog.observe(sample, threshold_ns)) {
        ++hogged;
        if (!s.hogged.load(std::memory_order_relaxed)) s.hogged.store(true, std::memory_order_release);
      } else {
        ++unhogged;
        // Its worker clears the flag when the dispatch ends; this catches a flag set just after.
        if (s.hogged.load(std::memory_order_relaxed)) s.hogged.store(false, std::memory_order_relaxed);
      }
    }
    global_watch.observe(now, global_len.load(std::memory_order_relaxed) > 0, global_taken.load(std::memory_order_relaxed));
    if (hogged > 0) {
      const int idle_workers = idle_count.load();
      bool relief = false, wake = false;
      for (unsigned i = 0; i < n; ++i) {
        scheduler_slot& s = slots[i];
        if (!s.active.load(std::memory_order_acquire) || !s.hog.hogged()) continue;
        switch (detail::decide_relief(s.hog.stranded_ns(now), threshold_ns, true, unhogged, idle_workers)) {
          case detail::relief_action::share_queue:
            share_queue(s);
            s.hog.restart_stranded(now);
            break;
          case detail::relief_action::start_relief: relief = true; break;
          case detail::relief_action::wake_worker: wake = true; break;
          case detail::relief_action::none: break;
        }
      }
      switch (detail::decide_relief(global_watch.stranded_ns(now), threshold_ns, false, unhogged, idle_workers)) {
        case detail::relief_action::start_relief: relief = true; break;
        case detail::relief_action::wake_worker: wake = true; break;
        default: break;
      }
      if (relief) {
        start_relief();
        // The new thread needs a moment to take the work: another threshold of stranding before
        // the next one.
        for (unsigned i = 0; i < n; ++i) slots[i].hog.restart_stranded(now);
        global_watch.restart(now);
      } else if (wake) {
        wake_worker();
      }
    }
    // Timers and I/O when every worker is busy (or stuck).
    std::uint64_t ms = detail::now_ms();
    if (timers->due(ms + 0) && timers->overdue(ms, 3)) timers->fire_due(ms);
    if (ms - last_poll >= 10 && !poller_active.load(std::memory_order_acquire)) {
      poll->poll(0);
      last_poll = ms;
    }
  }
}

// ---- runtime object -------------------------------------------------------------------

static std::mutex g_rt_mu;

runtime::runtime(runtime_config config) {
  std::lock_guard lock(g_rt_mu);
  if (g_rt) throw std::logic_error("athanor::runtime: a runtime already exists");
  auto* rt = new impl;
  rt->cfg = config;
  if (const char* v = std::getenv("ATHANOR_IO_URING"); v && std::string_view(v) == "0") rt->cfg.io_uring = false;
  if (rt->cfg.schedulers == 0) rt->cfg.schedulers = std::max(1u, std::thread::hardware_concurrency());
  rt->cfg.schedulers = std::min(rt->cfg.schedulers, impl::kMaxSlots / 2);
  if (rt->cfg.max_processes > (std::size_t(1) << pid::kIndexBits) - 1)
    rt->cfg.max_processes = (std::size_t(1) << pid::kIndexBits) - 1;
  if (rt->cfg.reductions_per_slice <= 0) rt->cfg.reductions_per_slice = 4000;
  if (rt->cfg.mapped_allocation_bytes > 0) {
    // A fixed threshold also turns off glibc's moving one (mallopt(3), M_MMAP_THRESHOLD).
    ::mallopt(M_MMAP_THRESHOLD, int(std::min<std::size_t>(rt->cfg.mapped_allocation_bytes, 32u << 20)));
  }
  rt->table = static_cast<process*>(detail::reserve_address_space((rt->cfg.max_processes + 1) * sizeof(process)));
  rt->timers = new detail::timer_service();
  rt->poll = new detail::netpoll();
  rt->dirty = new detail::dirty_pools(rt->cfg.dirty_cpu_threads ? rt->cfg.dirty_cpu_threads
                                                                 : std::max(1u, std::thread::hardware_concurrency()),
                                      rt->cfg.dirty_io_threads);
  rt->base_schedulers = rt->cfg.schedulers;
  for (unsigned i = 0; i < rt->cfg.schedulers; ++i) {
    rt->slots[i].id = i;
    rt->slots[i].started_ns.store(rt->started.time_since_epoch().count());
    rt->slots[i].active.store(true);
  }
  rt->slot_count.store(rt->cfg.schedulers);
  g_rt = rt;
  impl_ = rt;
  for (unsigned i = 0; i < rt->cfg.schedulers; ++i) {
    auto* w = new worker;
    rt->threads.emplace_back([rt, i, w] {
      rt->worker_main(i, w);
      delete w;
    });
  }
  rt->sysmon = std::thread([rt] { rt->sysmon_main(); });
}

runtime::~runtime() {
  impl* rt = impl_;
  // Kill what is left, as the BEAM does at halt; wait for the exits to be processed.
  for (int round = 0; round < 3 && rt->live.load() > 0; ++round) {
    std::uint32_t n = rt->constructed.load(std::memory_order_acquire);
    for (std::uint32_t i = 1; i < n; ++i) {
      process* p = rt->table + i;
      std::uintptr_t w = process_access::st(p).inbox.load(std::memory_order_acquire);
      if (detail::inbox_ptr(w) == detail::kInboxClosed) continue;
      std::uint32_t gen = process_access::st(p).generation.load(std::memory_order_acquire);
      exit(pid(0, i, gen), atoms::kill);
    }
    wait_for(std::chrono::milliseconds(2000));
  }
  rt->stopping.store(true, std::memory_order_release);
  {
    std::lock_guard lock(rt->sysmon_mu);
    rt->sysmon_cv.notify_all();
  }
  rt->sysmon.join();
  for (;;) {
    {
      std::lock_guard lock(rt->idle_mu);
      for (auto* w : rt->idle) detail::wake_sleeper(w);
      rt->idle.clear();
      rt->idle_count.store(0);
    }
    rt->poll->interrupt();
    std::vector<std::thread> ts;
    {
      std::lock_guard lock(rt->threads_mu);
      ts.swap(rt->threads);
    }
    if (ts.empty()) break;
    for (auto& t : ts) t.join();
  }
  delete rt->dirty;
  {
    std::lock_guard lock(g_rt_mu);
    g_rt = nullptr;
  }
  delete rt->timers;
  delete rt->poll;
  detail::release_address_space(rt->table, (rt->cfg.max_processes + 1) * sizeof(process));
  delete rt;
}

void runtime::wait() {
  std::unique_lock lock(impl_->wait_mu);
  impl_->wait_cv.wait(lock, [&] { return impl_->live.load() == 0; });
}

bool runtime::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(impl_->wait_mu);
  return impl_->wait_cv.wait_for(lock, timeout, [&] { return impl_->live.load() == 0; });
}

const runtime_config& runtime::config() const { return impl_->cfg; }

void runtime::impl::process_ended() noexcept {
  if (live.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    std::lock_guard lock(wait_mu);
    wait_cv.notify_all();
  }
}

// ---- system info ---------------------------------------------------------------------

std::size_t process_count() noexcept { return g_rt ? std::size_t(g_rt->live.load()) : 0; }

static std::int64_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return std::int64_t(resident) * ::sysconf(_SC_PAGESIZE);
}

system_info_t system_info() {
  system_info_t info;
  runtime::impl* rt = g_rt;
  if (!rt) return info;
  info.process_count = std::size_t(rt->live.load());
  info.process_limit = rt->cfg.max_processes;
  info.schedulers = rt->base_schedulers;
  info.relief_threads = rt->relief_started.load();
  auto now = std::chrono::steady_clock::now();
  unsigned n = rt->slot_count.load();
  for (unsigned i = 0; i < n; ++i) {
    // Relief slots are listed while they run.
    if (i >= rt->base_schedulers && !rt->slots[i].active.load()) continue;
    auto up = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  now - std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(rt->slots[i].started_ns.load())))
                  .count();
    scheduler_info si;
    si.utilization = up > 0 ? std::clamp(1.0 - double(rt->slots[i].idle_ns.load()) / double(up), 0.0, 1.0) : 0;
    si.processes_run = rt->slots[i].runs.load();
    si.run_queue = rt->slots[i].ring.size() + (rt->slots[i].runnext.load() != nullptr);
    info.run_queue += si.run_queue;
    si.steals = rt->slots[i].steals.load();
    info.scheduler.push_back(si);
  }
  info.memory_total_bytes = rss_bytes();
  info.memory_processes_bytes = detail::pool_bytes_in_use() + std::int64_t(info.process_count * sizeof(process));
  info.pending_timers = rt->timers->pending();
  info.run_queue += rt->global_len.load();
  return info;
}

}  // namespace athanor
