// What node.cpp and rpc.cpp share about calls by name (see rpc.cpp). Internal: not installed.
#pragma once

#include "athanor/dist/rpc.h"
#include "athanor/runtime/process.h"

namespace athanor::dist::detail {

// How an exposed function's call ended, in erpc's classes: kind is return (reason: the value),
// throw, exit or error (reason, and for error a stack [{M, F, Arity, []}]).
struct call_result {
  atom kind;
  term reason;
  term stack;
};

// Runs module:function(args...) if it is exposed (undef otherwise), in the calling process.
task<call_result> run_exposed(const term& module, const term& function, const term& args);

// The go-ahead a requested process waits for (its monitor and link are set up).
struct spawn_go {};
// Ends rex and the I/O server when the node stops.
struct rex_stop {};
// A call of erpc_call to this node itself, done.
struct local_call_done {
  ref request;
  call_result result;
};

// A process for a peer's SPAWN_REQUEST of {M, F, Arity} with `args`, waiting for spawn_go; or the
// null pid with `refusal` set to the error atom SPAWN_REPLY carries (badarg, system_limit).
pid start_requested(const term& mfa, const term& args, term& refusal);

// The registered `rex` of this node, and the group leader its requests name.
proc rex_server();
proc io_server();

}  // namespace athanor::dist::detail
