// athanor::gen_server: Erlang's gen_server behaviour, a process that holds state and serves
// calls (request/reply), casts (fire and forget) and other messages, one at a time.
//
//   struct get {};
//   struct inc { int by = 1; };
//   struct counter : athanor::gen_server<counter> {
//     int n = 0;
//     int  handle_call(get)   { return n; }   // the reply type is the handler's return type
//     void handle_cast(inc i) { n += i.by; }
//   };
//   pid c = (co_await athanor::start_link<counter>()).value();
//   athanor::cast<counter>(c, inc{});
//   int v = co_await athanor::call<counter>(c, get{}, 5s);
//
// A server is a C++ class deriving from gen_server<Self>; the class's members are the state and
// its overloads of handle_call / handle_cast / handle_info are the callbacks, chosen by the
// request's type at compile time (call<counter>(s, x) does not compile if counter has no
// handle_call for x's type). Every callback is optional except the ones a client uses.
//
// Callbacks (each may be a plain function or a coroutine returning athanor::task<...>, so a
// handler can itself call other servers or receive):
//   Self(args...)                       the constructor is Erlang's init/1 arguments;
//   init()                              -> void | init_result (ok, ignore, stop(reason));
//   handle_call(Req) or (Req, from)     -> R (the reply), or deferred<R> (reply later with reply());
//   handle_cast(Req)                    -> void;
//   handle_info(T)                      -> void, for T = exit_signal, down, term, or any type listed
//                                          in `using info = std::tuple<...>;` in Self;
//   handle_continue(C)                  -> void, after continue_with(C{}) from another callback;
//   handle_timeout()                    -> void, when timeout_after(d) was set and nothing arrived;
//   terminate(term reason)              -> void, when the server stops (see below);
//   code_change(term old_vsn, term extra) -> void, for hot upgrades (athanor::code_change()).
//   describe_state() const              -> term: the state as crash reports show it.
//
// Semantics (Erlang/OTP's gen_server and proc_lib, rule by rule in tests/otp/gen_server_test.cpp):
//  * start_link returns once init has finished: {ok, Pid}, ignore, or {error, Reason}; a name
//    already registered gives {error, {already_started, Pid}}.
//  * call monitors the server: if the server is dead or dies before replying, call throws
//    call_error with the server's exit reason (noproc if it did not exist); after the timeout it
//    throws call_error with reason `timeout`. The reply travels through an alias that is
//    deactivated when call returns, so a late reply never reaches the caller's mailbox. An
//    uncaught call_error ends the caller with {Reason, {gen_server, call, [Server, Timeout]}}.
//  * a callback that throws ends the server: terminate(Reason) runs, a crash report is logged for
//    abnormal reasons, and the server exits with Reason ({exception, <<"what">>} for a
//    std::exception, the reason for exit(Reason)).
//  * stop(reason) from a callback ends the server after the callback (a call's reply, if any, is
//    sent first); athanor::stop(server, reason) does it from outside and waits.
//  * terminate also runs when the server traps exits and its parent (the process that started
//    it, e.g. its supervisor) sends an exit signal; without trap_exit, such a signal ends the
//    server immediately and terminate does not run (as in OTP).
#pragma once

#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>

#include "athanor/otp/child_spec.h"
#include "athanor/otp/describe.h"
#include "athanor/otp/logger.h"
#include "athanor/otp/start.h"
#include "athanor/runtime/alias.h"
#include "athanor/runtime/message.h"
#include "athanor/runtime/process.h"
#include "athanor/term/atom.h"
#include "athanor/term/pid.h"
#include "athanor/term/ref.h"
#include "athanor/term/term.h"

namespace athanor {

// A timeout meaning "wait forever" (Erlang's `infinity`).
inline constexpr std::chrono::milliseconds infinity = std::chrono::milliseconds::max();

// Who sent a call (Erlang's From): pass it to reply() to answer later. A plain value.
struct from {
  pid caller;                         // the calling process
  ref tag;                            // the call's reference (active as the caller's alias)
  detail::type_id reply_type = nullptr;  // the C++ type the caller expects back
};

// The address of a server: a pid, a locally registered name, or {Name, Node}. A plain value.
class server_ref {
 public:
  server_ref(pid p) : pid_(p) {}                   // NOLINT: implicit by design, like Erlang's ServerRef
  server_ref(atom name) : name_(name), named_(true) {}  // NOLINT
  server_ref(const char* name) : server_ref(atom(name)) {}  // NOLINT
  server_ref(atom name, atom node) : name_(name), node_(node), named_(true), remote_(true) {}

  // The pid it names now, or the null pid (a name not registered, or a name on another node:
  // those are reached by name, see call(server_ref, term)).
  pid resolve() const;
  // True for {Name, Node}.
  bool is_remote_name() const noexcept { return remote_; }
  // The name (undefined for a pid) and the node ({Name, Node} only).
  atom name() const noexcept { return name_; }
  atom node() const noexcept { return node_; }
  // The server as Erlang shows it: Pid, Name, or {Name, Node}.
  term to_term() const;

 private:
  pid pid_;
  atom name_;
  atom node_;
  bool named_ = false;
  bool remote_ = false;
};

// Thrown by call() (and other requests) when the server cannot answer: `reason` is the server's
// exit reason (noproc if it did not exist, `timeout` if it did not answer in time). As an
// exit_exception, it ends an uncaught caller with `exit_reason`.
struct call_error : exit_exception, std::exception {
  call_error(term why, term server, std::chrono::milliseconds timeout);
  const char* what() const noexcept override { return text.c_str(); }
  term why;          // the bare reason: noproc, timeout, the server's exit reason
  std::string text;
};

// What init() returns: start normally, ignore (the start function returns ignore and the process
// ends normally), or stop with a reason (the start function returns {error, Reason}).
class init_result {
 public:
  static init_result ok() { return init_result(0, term()); }
  static init_result ignore() { return init_result(1, term()); }
  static init_result stop(term reason) { return init_result(2, std::move(reason)); }
  bool is_ok() const { return kind_ == 0; }
  bool is_ignore() const { return kind_ == 1; }
  bool is_stop() const { return kind_ == 2; }
  const term& reason() const { return reason_; }

 private:
  init_result(int k, term r) : kind_(k), reason_(std::move(r)) {}
  int kind_;
  term reason_;
};

// Returned by a handle_call that replies later with reply(from, R{...}).
template <class R>
struct deferred {};

// Options for start / start_link.
struct server_options {
  atom name = atoms::undefined;          // register the server locally under this name (undefined: no name)
  std::chrono::milliseconds timeout = infinity;  // how long init may take before the start fails with `timeout`
  bool trap_exit = false;                // start trapping exits (so terminate runs on a shutdown from the parent)
  std::size_t max_heap_bytes = 0;        // the process's memory limit (0: the runtime's default)
};

namespace detail {

template <class T>
struct unwrap_reply { using type = T; static constexpr bool is_task = false, is_deferred = false; };
template <class T>
struct unwrap_reply<task<T>> { using type = T; static constexpr bool is_task = true, is_deferred = false; };
template <class T>
struct unwrap_reply<deferred<T>> { using type = T; static constexpr bool is_task = false, is_deferred = true; };
template <class T>
struct unwrap_reply<task<deferred<T>>> { using type = T; static constexpr bool is_task = true, is_deferred = true; };

// A reply on the wire: void replies travel as std::monostate.
template <class R>
using wire_t = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
template <class R>
struct call_reply {
  ref tag;
  wire_t<R> value;
};

template <class S, class Req>
constexpr bool call_takes_from = requires(S& s, Req& r, from f) { s.handle_call(std::move(r), f); };
template <class S, class Req>
constexpr bool call_takes_request = requires(S& s, Req& r) { s.handle_call(std::move(r)); };

template <class S, class Req>
auto invoke_call(S& s, Req& r, const from& f) {
  if constexpr (call_takes_from<S, Req>) return s.handle_call(std::move(r), f);
  else return s.handle_call(std::move(r));
}

template <class S, class Req>
struct call_traits {
  static_assert(call_takes_from<S, Req> || call_takes_request<S, Req>,
                "the server has no handle_call(Req) or handle_call(Req, athanor::from) for this request type");
  using raw = decltype(invoke_call(std::declval<S&>(), std::declval<Req&>(), std::declval<const from&>()));
  using reply = typename unwrap_reply<raw>::type;
};

enum class gen_op_kind : std::uint8_t { call, cast };

// A call or cast on its way to a server, with the request's type erased so that one message type
// serves every request (the server cannot name its clients' types). The request lives inline when
// small, so a call costs one envelope.
struct gen_op {
  static constexpr std::size_t kInline = 48;
  using run_fn = std::optional<task<void>> (*)(gen_op&, void* server);

  gen_op_kind kind;
  from caller;
  type_id server_type;
  run_fn run;
  term (*describe_fn)(const gen_op&);
  void (*destroy_fn)(gen_op&) noexcept;
  void* request;
  alignas(std::max_align_t) unsigned char buf[kInline];

  template <class S, class Req, class Run>
  gen_op(gen_op_kind k, const from& f, std::type_identity<S>, Req&& r, Run run_impl)
      : kind(k), caller(f), server_type(type_of<S>()), run(run_impl) {
    using R = std::remove_cvref_t<Req>;
    if constexpr (sizeof(R) <= kInline && alignof(R) <= alignof(std::max_align_t)) {
      request = ::new (buf) R(std::forward<Req>(r));
      destroy_fn = [](gen_op& op) noexcept { static_cast<R*>(op.request)->~R(); };
    } else {
      request = new R(std::forward<Req>(r));
      destroy_fn = [](gen_op& op) noexcept { delete static_cast<R*>(op.request); };
    }
    describe_fn = [](const gen_op& op) { return describe(*static_cast<const R*>(op.request)); };
  }
  gen_op(const gen_op&) = delete;
  gen_op& operator=(const gen_op&) = delete;
  ~gen_op() { destroy_fn(*this); }

  // The message as Erlang would show it: {'$gen_call', {Pid, Tag}, Request} or {'$gen_cast', Request}.
  term describe_message() const;
};

// Sends a call's reply through the caller's alias.
template <class R>
void send_reply(const from& f, wire_t<R>&& value) {
  send_alias(f.caller, f.tag, call_reply<R>{f.tag, std::move(value)});
}

// What a server needs from its base class, type-erased for the loop in gen_server.cpp.
struct server_control {
  bool stopping = false;
  term stop_reason;
  std::chrono::milliseconds next_timeout = infinity;
  std::function<std::optional<task<void>>()> pending_continue;
  pid parent;
  term name = term(atoms::undefined);
};

// The start handshake: the new server acknowledges through the starter's alias.
struct start_ack {
  ref tag;
  start_result result;
};

// Requests every server understands, whatever its type (Erlang's system messages).
struct system_request {
  enum class kind : std::uint8_t { stop, code_change } what;
  from caller;
  term a, b;
};

// Starts the process that runs `body` per opts and waits for its acknowledgement.
task<start_result> start_and_wait(std::function<proc(process&, ref tag, pid starter)> body, server_options opts, bool link);
// Sends the acknowledgement from inside the new process.
void acknowledge(pid starter, const ref& tag, start_result r);
// The first half of a call: resolves the server, monitors it and makes the monitor's reference an
// alias of the caller. Returns the server's pid and the reference; throws call_error (noproc,
// {nodedown, Node}) if there is no such server.
std::pair<pid, ref> call_begin(const server_ref& server, std::chrono::milliseconds timeout);
// Ends a call: deactivates the alias and removes the monitor and any DOWN it left.
void call_end(const ref& tag, bool demonitor_needed);
void report_server_crash(const server_control& c, pid self, const term& reason, const term& last, const term& state);
// Logs a message the server has no handle_info for (OTP's "Undefined handle_info" warning): level
// warning, part "otp", domain "unexpected_message", naming the message's C++ type.
void report_unexpected_message(const server_control& c, pid self, const std::type_info& server_type, message& m);
term exit_reason_of(std::exception_ptr e);
// The message a server was handling, as crash reports show it.
term describe_message(message& m);

template <class W>
struct call_outcome {
  std::optional<W> value;
  term reason;
};

// Waits for the reply to the call tagged `tag` (or the server's DOWN, or the timeout).
template <class R>
task<wire_t<R>> call_wait(ref tag, server_ref server, std::chrono::milliseconds timeout) {
  using W = wire_t<R>;
  process& me = this_process();
  auto is_reply = [tag](const call_reply<R>& r) { return r.tag == tag; };
  auto is_down = [tag](const down& d) { return d.monitor == tag; };
  auto on_reply = on<call_reply<R>>(is_reply, [](call_reply<R>& r) { return call_outcome<W>{std::move(r.value), term()}; });
  auto on_down = on<down>(is_down, [](down& d) { return call_outcome<W>{std::nullopt, d.reason}; });
  std::optional<call_outcome<W>> o;
  if (timeout == infinity) {
    call_outcome<W> got = co_await me.receive(std::move(on_reply), std::move(on_down));
    o.emplace(std::move(got));
  } else {
    auto expired = after(timeout, [] { return call_outcome<W>{std::nullopt, term(atoms::timeout)}; });
    call_outcome<W> got = co_await me.receive(std::move(on_reply), std::move(on_down), std::move(expired));
    o.emplace(std::move(got));
  }
  bool replied = o->value.has_value();
  bool timed_out = !replied && o->reason == term(atoms::timeout);
  call_end(tag, replied || timed_out);
  if (!replied) throw call_error(o->reason, server.to_term(), timeout);
  co_return std::move(*o->value);
}

// Runs a call's handler in the server and sends the reply (unless deferred). A coroutine handler
// comes back as a task for the server loop to await.
template <class S, class Q>
std::optional<task<void>> call_handler(gen_op& op, void* server) {
  S& s = *static_cast<S*>(server);
  Q& q = *static_cast<Q*>(op.request);
  using raw = typename call_traits<S, Q>::raw;
  using U = unwrap_reply<raw>;
  using R = typename U::type;
  if constexpr (U::is_task) {
    return [](S& s, Q q, from f) -> task<void> {
      if constexpr (U::is_deferred || std::is_void_v<R>) {
        co_await invoke_call(s, q, f);
        if constexpr (!U::is_deferred) send_reply<R>(f, std::monostate{});
      } else {
        R r = co_await invoke_call(s, q, f);
        send_reply<R>(f, std::move(r));
      }
    }(s, std::move(q), op.caller);
  } else {
    if constexpr (U::is_deferred) {
      invoke_call(s, q, op.caller);
    } else if constexpr (std::is_void_v<R>) {
      invoke_call(s, q, op.caller);
      send_reply<R>(op.caller, std::monostate{});
    } else {
      send_reply<R>(op.caller, wire_t<R>(invoke_call(s, q, op.caller)));
    }
    return std::nullopt;
  }
}

template <class S, class Q>
std::optional<task<void>> cast_handler(gen_op& op, void* server) {
  S& s = *static_cast<S*>(server);
  Q& q = *static_cast<Q*>(op.request);
  if constexpr (std::is_same_v<decltype(s.handle_cast(std::move(q))), task<void>>) {
    return s.handle_cast(std::move(q));
  } else {
    s.handle_cast(std::move(q));
    return std::nullopt;
  }
}

template <class S, class... A>
struct server_runner;

// True for {'$gen_call', {Pid, Tag}, Request}.
bool is_gen_call_term(const term& t);
// Replies {Tag, Reply} to the caller of such a request, `from` = {Pid, Tag}, as gen:reply does:
// through the alias for a tag [alias|Alias] made by a process of this node (so a reply after the
// caller gave up is dropped), to Pid otherwise.
void reply_to_term_call(const term& from, term reply);

}  // namespace detail

// Base class of a server; Self is the deriving class (CRTP). Not thread-safe: its members are
// used by the server's own process only.
template <class Self>
class gen_server {
 public:
  // The server's pid.
  pid self() const { return self_; }
  // Ends the server with `reason` once the current callback returns (terminate runs first).
  void stop(term reason) {
    ctl_.stopping = true;
    ctl_.stop_reason = std::move(reason);
  }
  // Sets Erlang's callback timeout: if no message arrives within d of this callback returning,
  // handle_timeout() runs. Applies to the next wait only, as a timeout in a callback's return.
  template <class Rep, class Period>
  void timeout_after(std::chrono::duration<Rep, Period> d) {
    ctl_.next_timeout = std::chrono::ceil<std::chrono::milliseconds>(d);
  }
  // Runs handle_continue(c) right after the current callback, before any message (Erlang's
  // {continue, C}).
  template <class C>
  void continue_with(C c) {
    ctl_.pending_continue = [this, c = std::move(c)]() mutable -> std::optional<task<void>> {
      Self& s = static_cast<Self&>(*this);
      if constexpr (std::is_same_v<decltype(s.handle_continue(std::move(c))), task<void>>) return s.handle_continue(std::move(c));
      else {
        s.handle_continue(std::move(c));
        return std::nullopt;
      }
    };
  }
  // The process that started this server (its supervisor, usually).
  pid parent() const { return ctl_.parent; }

 protected:
  gen_server() = default;
  ~gen_server() = default;

 private:
  template <class S, class... A>
  friend struct detail::server_runner;
  pid self_;
  detail::server_control ctl_;
};

// Sends a reply to a call that a handle_call deferred (returned deferred<R>). R must be the
// deferred reply type. Returns normally even if the caller has given up (the reply is dropped);
// throws std::logic_error if the value's type is not the one the caller expects.
template <class T>
void reply(const from& f, T&& value) {
  using R = std::remove_cvref_t<T>;
  if (f.reply_type != detail::type_of<detail::wire_t<R>>())
    throw std::logic_error("athanor::reply: the value's type is not the call's reply type");
  detail::send_reply<R>(f, detail::wire_t<R>(std::forward<T>(value)));
}
// Replies to a deferred call whose reply type is void.
void reply(const from& f);

// ---------------------------------------------------------------------------------------------

namespace detail {

template <class S, class... A>
struct server_runner {
  template <class T>
  static bool try_info(S& s, message& m, std::optional<task<void>>& out) {
    if (!m.is<T>()) return false;
    if constexpr (requires { s.handle_info(std::move(m.get<T>())); }) {
      if constexpr (std::is_same_v<decltype(s.handle_info(std::move(m.get<T>()))), task<void>>) {
        out.emplace(s.handle_info(std::move(m.get<T>())));
      } else {
        s.handle_info(std::move(m.get<T>()));
      }
      return true;
    }
    return false;
  }
  template <class... T>
  static bool try_listed(S& s, message& m, std::optional<task<void>>& out, std::tuple<T...>*) {
    return (try_info<T>(s, m, out) || ...);
  }
  // A request in Erlang's gen_server protocol, as a term: {'$gen_call', {Pid, Tag}, Request} from
  // an Erlang or Elixir caller (or call(server, term)), or {'$gen_cast', Request}. Runs
  // handle_call(term) / handle_cast(term) if S has them and replies {Tag, Reply} to Pid, as
  // gen:reply does. Returns false (the message goes to handle_info) if m is not such a request or
  // S has no handler for it.
  static bool run_term_request(S& s, message& m, std::optional<task<void>>& out) {
    if (!m.is<term>()) return false;
    const term& t = m.get<term>();
    if (!t.is_tuple()) return false;
    if constexpr (requires { { s.handle_call(std::declval<term>()) } -> std::same_as<term>; }) {
      if (is_gen_call_term(t)) {
        term reply = s.handle_call(term(t.element(2)));
        reply_to_term_call(t.element(1), std::move(reply));
        return true;
      }
    } else if constexpr (requires { { s.handle_call(std::declval<term>()) } -> std::same_as<task<term>>; }) {
      if (is_gen_call_term(t)) {
        out.emplace([](S& s, term t) -> task<void> {
          term reply = co_await s.handle_call(term(t.element(2)));
          reply_to_term_call(t.element(1), std::move(reply));
        }(s, t));
        return true;
      }
    }
    if constexpr (requires { s.handle_cast(std::declval<term>()); }) {
      if (t.tuple_size() == 2 && t.element(0) == term(atom("$gen_cast"))) {
        if constexpr (std::is_same_v<decltype(s.handle_cast(std::declval<term>())), task<void>>) {
          out.emplace(s.handle_cast(term(t.element(1))));
        } else {
          s.handle_cast(term(t.element(1)));
        }
        return true;
      }
    }
    return false;
  }

  // Runs handle_info for m; returns false if S has no handle_info for its type.
  static bool run_info(S& s, message& m, std::optional<task<void>>& out) {
    if (try_info<exit_signal>(s, m, out) || try_info<down>(s, m, out) || try_info<term>(s, m, out)) return true;
    if constexpr (requires { typename S::info; }) return try_listed(s, m, out, static_cast<typename S::info*>(nullptr));
    return false;
  }

  static term state_of(S& s) {
    if constexpr (requires { { s.describe_state() } -> std::convertible_to<term>; }) {
      try {
        return s.describe_state();
      } catch (...) {
        return term(std::string_view("<describe_state failed>"));
      }
    } else {
      return describe(s);
    }
  }

  static std::optional<task<void>> run_terminate(S& s, const term& reason) {
    if constexpr (requires { s.terminate(reason); }) {
      if constexpr (std::is_same_v<decltype(s.terminate(reason)), task<void>>) return s.terminate(reason);
      else s.terminate(reason);
    }
    return std::nullopt;
  }

  static std::optional<task<void>> run_system(S& s, server_control& ctl, system_request& r) {
    if (r.what == system_request::kind::stop) {
      ctl.stopping = true;
      ctl.stop_reason = r.a;
      return std::nullopt;
    }
    if constexpr (requires { s.code_change(r.a, r.b); }) {
      if constexpr (std::is_same_v<decltype(s.code_change(r.a, r.b)), task<void>>) {
        return [](S& s, term a, term b, from f) -> task<void> {
          co_await s.code_change(a, b);
          send_reply<void>(f, std::monostate{});
        }(s, r.a, r.b, r.caller);
      } else {
        s.code_change(r.a, r.b);
      }
    }
    send_reply<void>(r.caller, std::monostate{});
    return std::nullopt;
  }

  // The server process: constructs S, runs init, acknowledges, then serves until stopped.
  static proc main(process& self, ref tag, pid starter, server_options opts, std::tuple<A...> args) {
    if (opts.trap_exit) self.trap_exit(true);
    if (opts.name != atoms::undefined && !register_name(opts.name, self.self())) {
      acknowledge(starter, tag, start_result::error(tuple(atom("already_started"), whereis(opts.name))));
      exit(atoms::normal);
    }
    std::optional<S> state;
    term init_failure;
    bool failed = false;
    try {
      std::apply([&](auto&&... a) { state.emplace(std::move(a)...); }, std::move(args));
    } catch (...) {
      init_failure = exit_reason_of(std::current_exception());
      failed = true;
    }
    if (failed) {
      acknowledge(starter, tag, start_result::error(init_failure));
      exit(init_failure);
    }
    S& s = *state;
    auto& base = static_cast<gen_server<S>&>(s);
    base.self_ = self.self();
    auto& ctl = base.ctl_;
    ctl.parent = starter;
    ctl.name = opts.name == atoms::undefined ? term(self.self()) : term(opts.name);
    init_result ir = init_result::ok();
    try {
      if constexpr (requires { s.init(); }) {
        using R = decltype(s.init());
        if constexpr (std::is_same_v<R, void>) {
          s.init();
        } else if constexpr (std::is_same_v<R, init_result>) {
          ir = s.init();
        } else if constexpr (std::is_same_v<R, task<void>>) {
          co_await s.init();
        } else {
          static_assert(std::is_same_v<R, task<init_result>>, "init() must return void, init_result, or a task of either");
          init_result got = co_await s.init();
          ir = got;
        }
      }
    } catch (...) {
      init_failure = exit_reason_of(std::current_exception());
      failed = true;
    }
    if (failed || ir.is_stop()) {
      term why = failed ? init_failure : ir.reason();
      acknowledge(starter, tag, start_result::error(why));
      exit(why);
    }
    if (ir.is_ignore()) {
      acknowledge(starter, tag, start_result::ignore());
      exit(atoms::normal);
    }
    acknowledge(starter, tag, start_result::ok(self.self()));

    message current;  // the message being handled: outlives a throwing handler, for the crash report
    term reason;
    try {
      for (;;) {
        if (ctl.pending_continue) {
          auto cont = std::move(ctl.pending_continue);
          ctl.pending_continue = nullptr;
          ctl.next_timeout = infinity;
          std::optional<task<void>> t = cont();
          if (t) co_await std::move(*t);
        } else {
          if (ctl.next_timeout == infinity) {
            current = co_await self.receive_any();
          } else {
            auto d = ctl.next_timeout;
            ctl.next_timeout = infinity;
            current = co_await self.receive_any_for(d);
          }
          std::optional<task<void>> t;
          if (!current) {
            if constexpr (requires { s.handle_timeout(); }) {
              if constexpr (std::is_same_v<decltype(s.handle_timeout()), task<void>>) t.emplace(s.handle_timeout());
              else s.handle_timeout();
            }
          } else if (auto* op = current.get_if<gen_op>()) {
            if (op->server_type != type_of<S>()) {
              // A client compiled against another server type: an Erlang server would crash with
              // function_clause on a request it has no clause for.
              throw exit_exception{tuple(atom("function_clause"), atom("wrong_server_type"))};
            }
            if (auto r = op->run(*op, &s)) t.emplace(std::move(*r));
          } else if (auto* sys = current.get_if<system_request>()) {
            if (auto r = run_system(s, ctl, *sys)) t.emplace(std::move(*r));
          } else if (auto* x = current.get_if<exit_signal>(); x && x->from == ctl.parent && self.trapping_exits()) {
            // OTP: a server that traps exits ends with its parent's reason.
            ctl.stopping = true;
            ctl.stop_reason = x->reason;
          } else if (!run_term_request(s, current, t) && !run_info(s, current, t)) {
            report_unexpected_message(ctl, self.self(), typeid(S), current);
          }
          if (t) co_await std::move(*t);
        }
        if (ctl.stopping) break;
      }
      reason = ctl.stop_reason;
    } catch (...) {
      reason = exit_reason_of(std::current_exception());
    }
    // terminate runs for every end the server itself sees: stop(), a callback that threw, its
    // parent's exit signal when trapping exits.
    term terminate_failure;
    bool terminate_failed = false;
    try {
      std::optional<task<void>> t = run_terminate(s, reason);
      if (t) co_await std::move(*t);
    } catch (...) {
      terminate_failure = exit_reason_of(std::current_exception());
      terminate_failed = true;
    }
    if (terminate_failed) reason = terminate_failure;
    if (!is_normal_exit(reason)) report_server_crash(ctl, self.self(), reason, describe_message(current), state_of(s));
    exit(reason);
  }
};

}  // namespace detail

// Starts a server of type S linked to the calling process, constructing S from `args` in the new
// process; returns when init has finished: {ok, Pid}, ignore, or {error, Reason} (as
// start_result). Call from a process (co_await).
template <class S, class... A>
task<start_result> start_link(server_options opts, A... args) {
  return detail::start_and_wait(
      [opts, tup = std::tuple<A...>(std::move(args)...)](process& p, ref tag, pid starter) mutable -> proc {
        return detail::server_runner<S, A...>::main(p, tag, starter, opts, std::move(tup));
      },
      opts, true);
}
template <class S, class... A>
  requires(!(std::is_same_v<std::remove_cvref_t<A>, server_options> || ...))
task<start_result> start_link(A... args) {
  return start_link<S>(server_options{}, std::move(args)...);
}
// Same as start_link, without the link.
template <class S, class... A>
task<start_result> start(server_options opts, A... args) {
  return detail::start_and_wait(
      [opts, tup = std::tuple<A...>(std::move(args)...)](process& p, ref tag, pid starter) mutable -> proc {
        return detail::server_runner<S, A...>::main(p, tag, starter, opts, std::move(tup));
      },
      opts, false);
}
template <class S, class... A>
  requires(!(std::is_same_v<std::remove_cvref_t<A>, server_options> || ...))
task<start_result> start(A... args) {
  return start<S>(server_options{}, std::move(args)...);
}

// Calls server `server` (a server of type S) with `request` and waits for the reply, at most
// `timeout` (infinity: forever). Returns the reply (what S::handle_call returned for this request
// type); throws call_error with the server's exit reason if the server does not exist or ends
// first, or with `timeout`. Call from a process (co_await).
template <class S, class Req>
task<typename detail::call_traits<S, std::remove_cvref_t<Req>>::reply> call(server_ref server, Req request,
                                                                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  using Q = std::remove_cvref_t<Req>;
  using R = typename detail::call_traits<S, Q>::reply;
  using W = detail::wire_t<R>;
  auto [to, tag] = detail::call_begin(server, timeout);
  from f{self(), tag, detail::type_of<W>()};
  detail::deliver(to, detail::make_envelope<detail::gen_op>(false, detail::gen_op_kind::call, f, std::type_identity<S>{}, std::move(request),
                                                            &detail::call_handler<S, Q>));
  W w = co_await detail::call_wait<R>(tag, std::move(server), timeout);
  if constexpr (std::is_void_v<R>) {
    co_return;
  } else {
    co_return std::move(w);
  }
}

// Calls a server that speaks Erlang's gen_server protocol in terms, and waits for its reply, at
// most `timeout`: an Erlang or Elixir GenServer on another node (server_ref{name, node}, or its
// pid), or an Athanor server whose handle_call takes a term. As gen_server:call: the caller
// monitors the server, sends {'$gen_call', {self(), Ref}, request}, and takes the first of
// {Ref, Reply} or the monitor's DOWN. Returns Reply. Throws call_error with noproc if nothing is
// there, {nodedown, Node} if its node cannot be reached or goes away, the server's exit reason if
// it ends first, or `timeout`. Call from a process (co_await).
task<term> call(server_ref server, term request, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Sends `request` to server `server` (of type S) without waiting (Erlang's cast): always
// returns, even if the server does not exist.
template <class S, class Req>
void cast(server_ref server, Req request) {
  using Q = std::remove_cvref_t<Req>;
  static_assert(requires(S& s, Q& q) { s.handle_cast(std::move(q)); }, "the server has no handle_cast for this request type");
  pid to = server.resolve();
  if (!to) return;
  detail::deliver(to, detail::make_envelope<detail::gen_op>(false, detail::gen_op_kind::cast, from{}, std::type_identity<S>{},
                                                            std::move(request), &detail::cast_handler<S, Q>));
}

// Stops server `server` with `reason` and waits until it has ended (its terminate has run).
// Throws call_error with noproc if it does not exist, with `timeout` if it has not ended in
// time, or with its exit reason if it ended with another reason first.
task<void> stop(server_ref server, term reason = term(atoms::normal), std::chrono::milliseconds timeout = infinity);

// Asks server `server` to run its code_change(old_vsn, extra) between two messages (Erlang's
// sys:change_code); returns when it has. A server without code_change just answers. Throws
// call_error as call() does.
task<void> code_change(server_ref server, term old_vsn, term extra, std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace athanor
