// athanor::dynamic_supervisor: Elixir's DynamicSupervisor (OTP's simple_one_for_one), a
// supervisor that starts with no children and starts them on demand, any number, each from its
// own child spec. The functions are thread-safe in the sense of call(): any process may use
// them (co_await).
//
//   pid sup = (co_await dynamic_supervisor::start_link({.max_children = 1000})).value();
//   child_spec spec{.id = "conn"_a, .start = [] { return start_link<connection>(); }, .restart = temporary};
//   pid w = (co_await dynamic_supervisor::start_child(sup, spec)).value();
//   co_await dynamic_supervisor::terminate_child(sup, w);
//   co_await stop(sup, "shutdown"_a);     // stops the remaining children, then the supervisor
//
// Semantics (Elixir's DynamicSupervisor, rule by rule in tests/otp/dynamic_supervisor_test.cpp):
//  * start_child runs the spec's start function in the supervisor (so the child is linked to
//    it) and returns its result; with max_children children running it returns
//    {error, max_children}; ignore stores nothing;
//  * children are kept by pid (a hash map: starting and stopping is O(1), thousands per second);
//    the spec's id is not used and need not be unique;
//  * a child that ends is restarted per its restart type (permanent always; transient after an
//    abnormal exit; temporary never) and comes back under a new pid; a restart whose start
//    fails is retried (each try counts as a restart);
//  * more than `intensity` restarts within `period` make the supervisor stop every child and
//    exit with reason `shutdown`;
//  * when the supervisor ends (its parent's exit signal, stop(), giving up), it stops all its
//    children at once: exit(Child, shutdown) to each (exit(Child, kill) for brutal_kill), then
//    waits for each within its own shutdown policy and kills those still running after it;
//  * unexpected child exits, failed starts and giving up are logged as supervisor reports
//    (domain "supervisor_report", level error); each started child as a progress report
//    (domain "progress", level info).
#pragma once

#include <chrono>
#include <cstddef>
#include <limits>
#include <vector>

#include "athanor/otp/child_spec.h"
#include "athanor/otp/gen_server.h"
#include "athanor/otp/start.h"
#include "athanor/term/atom.h"
#include "athanor/term/term.h"

namespace athanor {

// Options for dynamic_supervisor::start_link (Elixir's DynamicSupervisor init options).
struct dynamic_supervisor_options {
  std::size_t max_children = std::numeric_limits<std::size_t>::max();  // children at most (default: no limit)
  int intensity = 3;                                                    // restarts allowed (max_restarts)...
  std::chrono::milliseconds period{5000};                               // ...within this window (max_seconds)
  atom name = atoms::undefined;                                         // register the supervisor under this name
};

// The dynamic supervisor's functions (static; the supervisor is a process). Thread-safe in the
// sense of call(): any process may use them at any time.
class dynamic_supervisor {
 public:
  // One child as which_children reports it (Elixir's {:undefined, Pid, Type, Modules}). A plain value.
  struct child_info {
    pid process;
    child_type type = child_type::worker;
  };
  // Elixir's %{specs, active, supervisors, workers}. A plain value.
  struct counts {
    std::size_t specs = 0, active = 0, supervisors = 0, workers = 0;
  };

  // Starts a dynamic supervisor linked to the caller; returns {ok, Pid}, or
  // {error, {already_started, Pid}} if `opts.name` is taken. Call from a process (co_await).
  static task<start_result> start_link(dynamic_supervisor_options opts = {});
  // A child spec that starts a dynamic supervisor under another supervisor (type supervisor,
  // shutdown infinity, restart permanent).
  static child_spec spec(term id, dynamic_supervisor_options opts = {});

  // Starts a child from `spec` under `sup`: {ok, Pid}, ignore, {error, max_children}, or the
  // start's {error, Reason}. Throws call_error if `sup` is not there (or takes longer than
  // `timeout`, default infinity: a child's init may take its time).
  static task<start_result> start_child(server_ref sup, child_spec spec, std::chrono::milliseconds timeout = infinity);
  // Stops child `child` per its shutdown policy and forgets it (no restart): ok, or
  // {error, not_found} if it is not a child of `sup`. Throws call_error as start_child does.
  static task<term> terminate_child(server_ref sup, pid child, std::chrono::milliseconds timeout = infinity);
  // The running children, in no particular order. Throws call_error as above (5 s default).
  static task<std::vector<child_info>> which_children(server_ref sup, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The children counted: specs (running or about to be restarted), active (running), and
  // supervisors / workers among them by child type.
  static task<counts> count_children(server_ref sup, std::chrono::milliseconds timeout = std::chrono::seconds(5));
};

}  // namespace athanor
