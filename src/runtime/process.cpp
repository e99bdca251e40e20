// Processes: spawning, the mailbox, signals (exit, link, monitor), receive, and ending.
//
// Mailbox design
// ==============
// Each process has two queues:
//   * the *inbox*, shared with every other thread: a lock-free stack (Treiber) whose head word
//     also carries the slot's generation tag and the PARKED / CLOSED markers (see the scheduler
//     essay). Pushing is one compare-and-swap; the owner takes the whole stack with one exchange
//     and reverses it, which restores arrival order. Push order between one sender and one
//     receiver is program order on the sender's thread, so FIFO per pair holds.
//   * the *message queue*, private to the process: received messages not yet taken by a
//     receive, in arrival order. Selective receive scans it and unlinks the first match; a
//     waiting receive remembers how far it has scanned, so a flood of non-matching messages
//     costs one look each, not one per wake-up.
// Signals (exit, link, unlink, monitor, demonitor, down, wake-ups, info requests) travel in the
// inbox with the messages, so Erlang's ordering guarantee holds for them too, and are acted on
// by the receiving process itself when it takes its inbox: no process ever touches another's
// links, monitors or queue. Why not Vyukov's intrusive MPSC queue: it has no atomic "close" and
// no single word to park on, and its consumer can see a half-linked node; the stack's batch
// take is also cheaper when many messages arrive between two runs.
//
// Invariants: the message queue, links and monitors of a process are touched only by the thread
// running it; an envelope is owned by exactly one queue or one thread at a time; a closed inbox
// never reopens for that generation.

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <typeinfo>

#include <fmt/format.h>

#include "athanor/runtime/alias.h"
#include "athanor/runtime/logger.h"
#include "athanor/runtime/remote.h"
#include "runtime/internal.h"
#include "runtime/services.h"

namespace athanor {

using detail::envelope;
using detail::process_state;
using detail::wait_kind;
using detail::kDirtyPending;
using detail::kEventFired;
using detail::kExiting;
using detail::kHeld;
using detail::kRunning;
using detail::kTrapExit;
using detail::inbox_word;
using detail::kInboxClosed;
using detail::kInboxEmpty;
using detail::kInboxParked;

namespace {

process_state& st(process* p) { return process_access::st(p); }

detail::process_extras& extras(process* p) {
  auto& s = st(p);
  if (!s.extras) s.extras = new detail::process_extras;
  return *s.extras;
}

// How a process body ended by an exception: its exit reason, and for an error (anything but
// exit_exception) the exception's C++ type, for the report.
struct uncaught {
  term reason;
  bool is_error = true;
  std::string type;
};

std::string demangled(const std::type_info* type) {
  if (!type) return "unknown";
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(abi::__cxa_demangle(type->name(), nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(type->name());
}

uncaught exception_reason(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const exit_exception& x) {
    return {x.reason, false, {}};
  } catch (const error_exception& x) {
    return {x.reason, true, demangled(abi::__cxa_current_exception_type())};
  } catch (const std::exception& x) {
    return {tuple(atom("exception"), term(std::string_view(x.what()))), true, demangled(abi::__cxa_current_exception_type())};
  } catch (...) {
    return {tuple(atom("exception"), term(std::string_view("unknown exception"))), true,
            demangled(abi::__cxa_current_exception_type())};
  }
}

// The BEAM's "Error in process <0.80.0> with exit value: ..." report. OTP's rule: only an
// uncaught error is reported; a process that ends with exit(Reason), or is ended by an exit
// signal (a link, exit(Pid, kill)), is not, so a supervisor taking down a group of linked
// workers does not flood the log. A gen_server catches its callbacks' errors, writes its own
// crash report and ends with exit(Reason), so it is never reported twice.
void report_uncaught_error(pid who, const uncaught& u) {
  if (!logger::enabled("runtime", log_level::error)) return;
  log_event e;
  e.level = log_level::error;
  e.part = "runtime";
  e.domain = "process_error";
  e.text = fmt::format("Error in process {} with exit value: {}", who.to_string(), u.reason.to_string());
  e.metadata = {{"pid", term(who)}, {"reason", u.reason}, {"exception_type", term(std::string_view(u.type))}};
  e.process = who;
  logger::log(std::move(e));
}

void set_exit(process* p, const term& reason) {
  auto& s = st(p);
  if (s.flags & detail::kExiting) return;
  s.flags |= detail::kExiting;
  extras(p).exit_reason = reason;
}

// Appends a message envelope to the private queue.
void enqueue_message(process* p, envelope* e) {
  auto& s = st(p);
  e->next = nullptr;
  if (s.queue_tail) s.queue_tail->next = e;
  else s.queue_head = e;
  s.queue_tail = e;
  ++s.queue_len;
  s.memory += e->bytes;
}

// Removes *it from the unordered vector v (the last element takes its place). A burst (many
// callers monitoring one server at once) must not pin its high-water capacity for the process's
// life, so an emptied vector that grew past two gives its memory back.
template <class V>
void erase_unordered(V& v, typename V::iterator it) {
  *it = std::move(v.back());
  v.pop_back();
  if (v.empty() && v.capacity() > 2) V().swap(v);
}

bool remove_pid(std::vector<pid>& v, pid p) {
  auto it = std::find(v.begin(), v.end(), p);
  if (it == v.end()) return false;
  erase_unordered(v, it);
  return true;
}

template <class V>
bool remove_ref(V& v, const ref& r, typename V::value_type::second_type* who = nullptr) {
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->first == r) {
      if (who) *who = it->second;
      erase_unordered(v, it);
      return true;
    }
  }
  return false;
}

std::size_t heap_limit(process* p) {
  auto& s = st(p);
  std::size_t lim = s.extras ? s.extras->max_heap_bytes : 0;
  return lim ? lim : g_rt->cfg.max_heap_bytes;
}

void check_heap(process* p) {
  std::size_t lim = heap_limit(p);
  auto& s = st(p);
  if (lim && std::size_t(s.memory) + detail::kProcessBlockBytes > lim && !(s.flags & detail::kExiting)) {
    set_exit(p, tuple(atom("max_heap_size"), term(std::int64_t(s.memory) + std::int64_t(detail::kProcessBlockBytes)),
                      term(std::int64_t(lim))));
  }
}

void handle_signal(process* p, envelope* e);

// Swaps the inbox for `marker` (empty, or closed when the process ends) and returns what it held
// in arrival order (the stack is newest-first).
envelope* take_inbox(process_state& s, std::uintptr_t marker) {
  std::uintptr_t w = s.inbox.exchange(detail::inbox_word(s.generation.load(std::memory_order_relaxed), marker),
                                      std::memory_order_acq_rel);
  envelope* e = reinterpret_cast<envelope*>(detail::inbox_ptr(w));
  envelope* fifo = nullptr;
  while (e) {
    envelope* next = e->next;
    e->next = fifo;
    fifo = e;
    e = next;
  }
  return fifo;
}

// Removes e (whose predecessor in the private queue is prev, or null) from the queue.
void unlink_message(process_state& s, envelope* prev, envelope* e) {
  if (prev) prev->next = e->next;
  else s.queue_head = e->next;
  if (s.queue_tail == e) s.queue_tail = prev;
  --s.queue_len;
  s.memory -= e->bytes;
  e->next = nullptr;
}

// Takes the inbox and acts on it: messages go to the private queue, signals are handled.
void drain(process* p) {
  auto& s = st(p);
  if (detail::inbox_ptr(s.inbox.load(std::memory_order_relaxed)) == detail::kInboxEmpty) return;
  envelope* fifo = take_inbox(s, detail::kInboxEmpty);
  bool any_message = false;
  while (fifo) {
    envelope* next = fifo->next;
    if (fifo->is_signal) {
      handle_signal(p, fifo);
    } else {
      enqueue_message(p, fifo);
      any_message = true;
    }
    fifo = next;
  }
  if (any_message) check_heap(p);
}

process_info_t make_info(process* p, bool dying, bool asked_by_self = false);

void handle_signal(process* p, envelope* e) {
  auto& s = st(p);
  pid self = s.self_pid;
  if (e->type == detail::type_of<detail::sig_alias>()) {
    auto& a = detail::payload<detail::sig_alias>(e);
    if (s.extras && std::find(s.extras->aliases.begin(), s.extras->aliases.end(), a.alias) != s.extras->aliases.end()) {
      enqueue_message(p, std::exchange(a.inner, nullptr));
      check_heap(p);
    }
  } else if (e->type == detail::type_of<detail::sig_wake>()) {
    const auto& w = detail::payload<detail::sig_wake>(e);
    // An edge of the process's attached fd (io.cpp) ends a wait on that fd, or is kept for the
    // next one; any other wake-up counts only for the wait its token names.
    if (w.edge && !(s.flags & detail::kEdgeWaiting)) {
      s.flags |= detail::kEdgePending;
    // (Tokens compare on 15 bits: what an epoll cookie holds.)
    } else if (w.edge || (w.token & 0x7FFF) == (s.wait_token & 0x7FFF)) {
      if (s.wait == wait_kind::receive && s.receiving) {
        s.receiving->timed_out = true;
        s.receiving->timer = 0;  // it fired
      } else {
        s.flags |= detail::kEventFired;
        s.flags &= ~detail::kDirtyPending;
      }
    }
  } else if (e->type == detail::type_of<detail::sig_release>()) {
    s.flags &= ~detail::kHeld;
  } else if (e->type == detail::type_of<detail::sig_exit>()) {
    auto& x = detail::payload<detail::sig_exit>(e);
    if (x.via_link && !(s.extras && remove_pid(s.extras->links, x.from))) {
      // Unlinked before the signal arrived: Erlang drops it.
    } else if (!x.via_link && x.reason == term(atoms::kill)) {
      set_exit(p, atoms::killed);
    } else if (s.flags & detail::kTrapExit) {
      enqueue_message(p, detail::make_envelope<exit_signal>(false, exit_signal{x.from, x.reason}));
    } else if (x.reason == term(atoms::normal)) {
      if (!x.via_link && x.from == self) set_exit(p, atoms::normal);
    } else {
      set_exit(p, x.reason);
    }
  } else if (e->type == detail::type_of<detail::sig_link>()) {
    auto& l = detail::payload<detail::sig_link>(e);
    auto& links = extras(p).links;
    if (std::find(links.begin(), links.end(), l.from) == links.end()) links.push_back(l.from);
  } else if (e->type == detail::type_of<detail::sig_unlink>()) {
    if (s.extras) remove_pid(s.extras->links, detail::payload<detail::sig_unlink>(e).from);
  } else if (e->type == detail::type_of<detail::sig_monitor>()) {
    auto& m = detail::payload<detail::sig_monitor>(e);
    extras(p).monitored_by.emplace_back(m.mref, m.from);
  } else if (e->type == detail::type_of<detail::sig_demonitor>()) {
    if (s.extras) remove_ref(s.extras->monitored_by, detail::payload<detail::sig_demonitor>(e).mref);
  } else if (e->type == detail::type_of<detail::sig_down>()) {
    auto& d = detail::payload<detail::sig_down>(e);
    if (s.extras && (remove_ref(s.extras->monitors, d.mref) || remove_ref(s.extras->name_monitors, d.mref))) {
      enqueue_message(p, detail::make_envelope<down>(false, down{d.mref, d.from, d.reason}));
    }
  } else if (e->type == detail::type_of<detail::sig_apply>()) {
    detail::payload<detail::sig_apply>(e).fn(*p, false);
  }
  detail::destroy_envelope(e);
}

bool scan(process* p, detail::receive_state& r);

// True when a waiting receive can complete: a message matched, or its timeout passed (a zero
// timeout passes as soon as the queue has been scanned once).
bool receive_satisfied(process* p, detail::receive_state& r) {
  if (scan(p, r)) return true;
  if (r.timeout_ms == 0) r.timed_out = true;
  return r.timed_out;
}

// Scans the private queue for a message the receive accepts; unlinks it into st.taken.
bool scan(process* p, detail::receive_state& r) {
  auto& s = st(p);
  envelope* prev = r.scanned;
  envelope* e = prev ? prev->next : s.queue_head;
  while (e) {
    if (r.match(&r, e)) {
      unlink_message(s, prev, e);
      r.taken = e;
      return true;
    }
    prev = e;
    r.scanned = e;
    e = e->next;
  }
  return false;
}

// Puts p at the back of the ring after its slice ended. A process it woke during the slice
// (waiting in runnext) goes first: it has not had a turn yet.
void requeue(runtime::impl& rt, detail::scheduler_slot& s, process* p) {
  if (process* woken = s.runnext.exchange(nullptr, std::memory_order_acq_rel)) {
    if (!s.ring.push(woken)) rt.global_push(woken);
  }
  if (!s.ring.push(p)) rt.global_push(p);
}

}  // namespace

// ---- inbox ----------------------------------------------------------------------------

int detail::inbox_push(process* p, std::uint32_t generation, envelope* e) noexcept {
  auto& in = process_access::st(p).inbox;
  std::uintptr_t w = in.load(std::memory_order_acquire);
  for (;;) {
    if (inbox_tag(w) != (generation & 0xFFFF)) return -1;
    std::uintptr_t head = inbox_ptr(w);
    if (head == kInboxClosed) return -1;
    e->next = head == kInboxParked ? nullptr : reinterpret_cast<envelope*>(head);
    if (in.compare_exchange_weak(w, inbox_word(generation, reinterpret_cast<std::uintptr_t>(e)),
                                 std::memory_order_acq_rel, std::memory_order_acquire)) {
      return head == kInboxParked ? 1 : 0;
    }
  }
}

namespace {
std::atomic<remote_nodes*> g_remote_nodes{nullptr};

// A signal (or a term message) for a process of another node: handed to the distribution layer.
// False, as for an ended process, when there is none or the envelope is not something a node can
// carry.
bool deliver_remote(pid to, envelope* e) noexcept {
  remote_nodes* nodes = g_remote_nodes.load(std::memory_order_acquire);
  bool carried = nodes != nullptr;
  if (nodes) {
    try {
      if (e->type == detail::type_of<detail::sig_link>()) {
        nodes->link(detail::payload<detail::sig_link>(e).from, to);
      } else if (e->type == detail::type_of<detail::sig_unlink>()) {
        nodes->unlink(detail::payload<detail::sig_unlink>(e).from, to);
      } else if (e->type == detail::type_of<detail::sig_exit>()) {
        auto& x = detail::payload<detail::sig_exit>(e);
        nodes->exit(x.from, to, x.reason, x.via_link);
      } else if (e->type == detail::type_of<detail::sig_monitor>()) {
        auto& m = detail::payload<detail::sig_monitor>(e);
        nodes->monitor(m.from, to, m.mref);
      } else if (e->type == detail::type_of<detail::sig_demonitor>()) {
        auto& m = detail::payload<detail::sig_demonitor>(e);
        nodes->demonitor(m.from, to, m.mref);
      } else if (e->type == detail::type_of<term>()) {
        (void)nodes->send(self(), to, std::move(detail::payload<term>(e)));
      } else {
        carried = false;  // a C++ value or a local-only signal: no node can carry it
      }
    } catch (...) {
      carried = false;
    }
  }
  detail::destroy_envelope(e);
  return carried;
}
}  // namespace

bool detail::deliver(pid to, envelope* e) noexcept {
  runtime::impl* rt = g_rt;
  if (process* cur = detail::tls().current) {
    auto& s = process_access::st(cur);
    --s.budget;
    ++s.reductions;
  }
  if (!to.is_local()) [[unlikely]] return deliver_remote(to, e);
  // A slot never constructed yet holds no process (a pid from another node, or forged, can name
  // one): its inbox word is not an inbox yet.
  if (!rt || to.index() == 0 || to.index() > rt->cfg.max_processes ||
      to.index() >= rt->constructed.load(std::memory_order_acquire)) {
    destroy_envelope(e);
    return false;
  }
  process* p = rt->slot_of(to);
  int r = inbox_push(p, to.generation(), e);
  if (r < 0) {
    destroy_envelope(e);
    return false;
  }
  if (r == 1) rt->make_runnable(p, detail::tls().current != nullptr);
  return true;
}

process* detail::current_process() noexcept { return detail::tls().current; }

// ---- process table ----------------------------------------------------------------------

namespace {
thread_local std::vector<std::uint32_t> t_free_indices;
}

process* runtime::impl::allocate_process() {
  if (std::size_t(live.fetch_add(1, std::memory_order_acq_rel)) >= cfg.max_processes) {
    process_ended();
    throw system_limit_error("athanor::spawn: the process limit (" + std::to_string(cfg.max_processes) +
                             ") is reached");
  }
  std::uint32_t index = 0;
  auto& local = t_free_indices;
  if (local.empty()) {
    std::lock_guard lock(free_mu);
    std::size_t take = std::min<std::size_t>(free_indices.size(), 128);
    local.insert(local.end(), free_indices.end() - std::ptrdiff_t(take), free_indices.end());
    free_indices.resize(free_indices.size() - take);
  }
  process* p;
  if (!local.empty()) {
    index = local.back();
    local.pop_back();
    p = table + index;
  } else {
    index = fresh_index.fetch_add(1, std::memory_order_relaxed);
    if (index >= constructed.load(std::memory_order_acquire)) construct_slots_through(index);
    p = table + index;
  }
  auto& s = st(p);
  std::uint32_t gen = (s.generation.load(std::memory_order_relaxed) + 1) & pid::kGenerationMask;
  s.self_pid = pid(0, index, gen);
  s.generation.store(gen, std::memory_order_release);
  s.inbox.store(detail::inbox_word(gen, detail::kInboxEmpty), std::memory_order_release);
  return p;
}

// Constructs the slots from `constructed` up to at least `index`, a chunk at a time: touching
// 256 fresh slots at once costs about what touching them one by one does (the same pages), and
// the lock is taken once per chunk, only while the table grows.
void runtime::impl::construct_slots_through(std::uint32_t index) {
  constexpr std::uint32_t kChunk = 256;
  std::lock_guard lock(construct_mu);
  std::uint32_t from = constructed.load(std::memory_order_relaxed);
  if (index < from) return;
  std::uint32_t to = std::uint32_t(std::min<std::size_t>(std::max(from + kChunk, index + 1), cfg.max_processes + 1));
  for (std::uint32_t i = from; i < to; ++i) {
    process* p = process_access::construct(table + i);
    st(p).inbox.store(detail::inbox_word(0, kInboxClosed), std::memory_order_relaxed);
  }
  constructed.store(to, std::memory_order_release);
}

void runtime::impl::release_process(process* p) noexcept {
  std::uint32_t index = st(p).self_pid.index();
  auto& local = t_free_indices;
  local.push_back(index);
  if (local.size() > 512) {
    std::lock_guard lock(free_mu);
    free_indices.insert(free_indices.end(), local.end() - 256, local.end());
    local.resize(local.size() - 256);
  }
  process_ended();
}

// ---- frames ---------------------------------------------------------------------------------

void* detail::allocate_frame(std::size_t size) {
  process* p = detail::tls().spawning ? detail::tls().spawning : detail::tls().current;
  void* mem = pool_alloc(size);
  if (p) {
    st(p).memory += std::int64_t(size);
    if (g_rt && heap_limit(p)) check_heap(p);
  }
  return mem;
}

void detail::free_frame(void* mem, std::size_t size) noexcept {
  if (process* p = detail::tls().spawning ? detail::tls().spawning : detail::tls().current) st(p).memory -= std::int64_t(size);
  pool_free(mem, size);
}

void detail::process_body_returned(std::exception_ptr error) noexcept {
  process* p = detail::tls().current;
  if (!p) return;
  try {
    if (!error) {
      set_exit(p, atoms::normal);
    } else if (st(p).flags & kExiting) {
      // Already ending for another reason (an exit signal, max_heap_size): that reason stands.
    } else {
      uncaught u = exception_reason(error);
      set_exit(p, u.reason);
      if (u.is_error) report_uncaught_error(st(p).self_pid, u);
    }
  } catch (...) {
    st(p).flags |= kExiting;  // out of memory building the reason: end with the default
  }
  st(p).wait = wait_kind::exiting;
}

// ---- spawn ----------------------------------------------------------------------------------

pid detail::spawn_closure(closure_base* body, const spawn_options& opts, ref* monitor_out) {
  runtime::impl* rt = g_rt;
  if (!rt) {
    body->destroy();
    throw std::logic_error("athanor::spawn: no runtime (create an athanor::runtime first)");
  }
  process* p;
  try {
    p = rt->allocate_process();
  } catch (...) {
    body->destroy();
    throw;
  }
  auto& s = st(p);
  s.closure = body;
  s.flags = opts.trap_exit ? kTrapExit : 0;
  if (opts.max_heap_bytes) extras(p).max_heap_bytes = opts.max_heap_bytes;
  process* saved = detail::tls().spawning;
  detail::tls().spawning = p;
  try {
    proc c = body->invoke(*p);
    s.body = c.release();
  } catch (...) {
    detail::tls().spawning = saved;
    body->destroy();
    s.closure = nullptr;
    delete s.extras;
    s.extras = nullptr;
    s.memory = 0;
    s.inbox.store(inbox_word(s.generation.load(), kInboxClosed), std::memory_order_release);
    rt->release_process(p);
    throw;
  }
  detail::tls().spawning = saved;
  s.resume_point = s.body;
  s.wait = wait_kind::none;
  pid child = s.self_pid;
  process* parent = detail::tls().current;
  if (parent) {
    --st(parent).budget;
    ++st(parent).reductions;
    if (opts.link) {
      extras(parent).links.push_back(child);
      extras(p).links.push_back(st(parent).self_pid);
    }
    if (monitor_out) {
      ref r = make_ref();
      extras(parent).monitors.emplace_back(r, child);
      extras(p).monitored_by.emplace_back(r, st(parent).self_pid);
      *monitor_out = r;
    }
  } else if (opts.link || monitor_out) {
    // Not in a process: nothing to link or monitor from.
    if (monitor_out) *monitor_out = make_ref();
  }
  // Like Go's newproc, a process spawned by a process runs next on the same thread: the
  // spawner usually waits for it soon (spawn + monitor + DOWN needs no other thread).
  rt->make_runnable(p, parent != nullptr);
  return child;
}

// ---- running and ending -----------------------------------------------------------------------

std::int32_t run_process(runtime::impl& rt, detail::scheduler_slot& slot, process* p, std::int32_t budget) {
  auto& s = st(p);
  detail::tls().current = p;
  s.flags |= kRunning;
  s.budget = budget;
  // Once p is requeued, parked or finished another thread may run (or reuse) it at once: the
  // budget left is read before that.
  std::int32_t left = 0;
  for (;;) {
    drain(p);
    if ((s.flags & kExiting) && !(s.flags & kDirtyPending)) {
      left = s.budget;
      rt.finish(p);
      break;
    }
    bool ready;
    // Held by back-pressure (remote.h): parked whatever it waits for, until its release arrives
    // (and its wait is not even looked at: a receive's scan takes the message it matches). Only
    // at a suspension point: a process is never stopped in the middle of its code.
    if ((s.flags & kHeld) && s.wait != wait_kind::none) ready = false;
    else switch (s.wait) {
      case wait_kind::none:
      case wait_kind::yield: ready = true; break;
      case wait_kind::receive: ready = receive_satisfied(p, *s.receiving); break;
      case wait_kind::event: ready = (s.flags & kEventFired) != 0; break;
      default: ready = false; break;
    }
    if (ready && s.budget <= 0 && s.wait != wait_kind::none && s.wait != wait_kind::yield) {
      s.flags &= ~kRunning;
      left = s.budget;
      requeue(rt, slot, p);  // the slice is used up: behind everyone else, ready to go
      break;
    }
    if (!ready) {
      std::uintptr_t expect = inbox_word(s.generation.load(std::memory_order_relaxed), kInboxEmpty);
      s.flags &= ~kRunning;
      left = s.budget;
      if (s.inbox.compare_exchange_strong(expect, inbox_word(s.generation.load(std::memory_order_relaxed), kInboxParked),
                                          std::memory_order_acq_rel, std::memory_order_acquire)) {
        break;  // parked: the next push makes it runnable
      }
      s.flags |= kRunning;
      continue;  // something arrived meanwhile
    }
    s.wait = wait_kind::none;
    s.resume_point.resume();
    // Back from process code: s.wait says why it suspended.
    if (s.wait == wait_kind::yield) {
      s.flags &= ~kRunning;
      left = 0;  // an explicit yield ends the slice: runnext must not run ahead of the ring
      requeue(rt, slot, p);
      break;
    }
    if (s.wait == wait_kind::exiting || (s.flags & kExiting)) continue;  // finish at the top
    if (s.budget <= 0) {
      // Used up its slice while waiting for something: let the others run first.
      s.flags &= ~kRunning;
      left = s.budget;
      requeue(rt, slot, p);
      break;
    }
  }
  detail::tls().current = nullptr;
  return left;
}

void runtime::impl::finish(process* p) noexcept {
  auto& s = st(p);
  pid self = s.self_pid;
  term reason = s.extras ? s.extras->exit_reason : term(atoms::normal);
  // Close the inbox first: from now on sends are dropped and link/monitor requests fail at the
  // sender, so every signal that got in is in the list we take here.
  envelope* fifo = take_inbox(s, kInboxClosed);
  // Unwind the coroutine (runs the destructors of its locals: RAII cleanup of a killed process).
  if (s.body) {
    s.body.destroy();
    s.body = {};
  }
  s.resume_point = {};
  if (s.closure) {
    s.closure->destroy();
    s.closure = nullptr;
  }
  for (envelope* m = s.queue_head; m;) {
    envelope* next = m->next;
    detail::destroy_envelope(m);
    m = next;
  }
  s.queue_head = s.queue_tail = nullptr;
  s.queue_len = 0;
  s.receiving = nullptr;
  // The name goes before any exit signal or DOWN does (as in ERTS): whoever reacts to this
  // process's end, a supervisor restarting it say, can register the name again at once.
  if (s.named.load(std::memory_order_acquire)) {
    std::unique_lock lock(names_mu);
    auto it = name_of.find(self);
    if (it != name_of.end()) {
      names.erase(it->second);
      name_of.erase(it);
    }
    s.named.store(false, std::memory_order_relaxed);
  }
  // Signals that arrived before the close: answer link and monitor requests as a dead process.
  for (envelope* m = fifo; m;) {
    envelope* next = m->next;
    if (m->type == detail::type_of<detail::sig_link>()) {
      detail::signal<detail::sig_exit>(detail::payload<detail::sig_link>(m).from, self, reason, true);
    } else if (m->type == detail::type_of<detail::sig_monitor>()) {
      auto& mon = detail::payload<detail::sig_monitor>(m);
      detail::signal<detail::sig_down>(mon.from, mon.mref, self, reason);
    } else if (m->type == detail::type_of<detail::sig_apply>()) {
      try {
        detail::payload<detail::sig_apply>(m).fn(*p, true);
      } catch (...) {
      }
    }
    detail::destroy_envelope(m);
    m = next;
  }
  if (detail::process_extras* x = s.extras) {
    for (pid l : x->links) detail::signal<detail::sig_exit>(l, self, reason, true);
    for (auto& [r, watcher] : x->monitored_by) detail::signal<detail::sig_down>(watcher, r, self, reason);
    for (auto& [r, target] : x->monitors) detail::signal<detail::sig_demonitor>(target, self, r);
    if (!x->name_monitors.empty()) {
      if (remote_nodes* nodes = g_remote_nodes.load(std::memory_order_acquire)) {
        for (auto& [r, target] : x->name_monitors) nodes->demonitor_name(self, target.name, target.node, r);
      }
    }
    delete x;
    s.extras = nullptr;
  }
  s.flags = 0;
  s.wait = wait_kind::none;
  s.memory = 0;
  s.reductions = 0;
  s.wait_token = 0;
  release_process(p);
}

// ---- receive machinery (process members) ----------------------------------------------------

bool process::receive_ready(detail::receive_state& r) {
  ++st_.reductions;
  --st_.budget;
  drain(this);
  if (st_.flags & kExiting) return false;
  if (st_.budget <= 0) return false;  // yield first: fairness
  if (st_.flags & kHeld) return false;  // held by back-pressure: this receive is where it stops
  return receive_satisfied(this, r);
}

void process::receive_suspend(detail::receive_state& r, std::coroutine_handle<> h) {
  st_.receiving = &r;
  st_.wait = wait_kind::receive;
  st_.resume_point = h;
  if (r.timeout_ms > 0 && !r.timer && !(st_.flags & kExiting)) {
    std::uint32_t token = ++st_.wait_token;
    r.timer = g_rt->timers->start(r.timeout_ms, st_.self_pid, detail::make_envelope<detail::sig_wake>(true, token));
  }
}

void process::receive_done(detail::receive_state& r) noexcept {
  if (r.taken) {
    detail::destroy_envelope(r.taken);
    r.taken = nullptr;
  }
  if (r.timer) {
    g_rt->timers->cancel(r.timer);
    r.timer = 0;
  }
  ++st_.wait_token;  // a wake-up from this receive's timer, if already in flight, is now stale
  st_.receiving = nullptr;
}

void process::suspend_for(detail::wait_kind kind, std::coroutine_handle<> h) noexcept {
  st_.wait = kind;
  st_.resume_point = h;
}

std::uint32_t process::begin_event_wait() {
  st_.flags &= ~kEventFired;
  return ++st_.wait_token;
}

bool process::sleep_ready(std::int64_t ms) {
  if (ms <= 0) {
    if (!(st_.flags & kHeld)) return true;
    st_.flags |= kEventFired;  // held by back-pressure: stops here, ready as soon as released
    return false;
  }
  std::uint32_t token = begin_event_wait();
  g_rt->timers->start(ms, st_.self_pid, detail::make_envelope<detail::sig_wake>(true, token));
  return false;
}

bool process::trap_exit(bool on) {
  bool was = st_.flags & kTrapExit;
  if (on) st_.flags |= kTrapExit;
  else st_.flags &= ~kTrapExit;
  return was;
}

bool process::trapping_exits() const { return st_.flags & kTrapExit; }

std::size_t process::message_queue_len() {
  drain(this);
  return st_.queue_len;
}

// ---- functions on processes ---------------------------------------------------------------------

remote_nodes* install_remote_nodes(remote_nodes* nodes) noexcept {
  return g_remote_nodes.exchange(nodes, std::memory_order_acq_rel);
}

remote_nodes* installed_remote_nodes() noexcept { return g_remote_nodes.load(std::memory_order_acquire); }

void detail::send_remote(pid to, term msg) {
  if (process* cur = detail::tls().current) {
    auto& s = process_access::st(cur);  // a remote send costs a reduction, as a local one does
    --s.budget;
    ++s.reductions;
  }
  if (remote_nodes* nodes = g_remote_nodes.load(std::memory_order_acquire)) {
    if (!nodes->send(self(), to, std::move(msg))) {
      throw send_refused("send to " + to.to_string() + ": the connection to its node is overloaded (its queue is past the hard limit)");
    }
  }
}

void detail::send_named_remote(const name_on_node& to, term msg) {
  if (process* cur = detail::tls().current) {
    auto& s = process_access::st(cur);
    --s.budget;
    ++s.reductions;
  }
  if (remote_nodes* nodes = g_remote_nodes.load(std::memory_order_acquire)) {
    if (!nodes->send_named(self(), to.name, to.node, std::move(msg))) {
      throw send_refused("send to {" + std::string(to.name.name()) + ", " + std::string(to.node.name()) +
                         "}: the connection to that node is overloaded (its queue is past the hard limit)");
    }
  }
}

bool send_alias(const ref& alias, term msg) {
  if (alias.is_local()) {
    const pid owner = alias_owner(alias);
    return owner && send_alias(owner, alias, std::move(msg));
  }
  if (process* cur = detail::tls().current) {
    auto& s = process_access::st(cur);  // a send costs a reduction wherever it goes
    --s.budget;
    ++s.reductions;
  }
  remote_nodes* nodes = g_remote_nodes.load(std::memory_order_acquire);
  if (!nodes) return false;
  if (!nodes->send_alias(self(), alias, std::move(msg))) {
    throw send_refused("send to alias " + alias.to_string() + ": the connection to its node is overloaded (its queue is past the hard limit)");
  }
  return true;
}

pid remote_signals::hold_current_process() noexcept {
  process* cur = detail::tls().current;
  if (!cur) return pid{};
  auto& s = process_access::st(cur);
  s.flags |= detail::kHeld;
  return s.self_pid;
}

bool remote_signals::current_process_held() noexcept {
  process* cur = detail::tls().current;
  return cur && (process_access::st(cur).flags & detail::kHeld);
}

void remote_signals::release_hold(pid p) noexcept {
  if (!p) return;
  try {
    (void)detail::signal<detail::sig_release>(p);
  } catch (...) {
    // No memory for the envelope: the process stays held until the next release (the queue's
    // next drain below its limit releases every waiter again).
  }
}

bool remote_signals::link(pid from, pid to) { return detail::signal<detail::sig_link>(to, from); }
bool remote_signals::unlink(pid from, pid to) { return detail::signal<detail::sig_unlink>(to, from); }
bool remote_signals::exit(pid from, pid to, term reason, bool via_link) {
  return detail::signal<detail::sig_exit>(to, from, std::move(reason), via_link);
}
bool remote_signals::down(pid watcher, ref monitor, pid target, term reason) {
  return detail::signal<detail::sig_down>(watcher, monitor, target, std::move(reason));
}

void detail::throw_not_sendable_remotely(const std::type_info& type) {
  throw std::invalid_argument("athanor::send: a message of type " + demangled(&type) +
                              " cannot go to a process of another node: it does not convert to a term "
                              "(make it convertible with ATHANOR_TERM_STRUCT, or send a term)");
}

pid self() noexcept { return detail::tls().current ? st(detail::tls().current).self_pid : pid(); }

process& this_process() {
  if (!detail::tls().current) throw std::logic_error("athanor::this_process: not called from a process");
  return *detail::tls().current;
}

static process* require_process(const char* what) {
  if (!detail::tls().current) throw std::logic_error(std::string("athanor::") + what + ": must be called from a process");
  return detail::tls().current;
}

void exit(pid target, const term& reason) { detail::signal<detail::sig_exit>(target, self(), reason, false); }

void exit(const term& reason) { throw exit_exception{reason}; }

void link(pid other) {
  process* p = require_process("link");
  pid me = st(p).self_pid;
  if (other == me) return;
  auto& links = extras(p).links;
  if (std::find(links.begin(), links.end(), other) != links.end()) return;
  links.push_back(other);
  if (!detail::signal<detail::sig_link>(other, me)) {
    // OTP 25's link/1: a caller that traps exits gets {'EXIT', Other, noproc}; one that does not
    // gets error:noproc, which it may catch, rather than being killed by the exit signal.
    if (st(p).flags & kTrapExit) {
      detail::signal<detail::sig_exit>(me, other, term(atoms::noproc), true);
    } else {
      remove_pid(links, other);
      throw error_exception(term(atoms::noproc), "athanor::link: no such process: " + other.to_string());
    }
  }
}

void unlink(pid other) {
  process* p = require_process("unlink");
  if (st(p).extras && remove_pid(st(p).extras->links, other)) detail::signal<detail::sig_unlink>(other, st(p).self_pid);
}

ref monitor(pid target) {
  process* p = require_process("monitor");
  pid me = st(p).self_pid;
  ref r = make_ref();
  extras(p).monitors.emplace_back(r, target);
  if (!detail::signal<detail::sig_monitor>(target, me, r)) {
    detail::signal<detail::sig_down>(me, r, target, term(atoms::noproc));
  }
  return r;
}

ref monitor(const name_on_node& target) {
  process* p = require_process("monitor");
  pid me = st(p).self_pid;
  ref r = make_ref();
  extras(p).name_monitors.emplace_back(r, target);
  if (remote_nodes* nodes = g_remote_nodes.load(std::memory_order_acquire)) {
    nodes->monitor_name(me, target.name, target.node, r);
  } else {
    detail::signal<detail::sig_down>(me, r, pid(), term(atom("noconnection")));
  }
  return r;
}

bool demonitor(const ref& r, bool flush) {
  process* p = require_process("demonitor");
  auto& s = st(p);
  pid target;
  bool active = s.extras && remove_ref(s.extras->monitors, r, &target);
  if (active) detail::signal<detail::sig_demonitor>(target, s.self_pid, r);
  name_on_node named;
  if (!active && s.extras && remove_ref(s.extras->name_monitors, r, &named)) {
    active = true;
    if (remote_nodes* nodes = g_remote_nodes.load(std::memory_order_acquire)) {
      nodes->demonitor_name(s.self_pid, named.name, named.node, r);
    }
  }
  if (flush) {
    drain(p);
    envelope* prev = nullptr;
    for (envelope* e = s.queue_head; e;) {
      envelope* next = e->next;
      if (e->type == detail::type_of<down>() && detail::payload<down>(e).monitor == r) {
        unlink_message(s, prev, e);
        if (s.receiving && s.receiving->scanned == e) s.receiving->scanned = prev;
        detail::destroy_envelope(e);
      } else {
        prev = e;
      }
      e = next;
    }
  }
  return active;
}

// ---- aliases ------------------------------------------------------------------------------------

// alias() makes a reference of five words, as OTP's aliases are: a fresh reference's three, and
// the owner's pid (index, generation), so that a message arriving for it from another node
// (ALIAS_SEND) finds its process without a table every alias would have to enter and leave.
ref alias() {
  process* p = require_process("alias");
  const ref fresh = make_ref();
  const pid owner = st(p).self_pid;
  const std::uint32_t words[5] = {fresh.words()[0], fresh.words()[1], fresh.words()[2], owner.index(), owner.generation()};
  ref r = ref::from_words(0, words);
  alias(r);
  return r;
}

pid alias_owner(const ref& r) noexcept {
  if (!r.is_local() || r.word_count() != 5) return pid();
  return pid(0, r.words()[3], r.words()[4]);
}

void alias(const ref& r) {
  auto& aliases = extras(require_process("alias")).aliases;
  if (std::find(aliases.begin(), aliases.end(), r) == aliases.end()) aliases.push_back(r);
}

bool unalias(const ref& r) {
  process* p = require_process("unalias");
  if (!st(p).extras) return false;
  auto& v = st(p).extras->aliases;
  auto it = std::find(v.begin(), v.end(), r);
  if (it == v.end()) return false;
  erase_unordered(v, it);
  return true;
}

bool detail::deliver_aliased(pid owner, const ref& r, envelope* e) noexcept {
  envelope* sig;
  try {
    sig = detail::make_envelope<detail::sig_alias>(true, r, e);
  } catch (...) {
    detail::destroy_envelope(e);
    return false;
  }
  return detail::deliver(owner, sig);
}

bool is_alive(pid p) noexcept {
  runtime::impl* rt = g_rt;
  if (!rt || !p.is_local() || p.index() == 0 || p.index() > rt->cfg.max_processes) return false;
  if (p.index() >= rt->constructed.load(std::memory_order_acquire)) return false;
  std::uintptr_t w = st(rt->slot_of(p)).inbox.load(std::memory_order_acquire);
  return detail::inbox_tag(w) == (p.generation() & 0xFFFF) && detail::inbox_ptr(w) != detail::kInboxClosed;
}

std::vector<pid> processes() {
  std::vector<pid> out;
  runtime::impl* rt = g_rt;
  if (!rt) return out;
  out.reserve(std::size_t(std::max<std::int64_t>(0, rt->live.load(std::memory_order_relaxed))) + 16);
  std::uint32_t n = rt->constructed.load(std::memory_order_acquire);
  for (std::uint32_t i = 1; i < n; ++i) {
    auto& s = st(rt->table + i);
    // The inbox word is stored after the generation when a slot is taken (allocate_process), so
    // an open inbox read here comes with its generation; the tag check drops a slot reused between
    // the two loads.
    std::uintptr_t w = s.inbox.load(std::memory_order_acquire);
    if (detail::inbox_ptr(w) == kInboxClosed) continue;
    std::uint32_t gen = s.generation.load(std::memory_order_acquire);
    if (detail::inbox_tag(w) != (gen & 0xFFFF)) continue;
    out.push_back(pid(0, i, gen));
  }
  return out;
}

// ---- registered names ---------------------------------------------------------------------------

bool register_name(atom name, pid p) {
  runtime::impl* rt = g_rt;
  if (!rt || !is_alive(p)) return false;
  std::unique_lock lock(rt->names_mu);
  auto it = rt->names.find(name);
  if (it != rt->names.end()) {
    if (is_alive(it->second)) return false;
    rt->name_of.erase(it->second);  // a stale entry left by a race with an ending process
    rt->names.erase(it);
  }
  if (rt->name_of.count(p)) return false;
  rt->names.emplace(name, p);
  rt->name_of.emplace(p, name);
  st(rt->slot_of(p)).named.store(true, std::memory_order_release);
  return true;
}

bool unregister(atom name) {
  runtime::impl* rt = g_rt;
  if (!rt) return false;
  std::unique_lock lock(rt->names_mu);
  auto it = rt->names.find(name);
  if (it == rt->names.end()) return false;
  rt->name_of.erase(it->second);
  rt->names.erase(it);
  return true;
}

pid whereis(atom name) noexcept { return detail::whereis_name(name); }

pid detail::whereis_name(atom name) noexcept {
  runtime::impl* rt = g_rt;
  if (!rt) return pid();
  std::shared_lock lock(rt->names_mu);
  auto it = rt->names.find(name);
  if (it == rt->names.end() || !is_alive(it->second)) return pid();
  return it->second;
}

std::vector<atom> registered() {
  std::vector<atom> out;
  runtime::impl* rt = g_rt;
  if (!rt) return out;
  std::shared_lock lock(rt->names_mu);
  for (auto& [name, p] : rt->names)
    if (is_alive(p)) out.push_back(name);
  return out;
}

// ---- process_info -------------------------------------------------------------------------------

namespace {

process_info_t make_info(process* p, bool dying, bool asked_by_self) {
  auto& s = st(p);
  process_info_t info;
  info.id = s.self_pid;
  if (dying || (s.flags & kExiting)) info.status = process_info_t::status_t::exiting;
  else if (asked_by_self) info.status = process_info_t::status_t::running;
  else if ((s.flags & kHeld) && s.wait != wait_kind::none) info.status = process_info_t::status_t::suspended;
  else if (s.wait == wait_kind::receive || s.wait == wait_kind::event) info.status = process_info_t::status_t::waiting;
  else info.status = process_info_t::status_t::runnable;
  info.message_queue_len = s.queue_len;
  info.memory_bytes = detail::kProcessBlockBytes + std::size_t(std::max<std::int64_t>(0, s.memory));
  info.reductions = s.reductions;
  info.trap_exit = s.flags & kTrapExit;
  if (s.extras) {
    info.links = s.extras->links;
    for (auto& [r, t] : s.extras->monitors) info.monitors.push_back(t);
    for (auto& [r, w] : s.extras->monitored_by) info.monitored_by.push_back(w);
  }
  if (runtime::impl* rt = g_rt) {
    std::shared_lock lock(rt->names_mu);
    auto it = rt->name_of.find(s.self_pid);
    if (it != rt->name_of.end()) info.registered_name = it->second;
  }
  return info;
}

struct info_reply {
  ref request;
  std::optional<process_info_t> info;
};

}  // namespace

std::optional<process_info_t> process_info(pid target) {
  if (process* cur = detail::tls().current) {
    if (st(cur).self_pid == target) {
      drain(cur);
      return make_info(cur, false, true);
    }
    throw std::logic_error("athanor::process_info: inside a process, use co_await process_info_async(pid)");
  }
  auto promise = std::make_shared<std::promise<std::optional<process_info_t>>>();
  auto fut = promise->get_future();
  bool sent = detail::signal<detail::sig_apply>(target, detail::sig_apply{[promise](process& p, bool dying) {
    promise->set_value(dying ? std::nullopt : std::optional<process_info_t>(make_info(&p, false)));
  }});
  if (!sent) return std::nullopt;
  return fut.get();
}

task<std::optional<process_info_t>> process_info_async(pid target) {
  process& me = this_process();
  if (me.self() == target) co_return process_info(target);
  ref request = make_ref();
  pid asker = me.self();
  bool sent = detail::signal<detail::sig_apply>(target, detail::sig_apply{[asker, request](process& p, bool dying) {
    send(asker, info_reply{request, dying ? std::nullopt : std::optional<process_info_t>(make_info(&p, false))});
  }});
  if (!sent) co_return std::nullopt;
  info_reply reply = co_await me.receive(on<info_reply>([request](const info_reply& r) { return r.request == request; },
                                                         [](info_reply& r) { return std::move(r); }));
  co_return std::move(reply.info);
}

}  // namespace athanor
