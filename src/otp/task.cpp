// Tasks' non-template half: the exit reasons they raise (shaped as Elixir's, so that a crash
// report reads the same) and the stream's clean-up.
#include "athanor/otp/task.h"

#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "athanor/runtime/runtime.h"

namespace athanor {

task_exit_error::task_exit_error(term why_, term where)
    : exit_exception{tuple(why_, where)}, why(std::move(why_)) {
  text = fmt::format("task exited: {}", reason.to_string());
}

namespace detail {

term task_term(pid task_pid, pid owner, const ref& monitor) {
  return map({{term(atom("__struct__")), term(atom("Elixir.Task"))},
              {term(atom("owner")), term(owner)},
              {term(atom("pid")), term(task_pid)},
              {term(atom("ref")), term(monitor)}});
}

term task_where(std::string_view module, std::string_view function, std::vector<term> args) {
  return tuple(atom(module), atom(function), list(std::span<const term>(args)));
}

term timeout_term(std::chrono::milliseconds t) {
  return t == infinity ? term(atoms::infinity) : term(std::int64_t(t.count()));
}

void check_task_owner(pid owner, std::string_view what) {
  // Elixir raises ArgumentError: only the owner holds the monitor and alias the reply needs.
  if (self() != owner)
    throw std::invalid_argument(fmt::format("athanor::{}: the task is owned by {}, not by the caller {}", what,
                                            owner.to_string(), self().to_string()));
}

std::size_t default_concurrency() {
  // Elixir's System.schedulers_online(): the runtime's scheduler count.
  unsigned n = system_info().schedulers;
  return n ? n : std::max(1u, std::thread::hardware_concurrency());
}

void kill_stream_tasks(const std::unordered_map<pid, std::pair<std::size_t, ref>>& running) {
  // Unlink first: a linked task killed here would otherwise end the caller with `killed`.
  for (auto& [p, entry] : running) {
    unlink(p);
    exit(p, term(atoms::kill));
    demonitor(entry.second, true);
  }
}

task<start_result> ready_result(start_result r) { co_return r; }

child_spec task_child_spec(start_function start, const supervised_task_options& opts) {
  child_spec c;
  c.id = term(atom("Elixir.Task.Supervised"));
  c.start = std::move(start);
  c.restart = opts.restart;
  c.shutdown = opts.shutdown;
  return c;
}

}  // namespace detail

task<start_result> task_supervisor::start_link(task_supervisor_options opts) {
  dynamic_supervisor_options o;
  o.name = opts.name;
  o.max_children = opts.max_children;
  return dynamic_supervisor::start_link(o);
}

child_spec task_supervisor::spec(term id, task_supervisor_options opts) {
  dynamic_supervisor_options o;
  o.name = opts.name;
  o.max_children = opts.max_children;
  return dynamic_supervisor::spec(std::move(id), o);
}

task<std::vector<pid>> task_supervisor::children(server_ref sup) {
  std::vector<dynamic_supervisor::child_info> all = co_await dynamic_supervisor::which_children(std::move(sup));
  std::vector<pid> out;
  out.reserve(all.size());
  for (auto& c : all) out.push_back(c.process);
  co_return out;
}

}  // namespace athanor
