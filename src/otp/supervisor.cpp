// The static supervisor: a gen_server that traps exits and owns an ordered list of children.
//
// All child bookkeeping happens in the supervisor's own process, one event at a time (a child's
// exit, a request, a retry), so there is no locking: the order of events in the mailbox is the
// order in which they are handled, exactly as in OTP's supervisor.erl. Stopping a child is a
// small protocol (monitor, unlink, take an 'EXIT' that may already be queued, send the exit
// signal, wait for the DOWN, kill after the timeout) because the child may be ending on its own
// at the same moment; the DOWN is the one message that always comes.
#include "athanor/otp/supervisor.h"

#include <algorithm>
#include <deque>
#include <optional>

#include <fmt/format.h>

#include "athanor/otp/logger.h"

namespace athanor {

namespace {

struct which_req {};
struct count_req {};
struct start_child_req {
  child_spec spec;
};
struct terminate_req {
  term id;
};
struct restart_req {
  term id;
};
struct delete_req {
  term id;
};
struct try_again {
  term id;
};

struct sup_child {
  child_spec spec;
  pid process;
  bool restarting = false;
  std::uint64_t restarts = 0;
};

term strategy_term(strategy s) {
  switch (s) {
    case strategy::one_for_one: return term(atom("one_for_one"));
    case strategy::one_for_all: return term(atom("one_for_all"));
    case strategy::rest_for_one: return term(atom("rest_for_one"));
  }
  return term(atoms::undefined);
}

struct supervisor_server : gen_server<supervisor_server> {
  using info = std::tuple<try_again>;

  supervisor_flags flags;
  std::vector<child_spec> initial;
  std::vector<sup_child> children;
  std::deque<std::chrono::steady_clock::time_point> restart_times;
  term name;

  supervisor_server(supervisor_flags f, std::vector<child_spec> c, atom n)
      : flags(f), initial(std::move(c)), name(n == atoms::undefined ? term(athanor::self()) : term(n)) {}

  term describe_state() const {
    std::vector<term> ids;
    for (auto& c : children) ids.push_back(c.spec.id);
    return tuple(atom("supervisor"), name, strategy_term(flags.strategy), list(ids));
  }

  // ---- reports --------------------------------------------------------------------------------
  void report(std::string_view context, const term& reason, const sup_child& c, pid who) {
    if (!logger::enabled("otp", log_level::error)) return;
    log_event e;
    e.part = "otp";
    e.level = log_level::error;
    e.domain = "supervisor_report";
    e.text = fmt::format("supervisor {}: {} of child {} ({})", name.to_string(), context, c.spec.id.to_string(),
                         who ? who.to_string() : std::string("undefined"));
    e.metadata = {{"supervisor", name},
                  {"errorContext", term(atom(context))},
                  {"reason", reason},
                  {"offender", tuple(atom("id"), c.spec.id, atom("pid"), who ? term(who) : term(atoms::undefined))}};
    logger::log(std::move(e));
  }
  void progress(const sup_child& c) {
    if (!logger::enabled("otp", log_level::info)) return;
    log_event e;
    e.part = "otp";
    e.level = log_level::info;
    e.domain = "progress";
    e.text = fmt::format("supervisor {} started child {} ({})", name.to_string(), c.spec.id.to_string(), c.process.to_string());
    e.metadata = {{"supervisor", name}, {"id", c.spec.id}, {"pid", term(c.process)}};
    logger::log(std::move(e));
  }

  sup_child* find(const term& id) {
    for (auto& c : children)
      if (c.spec.id == id) return &c;
    return nullptr;
  }
  std::size_t index_of(pid p) const {
    for (std::size_t i = 0; i < children.size(); ++i)
      if (children[i].process == p) return i;
    return children.size();
  }

  // ---- starting and stopping one child ---------------------------------------------------------

  // Starts c; returns the start's result (and records the pid).
  task<start_result> start_one(sup_child& c) {
    term id = c.spec.id;
    start_result r = co_await c.spec.start();
    // The vector may have moved while the start was suspended? No: only this process touches it,
    // and it does nothing else while awaiting. Still, look the child up again by id.
    sup_child* again = find(id);
    if (again && r.ok()) {
      again->process = r.pid();
      again->restarting = false;
      progress(*again);
    }
    co_return r;
  }

  // Stops one running child per its shutdown policy and waits until it has ended.
  task<void> shutdown_one(sup_child& c) {
    process& me = this_process();
    pid p = c.process;
    term id = c.spec.id;
    shutdown_policy policy = c.spec.shutdown;
    c.process = pid();
    if (!p) co_return;
    ref m = monitor(p);
    unlink(p);
    // The child may have ended already: its 'EXIT' is then in the mailbox, and unlink() does not
    // remove it. Take it; its reason is the real one.
    auto from_child = [p](const exit_signal& x) { return x.from == p; };
    auto take_exit = on<exit_signal>(from_child, [](exit_signal& x) { return std::optional<term>(x.reason); });
    auto none = after(std::chrono::milliseconds(0), [] { return std::optional<term>(); });
    std::optional<term> early = co_await me.receive(std::move(take_exit), std::move(none));

    auto mine = [m](const down& d) { return d.monitor == m; };
    term reason;
    term expected = term(atoms::shutdown);
    if (policy.how == shutdown_policy::kind::brutal_kill) {
      expected = term(atoms::killed);
      exit(p, term(atoms::kill));
      auto take = on<down>(mine, [](down& d) { return d.reason; });
      term r = co_await me.receive(std::move(take));
      reason = r;
    } else {
      exit(p, term(atoms::shutdown));
      if (policy.how == shutdown_policy::kind::infinity) {
        auto take = on<down>(mine, [](down& d) { return std::optional<term>(d.reason); });
        std::optional<term> r = co_await me.receive(std::move(take));
        reason = *r;
      } else {
        auto take = on<down>(mine, [](down& d) { return std::optional<term>(d.reason); });
        auto late = after(policy.timeout, [] { return std::optional<term>(); });
        std::optional<term> r = co_await me.receive(std::move(take), std::move(late));
        if (r) {
          reason = *r;
        } else {
          // OTP reports a child killed after its shutdown timeout as a shutdown_error (killed).
          exit(p, term(atoms::kill));
          auto take2 = on<down>(mine, [](down& d) { return d.reason; });
          term r2 = co_await me.receive(std::move(take2));
          reason = r2;
        }
      }
    }
    if (early) reason = *early;
    if (reason != expected && !(early && is_normal_exit(reason))) {
      sup_child shown{c.spec, p, false, 0};
      shown.spec.id = id;
      report("shutdown_error", reason, shown, p);
    }
  }

  // Stops the running children in [from, to) in reverse start order; drops temporary ones.
  task<void> shutdown_range(std::size_t from, std::size_t to, std::size_t except = std::size_t(-1)) {
    for (std::size_t i = to; i-- > from;) {
      if (i == except || i >= children.size()) continue;
      if (children[i].process) co_await shutdown_one(children[i]);
    }
    // A temporary child that was stopped is not restarted: forget it (as OTP does).
    for (std::size_t i = to; i-- > from;) {
      if (i == except || i >= children.size()) continue;
      if (children[i].spec.restart == restart_type::temporary && !children[i].process) {
        children.erase(children.begin() + std::ptrdiff_t(i));
      }
    }
  }

  // ---- restarts -------------------------------------------------------------------------------

  // Records a restart; false when the restart intensity is exceeded.
  bool add_restart() {
    auto now = std::chrono::steady_clock::now();
    restart_times.push_back(now);
    while (!restart_times.empty() && restart_times.front() < now - flags.period) restart_times.pop_front();
    return restart_times.size() <= std::size_t(std::max(0, flags.intensity));
  }

  // Restarts per the strategy after child i ended (its process is already cleared).
  task<void> restart(std::size_t i) {
    if (!add_restart()) {
      sup_child& c = children[i];
      report("shutdown", term(atom("reached_max_restart_intensity")), c, pid());
      stop(term(atoms::shutdown));  // terminate() stops the other children
      co_return;
    }
    std::size_t first = i, last = i + 1;
    if (flags.strategy == strategy::one_for_all) {
      first = 0;
      last = children.size();
    } else if (flags.strategy == strategy::rest_for_one) {
      last = children.size();
    }
    term failed_id = children[i].spec.id;
    if (last > first + 1) co_await shutdown_range(first, last, i);
    // Start the group in order (indices may have shifted if temporary children were dropped).
    std::vector<term> ids;
    for (std::size_t j = 0; j < children.size(); ++j) {
      bool in_group = flags.strategy == strategy::one_for_all ||
                      (flags.strategy == strategy::rest_for_one && j >= index_by_id(failed_id)) || children[j].spec.id == failed_id;
      if (in_group && !children[j].process) ids.push_back(children[j].spec.id);
    }
    for (auto& id : ids) {
      sup_child* c = find(id);
      if (!c) continue;
      ++c->restarts;
      start_result r = co_await start_one(*c);
      if (!r.ok() && !r.ignored()) {
        c = find(id);
        if (!c) co_return;
        report("start_error", r.error(), *c, pid());
        c->restarting = true;
        // OTP retries through a message to itself, so other events get handled in between and
        // each retry counts towards the restart intensity.
        send(self(), try_again{id});
        co_return;
      }
    }
  }

  std::size_t index_by_id(const term& id) const {
    for (std::size_t i = 0; i < children.size(); ++i)
      if (children[i].spec.id == id) return i;
    return children.size();
  }

  // ---- callbacks --------------------------------------------------------------------------------

  task<init_result> init() {
    for (auto& spec : initial) {
      if (find(spec.id)) {
        co_await shutdown_range(0, children.size());
        co_return init_result::stop(tuple(atom("duplicate_child_name"), spec.id));
      }
      children.push_back(sup_child{spec, pid(), false, 0});
      start_result r = co_await start_one(children.back());
      if (!r.ok() && !r.ignored()) {
        sup_child failed = children.back();
        children.pop_back();
        report("start_error", r.error(), failed, pid());
        co_await shutdown_range(0, children.size());
        co_return init_result::stop(tuple(atoms::shutdown, tuple(atom("failed_to_start_child"), spec.id, r.error())));
      }
    }
    initial.clear();
    co_return init_result::ok();
  }

  task<void> handle_info(exit_signal x) {
    std::size_t i = index_of(x.from);
    if (i == children.size() || !x.from) co_return;  // not a child (an old one, or a stranger)
    sup_child& c = children[i];
    c.process = pid();
    bool normal = is_normal_exit(x.reason);
    switch (c.spec.restart) {
      case restart_type::permanent:
        report("child_terminated", x.reason, c, x.from);
        co_await restart(i);
        break;
      case restart_type::transient:
        if (normal) co_return;
        report("child_terminated", x.reason, c, x.from);
        co_await restart(i);
        break;
      case restart_type::temporary:
        if (!normal) report("child_terminated", x.reason, c, x.from);
        children.erase(children.begin() + std::ptrdiff_t(i));
        break;
    }
  }

  task<void> handle_info(try_again t) {
    sup_child* c = find(t.id);
    if (!c || !c->restarting || c->process) co_return;
    co_await restart(index_by_id(t.id));
  }

  std::vector<child_info> handle_call(which_req) {
    std::vector<child_info> out;
    out.reserve(children.size());
    for (auto& c : children) out.push_back(child_info{c.spec.id, c.process, c.restarting, c.spec.type, c.restarts});
    return out;
  }

  child_counts handle_call(count_req) {
    child_counts n;
    n.specs = children.size();
    for (auto& c : children) {
      if (c.process) ++n.active;
      if (c.spec.type == child_type::supervisor) ++n.supervisors;
      else ++n.workers;
    }
    return n;
  }

  task<start_result> handle_call(start_child_req req) {
    if (sup_child* c = find(req.spec.id)) {
      if (c->process) co_return start_result::error(tuple(atom("already_started"), c->process));
      co_return start_result::error(term(atom("already_present")));
    }
    term id = req.spec.id;
    children.push_back(sup_child{std::move(req.spec), pid(), false, 0});
    start_result r = co_await start_one(children.back());
    if (!r.ok() && !r.ignored()) {
      std::size_t i = index_by_id(id);
      if (i < children.size()) children.erase(children.begin() + std::ptrdiff_t(i));
    }
    co_return r;
  }

  task<term> handle_call(terminate_req req) {
    sup_child* c = find(req.id);
    if (!c) co_return tuple(atoms::error, atom("not_found"));
    if (c->process) co_await shutdown_one(*c);
    c = find(req.id);
    if (c) c->restarting = false;
    if (c && c->spec.restart == restart_type::temporary) children.erase(children.begin() + std::ptrdiff_t(index_by_id(req.id)));
    co_return term(atoms::ok);
  }

  task<start_result> handle_call(restart_req req) {
    sup_child* c = find(req.id);
    if (!c) co_return start_result::error(term(atom("not_found")));
    if (c->process) co_return start_result::error(term(atom("running")));
    if (c->restarting) co_return start_result::error(term(atom("restarting")));
    start_result r = co_await start_one(*c);
    co_return r;
  }

  term handle_call(delete_req req) {
    sup_child* c = find(req.id);
    if (!c) return tuple(atoms::error, atom("not_found"));
    if (c->process) return tuple(atoms::error, atom("running"));
    if (c->restarting) return tuple(atoms::error, atom("restarting"));
    children.erase(children.begin() + std::ptrdiff_t(index_by_id(req.id)));
    return term(atoms::ok);
  }

  task<void> terminate(term) { co_await shutdown_range(0, children.size()); }
};

}  // namespace

task<start_result> supervisor::start_link(supervisor_flags flags, std::vector<child_spec> children, atom name) {
  server_options o;
  o.name = name;
  o.trap_exit = true;
  return athanor::start_link<supervisor_server>(o, flags, std::move(children), name);
}

task<start_result> supervisor::start(supervisor_flags flags, std::vector<child_spec> children, atom name) {
  server_options o;
  o.name = name;
  o.trap_exit = true;
  return athanor::start<supervisor_server>(o, flags, std::move(children), name);
}

child_spec supervisor::spec(term id, supervisor_flags flags, std::vector<child_spec> children, atom name) {
  child_spec c;
  c.id = std::move(id);
  c.type = child_type::supervisor;
  c.shutdown = shutdown_policy::infinity();
  c.start = [flags, children = std::move(children), name]() -> task<start_result> {
    return supervisor::start_link(flags, children, name);
  };
  return c;
}

task<std::vector<child_info>> supervisor::which_children(server_ref sup) { return call<supervisor_server>(std::move(sup), which_req{}, infinity); }

task<child_counts> supervisor::count_children(server_ref sup) { return call<supervisor_server>(std::move(sup), count_req{}, infinity); }

task<start_result> supervisor::start_child(server_ref sup, child_spec spec) {
  return call<supervisor_server>(std::move(sup), start_child_req{std::move(spec)}, infinity);
}

task<term> supervisor::terminate_child(server_ref sup, term id) {
  return call<supervisor_server>(std::move(sup), terminate_req{std::move(id)}, infinity);
}

task<start_result> supervisor::restart_child(server_ref sup, term id) {
  return call<supervisor_server>(std::move(sup), restart_req{std::move(id)}, infinity);
}

task<term> supervisor::delete_child(server_ref sup, term id) { return call<supervisor_server>(std::move(sup), delete_req{std::move(id)}, infinity); }

namespace {
task<void> describe_into(server_ref sup, int depth, std::string& out) {
  std::vector<child_info> kids = co_await supervisor::which_children(sup);
  for (auto& k : kids) {
    out += fmt::format("{:{}}{} {} {}{}\n", "", depth * 2, k.type == child_type::supervisor ? "+" : "-", k.id.to_string(),
                       k.process ? k.process.to_string() : std::string(k.restarting ? "restarting" : "undefined"),
                       k.restarts ? fmt::format(" restarts={}", k.restarts) : std::string());
    if (k.type == child_type::supervisor && k.process) {
      try {
        co_await describe_into(server_ref(k.process), depth + 1, out);
      } catch (const call_error&) {
        // It ended while we looked: the next look will show its replacement.
      }
    }
  }
}
}  // namespace

task<std::string> supervisor::describe_tree(server_ref sup) {
  std::string out;
  co_await describe_into(std::move(sup), 0, out);
  co_return out;
}

}  // namespace athanor
