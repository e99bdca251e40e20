// Tasks: Elixir's Task — a process that runs one function and sends its result back to the
// process that started it — and async_stream, a bounded parallel map. The free functions must be
// called (co_awaited) from a process; an async_task<T> is a plain value, but only the process
// that started it (its owner) may await it.
//
//   async_task<int> t = async([] { return expensive(); });      // linked to the caller
//   int v = co_await await(t);                                   // 5 s at most, or the caller exits
//
//   std::vector<int> squares = co_await async_stream(std::vector<int>{1, 2, 3}, [](int x) { return x * x; });
//
//   pid sup = (co_await task_supervisor::start_link()).value();
//   async_task<int> u = co_await task_supervisor::async_nolink(sup, [] { return risky(); });
//   try { int w = co_await await(u); } catch (const task_exit_error& e) { /* the task crashed */ }
//
// Semantics (Elixir's Task and Task.Supervisor, rule by rule in tests/otp/task_test.cpp):
//  * async(fn) starts a process linked to the caller and monitored by it; fn is a callable
//    returning a value (or void), or a coroutine returning athanor::task<T>. If fn throws, the
//    task ends with {exception, <<"what">>} and, through the link, so does the caller unless it
//    traps exits.
//  * await(t, timeout) returns the result. If the task ended first, it exits the caller (throws
//    task_exit_error) with {Reason, {'Elixir.Task', await, [Task, Timeout]}}; after the timeout
//    with {timeout, {'Elixir.Task', await, [Task, Timeout]}} — as Elixir's exit/1, the error can
//    be caught, but left uncaught it ends the caller and, through the link, the task.
//  * await_for(t, timeout) is Task.yield: the result, the task's exit reason if it ended, or
//    nullopt if neither came in time (the task keeps running and may be awaited again).
//  * shutdown(t) unlinks and stops the task (exit(Task, shutdown), killed after the policy's
//    timeout; or brutal_kill) and returns a result that arrived meanwhile, its exit reason if it
//    ended otherwise, or nullopt.
//  * task_supervisor runs tasks as temporary children of a dynamic_supervisor. async_nolink's
//    task is monitored by the caller but not linked to it: if it crashes, await throws
//    task_exit_error with its reason instead of the caller being killed; if the caller ends, the
//    task goes on (the supervisor stops it when it stops itself).
//  * Replies travel through an alias that is deactivated once the result or the task's end has
//    been seen (or await gave up), so a late reply never lands in the caller's mailbox. Like
//    Elixir, a caller that traps exits still gets the task's {'EXIT', Pid, normal}.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "athanor/otp/dynamic_supervisor.h"
#include "athanor/otp/gen_server.h"
#include "athanor/runtime/alias.h"
#include "athanor/runtime/process.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

// The exit a task operation raises in its caller (Elixir's exit from Task.await and friends).
// `reason` (the exit_exception's) is {Why, {Module, Function, Args}}; `why` is the bare reason:
// `timeout`, or the task's exit reason. A value type; thread-safe to copy.
struct task_exit_error : exit_exception, std::exception {
  task_exit_error(term why, term where);
  const char* what() const noexcept override { return text.c_str(); }
  term why;
  std::string text;
};

namespace detail {

// What a task sends back: its result, tagged with the alias it was started for.
template <class W>
struct task_reply {
  ref tag;
  W value;
};

// A task's value type: fn's return type, or T for a coroutine returning task<T>.
template <class R>
struct task_value { using type = R; static constexpr bool is_task = false; };
template <class T>
struct task_value<task<T>> { using type = T; static constexpr bool is_task = true; };

template <class F, class... A>
using task_value_t = typename task_value<std::invoke_result_t<F&, A...>>::type;

// Runs fn(args...) (awaiting it when it is a coroutine) and returns its value on the wire type.
template <class F, class... A>
task<wire_t<task_value_t<F, A...>>> run_task_fn(F& fn, A... args) {
  using R = std::invoke_result_t<F&, A...>;
  using T = task_value_t<F, A...>;
  if constexpr (task_value<R>::is_task) {
    if constexpr (std::is_void_v<T>) {
      co_await std::invoke(fn, std::move(args)...);
      co_return std::monostate{};
    } else {
      T v = co_await std::invoke(fn, std::move(args)...);
      co_return v;
    }
  } else if constexpr (std::is_void_v<T>) {
    std::invoke(fn, std::move(args)...);
    co_return std::monostate{};
  } else {
    co_return std::invoke(fn, std::move(args)...);
  }
}

// How a wait for a task's reply ended: the value, the task's exit reason, or neither (timeout).
template <class W>
struct task_outcome {
  std::optional<W> value;
  std::optional<term> exit_reason;
};

// The Elixir %Task{} struct as a term, for exit reasons.
term task_term(pid task_pid, pid owner, const ref& monitor);
// {Module, Function, [Args...]} for task exit reasons.
term task_where(std::string_view module, std::string_view function, std::vector<term> args);
term timeout_term(std::chrono::milliseconds t);
// Throws std::invalid_argument unless the calling process is `owner` (Elixir's ArgumentError).
void check_task_owner(pid owner, std::string_view what);

// Waits up to `timeout` for the reply tagged `tag` or the DOWN of monitor `mref`.
template <class W>
task<task_outcome<W>> wait_task(ref tag, ref mref, std::chrono::milliseconds timeout) {
  process& me = this_process();
  auto is_reply = [tag](const task_reply<W>& r) { return r.tag == tag; };
  auto is_down = [mref](const down& d) { return d.monitor == mref; };
  auto on_reply = on<task_reply<W>>(is_reply, [](task_reply<W>& r) { return task_outcome<W>{std::move(r.value), std::nullopt}; });
  auto on_down = on<down>(is_down, [](down& d) { return task_outcome<W>{std::nullopt, d.reason}; });
  if (timeout == infinity) {
    task_outcome<W> got = co_await me.receive(std::move(on_reply), std::move(on_down));
    co_return got;
  }
  auto expired = after(timeout, [] { return task_outcome<W>{}; });
  task_outcome<W> got = co_await me.receive(std::move(on_reply), std::move(on_down), std::move(expired));
  co_return got;
}

// Takes the reply tagged `tag` if it is already in the mailbox (no wait).
template <class W>
task<std::optional<W>> take_task_reply(ref tag) {
  process& me = this_process();
  auto is_reply = [tag](const task_reply<W>& r) { return r.tag == tag; };
  auto take = on<task_reply<W>>(is_reply, [](task_reply<W>& r) { return std::optional<W>(std::move(r.value)); });
  auto none = after(std::chrono::milliseconds(0), [] { return std::optional<W>(); });
  std::optional<W> got = co_await me.receive(std::move(take), std::move(none));
  co_return got;
}

}  // namespace detail

// A running task started by async() or task_supervisor::async_nolink(): Elixir's %Task{}. A
// plain value; only its owner may await it (the functions throw std::invalid_argument otherwise).
template <class T>
class async_task {
 public:
  async_task() = default;
  // The task's process.
  athanor::pid pid() const noexcept { return pid_; }
  // The process that started it (the only one that may await it).
  athanor::pid owner() const noexcept { return owner_; }
  // The caller's monitor on the task (Elixir's task.ref).
  const athanor::ref& ref() const noexcept { return mref_; }
  // The task as Elixir shows it: #{'__struct__' => 'Elixir.Task', owner, pid, ref}.
  term to_term() const { return detail::task_term(pid_, owner_, mref_); }

  // Internal: made by async() and async_nolink().
  async_task(athanor::pid p, athanor::pid owner, athanor::ref tag, athanor::ref mref)
      : pid_(p), owner_(owner), tag_(std::move(tag)), mref_(std::move(mref)) {}
  const athanor::ref& reply_tag() const noexcept { return tag_; }

 private:
  athanor::pid pid_;
  athanor::pid owner_;
  athanor::ref tag_;   // the alias the task replies through
  athanor::ref mref_;  // the owner's monitor on the task
};

// What await_for() and shutdown() return when something came: the task's value ({ok, Value})
// or its exit reason ({exit, Reason}). A plain value.
template <class T>
class task_result {
 public:
  using wire = detail::wire_t<T>;
  static task_result value_of(wire v) { return task_result(std::move(v), term()); }
  static task_result exited(term reason) { return task_result(std::nullopt, std::move(reason)); }
  // True for {ok, Value}.
  bool ok() const noexcept { return value_.has_value(); }
  // The value; throws task_exit_error with {Reason, {'Elixir.Task', yield, []}} if the task exited.
  template <class U = T>
    requires(!std::is_void_v<U>)
  U& value() {
    if (!value_) throw task_exit_error(reason_, detail::task_where("Elixir.Task", "yield", {}));
    return *value_;
  }
  // The task's exit reason; `undefined` when ok().
  const term& exit_reason() const noexcept { return reason_; }

 private:
  task_result(std::optional<wire> v, term r) : value_(std::move(v)), reason_(std::move(r)) {}
  std::optional<wire> value_;
  term reason_;
};

// Starts a task running fn() linked to (and monitored by) the calling process; returns its
// handle at once. Throws std::logic_error outside a process, system_limit_error when the
// process table is full.
template <class F>
async_task<detail::task_value_t<F>> async(F fn) {
  using T = detail::task_value_t<F>;
  using W = detail::wire_t<T>;
  process& me = this_process();
  pid owner = me.self();
  ref tag = alias();
  spawn_options so;
  so.link = true;
  ref mref;
  // The closure (and fn in it) lives as long as the task process; the reply goes through the alias.
  auto body = [fn = std::move(fn), owner, tag](process&) mutable -> proc {
    W v = co_await detail::run_task_fn(fn);
    send_alias(owner, tag, detail::task_reply<W>{tag, std::move(v)});
  };
  pid p;
  try {
    p = detail::spawn_closure(detail::make_closure(std::move(body)), so, &mref);
  } catch (...) {
    unalias(tag);
    throw;
  }
  return async_task<T>(p, owner, tag, mref);
}

// Waits for task `t`'s result, at most `timeout` (infinity: forever), and returns it. Throws
// task_exit_error with {timeout, {'Elixir.Task', await, [Task, Timeout]}} on timeout, or with
// {Reason, {...}} if the task ended with Reason first; std::invalid_argument if the caller is not
// the task's owner. Call from a process (co_await).
template <class T>
task<T> await(async_task<T> t, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  using W = detail::wire_t<T>;
  detail::check_task_owner(t.owner(), "await");
  detail::task_outcome<W> o = co_await detail::wait_task<W>(t.reply_tag(), t.ref(), timeout);
  unalias(t.reply_tag());
  if (!o.value) {
    if (!o.exit_reason) demonitor(t.ref(), true);
    term why = o.exit_reason ? *o.exit_reason : term(atoms::timeout);
    throw task_exit_error(why, detail::task_where("Elixir.Task", "await", {t.to_term(), detail::timeout_term(timeout)}));
  }
  demonitor(t.ref(), true);
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    co_return std::move(*o.value);
  }
}

// Task.yield: waits up to `timeout` for task `t`; returns its value ({ok, V}), its exit reason
// ({exit, R}) if it ended first, or nullopt if neither came (the task keeps running; call again
// or shutdown()). Throws std::invalid_argument if the caller is not the owner.
template <class T>
task<std::optional<task_result<T>>> await_for(async_task<T> t, std::chrono::milliseconds timeout) {
  using W = detail::wire_t<T>;
  detail::check_task_owner(t.owner(), "await_for");
  detail::task_outcome<W> o = co_await detail::wait_task<W>(t.reply_tag(), t.ref(), timeout);
  if (o.value) {
    unalias(t.reply_tag());
    demonitor(t.ref(), true);
    co_return task_result<T>::value_of(std::move(*o.value));
  }
  if (o.exit_reason) {
    unalias(t.reply_tag());
    co_return task_result<T>::exited(std::move(*o.exit_reason));
  }
  co_return std::nullopt;
}

// Task.shutdown: unlinks task `t` and stops it per `how` (exit(Task, shutdown), then kill after
// the timeout; brutal_kill; or infinity), then returns the result if it arrived meanwhile, the
// exit reason if the task ended with another reason than the one it was stopped with, or
// nullopt. As Elixir's, if the task's monitor is gone already (an await or await_for took the
// reply or the task's end) and no reply is waiting, it returns {exit, noproc}: the result cannot
// be known. The task cannot be awaited afterwards. Throws std::invalid_argument if the caller is
// not the owner.
template <class T>
task<std::optional<task_result<T>>> shutdown(async_task<T> t, shutdown_policy how = shutdown_policy::after(std::chrono::seconds(5))) {
  using W = detail::wire_t<T>;
  detail::check_task_owner(t.owner(), "shutdown");
  process& me = this_process();
  unlink(t.pid());
  // A monitor of its own, as Elixir's shutdown takes: the task's monitor may have been consumed by
  // an await, and waiting for its DOWN would then wait forever. This one always delivers a DOWN
  // (noproc if the task has already ended); whichever of the two comes first says how it ended.
  ref own = monitor(t.pid());
  bool brutal = how.how == shutdown_policy::kind::brutal_kill;
  exit(t.pid(), brutal ? term(atoms::kill) : term(atoms::shutdown));
  auto is_down = [task_ref = t.ref(), own](const down& d) { return d.monitor == task_ref || d.monitor == own; };
  std::optional<term> reason;
  if (brutal || how.how == shutdown_policy::kind::infinity) {
    std::optional<term> r = co_await me.receive(on<down>(is_down, [](down& d) { return std::optional<term>(d.reason); }));
    reason = std::move(r);
  } else {
    std::optional<term> r = co_await me.receive(on<down>(is_down, [](down& d) { return std::optional<term>(d.reason); }),
                                                after(how.timeout, [] { return std::optional<term>(); }));
    reason = std::move(r);
    if (!reason) {
      exit(t.pid(), term(atoms::kill));
      std::optional<term> k = co_await me.receive(on<down>(is_down, [](down& d) { return std::optional<term>(d.reason); }));
      reason = std::move(k);
    }
  }
  demonitor(t.ref(), true);  // the other DOWN, whichever monitor it is for
  demonitor(own, true);
  // A reply the task sent before it ended is ahead of its DOWN in the mailbox.
  std::optional<W> v = co_await detail::take_task_reply<W>(t.reply_tag());
  unalias(t.reply_tag());
  if (v) co_return task_result<T>::value_of(std::move(*v));
  const term& r = *reason;
  if (r == term(atoms::shutdown) || r == term(atoms::killed) || r == term(atoms::normal)) co_return std::nullopt;
  co_return task_result<T>::exited(r);
}

// Options for async_stream (Elixir's Task.async_stream options). A plain value.
struct stream_options {
  std::size_t max_concurrency = 0;                          // tasks at once; 0: one per scheduler
  bool ordered = true;                                      // results in input order (else completion order)
  std::chrono::milliseconds timeout = std::chrono::seconds(5);  // for each task, from its start
};

namespace detail {

template <class W>
struct stream_reply {
  ref tag;
  std::size_t index;
  pid from;
  W value;
};

std::size_t default_concurrency();
// Unlinks and kills the stream's running tasks and drops their monitors (the stream failed).
void kill_stream_tasks(const std::unordered_map<pid, std::pair<std::size_t, ref>>& running);

}  // namespace detail

// Runs fn(x) for every x in `inputs` in tasks linked to the caller, at most
// opts.max_concurrency at once, and returns the results: in input order (ordered) or in
// completion order. If a task does not finish within opts.timeout of its start, the remaining
// tasks are killed and it throws task_exit_error {timeout, {'Elixir.Task.Supervised', stream,
// [Timeout]}}; if a task ends abnormally (only seen when the caller traps exits; otherwise the
// link ends the caller), the same with the task's reason. Call from a process (co_await).
template <class Range, class F>
auto async_stream(Range inputs, F fn, stream_options opts = {})
    -> task<std::vector<detail::task_value_t<F, std::ranges::range_value_t<Range>>>> {
  using In = std::ranges::range_value_t<Range>;
  using R = detail::task_value_t<F, In>;
  static_assert(!std::is_void_v<R>, "async_stream: the function must return a value");
  using W = R;
  using clock = std::chrono::steady_clock;
  process& me = this_process();
  pid owner = me.self();
  std::size_t limit = opts.max_concurrency ? opts.max_concurrency : detail::default_concurrency();
  auto shared_fn = std::make_shared<F>(std::move(fn));
  ref tag = alias();

  std::vector<std::optional<W>> slots;  // ordered: results by input index
  std::vector<W> done;                  // unordered: results as they come
  std::unordered_map<pid, std::pair<std::size_t, ref>> running;  // task -> (index, monitor)
  std::deque<std::pair<clock::time_point, pid>> deadlines;       // in start order, so sorted
  std::size_t next = 0;
  auto it = std::ranges::begin(inputs);
  auto end = std::ranges::end(inputs);
  std::optional<term> failure;

  for (;;) {
    while (running.size() < limit && it != end) {
      std::size_t index = next++;
      if (opts.ordered) slots.emplace_back();
      spawn_options so;
      so.link = true;
      ref mref;
      auto body = [shared_fn, owner, tag, index, x = In(*it)](process& self) mutable -> proc {
        W v = co_await detail::run_task_fn(*shared_fn, std::move(x));
        send_alias(owner, tag, detail::stream_reply<W>{tag, index, self.self(), std::move(v)});
      };
      pid p = detail::spawn_closure(detail::make_closure(std::move(body)), so, &mref);
      running.emplace(p, std::make_pair(index, mref));
      if (opts.timeout != infinity) deadlines.emplace_back(clock::now() + opts.timeout, p);
      ++it;
    }
    if (running.empty()) break;
    while (!deadlines.empty() && !running.contains(deadlines.front().second)) deadlines.pop_front();

    auto is_reply = [tag](const detail::stream_reply<W>& r) { return r.tag == tag; };
    auto is_down = [&running](const down& d) { return running.contains(d.from); };
    auto on_reply = on<detail::stream_reply<W>>(is_reply, [&](detail::stream_reply<W>& r) {
      if (auto i = running.find(r.from); i != running.end()) {
        demonitor(i->second.second, true);
        running.erase(i);
      }
      if (opts.ordered) slots[r.index].emplace(std::move(r.value));
      else done.push_back(std::move(r.value));
      return true;
    });
    auto on_down = on<down>(is_down, [&](down& d) {
      running.erase(d.from);
      failure = d.reason;
      return true;
    });
    if (deadlines.empty()) {
      co_await me.receive(std::move(on_reply), std::move(on_down));
    } else {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadlines.front().first - clock::now());
      auto expired = after(std::max(left, std::chrono::milliseconds(0)), [&] {
        if (clock::now() >= deadlines.front().first) failure = term(atoms::timeout);
        return false;
      });
      co_await me.receive(std::move(on_reply), std::move(on_down), std::move(expired));
    }
    if (failure) break;
  }
  if (failure) {
    detail::kill_stream_tasks(running);
    unalias(tag);
    throw task_exit_error(*failure, detail::task_where("Elixir.Task.Supervised", "stream", {detail::timeout_term(opts.timeout)}));
  }
  unalias(tag);
  if (!opts.ordered) co_return done;
  std::vector<W> out;
  out.reserve(slots.size());
  for (auto& s : slots) out.push_back(std::move(*s));
  co_return out;
}

// Options for task_supervisor::start_link (Elixir's Task.Supervisor options).
struct task_supervisor_options {
  atom name = atoms::undefined;                                         // register it under this name
  std::size_t max_children = std::numeric_limits<std::size_t>::max();   // running tasks at most
};

// Options for one task started under a task supervisor.
struct supervised_task_options {
  restart_type restart = temporary;                                      // Elixir's default: never restarted
  shutdown_policy shutdown = shutdown_policy::after(std::chrono::seconds(5));  // when the supervisor stops
};

namespace detail {

// Sent by the owner once it monitors the task: only then does a nolink task run its function,
// so that its end, even an immediate crash, reaches the owner's monitor with the real reason.
struct task_go {
  ref tag;
};

task<start_result> ready_result(start_result r);
// The body of a supervised task: waits for task_go (or the owner's end), runs fn, replies.
template <class F>
proc supervised_task_body(process& self, std::shared_ptr<F> fn, pid owner, ref tag, bool reply) {
  using W = wire_t<task_value_t<F>>;
  if (reply) {
    ref om = monitor(owner);
    auto is_go = [tag](const task_go& g) { return g.tag == tag; };
    auto owner_gone = [om](const down& d) { return d.monitor == om; };
    auto go = on<task_go>(is_go, [](task_go&) { return true; });
    auto gone = on<down>(owner_gone, [](down&) { return false; });
    bool run = co_await self.receive(std::move(go), std::move(gone));
    if (!run) co_return;  // the owner ended before it could watch the task: nobody wants the result
    demonitor(om, true);
  }
  W v = co_await run_task_fn(*fn);
  if (reply) send_alias(owner, tag, task_reply<W>{tag, std::move(v)});
}

child_spec task_child_spec(start_function start, const supervised_task_options& opts);

}  // namespace detail

// Elixir's Task.Supervisor: a dynamic_supervisor for tasks. The functions are thread-safe in the
// sense of call(): any process may use them (co_await).
class task_supervisor {
 public:
  // Starts a task supervisor linked to the caller: {ok, Pid}, or {error, {already_started, Pid}}.
  static task<start_result> start_link(task_supervisor_options opts = {});
  // A child spec that starts a task supervisor under another supervisor.
  static child_spec spec(term id, task_supervisor_options opts = {});

  // Task.Supervisor.async_nolink: starts fn() as a child of `sup`, monitored by (not linked to)
  // the caller; returns its handle for await / await_for / shutdown. Throws start_error if the
  // supervisor cannot start it ({error, max_children}), call_error if `sup` is not there.
  template <class F>
  static task<async_task<detail::task_value_t<F>>> async_nolink(server_ref sup, F fn, supervised_task_options opts = {}) {
    using T = detail::task_value_t<F>;
    pid owner = this_process().self();
    ref tag = alias();
    auto shared_fn = std::make_shared<F>(std::move(fn));
    start_function start = [shared_fn, owner, tag]() {
      // Runs in the supervisor, so the task is linked to it.
      pid p = spawn_link([shared_fn, owner, tag](process& self) -> proc {
        return detail::supervised_task_body(self, shared_fn, owner, tag, true);
      });
      return detail::ready_result(start_result::ok(p));
    };
    child_spec spec = detail::task_child_spec(std::move(start), opts);
    start_result r = co_await dynamic_supervisor::start_child(std::move(sup), std::move(spec));
    if (!r.ok()) {
      unalias(tag);
      throw start_error(r.ignored() ? term(atoms::ignore) : r.error());
    }
    ref mref = monitor(r.pid());
    send(r.pid(), detail::task_go{tag});
    co_return async_task<T>(r.pid(), owner, tag, mref);
  }

  // Task.Supervisor.start_child: runs fn() as a child of `sup` and returns {ok, Pid} (or the
  // supervisor's {error, max_children}); nobody awaits it. Throws call_error if `sup` is not there.
  template <class F>
  static task<start_result> start_child(server_ref sup, F fn, supervised_task_options opts = {}) {
    auto shared_fn = std::make_shared<F>(std::move(fn));
    start_function start = [shared_fn]() {
      pid p = spawn_link([shared_fn](process& self) -> proc {
        return detail::supervised_task_body(self, shared_fn, pid(), ref(), false);
      });
      return detail::ready_result(start_result::ok(p));
    };
    return dynamic_supervisor::start_child(std::move(sup), detail::task_child_spec(std::move(start), opts));
  }

  // The running tasks (Elixir's Task.Supervisor.children). Throws call_error if `sup` is not there.
  static task<std::vector<pid>> children(server_ref sup);
};

}  // namespace athanor
