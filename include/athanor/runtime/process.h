// athanor::process: a lightweight, isolated process with a mailbox, and the functions that act on
// processes (spawn, send, exit, link, monitor, registered names). A `process&` is handed to the
// process's own body and must only be used by that body (not thread-safe); the free functions are
// thread-safe and may be called from any process or from any other thread unless they say otherwise.
//
// Semantics follow Erlang's reference manual, chapter "Processes":
//  * send to a pid that has ended, or to the null pid, is a silent no-op;
//  * messages between one sender and one receiver arrive in the order sent;
//  * receive takes the first message (in arrival order) that matches any clause and leaves the
//    rest in place, in order;
//  * links are bidirectional; an exit signal with reason `normal` does not end a process that
//    does not trap exits; `exit(pid, kill)` cannot be trapped and ends the target with `killed`;
//    a process that traps exits receives exit signals as `exit_signal` messages;
//  * a monitor delivers exactly one `down` message, with reason `noproc` if the target did not
//    exist; after demonitor() returns no `down` for that monitor is delivered.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <typeinfo>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "athanor/runtime/message.h"
#include "athanor/runtime/proc.h"
#include "athanor/runtime/remote.h"
#include "athanor/term/atom.h"
#include "athanor/term/convert.h"
#include "athanor/term/match.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

class process;

// The message a process that traps exits receives for an exit signal: Erlang's {'EXIT', From, Reason}.
struct exit_signal {
  pid from;
  term reason;
};

// The message a monitor delivers when its target ends: Erlang's {'DOWN', Ref, process, Pid, Reason}.
struct down {
  ref monitor;
  pid from;
  term reason;
};

// Thrown by exit(reason) inside a process; ends the process with `reason`. Do not catch it.
// Uncaught, it is a deliberate end: the runtime does not log it (OTP's rule for exit/1).
struct exit_exception {
  term reason;
};

// Thrown by a runtime function that fails the way the matching Erlang BIF raises error:Reason
// (link/1 to a process that does not exist raises `noproc`). Catchable as a std::exception;
// uncaught, it ends the process with `reason` itself (not {exception, ...}) and, being an error
// rather than an exit, is logged as one. A value type.
struct error_exception : std::exception {
  error_exception(term why, std::string message) : reason(std::move(why)), text(std::move(message)) {}
  const char* what() const noexcept override { return text.c_str(); }
  term reason;
  std::string text;
};

// Options for spawn(); the defaults give Erlang's plain spawn/1.
struct spawn_options {
  bool link = false;                  // link the new process to the caller (spawn_link)
  bool trap_exit = false;             // start with trap_exit set
  std::size_t max_heap_bytes = 0;     // memory limit for this process (0: the runtime's default)
};

namespace detail {

struct process_extras;
struct scheduler_slot;

// A running receive: lives in the awaiting coroutine's frame while the process waits.
struct receive_state {
  bool (*match)(receive_state*, envelope*) = nullptr;  // true if the envelope satisfies a clause
  envelope* taken = nullptr;                            // the matched message, unlinked
  envelope* scanned = nullptr;                          // last message tried (later scans start after it)
  std::int64_t timeout_ms = -1;                         // -1: wait forever
  std::uint64_t timer = 0;                              // armed timeout timer (0: none)
  int clause = -1;                                      // index of the matching clause
  bool timed_out = false;
};

// The stored body of a process: keeps the callable (and its captures) alive
// for the process's whole life, because a coroutine lambda's captures live in
// the closure object, not in the coroutine frame.
struct closure_base {
  virtual proc invoke(process& self) = 0;
  virtual void destroy() noexcept = 0;

 protected:
  ~closure_base() = default;
};

template <class F>
struct closure final : closure_base {
  F fn;
  explicit closure(F&& f) : fn(std::move(f)) {}
  proc invoke(process& self) override { return std::invoke(fn, self); }
  void destroy() noexcept override {
    this->~closure();
    pool_free(this, sizeof(closure));
  }
};

template <class F>
closure_base* make_closure(F&& f) {
  using C = closure<std::decay_t<F>>;
  void* mem = pool_alloc(sizeof(C));
  try {
    return ::new (mem) C(std::decay_t<F>(std::forward<F>(f)));
  } catch (...) {
    pool_free(mem, sizeof(C));
    throw;
  }
}

pid spawn_closure(closure_base* body, const spawn_options& opts, ref* monitor_out);
bool deliver(pid to, envelope* e) noexcept;             // false (and e destroyed) if `to` has ended
process* current_process() noexcept;
pid whereis_name(atom name) noexcept;

enum class wait_kind : std::uint8_t { none, yield, receive, event, exiting };

// The process_state flag of a process held by back-pressure (remote.h): its suspension points,
// consume() included, stop it until it is released.
inline constexpr std::uint8_t kHeldFlag = 128;

}  // namespace detail

// ---------------------------------------------------------------------------
// Receive clauses: on<T>(handler), on<T>(guard, handler), after(timeout, handler), and the
// pattern clauses on(pattern, handler) and on(pattern, guard, handler) of athanor/term/match.h,
// which take messages sent as `term`. Both kinds mix in one receive.

namespace detail {
template <class F>
struct sole_arg : sole_arg<decltype(&F::operator())> {};
template <class C, class R, class A>
struct sole_arg<R (C::*)(A) const> { using type = std::remove_cvref_t<A>; };
template <class C, class R, class A>
struct sole_arg<R (C::*)(A)> { using type = std::remove_cvref_t<A>; };
template <class R, class A>
struct sole_arg<R (*)(A)> { using type = std::remove_cvref_t<A>; };

template <class T, class G, class F>
struct on_clause {
  using message_type = T;
  G guard;
  F handler;
};
struct no_guard {
  template <class T>
  constexpr bool operator()(const T&) const { return true; }
};
template <class F>
struct after_clause {
  std::chrono::milliseconds timeout;
  F handler;
};
template <class C>
struct is_after : std::false_type {};
template <class F>
struct is_after<after_clause<F>> : std::true_type {};
}  // namespace detail

// A clause that takes the first message of type T. The handler receives the message (by value or reference).
template <class T, class F>
auto on(F handler) { return detail::on_clause<T, detail::no_guard, F>{{}, std::move(handler)}; }
// Same, with the message type deduced from the handler's parameter.
template <class F>
auto on(F handler) { return on<typename detail::sole_arg<F>::type>(std::move(handler)); }
// A clause that takes the first message of type T for which guard(const T&) is true.
template <class T, class G, class F>
auto on(G guard, F handler) { return detail::on_clause<T, G, F>{std::move(guard), std::move(handler)}; }
// The timeout clause: runs `handler()` if no clause matched within `timeout` (0: poll). Must be last.
template <class Rep, class Period, class F>
auto after(std::chrono::duration<Rep, Period> timeout, F handler) {
  return detail::after_clause<F>{std::chrono::ceil<std::chrono::milliseconds>(timeout), std::move(handler)};
}

namespace detail {
// The fields of a process (see process.cpp for who may touch which).
struct process_state {
  // ---- shared with other threads ----
  // The inbox: a lock-free stack of envelopes (LIFO; reversed when taken), tagged with the low 16
  // bits of this slot's generation so that a sender holding a stale pid can never push into a newer
  // process that reuses the slot. Special values mark "parked, waiting for a push" and "ended".
  std::atomic<std::uintptr_t> inbox{0};
  std::atomic<std::uint32_t> generation{0};  // of the current (or last) incarnation of this slot
  std::atomic<bool> named{false};            // has (or had) a registered name: checked when it ends

  // ---- owned by the thread running this process ----
  athanor::pid self_pid;
  std::coroutine_handle<> body;          // the top-level frame (proc)
  std::coroutine_handle<> resume_point;  // innermost suspended coroutine
  detail::envelope* queue_head = nullptr;  // received messages not yet taken, in arrival order
  detail::envelope* queue_tail = nullptr;
  detail::receive_state* receiving = nullptr;
  process* run_link = nullptr;             // intrusive link in the global run queue
  detail::closure_base* closure = nullptr;
  detail::process_extras* extras = nullptr;  // links, monitors, name, exit reason: allocated on first use
  std::uint64_t reductions = 0;
  std::int64_t memory = 0;                 // bytes charged: frames and queued messages
  std::int32_t budget = 0;                 // reductions left in this time slice
  std::uint32_t queue_len = 0;
  std::uint32_t wait_token = 0;            // identifies the current wait; stale wake-ups carry old tokens
  detail::wait_kind wait = detail::wait_kind::none;
  std::uint8_t flags = 0;
};
}  // namespace detail

// ---------------------------------------------------------------------------

class process {
 public:
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  // This process's pid.
  pid self() const { return st_.self_pid; }

  // co_await receive<T>(): the first message of type T; receive<A, B>(): the first of A or B, as a variant.
  template <class... T>
  auto receive();
  // co_await receive_for<T>(d): the first message of type T, or nullopt if none arrives within d.
  template <class T, class Rep, class Period>
  auto receive_for(std::chrono::duration<Rep, Period> d);
  // co_await receive(on<A>(...), on<B>(guard, ...), after(100ms, ...)): selective receive over clauses;
  // the value is what the chosen handler returns (all handlers must return the same type).
  // Pattern clauses, on(tuple("hello"_a, _s), [](std::string_view name) { ... }), match
  // messages sent as `term` (see athanor/term/match.h) and mix with typed ones.
  template <class... C>
    requires(sizeof...(C) > 0)
  auto receive(C... clauses);

  // co_await receive_any(): the first message, whatever its type (for generic servers).
  auto receive_any();
  // co_await receive_any_for(d): the first message, or an empty message if none arrives within d.
  template <class Rep, class Period>
  auto receive_any_for(std::chrono::duration<Rep, Period> d);

  // co_await yield(): lets other processes run; resumes after them.
  auto yield();
  // co_await consume(n): charges n reductions; suspends (yields) only when this time slice is used
  // up, so it is cheap enough for the body of a long loop.
  auto consume(std::int32_t reductions = 1);
  // co_await sleep(d): suspends for d (messages stay in the mailbox).
  template <class Rep, class Period>
  auto sleep(std::chrono::duration<Rep, Period> d);

  // Sets whether exit signals become exit_signal messages; returns the previous value.
  bool trap_exit(bool on);
  bool trapping_exits() const;

  // Number of messages received but not yet taken (the ones a receive has skipped, plus new ones).
  std::size_t message_queue_len();

  // Reductions charged so far.
  std::uint64_t reductions() const { return st_.reductions; }

 private:
  friend class runtime;
  friend struct process_access;
  process() = default;
  ~process() = default;

  template <class Derived>
  struct receive_awaiter_base;
  template <class... T>
  struct [[nodiscard]] types_awaiter;
  template <class T>
  struct [[nodiscard]] for_awaiter;
  template <class... C>
  struct [[nodiscard]] clauses_awaiter;
  struct [[nodiscard]] any_awaiter;
  struct [[nodiscard]] yield_awaiter;
  struct [[nodiscard]] consume_awaiter;
  struct [[nodiscard]] event_awaiter;

  // Receive machinery (process.cpp).
  bool receive_ready(detail::receive_state& st);
  void receive_suspend(detail::receive_state& st, std::coroutine_handle<> h);
  void receive_done(detail::receive_state& st) noexcept;
  void suspend_for(detail::wait_kind kind, std::coroutine_handle<> h) noexcept;
  std::uint32_t begin_event_wait();  // returns the token a wake-up must carry
  bool sleep_ready(std::int64_t ms);

  detail::process_state st_;
};

// ---- awaiters -----------------------------------------------------------

template <class Derived>
struct process::receive_awaiter_base : detail::receive_state {
  process* self;
  explicit receive_awaiter_base(process* p) : self(p) { match = &Derived::match_envelope; }
  bool await_ready() { return self->receive_ready(*this); }
  void await_suspend(std::coroutine_handle<> h) { self->receive_suspend(*this, h); }
  // Destroys the taken envelope when the awaiter is done with it.
  struct taken_guard {
    process* self;
    detail::receive_state* st;
    ~taken_guard() { self->receive_done(*st); }
  };
};

template <class... T>
struct [[nodiscard]] process::types_awaiter : receive_awaiter_base<types_awaiter<T...>> {
  using result = std::conditional_t<sizeof...(T) == 1, std::tuple_element_t<0, std::tuple<T...>>, std::variant<T...>>;
  using receive_awaiter_base<types_awaiter<T...>>::receive_awaiter_base;
  static bool match_envelope(detail::receive_state* st, detail::envelope* e) {
    int i = 0;
    bool found = ((e->type == detail::type_of<T>() ? true : (++i, false)) || ...);
    st->clause = i;
    return found;
  }
  result await_resume() {
    typename receive_awaiter_base<types_awaiter<T...>>::taken_guard g{this->self, this};
    if constexpr (sizeof...(T) == 1) {
      return std::move(detail::payload<result>(this->taken));
    } else {
      return take(std::index_sequence_for<T...>{});
    }
  }
  template <std::size_t... I>
  result take(std::index_sequence<I...>) {
    std::optional<result> out;
    (void)((this->clause == int(I)
                ? (out.emplace(std::in_place_index<I>, std::move(detail::payload<std::tuple_element_t<I, std::tuple<T...>>>(this->taken))),
                   true)
                : false) ||
           ...);
    return std::move(*out);
  }
};

template <class... T>
auto process::receive() {
  static_assert(sizeof...(T) > 0, "receive<T...>() needs at least one message type");
  return types_awaiter<T...>(this);
}

template <class T>
struct [[nodiscard]] process::for_awaiter : receive_awaiter_base<for_awaiter<T>> {
  using receive_awaiter_base<for_awaiter<T>>::receive_awaiter_base;
  static bool match_envelope(detail::receive_state* st, detail::envelope* e) {
    st->clause = 0;
    return e->type == detail::type_of<T>();
  }
  std::optional<T> await_resume() {
    typename receive_awaiter_base<for_awaiter<T>>::taken_guard g{this->self, this};
    if (!this->taken) return std::nullopt;
    return std::optional<T>(std::move(detail::payload<T>(this->taken)));
  }
};

template <class T, class Rep, class Period>
auto process::receive_for(std::chrono::duration<Rep, Period> d) {
  for_awaiter<T> a(this);
  a.timeout_ms = std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(d).count());
  return a;
}

namespace detail {
template <class C>
struct clause_result {
  using type = decltype(std::invoke(std::declval<decltype(std::declval<C&>().handler)&>(),
                                    std::declval<typename C::message_type&>()));
};
template <class F>
struct clause_result<after_clause<F>> {
  using type = decltype(std::invoke(std::declval<F&>()));
};
template <class C>
  requires term_clause<C>
struct clause_result<C> {
  using type = typename C::result_type;
};
}  // namespace detail

template <class... C>
struct [[nodiscard]] process::clauses_awaiter : receive_awaiter_base<clauses_awaiter<C...>> {
  using result = std::common_type_t<typename detail::clause_result<C>::type...>;
  std::tuple<C...> cl;
  clauses_awaiter(process* p, std::tuple<C...>&& c) : receive_awaiter_base<clauses_awaiter<C...>>(p), cl(std::move(c)) {}
  static bool match_envelope(detail::receive_state* st, detail::envelope* e) {
    auto* self = static_cast<clauses_awaiter*>(st);
    return self->match_at(e, std::index_sequence_for<C...>{});
  }
  template <std::size_t... I>
  bool match_at(detail::envelope* e, std::index_sequence<I...>) {
    return ((try_clause<I>(e)) || ...);
  }
  template <std::size_t I>
  bool try_clause(detail::envelope* e) {
    using clause_t = std::tuple_element_t<I, std::tuple<C...>>;
    if constexpr (detail::is_after<clause_t>::value) {
      return false;
    } else if constexpr (detail::term_clause<clause_t>) {
      // A pattern clause: matches a term message, keeping its bindings in the clause (in this
      // awaiter, so no allocation) until await_resume runs the handler.
      if (e->type != detail::type_of<term>()) return false;
      if (!std::get<I>(cl).test(detail::payload<term>(e))) return false;
      this->clause = int(I);
      return true;
    } else {
      using T = typename clause_t::message_type;
      if (e->type != detail::type_of<T>()) return false;
      if (!std::get<I>(cl).guard(std::as_const(detail::payload<T>(e)))) return false;
      this->clause = int(I);
      return true;
    }
  }
  result await_resume() {
    typename receive_awaiter_base<clauses_awaiter<C...>>::taken_guard g{this->self, this};
    if constexpr (std::is_void_v<result>) {
      run(std::index_sequence_for<C...>{});
    } else {
      std::optional<result> out;
      run(std::index_sequence_for<C...>{}, &out);
      return std::move(*out);
    }
  }
  template <std::size_t... I, class Out = void>
  void run(std::index_sequence<I...>, Out* out = nullptr) {
    (run_clause<I>(out), ...);
  }
  template <std::size_t I, class Out>
  void run_clause(Out* out) {
    using clause_t = std::tuple_element_t<I, std::tuple<C...>>;
    auto& c = std::get<I>(cl);
    if constexpr (detail::is_after<clause_t>::value) {
      if (this->taken) return;
      if constexpr (std::is_void_v<Out>) std::invoke(c.handler);
      else out->emplace(std::invoke(c.handler));
    } else if constexpr (detail::term_clause<clause_t>) {
      if (!this->taken || this->clause != int(I)) return;
      if constexpr (std::is_void_v<Out>) c.run(detail::payload<term>(this->taken));
      else out->emplace(c.run(detail::payload<term>(this->taken)));
    } else {
      if (!this->taken || this->clause != int(I)) return;
      using T = typename clause_t::message_type;
      if constexpr (std::is_void_v<Out>) std::invoke(c.handler, detail::payload<T>(this->taken));
      else out->emplace(std::invoke(c.handler, detail::payload<T>(this->taken)));
    }
  }
};

template <class... C>
  requires(sizeof...(C) > 0)
auto process::receive(C... clauses) {
  constexpr std::size_t n = sizeof...(C);
  constexpr bool has_after = detail::is_after<std::tuple_element_t<n - 1, std::tuple<C...>>>::value;
  static_assert(((!detail::is_after<C>::value) + ...) >= int(n) - 1, "after() must be the last clause");
  clauses_awaiter<C...> a(this, std::tuple<C...>(std::move(clauses)...));
  if constexpr (has_after) a.timeout_ms = std::max<std::int64_t>(0, std::get<n - 1>(a.cl).timeout.count());
  return a;
}

struct [[nodiscard]] process::any_awaiter : receive_awaiter_base<any_awaiter> {
  using receive_awaiter_base<any_awaiter>::receive_awaiter_base;
  static bool match_envelope(detail::receive_state* st, detail::envelope*) {
    st->clause = 0;
    return true;
  }
  message await_resume() {
    typename receive_awaiter_base<any_awaiter>::taken_guard g{this->self, this};
    return message(std::exchange(this->taken, nullptr));
  }
};
inline auto process::receive_any() { return any_awaiter(this); }
template <class Rep, class Period>
auto process::receive_any_for(std::chrono::duration<Rep, Period> d) {
  any_awaiter a(this);
  a.timeout_ms = std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(d).count());
  return a;
}

struct [[nodiscard]] process::yield_awaiter {
  process* self;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { self->suspend_for(detail::wait_kind::yield, h); }
  void await_resume() const noexcept {}
};
inline auto process::yield() { return yield_awaiter{this}; }

struct [[nodiscard]] process::consume_awaiter {
  process* self;
  std::int32_t n;
  bool await_ready() const noexcept {
    self->st_.reductions += std::uint64_t(n);
    return (self->st_.budget -= n) > 0 && !(self->st_.flags & detail::kHeldFlag);
  }
  void await_suspend(std::coroutine_handle<> h) noexcept { self->suspend_for(detail::wait_kind::yield, h); }
  void await_resume() const noexcept {}
};
inline auto process::consume(std::int32_t n) { return consume_awaiter{this, n}; }

struct [[nodiscard]] process::event_awaiter {
  process* self;
  std::int64_t ms;
  bool await_ready() { return self->sleep_ready(ms); }
  void await_suspend(std::coroutine_handle<> h) noexcept { self->suspend_for(detail::wait_kind::event, h); }
  void await_resume() const noexcept {}
};
template <class Rep, class Period>
auto process::sleep(std::chrono::duration<Rep, Period> d) {
  return event_awaiter{this, std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(d).count())};
}

// ---------------------------------------------------------------------------
// Functions on processes. Unless noted, callable from any thread.

// Starts a process running `body(self)`, which must return athanor::proc. The callable is moved
// into the process and lives as long as it. Returns the new pid; throws athanor::system_limit_error
// when the process limit is reached, and what the pool throws on memory exhaustion.
template <class F>
pid spawn(F&& body) {
  return detail::spawn_closure(detail::make_closure(std::forward<F>(body)), spawn_options{}, nullptr);
}
template <class F>
pid spawn(const spawn_options& opts, F&& body) {
  return detail::spawn_closure(detail::make_closure(std::forward<F>(body)), opts, nullptr);
}
// spawn and link to the calling process in one step (the child cannot end unlinked). Call from a process.
template <class F>
pid spawn_link(F&& body) {
  spawn_options o;
  o.link = true;
  return spawn(o, std::forward<F>(body));
}
// spawn and monitor in one step. Returns the pid and the monitor's reference. Call from a process.
template <class F>
std::pair<pid, ref> spawn_monitor(F&& body) {
  ref r;
  pid p = detail::spawn_closure(detail::make_closure(std::forward<F>(body)), spawn_options{}, &r);
  return {p, r};
}

// A process registered as `name` on node `node`: Erlang's {Name, Node} as a destination.
struct name_on_node {
  atom name;
  atom node;
};

namespace detail {
// Hands a message for a process of another node to the installed remote_nodes (remote.h).
// Throws send_refused (remote.h) when the connection refuses it.
void send_remote(pid to, term msg);
// Hands a message for {Name, Node} to the installed remote_nodes; throws as send_remote.
void send_named_remote(const name_on_node& to, term msg);
// Throws std::invalid_argument: a message of this type cannot go to another node.
[[noreturn]] void throw_not_sendable_remotely(const std::type_info& type);
}  // namespace detail

// Sends `msg` to `to`, moving it. Sending to a pid that has ended is a silent no-op.
//
// To a process of another node (to.node() != 0) the message travels as a term: a `term` as it is,
// any other type through to_term() (types with ATHANOR_TERM_STRUCT, strings, numbers,
// containers of those: see athanor/term/convert.h). A type that does not convert throws
// std::invalid_argument naming the type: a message is never silently lost because of its type.
// A connection that is overloaded past its hard limit refuses the message with
// athanor::send_refused (remote.h); below that, a sender to a busy connection is suspended at its
// next suspension point until the connection drains (Erlang's dist_buf_busy_limit).
// Local sends pay one branch for this.
template <class T>
void send(pid to, T&& msg) {
  using value_type = std::remove_cvref_t<T>;
  if (!to.is_local()) [[unlikely]] {
    if constexpr (std::is_same_v<value_type, term>) {
      detail::send_remote(to, term(std::forward<T>(msg)));
    } else if constexpr (term_writable<value_type>) {
      detail::send_remote(to, to_term(msg));
    } else {
      detail::throw_not_sendable_remotely(typeid(value_type));
    }
    return;
  }
  detail::deliver(to, detail::make_envelope<value_type>(false, std::forward<T>(msg)));
}
// Sends `msg` to the process registered as `to.name` on node `to.node` (Erlang's
// {Name, Node} ! Msg), through the distribution layer (remote.h), which connects to that node
// first if needed; the message travels as a term, converted as for a remote pid. Dropped, as in
// Erlang, when the node cannot be reached or nothing there has that name. Throws
// std::invalid_argument for a type that does not convert to a term, and send_refused as send()
// to a remote pid does.
template <class T>
void send(const name_on_node& to, T&& msg) {
  using value_type = std::remove_cvref_t<T>;
  if constexpr (std::is_same_v<value_type, term>) {
    detail::send_named_remote(to, term(std::forward<T>(msg)));
  } else if constexpr (term_writable<value_type>) {
    detail::send_named_remote(to, to_term(msg));
  } else {
    detail::throw_not_sendable_remotely(typeid(value_type));
  }
}

// Sends to a registered name. Returns false (and drops msg) if no process has that name.
template <class T>
bool send(atom name, T&& msg) {
  pid p = detail::whereis_name(name);
  if (!p) return false;
  send(p, std::forward<T>(msg));
  return true;
}

// The calling process's pid, or the null pid when not called from a process.
pid self() noexcept;
// The calling process (for library code running inside a process); throws std::logic_error outside one.
process& this_process();

// Sends an exit signal to `target` (Erlang's exit/2).
void exit(pid target, const term& reason);
// Ends the calling process with `reason` (Erlang's exit/1): throws exit_exception; call from a process.
[[noreturn]] void exit(const term& reason);

// Links the calling process and `other` (Erlang's link/1); linking to itself or to a process
// already linked does nothing. If `other` does not exist, as OTP 25 does: a caller that traps
// exits receives {'EXIT', Other, noproc} (an exit_signal), and one that does not gets an
// error_exception with reason `noproc` (uncaught, it ends the caller with `noproc`) and no link.
// Call from a process (std::logic_error otherwise).
void link(pid other);
// Removes a link; no exit signal from it is delivered after this returns. Call from a process.
void unlink(pid other);
// Monitors `target`; returns the monitor's reference. Call from a process.
ref monitor(pid target);
// Monitors the process registered as `target.name` on node `target.node` (Erlang's
// monitor(process, {Name, Node})), through the distribution layer (remote.h); returns the
// monitor's reference. Its `down` has the null pid as `from`, and reason `noproc` if nothing has
// that name there, `noconnection` if the node cannot be reached (at once when no distribution
// layer is installed). For a name on this node, use whereis() and monitor(pid). Call from a process.
ref monitor(const name_on_node& target);
// Removes a monitor; returns true if it was active. With flush, also removes its `down`
// message if it has already arrived. Call from a process.
bool demonitor(const ref& monitor, bool flush = false);

// Registers `name` for `p` (Erlang's register/2). Returns false if the name is taken, p already has
// a name, or p is not alive. A name is released when its process ends.
bool register_name(atom name, pid p);
// Removes a registered name; returns false if it was not registered.
bool unregister(atom name);
// The pid registered under `name`, or the null pid.
pid whereis(atom name) noexcept;
// All registered names.
std::vector<atom> registered();

// True if `p` is a local process that has not ended.
bool is_alive(pid p) noexcept;

}  // namespace athanor
