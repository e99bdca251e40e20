// athanor::supervisor: Erlang's supervisor behaviour, a process that starts children, watches
// them, and restarts them when they end, so that a failure stays inside the subtree that can
// heal it. Functions are thread-safe in the sense of call(): any process may use them.
//
//   auto sup = co_await athanor::supervisor::start_link(
//       {.strategy = athanor::one_for_one, .intensity = 3, .period = 5s},
//       {athanor::child<counter>("counter"), athanor::child<cache>("cache")});
//
// Semantics (OTP's supervisor, rule by rule in tests/otp/supervisor_test.cpp):
//  * children start in list order; init fails (and the already started children are stopped) if
//    one fails to start: {error, {shutdown, {failed_to_start_child, Id, Reason}}};
//  * a child that ends is restarted per its restart type (permanent always; transient unless the
//    reason is normal, shutdown or {shutdown, _}; temporary never, and its spec is dropped) and
//    per the strategy: one_for_one restarts it alone; one_for_all stops all the others (in
//    reverse start order) and restarts all (in start order); rest_for_one does the same for the
//    children started after it;
//  * more than `intensity` restarts within `period` make the supervisor stop all its children
//    and exit with reason `shutdown`, which its own supervisor sees as a child failure: the
//    escalation climbs the tree until a supervisor can absorb it;
//  * children are stopped in reverse start order, each per its shutdown policy: brutal_kill,
//    exit(Child, shutdown) then kill after a timeout, or infinity (the default for supervisors);
//  * every unexpected child exit, start failure and giving up is logged as a supervisor report
//    (domain "supervisor_report", level error).
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "athanor/otp/child_spec.h"
#include "athanor/otp/gen_server.h"
#include "athanor/otp/start.h"
#include "athanor/runtime/process.h"
#include "athanor/term/term.h"

namespace athanor {

// Which children a supervisor restarts when one ends.
enum class strategy { one_for_one, one_for_all, rest_for_one };
inline constexpr strategy one_for_one = strategy::one_for_one;
inline constexpr strategy one_for_all = strategy::one_for_all;
inline constexpr strategy rest_for_one = strategy::rest_for_one;

// Supervisor flags (Erlang's sup_flags map).
struct supervisor_flags {
  athanor::strategy strategy = one_for_one;
  int intensity = 1;                                 // restarts allowed...
  std::chrono::milliseconds period{5000};            // ...within this window
};

// One child as which_children reports it.
struct child_info {
  term id;
  pid process;          // null when not running (ignored, terminated, or being restarted)
  bool restarting = false;
  child_type type = child_type::worker;
  std::uint64_t restarts = 0;  // how many times this supervisor has restarted it
};

// Counts as count_children reports them.
struct child_counts {
  std::size_t specs = 0, active = 0, supervisors = 0, workers = 0;
};

// A child spec for a gen_server S constructed from `args`, registered locally under `name`
// (which is also its id): OTP's {Id, {S, start_link, [Args]}, permanent, 5000, worker}.
template <class S, class... A>
child_spec child(atom name, A... args) {
  child_spec c;
  c.id = term(name);
  c.start = [name, args...]() -> task<start_result> {
    server_options o;
    o.name = name;
    return start_link<S>(o, args...);
  };
  return c;
}
template <class S, class... A>
child_spec child(std::string_view name, A... args) {
  return child<S>(atom(name), std::move(args)...);
}

namespace detail {
template <class F>
task<start_result> spawn_linked_child(F body) {
  co_return start_result::ok(spawn_link(std::move(body)));
}
}  // namespace detail

// A child spec for a plain process running `body(process&)` (a coroutine returning proc), linked
// to the supervisor.
template <class F>
child_spec process_child(term id, F body) {
  child_spec c;
  c.id = std::move(id);
  c.start = [body]() -> task<start_result> { return detail::spawn_linked_child(body); };
  return c;
}

class supervisor {
 public:
  // Starts a supervisor linked to the caller with `flags` and `children`; returns when every
  // child has started: {ok, Pid}, or {error, {shutdown, {failed_to_start_child, Id, Reason}}}.
  // `name` (optional) registers it locally. Call from a process (co_await).
  static task<start_result> start_link(supervisor_flags flags, std::vector<child_spec> children, atom name = atoms::undefined);
  // Same, not linked to the caller.
  static task<start_result> start(supervisor_flags flags, std::vector<child_spec> children, atom name = atoms::undefined);

  // A child spec for a nested supervisor (type supervisor, shutdown infinity).
  static child_spec spec(term id, supervisor_flags flags, std::vector<child_spec> children, atom name = atoms::undefined);

  // The children, in start order. Throws call_error if `sup` is not there.
  static task<std::vector<child_info>> which_children(server_ref sup);
  static task<child_counts> count_children(server_ref sup);
  // Starts a new child and adds it to the end: {ok, Pid}, {error, already_present} (a stopped
  // child has this id), {error, {already_started, Pid}}, or the start's error; ignore keeps the spec.
  static task<start_result> start_child(server_ref sup, child_spec spec);
  // Stops child `id` (it stays in the list unless temporary): ok | {error, not_found}.
  static task<term> terminate_child(server_ref sup, term id);
  // Starts a stopped child again: {ok, Pid}, {error, running}, {error, restarting}, {error, not_found}.
  static task<start_result> restart_child(server_ref sup, term id);
  // Removes a stopped child's spec: ok | {error, running} | {error, restarting} | {error, not_found}.
  static task<term> delete_child(server_ref sup, term id);
  // The whole tree below `sup`, one line per child, indented by depth (for demos and debugging).
  static task<std::string> describe_tree(server_ref sup);
};

}  // namespace athanor
