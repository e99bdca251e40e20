// athanor::child_spec: how a supervisor starts, restarts and stops one child (Erlang's child
// specification map). A plain value; thread-safe to copy.
#pragma once

#include <chrono>
#include <functional>
#include <utility>

#include "athanor/otp/start.h"
#include "athanor/runtime/proc.h"
#include "athanor/term/term.h"

namespace athanor {

// When a child that ended is restarted (OTP's restart types).
enum class restart_type {
  permanent,  // always
  transient,  // only after an abnormal exit (a reason other than normal, shutdown, {shutdown, _})
  temporary,  // never; the child spec is removed when the child ends
};
inline constexpr restart_type permanent = restart_type::permanent;
inline constexpr restart_type transient = restart_type::transient;
inline constexpr restart_type temporary = restart_type::temporary;

// Whether a child is a worker or a supervisor (counted apart by count_children; supervisors get
// an infinite shutdown by default).
enum class child_type { worker, supervisor };

// How a supervisor stops a child: brutal_kill (exit(Child, kill)), a timeout (exit(Child, shutdown),
// then kill if the child has not ended in time), or infinity (wait for as long as it takes).
struct shutdown_policy {
  enum class kind { brutal_kill, timeout, infinity };
  kind how = kind::timeout;
  std::chrono::milliseconds timeout{5000};

  static constexpr shutdown_policy brutal_kill() { return {kind::brutal_kill, std::chrono::milliseconds(0)}; }
  static constexpr shutdown_policy infinity() { return {kind::infinity, std::chrono::milliseconds(0)}; }
  template <class Rep, class Period>
  static constexpr shutdown_policy after(std::chrono::duration<Rep, Period> d) {
    return {kind::timeout, std::chrono::ceil<std::chrono::milliseconds>(d)};
  }
  // brutal_kill | infinity | the timeout in milliseconds, as in an Erlang child spec.
  term to_term() const {
    if (how == kind::brutal_kill) return term(atoms::brutal_kill);
    if (how == kind::infinity) return term(atoms::infinity);
    return term(std::int64_t(timeout.count()));
  }
};

// The function that starts a child: it must start the child *linked to the calling process* (the
// supervisor) and return {ok, Pid}, ignore or {error, Reason}, like an Erlang MFA start function.
using start_function = std::function<task<start_result>()>;

struct child_spec {
  term id;                                  // unique within its supervisor (any term; usually an atom)
  start_function start;                     // starts the child, linked to the caller
  restart_type restart = restart_type::permanent;
  shutdown_policy shutdown{};               // 5 s for workers (supervisor children: use infinity)
  child_type type = child_type::worker;
};

// True for the exit reasons that count as a normal end for transient children and that
// supervisors do not report: normal, shutdown and {shutdown, Term}.
inline bool is_normal_exit(const term& reason) {
  if (reason == term(atoms::normal) || reason == term(atoms::shutdown)) return true;
  return reason.is_tuple() && reason.tuple_size() == 2 && reason.element(0) == term(atoms::shutdown);
}

}  // namespace athanor
