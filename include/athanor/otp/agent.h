// athanor::agent<State>: Elixir's Agent, a process that holds a State and runs the functions
// clients send it on that state, one at a time. An agent<State> handle is a plain value
// (thread-safe to copy); the operations are gen_server calls, to be co_awaited from a process.
//
//   start_result r = co_await agent<int>::start_link([] { return 0; });
//   agent<int> counter(r.value());
//   co_await update(counter, [](int n) { return n + 1; });     // or [](int& n) { ++n; }
//   int n = co_await get(counter, [](const int& n) { return n; });
//   co_await stop(counter);
//
// Semantics (Elixir's Agent, rule by rule in tests/otp/agent_test.cpp):
//  * start_link runs the initial-state function in the new process and returns once it has
//    ({ok, Pid}; {error, Reason} if it threw); the agent is linked to the caller.
//  * get / update / get_and_update are calls: they wait for the agent (5 s by default) and throw
//    call_error as gen_server's call does; cast returns at once.
//  * The functions run in the agent's process, so they must not capture references to the
//    caller's locals (after a timeout, the caller has moved on): capture by value.
//  * A function that throws crashes the agent (its reason is {exception, <<"what">>}), as an
//    Elixir agent whose function raises.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "athanor/otp/describe.h"
#include "athanor/otp/gen_server.h"
#include "athanor/otp/start.h"
#include "athanor/term/atom.h"

namespace athanor {

// Options for agent<State>::start_link.
struct agent_options {
  atom name = atoms::undefined;                  // register the agent under this name
  std::chrono::milliseconds timeout = infinity;  // how long the initial-state function may take
};

namespace detail {

template <class F>
struct agent_get { F fn; };
template <class F>
struct agent_update { F fn; };
template <class F>
struct agent_get_and_update { F fn; };
template <class F>
struct agent_cast { F fn; };

template <class T, class State>
struct is_get_and_update_pair : std::false_type {};
template <class X, class State>
struct is_get_and_update_pair<std::pair<X, State>, State> : std::true_type {};

// True if F takes the state by value (or const&) and returns {Value, NewState}; evaluated lazily
// so that a function taking State& does not instantiate invoke_result for an rvalue.
template <class F, class State, bool = std::is_invocable_v<F&, State&&>>
struct returns_get_and_update_pair : std::false_type {};
template <class F, class State>
struct returns_get_and_update_pair<F, State, true>
    : is_get_and_update_pair<std::remove_cvref_t<std::invoke_result_t<F&, State&&>>, State> {};

// True if F mutates the state in place: takes State& and returns void.
template <class F, class State, bool = std::is_invocable_v<F&, State&>>
struct updates_in_place : std::false_type {};
template <class F, class State>
struct updates_in_place<F, State, true> : std::is_void<std::invoke_result_t<F&, State&>> {};

// The agent's server: State built by the initial-state function in init().
template <class State>
struct agent_server : gen_server<agent_server<State>> {
  std::function<State()> make_state;
  std::optional<State> state;

  explicit agent_server(std::function<State()> f) : make_state(std::move(f)) {}
  void init() {
    state.emplace(make_state());
    make_state = nullptr;  // may own captures the agent no longer needs
  }

  // An update function either mutates the state in place (State& -> void) or returns the new
  // state from the old one (Elixir's fn state -> new_state end).
  template <class F>
  void apply_update(F& fn) {
    if constexpr (updates_in_place<F, State>::value) {
      std::invoke(fn, *state);
    } else {
      static_assert(std::is_invocable_v<F&, State&&>, "agent update: the function must take the state");
      State next = std::invoke(fn, std::move(*state));
      state.emplace(std::move(next));
    }
  }

  template <class F>
  auto handle_call(agent_get<F> g) {
    return std::invoke(g.fn, std::as_const(*state));
  }
  template <class F>
  void handle_call(agent_update<F> u) {
    apply_update(u.fn);
  }
  // Elixir's form returns {Value, NewState}; the in-place form (State& -> Value) mutates.
  template <class F>
  auto handle_call(agent_get_and_update<F> u) {
    if constexpr (returns_get_and_update_pair<F, State>::value) {
      auto got = std::invoke(u.fn, std::move(*state));
      state.emplace(std::move(got.second));
      return std::move(got.first);
    } else {
      static_assert(std::is_invocable_v<F&, State&>, "agent get_and_update: the function must take the state");
      return std::invoke(u.fn, *state);
    }
  }
  template <class F>
  void handle_cast(agent_cast<F> c) {
    apply_update(c.fn);
  }
  term describe_state() const { return state ? describe(*state) : term(atoms::undefined); }
};

}  // namespace detail

// A handle on an agent holding a State: its pid or registered name. A plain value.
template <class State>
class agent {
 public:
  // Explicit, so that a pid does not silently become an agent of the wrong State type.
  explicit agent(server_ref server) : server_(std::move(server)) {}
  explicit agent(pid p) : server_(p) {}
  explicit agent(atom name) : server_(name) {}

  // The agent's address.
  const server_ref& server() const noexcept { return server_; }

  // Starts an agent linked to the caller whose state is `initial()` (a callable returning State,
  // run in the new process); returns {ok, Pid}, or {error, Reason} if initial() threw, or
  // {error, {already_started, Pid}} for a taken name. Call from a process (co_await).
  template <class F>
  static task<start_result> start_link(F initial, agent_options opts = {}) {
    return athanor::start_link<detail::agent_server<State>>(server_opts(opts), std::function<State()>(std::move(initial)));
  }
  // Same, without the link.
  template <class F>
  static task<start_result> start(F initial, agent_options opts = {}) {
    return athanor::start<detail::agent_server<State>>(server_opts(opts), std::function<State()>(std::move(initial)));
  }

  // The operations below are hidden friends: found through the agent argument (argument-dependent
  // lookup) and nowhere else, so that a user's own `struct get {}` or `update` next to
  // `using namespace athanor;` does not become ambiguous.

  // Agent.get: returns fn(state) (fn takes const State&); the state is unchanged. Throws
  // call_error if the agent is not there, ends first (e.g. fn threw), or does not answer in time.
  template <class F>
  friend auto get(const agent& a, F fn, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return call<detail::agent_server<State>>(a.server(), detail::agent_get<F>{std::move(fn)}, timeout);
  }

  // Agent.update: replaces the state by fn(state) (fn takes State, returns the new one), or lets fn
  // mutate it in place (fn takes State&, returns void); returns once done. Throws as get().
  template <class F>
  friend task<void> update(const agent& a, F fn, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return call<detail::agent_server<State>>(a.server(), detail::agent_update<F>{std::move(fn)}, timeout);
  }

  // Agent.get_and_update: fn returns {Value, NewState} as std::pair (fn takes State), or mutates the
  // state in place and returns the value (fn takes State&); returns the value. Throws as get().
  template <class F>
  friend auto get_and_update(const agent& a, F fn, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    return call<detail::agent_server<State>>(a.server(), detail::agent_get_and_update<F>{std::move(fn)}, timeout);
  }

  // Agent.cast: applies fn to the state as update() does, without waiting (always returns, even if
  // the agent is not there).
  template <class F>
  friend void cast(const agent& a, F fn) {
    athanor::cast<detail::agent_server<State>>(a.server(), detail::agent_cast<F>{std::move(fn)});
  }

  // Agent.stop: stops the agent with `reason` and waits until it has ended. Throws call_error as
  // athanor::stop(server_ref, ...) does (noproc if it is not there).
  friend task<void> stop(const agent& a, term reason = term(atoms::normal), std::chrono::milliseconds timeout = infinity) {
    return athanor::stop(a.server(), std::move(reason), timeout);
  }

 private:
  static server_options server_opts(const agent_options& o) {
    server_options so;
    so.name = o.name;
    so.timeout = o.timeout;
    return so;
  }
  server_ref server_;
};

}  // namespace athanor
