// Hierarchical timing wheel for the runtime's timers (receive ... after, send_after,
// start_timer). Millisecond resolution, intrusive nodes, O(1) insert and cancel.
// Not thread-safe: the runtime wraps it in a lock.
//
// Structure: 6 levels of 64 slots. A slot at level k spans 64^k ms, i.e. level k
// looks at bits [6k, 6k+6) of a deadline, and the levels cover the current
// 2^36 ms-aligned "epoch" (~795 days). A pending node with deadline d > now sits at
// level k = (index of the highest set bit of d ^ now) / 6, in slot (d >> 6k) & 63.
// Every slot is a circular intrusive list with a sentinel; every level has a 64-bit
// occupancy bitmap. Two extra lists:
//  - overflow: deadlines in a later epoch than now (d >> 36 > now >> 36); re-scanned
//    when time enters the epoch of the earliest of them.
//  - due: deadlines <= now at insert time; fired, sorted, at the start of the next
//    advance().
// advance() moves from "event" to "event": the first occupied slot of the lowest
// non-empty level (found with one countr_zero). Reaching a level-0 slot fires it;
// reaching a higher-level slot re-files ("cascades") its nodes one or more levels
// down, re-checking each node's exact deadline (a node never fires early: it fires
// only from level 0, whose slots are exact milliseconds). Time never loops per
// millisecond, so an idle gap of hours costs nothing, and a node is re-filed at most
// once per level (plus once out of the overflow list) before it fires.
//
// Why a wheel rather than a heap: the runtime keeps up to millions of timers and
// most of them (receive timeouts) are cancelled before they fire. A wheel gives
// O(1) insert and cancel without allocation (a few pointer writes and one bit),
// where a heap costs O(log n) cache-missing sifts for both and needs an index to
// cancel. The price - deadlines far away are only known to a slot's granularity -
// is paid by next_deadline() being a lower bound (the start of the slot).
//
// Invariants (between calls; `now` = now()):
//  1. A node at level k, slot s: (d >> 6(k+1)) == (now >> 6(k+1)) and
//     s == ((d >> 6k) & 63) > ((now >> 6k) & 63). So its level is exactly the highest
//     6-bit group in which d and now differ: all pending nodes with one deadline are in
//     one list, and appending on insert keeps equal deadlines in insertion order.
//  2. Bit s of bitmap_[k] is set iff slot (k, s) is non-empty; hence every bit at or
//     below now's group at level k is clear, and every occupied slot at level k starts
//     before every occupied slot at level k+1 (levels are ordered in time).
//  3. Overflow nodes have (d >> 36) > (now >> 36); when the overflow list is non-empty,
//     overflow_min_ <= every overflow deadline and (overflow_min_ >> 36) > (now >> 36).
//  4. Due-list nodes have d <= now; wheel and overflow nodes have d > now.
//  5. Not pending <=> where_ == kNotPending, prev == next == nullptr.
#pragma once

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace athanor::detail {

class timer_wheel;

// An intrusive timer: embed or derive; the wheel never allocates or frees nodes.
// A node must stay alive, and must not be moved or copied, while pending; it may be
// reused after it fired or was cancelled.
struct timer_node {
  timer_node* prev = nullptr;
  timer_node* next = nullptr;
  std::uint64_t deadline_ms = 0;  // absolute, in the wheel's clock

 private:
  friend class timer_wheel;
  std::uint8_t where_ = 0xFF;  // level 0..5 or one of timer_wheel's list tags
  std::uint8_t slot_ = 0;      // slot within the level, when where_ is a level
};

static_assert(sizeof(timer_node) <= 32);

class timer_wheel {
 public:
  explicit timer_wheel(std::uint64_t now_ms = 0) noexcept : now_(now_ms) {
    for (auto& level : slots_) {
      for (auto& head : level) init(head);
    }
    init(overflow_);
    init(due_);
    init(firing_);
  }
  // Sentinels are self-referential; the wheel is pinned. Destroying the wheel does
  // not touch pending nodes (their links then dangle: do not cancel them afterwards).
  timer_wheel(const timer_wheel&) = delete;
  timer_wheel& operator=(const timer_wheel&) = delete;

  // Schedules `node` (which must not be pending) to fire at deadline_ms; a deadline
  // <= now() fires at the next advance() (also when inserted from inside a callback).
  void insert(timer_node* node, std::uint64_t deadline_ms) noexcept {
    assert(node != nullptr && !pending(node));
    node->deadline_ms = deadline_ms;
    place(node);
    ++size_;
  }

  // Unlinks a pending node; returns false (and does nothing) if the node is not pending
  // (never inserted, already fired - including from inside its own callback - or
  // already cancelled). The node must not be pending in another wheel.
  bool cancel(timer_node* node) noexcept {
    if (!pending(node)) return false;
    detach(node);
    --size_;
    return true;
  }

  bool pending(const timer_node* node) const noexcept { return node->where_ != kNotPending; }

  // Moves the wheel's time to now_ms (an earlier time is ignored: time stays) and
  // calls fn(timer_node*) for every node whose deadline <= now_ms, each unlinked
  // (no longer pending) before its call, in non-decreasing deadline order; equal
  // deadlines fire in insertion order. Returns the number fired.
  //  - Nodes inserted with a deadline <= now() before this call fire first, sorted.
  //  - Time moves forward event by event: inside fn, now() is the deadline being
  //    fired (for nodes that were already due: the time before the call). fn may
  //    insert and cancel any node, re-insert the fired one, and call next_deadline(),
  //    but not advance(). A node inserted from fn with deadline <= now() fires at the
  //    next advance() call (so a callback re-arming at now() cannot loop forever);
  //    with now() < deadline <= now_ms it fires in this same call, in order.
  //  - fn should not throw; if it does, the exception propagates, the wheel stays
  //    consistent with now() at the deadline being fired, and the nodes not yet
  //    fired stay pending for the next advance().
  template <class F>
  std::size_t advance(std::uint64_t now_ms, F&& fn) {
    std::size_t fired = 0;
    const std::uint64_t target = now_ms > now_ ? now_ms : now_;
    if (!list_empty(firing_)) requeue_firing();  // only after fn threw
    if (!list_empty(due_)) {
      if (!due_sorted_) sort_list(due_);
      move_to_firing(due_);
      due_sorted_ = true;
      fired += drain(fn);
    }
    event ev;
    while (next_event(ev) && ev.at <= target) {
      now_ = ev.at;
      if (ev.where == 0) {
        bitmap_[0] &= ~(std::uint64_t{1} << ev.slot);
        move_to_firing(slots_[0][ev.slot]);
      } else if (ev.where == kOverflow) {
        rescan_overflow();
      } else {
        cascade(ev.where, ev.slot);
      }
      fired += drain(fn);
    }
    now_ = target;
    return fired;
  }

  // A lower bound on the earliest pending deadline, or nullopt when nothing is
  // pending: now() if something is due (deadline <= now()), otherwise a time > now()
  // at which advance() makes progress - the exact deadline when the earliest timer
  // is in the current 64 ms block, else the start of the slot holding it (so a
  // caller sleeping until next_deadline() and advancing wakes up early at most
  // once per level for a far timer, each time with a tighter bound). O(levels).
  std::optional<std::uint64_t> next_deadline() const noexcept {
    if (size_ == 0) return std::nullopt;
    if (!list_empty(due_) || !list_empty(firing_)) return now_;
    event ev;
    if (!next_event(ev)) return std::nullopt;  // unreachable while size_ > 0
    return ev.where == kOverflow ? overflow_min_ : ev.at;
  }

  std::size_t size() const noexcept { return size_; }
  std::uint64_t now() const noexcept { return now_; }

 private:
  static constexpr unsigned kLevels = 6;
  static constexpr unsigned kSlotBits = 6;
  static constexpr unsigned kSlots = 1u << kSlotBits;
  static constexpr std::uint64_t kSlotMask = kSlots - 1;
  static constexpr unsigned kSpanBits = kLevels * kSlotBits;  // 36: ms covered by the levels
  // where_ tags besides the levels 0..kLevels-1.
  static constexpr std::uint8_t kOverflow = kLevels;
  static constexpr std::uint8_t kDue = kLevels + 1;
  static constexpr std::uint8_t kFiring = kLevels + 2;
  static constexpr std::uint8_t kNotPending = 0xFF;

  struct event {
    unsigned where;    // level, or kOverflow
    unsigned slot;     // for a level
    std::uint64_t at;  // time at which the event happens (> now_)
  };

  static void init(timer_node& head) noexcept { head.prev = head.next = &head; }
  static bool list_empty(const timer_node& head) noexcept { return head.next == &head; }
  static void push_back(timer_node& head, timer_node* n) noexcept {
    n->prev = head.prev;
    n->next = &head;
    head.prev->next = n;
    head.prev = n;
  }
  static void unlink(timer_node* n) noexcept {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
  }

  // Files a linked-out node with deadline_ms set, relative to now_.
  void place(timer_node* n) noexcept {
    const std::uint64_t d = n->deadline_ms;
    if (d <= now_) {
      if (!list_empty(due_) && d < due_.prev->deadline_ms) due_sorted_ = false;
      n->where_ = kDue;
      push_back(due_, n);
      return;
    }
    const unsigned level = static_cast<unsigned>(63 - std::countl_zero(d ^ now_)) / kSlotBits;
    if (level >= kLevels) {
      overflow_min_ = (list_empty(overflow_) || d < overflow_min_) ? d : overflow_min_;
      n->where_ = kOverflow;
      push_back(overflow_, n);
      return;
    }
    const unsigned slot = static_cast<unsigned>((d >> (level * kSlotBits)) & kSlotMask);
    n->where_ = static_cast<std::uint8_t>(level);
    n->slot_ = static_cast<std::uint8_t>(slot);
    push_back(slots_[level][slot], n);
    bitmap_[level] |= std::uint64_t{1} << slot;
  }

  // Unlinks a pending node from whatever list holds it and marks it not pending.
  void detach(timer_node* n) noexcept {
    unlink(n);
    if (n->where_ < kLevels && list_empty(slots_[n->where_][n->slot_])) {
      bitmap_[n->where_] &= ~(std::uint64_t{1} << n->slot_);
    }
    n->where_ = kNotPending;
  }

  // The next point in time > now_ at which advance() has work: the first occupied
  // slot of the lowest non-empty level, else the start of overflow_min_'s epoch.
  bool next_event(event& ev) const noexcept {
    for (unsigned k = 0; k < kLevels; ++k) {
      const std::uint64_t bits = bitmap_[k];
      if (bits == 0) continue;
      const unsigned shift = k * kSlotBits;
      [[maybe_unused]] const unsigned group = static_cast<unsigned>((now_ >> shift) & kSlotMask);
      assert((bits & ((std::uint64_t{2} << group) - 1)) == 0);  // invariant 2
      const unsigned slot = static_cast<unsigned>(std::countr_zero(bits));
      const std::uint64_t block = now_ >> (shift + kSlotBits) << (shift + kSlotBits);
      ev = {k, slot, block | (std::uint64_t{slot} << shift)};
      return true;
    }
    if (!list_empty(overflow_)) {
      ev = {kOverflow, 0, overflow_min_ >> kSpanBits << kSpanBits};
      return true;
    }
    return false;
  }

  // Appends all of `from` to firing_ (relabelled kFiring), leaving `from` empty.
  void move_to_firing(timer_node& from) noexcept {
    if (list_empty(from)) return;
    for (timer_node* n = from.next; n != &from; n = n->next) n->where_ = kFiring;
    timer_node* first = from.next;
    timer_node* last = from.prev;
    first->prev = firing_.prev;
    firing_.prev->next = first;
    last->next = &firing_;
    firing_.prev = last;
    init(from);
  }

  // now_ just reached the start of slot (level, slot): re-file its nodes below.
  void cascade(unsigned level, unsigned slot) noexcept {
    timer_node& head = slots_[level][slot];
    bitmap_[level] &= ~(std::uint64_t{1} << slot);
    timer_node* n = head.next;
    init(head);  // the detached chain still ends at &head
    while (n != &head) {
      timer_node* next = n->next;
      if (n->deadline_ms == now_) {
        n->where_ = kFiring;
        push_back(firing_, n);
      } else {
        place(n);  // d > now_ and agrees with now_ down to `level`: goes lower
      }
      n = next;
    }
  }

  // now_ just reached the start of an epoch: move the overflow nodes of that epoch in.
  void rescan_overflow() noexcept {
    const std::uint64_t epoch = now_ >> kSpanBits;
    std::uint64_t min = ~std::uint64_t{0};
    timer_node* n = overflow_.next;
    while (n != &overflow_) {
      timer_node* next = n->next;
      const std::uint64_t d = n->deadline_ms;
      if ((d >> kSpanBits) == epoch) {
        unlink(n);
        if (d == now_) {
          n->where_ = kFiring;
          push_back(firing_, n);
        } else {
          place(n);
        }
      } else if (d < min) {
        min = d;
      }
      n = next;
    }
    overflow_min_ = min;
  }

  template <class F>
  std::size_t drain(F& fn) {
    std::size_t fired = 0;
    while (!list_empty(firing_)) {
      timer_node* n = firing_.next;
      unlink(n);
      n->where_ = kNotPending;
      --size_;
      ++fired;
      fn(n);
    }
    return fired;
  }

  // After fn threw: put the nodes that were about to fire (deadline == now_) back in
  // front of the due list, to fire first at the next advance().
  void requeue_firing() noexcept {
    for (timer_node* n = firing_.next; n != &firing_; n = n->next) n->where_ = kDue;
    timer_node* first = firing_.next;
    timer_node* last = firing_.prev;
    last->next = due_.next;
    due_.next->prev = last;
    first->prev = &due_;
    due_.next = first;
    init(firing_);
    due_sorted_ = false;
  }

  static timer_node* merge(timer_node* a, timer_node* b) noexcept {
    timer_node head;
    timer_node* tail = &head;
    while (a != nullptr && b != nullptr) {
      if (b->deadline_ms < a->deadline_ms) {  // ties take `a`: stable
        tail->next = b;
        b = b->next;
      } else {
        tail->next = a;
        a = a->next;
      }
      tail = tail->next;
    }
    tail->next = a != nullptr ? a : b;
    return head.next;
  }

  // Stable bottom-up merge sort of a list by deadline; O(n log n), no allocation.
  static void sort_list(timer_node& head) noexcept {
    if (list_empty(head)) return;
    timer_node* bins[64] = {};  // bins[i]: a sorted run of 2^i nodes, or null
    timer_node* n = head.next;
    head.prev->next = nullptr;
    while (n != nullptr) {
      timer_node* run = n;
      n = n->next;
      run->next = nullptr;
      unsigned i = 0;
      for (; bins[i] != nullptr; ++i) {
        run = merge(bins[i], run);  // bins[i] holds earlier nodes
        bins[i] = nullptr;
      }
      bins[i] = run;
    }
    timer_node* sorted = nullptr;
    for (timer_node* bin : bins) {
      if (bin != nullptr) sorted = merge(bin, sorted);  // higher bins hold earlier nodes
    }
    timer_node* prev = &head;
    for (timer_node* m = sorted; m != nullptr; m = m->next) {
      m->prev = prev;
      prev->next = m;
      prev = m;
    }
    prev->next = &head;
    head.prev = prev;
  }

  std::uint64_t now_;
  std::size_t size_ = 0;
  std::uint64_t overflow_min_ = ~std::uint64_t{0};
  bool due_sorted_ = true;
  std::uint64_t bitmap_[kLevels] = {};
  timer_node slots_[kLevels][kSlots];
  timer_node overflow_;
  timer_node due_;
  timer_node firing_;
};

}  // namespace athanor::detail
