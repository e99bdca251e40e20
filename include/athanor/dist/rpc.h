// Calls by module and function name between nodes: C++ functions that Erlang and Elixir nodes
// call with their own rpc:call, erpc:call, spawn(Node, M, F, A) and rpc:block_call, and this
// node's calls into theirs (erpc_call, rpc_call).
//
//   // C++: expose math_cpp:add/2 (the arity is the lambda's; arguments convert with from_term)
//   athanor::dist::expose("math_cpp", "add", [](std::int64_t a, std::int64_t b) { return a + b; });
//
//   %% Erlang: 3 = erpc:call('cpp@host', math_cpp, add, [1, 2]).
//   # Elixir:  3 = :erpc.call(:"cpp@host", :math_cpp, :add, [1, 2])
//
//   // C++, in a process: "25.3" = binary of erlang:system_info(otp_release) as a string
//   term v = co_await athanor::dist::erpc_call("app@host"_a, "erlang"_a, "system_info"_a,
//                                               list({term("otp_release"_a)}));
//
// Only functions exposed here can be called: there is no "apply any function" (a peer may call
// whatever this node exposes, and nothing else). Every call runs in a fresh process, as erpc runs
// M:F(A) in one on the BEAM, so a function may receive, call and sleep, and a crash ends only that
// call. What the caller sees follows Erlang's rules (erpc.erl):
//
//   the function                          erpc:call raises          rpc:call returns
//   returns V                             (returns V)               V
//   throws exit_exception (exit(R))       exit:R                    {badrpc, {'EXIT', R}}
//   throws error_exception (reason R)     error:R                   {badrpc, {'EXIT', {R, Stack}}}
//   throws term_conversion_error (an      error:badarg              {badrpc, {'EXIT', {badarg, Stack}}}
//     argument of the wrong type)
//   throws any other std::exception       error:{cpp_exception,     {badrpc, {'EXIT', {{cpp_exception,
//                                           <<"what()">>}}           <<"what()">>}, Stack}}}
//   is not exposed (name or arity)        error:undef               {badrpc, {'EXIT', {undef, Stack}}}
//
// where Stack is [{Module, Function, Arity, []}]. Thread-safety: all functions may be called from
// any thread unless they say otherwise. See src/dist/rpc.cpp for the design.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "athanor/dist/node.h"
#include "athanor/runtime/proc.h"
#include "athanor/term/atom.h"
#include "athanor/term/convert.h"
#include "athanor/term/term.h"

namespace athanor::dist {

// A function exposed by name, in its untyped form: the call's arguments, in order, to its result.
using rpc_function = std::function<task<term>(std::vector<term> args)>;

// Exposes `fn` to other nodes as module:function/arity, replacing one exposed before under the
// same name and arity. Works whether or not a node runs yet (a table of this OS process).
// Throws std::invalid_argument for an empty name or a null `fn`.
void expose(std::string_view module, std::string_view function, std::size_t arity, rpc_function fn);
// Removes module:function/arity; returns false if it was not exposed. Calls already running finish.
bool unexpose(std::string_view module, std::string_view function, std::size_t arity);
// True if module:function/arity is exposed.
bool is_exposed(std::string_view module, std::string_view function, std::size_t arity);

namespace detail {
template <class F>
struct callable_traits : callable_traits<decltype(&F::operator())> {};
template <class R, class... A>
struct callable_traits<R (*)(A...)> {
  using result = R;
  using args = std::tuple<std::remove_cvref_t<A>...>;
};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...) const> : callable_traits<R (*)(A...)> {};
template <class C, class R, class... A>
struct callable_traits<R (C::*)(A...)> : callable_traits<R (*)(A...)> {};

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {
  using type = T;  // what the coroutine returns
};

template <class V>
term result_term(V&& v) {
  if constexpr (std::is_same_v<std::remove_cvref_t<V>, term>) return std::forward<V>(v);
  else return to_term(v);
}
}  // namespace detail

// Exposes a typed function or lambda: the arity is its number of parameters, each argument is
// converted with from_term (a term of the wrong shape fails the call with badarg, see above), and
// the result with to_term (void gives the atom ok). `fn` may be a coroutine returning task<R>.
template <class F>
void expose(std::string_view module, std::string_view function, F fn) {
  using traits = detail::callable_traits<std::decay_t<F>>;
  using args_tuple = typename traits::args;
  using R = typename traits::result;
  constexpr std::size_t n = std::tuple_size_v<args_tuple>;
  rpc_function untyped = [fn = std::move(fn)](std::vector<term> args) -> task<term> {
    auto converted = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return args_tuple{from_term<std::tuple_element_t<I, args_tuple>>(args[I])...};
    }(std::make_index_sequence<n>{});
    if constexpr (detail::is_task<R>::value) {
      using V = typename detail::is_task<R>::type;
      if constexpr (std::is_void_v<V>) {
        co_await std::apply(fn, std::move(converted));
        co_return term(atom("ok"));
      } else {
        co_return detail::result_term(co_await std::apply(fn, std::move(converted)));
      }
    } else if constexpr (std::is_void_v<R>) {
      std::apply(fn, std::move(converted));
      co_return term(atom("ok"));
    } else {
      co_return detail::result_term(std::apply(fn, std::move(converted)));
    }
  };
  expose(module, function, n, std::move(untyped));
}

// How a call into another node failed, as erpc:call raises it: `kind` is exit, error or throw
// (the function's own failure on the other node, with its `reason`, and for error its stack),
// or erpc for erpc's own errors: {erpc, noconnection} (the node could not be reached or went
// down during the call), {erpc, timeout}, {erpc, notsup} (the peer does not run spawn requests).
class erpc_error : public std::runtime_error {
 public:
  erpc_error(atom kind, term reason, term stack);
  atom kind;
  term reason;
  term stack;  // error only: the stack the other node reported, else the empty list
};

// erpc:call(Node, Module, Function, Args, Timeout): runs module:function(Args...) in a new process
// on `node` (connecting first if needed) and returns its result. `args` is a proper list.
// Throws erpc_error as above; on timeout the remote process is killed, as erpc kills it. Must be
// awaited in a process; other messages stay in its mailbox. Throws std::invalid_argument if
// `args` is not a proper list, and node_error if no node runs.
task<term> erpc_call(atom node, atom module, atom function, term args,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
// rpc:call(Node, Module, Function, Args, Timeout): as erpc_call, with failures returned the way
// rpc:call returns them: {badrpc, nodedown}, {badrpc, timeout}, {badrpc, {'EXIT', Reason}},
// and a thrown value as the result.
task<term> rpc_call(atom node, atom module, atom function, term args,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace athanor::dist
