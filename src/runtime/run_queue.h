// run_ring: a scheduler's local run queue. Thread-safe in one precise sense: exactly one thread
// (the owning worker) may push or pop; any thread may steal.
//
// A bounded FIFO ring (as Go's per-P runq): the owner appends at `tail`; the owner and thieves
// take from `head` with a compare-and-swap, thieves taking half of what is there in one step.
// FIFO rather than a LIFO deque (Chase-Lev) because fairness matters more here than cache
// warmth: a process that yields goes behind every other runnable one. When the ring is full,
// the owner moves half of it to the global queue (push_or_spill).
#pragma once

#include <atomic>
#include <cstdint>

namespace athanor {
class process;
namespace detail {

class run_ring {
 public:
  static constexpr std::uint32_t kSize = 1024;

  // Owner only. Appends p; returns false if the ring is full.
  bool push(process* p) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - h >= kSize) return false;
    slot(t).store(p, std::memory_order_relaxed);
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // Owner only. Takes the oldest entry, or nullptr if empty.
  process* pop() noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h) return nullptr;
      process* p = slot(h).load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return p;
    }
  }

  // Owner only, ring full: takes the older half into out[] (up to kSize/2); returns how many.
  std::uint32_t take_half(process** out) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      std::uint32_t n = (t - h) / 2;
      if (n == 0) return 0;
      for (std::uint32_t i = 0; i < n; ++i) out[i] = slot(h + i).load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel, std::memory_order_acquire)) return n;
    }
  }

  // Any thread (not the owner of `this`; the caller must own `into`, which must be empty).
  // Moves about half of this ring's entries into `into`; returns one of them to run now
  // (not stored in `into`), or nullptr if there was nothing to steal.
  process* steal_into(run_ring& into) noexcept {
    process* batch[kSize / 2];
    std::uint32_t n;
    std::uint32_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t t = tail_.load(std::memory_order_acquire);
      n = t - h;
      n = n - n / 2;
      if (n == 0) return nullptr;
      if (n > kSize / 2) {  // inconsistent snapshot (head moved); retry with a fresh head
        h = head_.load(std::memory_order_acquire);
        continue;
      }
      for (std::uint32_t i = 0; i < n; ++i) batch[i] = slot(h + i).load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel, std::memory_order_acquire)) break;
    }
    for (std::uint32_t i = 1; i < n; ++i) into.push(batch[i]);
    return batch[0];
  }

  std::uint32_t size() const noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    std::uint32_t t = tail_.load(std::memory_order_acquire);
    return t - h;
  }
  bool empty() const noexcept { return size() == 0; }

 private:
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  // Plain storage reached through atomic_ref: left uninitialised, the pages of a slot that never
  // runs are never touched (a runtime has room for 256 slots; most stay unused).
  std::atomic_ref<process*> slot(std::uint32_t i) noexcept { return std::atomic_ref<process*>(buf_[i % kSize]); }
  process* buf_[kSize];
};

}  // namespace detail
}  // namespace athanor
