#include <algorithm>

#include "athanor/runtime/timer.h"
#include "runtime/internal.h"
#include "runtime/services.h"

namespace athanor {
namespace detail {

timer_service::timer_service() : wheel_(now_ms()) {}

timer_service::~timer_service() {
  std::lock_guard lock(mu_);
  for (std::uint32_t i = 0; i < used_; ++i) {
    entry& e = at(i);
    if (wheel_.pending(&e) && e.payload) destroy_envelope(e.payload);
  }
  for (entry* c : chunks_) delete[] c;
}

std::uint64_t timer_service::start(std::int64_t ms, pid target, envelope* payload) {
  std::uint64_t now = now_ms();
  std::lock_guard lock(mu_);
  std::uint32_t index;
  if (free_head_) {
    index = free_head_ - 1;
    free_head_ = at(index).next_free;
  } else {
    if (used_ % kChunk == 0 && used_ / kChunk == chunks_.size()) chunks_.push_back(new entry[kChunk]);
    index = used_++;
  }
  entry& e = at(index);
  e.index = index;
  e.target = target;
  e.payload = payload;
  ++e.seq;
  if (e.seq == 0) ++e.seq;
  // The wheel's clock only moves in fire_due(); deadlines are absolute. The clock counts whole
  // milliseconds, so "now" may be up to 1 ms in the past: one more tick makes a timer fire no
  // earlier than `ms` after this call, as Erlang promises for `after` and timers.
  std::uint64_t deadline = std::max(now, wheel_.now()) + std::uint64_t(std::max<std::int64_t>(ms, 0)) + 1;
  if (ms <= 0) deadline = wheel_.now();
  wheel_.insert(&e, deadline);
  pending_.fetch_add(1, std::memory_order_relaxed);
  auto nd = wheel_.next_deadline();
  next_due_.store(nd ? *nd : UINT64_MAX, std::memory_order_release);
  return (std::uint64_t(index) << 32) | e.seq;
}

bool timer_service::cancel(std::uint64_t handle) noexcept {
  std::uint32_t index = std::uint32_t(handle >> 32), seq = std::uint32_t(handle);
  envelope* payload = nullptr;
  {
    std::lock_guard lock(mu_);
    if (index >= used_) return false;
    entry& e = at(index);
    if (e.seq != seq || !wheel_.cancel(&e)) return false;
    payload = e.payload;
    e.payload = nullptr;
    e.next_free = free_head_;
    free_head_ = index + 1;
    pending_.fetch_sub(1, std::memory_order_relaxed);
    auto nd = wheel_.next_deadline();
    next_due_.store(nd ? *nd : UINT64_MAX, std::memory_order_release);
  }
  if (payload) destroy_envelope(payload);
  return true;
}

std::int64_t timer_service::remaining(std::uint64_t handle) noexcept {
  std::uint32_t index = std::uint32_t(handle >> 32), seq = std::uint32_t(handle);
  std::lock_guard lock(mu_);
  if (index >= used_) return -1;
  entry& e = at(index);
  if (e.seq != seq || !wheel_.pending(&e)) return -1;
  std::uint64_t now = now_ms();
  // Less the extra tick start() adds, so that a fresh timer of N ms reads N.
  return e.deadline_ms > now + 1 ? std::int64_t(e.deadline_ms - now - 1) : 0;
}

void timer_service::fire_due(std::uint64_t now) {
  if (!due(now)) return;
  std::vector<std::pair<pid, envelope*>> out;
  std::unique_lock lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // someone else is firing them
  wheel_.advance(now, [&](timer_node* n) {
    entry* e = static_cast<entry*>(n);
    out.emplace_back(e->target, e->payload);
    e->payload = nullptr;
    e->next_free = free_head_;
    free_head_ = e->index + 1;
    pending_.fetch_sub(1, std::memory_order_relaxed);
  });
  auto nd = wheel_.next_deadline();
  next_due_.store(nd ? *nd : UINT64_MAX, std::memory_order_release);
  // Deliver before unlocking: a thread that fires later timers must not overtake this one, so
  // timers reach a process in deadline order (a delivery is a lock-free push: cheap to hold for).
  for (auto& [target, payload] : out) deliver(target, payload);
}

std::int64_t timer_service::ms_until_next(std::uint64_t now) const noexcept {
  std::uint64_t nd = next_due_.load(std::memory_order_acquire);
  if (nd == UINT64_MAX) return -1;
  return nd <= now ? 0 : std::int64_t(nd - now);
}

}  // namespace detail

// ---- public timer API --------------------------------------------------------------

namespace detail {
std::uint64_t start_timer(std::int64_t ms, pid target, envelope* payload) {
  if (!g_rt) {
    destroy_envelope(payload);
    throw std::logic_error("athanor: no runtime");
  }
  return g_rt->timers->start(ms, target, payload);
}
}  // namespace detail

bool cancel_timer(timer_ref t) noexcept { return g_rt && t.handle && g_rt->timers->cancel(t.handle); }

std::optional<std::chrono::milliseconds> read_timer(timer_ref t) noexcept {
  if (!g_rt || !t.handle) return std::nullopt;
  std::int64_t ms = g_rt->timers->remaining(t.handle);
  if (ms < 0) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

}  // namespace athanor
