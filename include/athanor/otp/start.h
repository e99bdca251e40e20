// athanor::start_result: the outcome of starting an OTP process (a gen_server, a supervisor, a
// child): Erlang's {ok, Pid} | ignore | {error, Reason}. A plain value; thread-safe to copy.
#pragma once

#include <exception>
#include <string>

#include "athanor/runtime/process.h"
#include "athanor/term/pid.h"
#include "athanor/term/term.h"

namespace athanor {

// Thrown by start_result::value() when the start failed; as an exit_exception, it ends an
// uncaught process with the start's error reason.
struct start_error : exit_exception, std::exception {
  explicit start_error(term reason) : exit_exception{std::move(reason)}, text("start failed: " + this->reason.to_string()) {}
  const char* what() const noexcept override { return text.c_str(); }
  std::string text;
};

class start_result {
 public:
  // {ok, Pid}
  static start_result ok(athanor::pid p) { return start_result(p, term(atoms::undefined), false); }
  // ignore: init asked not to start (a supervisor keeps the child spec, with no process)
  static start_result ignore() { return start_result(athanor::pid(), term(atoms::undefined), true); }
  // {error, Reason}
  static start_result error(term reason) { return start_result(athanor::pid(), std::move(reason), false); }

  // True for {ok, Pid}.
  bool ok() const noexcept { return bool(pid_); }
  explicit operator bool() const noexcept { return ok(); }
  // True for ignore.
  bool ignored() const noexcept { return ignored_; }
  // The started process (null unless ok()).
  athanor::pid pid() const noexcept { return pid_; }
  // The error reason ({error, Reason}); `undefined` when ok() or ignored().
  const term& error() const noexcept { return error_; }
  // The started process; throws start_error (reason: the error, or `ignore`) unless ok().
  athanor::pid value() const {
    if (!ok()) throw start_error(ignored_ ? term(atoms::ignore) : error_);
    return pid_;
  }
  // {ok, Pid}, ignore or {error, Reason}, as Erlang would return it.
  term to_term() const {
    if (ok()) return tuple(atoms::ok, pid_);
    if (ignored_) return term(atoms::ignore);
    return tuple(atoms::error, error_);
  }

 private:
  start_result(athanor::pid p, term e, bool ignored) : pid_(p), error_(std::move(e)), ignored_(ignored) {}
  athanor::pid pid_;
  term error_;
  bool ignored_ = false;
};

}  // namespace athanor
