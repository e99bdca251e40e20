// dynamic_supervisor: a gen_server that traps exits and keeps its children in a hash map by pid.
//
// Why a gen_server: which_children and friends become plain calls, the parent's exit signal
// runs terminate (which stops the children), and a crash of the supervisor itself is reported
// like any server's. Starting a child runs the spec's start function inside a call handler, so
// the child is linked to the supervisor, as OTP requires.
//
// Stopping children follows OTP's supervisor:monitor_child: monitor, unlink, and take an
// 'EXIT' that may already be queued (the child is then already gone); the child's end is then
// seen only as a DOWN with its real reason, whatever the link did.
#include "athanor/otp/dynamic_supervisor.h"

#include <algorithm>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "athanor/otp/logger.h"

namespace athanor {

namespace {

using clock_type = std::chrono::steady_clock;

struct start_child_req {
  child_spec spec;
};
struct terminate_child_req {
  pid child;
};
struct which_children_req {};
struct count_children_req {};
// Sent to itself when a restart failed: retried later, so other messages get a turn (Elixir's
// DynamicSupervisor does the same).
struct retry_restart {
  child_spec spec;
};

term restart_term(restart_type r) {
  switch (r) {
    case restart_type::permanent: return term(atom("permanent"));
    case restart_type::transient: return term(atom("transient"));
    case restart_type::temporary: return term(atom("temporary"));
  }
  return term(atoms::undefined);
}

// What a stopped child's DOWN should say: anything else is a shutdown_error.
term expected_reason(const shutdown_policy& p) {
  return p.how == shutdown_policy::kind::brutal_kill ? term(atoms::killed) : term(atoms::shutdown);
}

struct dynsup_server : gen_server<dynsup_server> {
  using info = std::tuple<retry_restart>;

  dynamic_supervisor_options opts;
  std::unordered_map<pid, child_spec> children;
  std::deque<clock_type::time_point> restart_times;
  std::size_t restarting = 0;  // restarts waiting for a retry
  term name;

  explicit dynsup_server(dynamic_supervisor_options o)
      : opts(o), name(o.name == atoms::undefined ? term(athanor::self()) : term(o.name)) {}

  term describe_state() const {
    return tuple(atom("dynamic_supervisor"), name, term(std::int64_t(children.size())));
  }

  // ---- reports ---------------------------------------------------------------------------------
  void report(std::string_view context, const term& reason, const child_spec& spec, pid who) {
    if (!logger::enabled("otp", log_level::error)) return;
    log_event e;
    e.part = "otp";
    e.level = log_level::error;
    e.domain = "supervisor_report";
    e.text = fmt::format("dynamic supervisor {}: {} of child {} with reason {}", name.to_string(), context,
                         who ? who.to_string() : std::string("undefined"), reason.to_string());
    e.metadata = {{"supervisor", name},
                  {"errorContext", term(atom(context))},
                  {"reason", reason},
                  {"offender", tuple(atom("pid"), who ? term(who) : term(atoms::undefined), atom("id"), spec.id,
                                     atom("restart_type"), restart_term(spec.restart), atom("shutdown"),
                                     spec.shutdown.to_term())}};
    logger::log(std::move(e));
  }
  void progress(const child_spec& spec, pid who) {
    if (!logger::enabled("otp", log_level::info)) return;
    log_event e;
    e.part = "otp";
    e.level = log_level::info;
    e.domain = "progress";
    e.text = fmt::format("dynamic supervisor {} started child {}", name.to_string(), who.to_string());
    e.metadata = {{"supervisor", name}, {"id", spec.id}, {"pid", term(who)}};
    logger::log(std::move(e));
  }

  // Runs the spec's start function; an exception becomes {error, Reason} (OTP catches a start
  // function that crashes). The spec is taken by value and handed back with the result, as a
  // coroutine must not hold references to its caller's objects.
  struct started {
    start_result result;
    child_spec spec;
  };
  static task<started> run_start(child_spec spec) {
    std::optional<start_result> r;
    try {
      start_result got = co_await spec.start();
      r.emplace(std::move(got));
    } catch (...) {
      r.emplace(start_result::error(detail::exit_reason_of(std::current_exception())));
    }
    co_return started{std::move(*r), std::move(spec)};
  }

  // ---- calls -----------------------------------------------------------------------------------
  task<start_result> handle_call(start_child_req r) {
    if (children.size() + restarting >= opts.max_children) co_return start_result::error(term(atom("max_children")));
    started s = co_await run_start(std::move(r.spec));
    if (s.result.ok()) {
      progress(s.spec, s.result.pid());
      children.emplace(s.result.pid(), std::move(s.spec));
    }
    co_return s.result;
  }

  task<term> handle_call(terminate_child_req r) {
    auto it = children.find(r.child);
    if (it == children.end()) co_return tuple(atoms::error, atom("not_found"));
    child_spec spec = std::move(it->second);
    children.erase(it);
    co_await stop_one(r.child, spec);
    co_return term(atoms::ok);
  }

  std::vector<dynamic_supervisor::child_info> handle_call(which_children_req) {
    std::vector<dynamic_supervisor::child_info> out;
    out.reserve(children.size());
    for (auto& [p, spec] : children) out.push_back({p, spec.type});
    return out;
  }

  dynamic_supervisor::counts handle_call(count_children_req) {
    dynamic_supervisor::counts c;
    c.specs = children.size() + restarting;
    c.active = children.size();
    for (auto& [p, spec] : children) (spec.type == child_type::supervisor ? c.supervisors : c.workers) += 1;
    return c;
  }

  // ---- child exits and restarts ------------------------------------------------------------------
  task<void> handle_info(exit_signal x) {
    auto it = children.find(x.from);
    if (it == children.end()) co_return;  // not (or no longer) a child: OTP ignores it
    child_spec spec = std::move(it->second);
    children.erase(it);
    // OTP's do_restart: a permanent child's end is always reported; the others' only when abnormal.
    bool abnormal = !is_normal_exit(x.reason);
    if (spec.restart == restart_type::permanent || abnormal) report("child_terminated", x.reason, spec, x.from);
    bool again = spec.restart == restart_type::permanent || (spec.restart == restart_type::transient && abnormal);
    if (!again) co_return;
    co_await restart(std::move(spec));
  }

  task<void> handle_info(retry_restart r) {
    --restarting;
    co_await restart(std::move(r.spec));
  }

  // Records a restart; false if that makes more than `intensity` within `period`.
  bool add_restart() {
    auto now = clock_type::now();
    restart_times.push_back(now);
    while (!restart_times.empty() && now - restart_times.front() > opts.period) restart_times.pop_front();
    return restart_times.size() <= std::size_t(std::max(opts.intensity, 0));
  }

  task<void> restart(child_spec spec) {
    if (!add_restart()) {
      report("shutdown", term(atom("reached_max_restart_intensity")), spec, pid());
      stop(term(atoms::shutdown));
      co_return;
    }
    started s = co_await run_start(std::move(spec));
    if (s.result.ok()) {
      progress(s.spec, s.result.pid());
      children.emplace(s.result.pid(), std::move(s.spec));
      co_return;
    }
    if (s.result.ignored()) co_return;
    report("start_error", s.result.error(), s.spec, pid());
    ++restarting;
    send(self(), retry_restart{std::move(s.spec)});
  }

  // ---- stopping children -------------------------------------------------------------------------
  // Monitors and unlinks `child`; returns the reason of an 'EXIT' it had already sent.
  static task<std::optional<term>> detach(process& me, pid child) {
    unlink(child);
    auto from_child = [child](const exit_signal& x) { return x.from == child; };
    auto take = on<exit_signal>(from_child, [](exit_signal& x) { return std::optional<term>(x.reason); });
    auto none = after(std::chrono::milliseconds(0), [] { return std::optional<term>(); });
    std::optional<term> early = co_await me.receive(std::move(take), std::move(none));
    co_return early;
  }

  void check_stopped(const child_spec& spec, pid child, const std::optional<term>& early, const term& down_reason) {
    if (early) {
      if (!is_normal_exit(*early)) report("shutdown_error", *early, spec, child);
    } else if (down_reason != expected_reason(spec.shutdown)) {
      report("shutdown_error", down_reason, spec, child);
    }
  }

  task<void> stop_one(pid child, child_spec spec) {
    process& me = this_process();
    ref m = monitor(child);
    std::optional<term> early = co_await detach(me, child);
    if (!early) exit(child, spec.shutdown.how == shutdown_policy::kind::brutal_kill ? term(atoms::kill) : term(atoms::shutdown));
    auto mine = [m](const down& d) { return d.monitor == m; };
    std::optional<term> reason;
    if (spec.shutdown.how == shutdown_policy::kind::timeout) {
      auto take = on<down>(mine, [](down& d) { return std::optional<term>(d.reason); });
      auto expired = after(spec.shutdown.timeout, [] { return std::optional<term>(); });
      std::optional<term> got = co_await me.receive(std::move(take), std::move(expired));
      reason = std::move(got);
      if (!reason) exit(child, term(atoms::kill));
    }
    if (!reason) {
      auto take = on<down>(mine, [](down& d) { return d.reason; });
      term got = co_await me.receive(std::move(take));
      reason = std::move(got);
    }
    check_stopped(spec, child, early, *reason);
  }

  // Stops every child at once: all get their signal first, then each is waited for within its own
  // shutdown policy (OTP's terminate_dynamic_children).
  task<void> stop_all() {
    if (children.empty()) co_return;
    process& me = this_process();
    struct stopping {
      ref monitor;
      child_spec spec;
      std::optional<term> early;
    };
    std::unordered_map<pid, stopping> pending;
    pending.reserve(children.size());
    // consume(): with many thousands of children these loops are long; checkpoints keep the
    // supervisor from holding its scheduler (nothing else touches `children` meanwhile: this
    // runs in terminate, after the last message).
    for (auto& [p, spec] : children) {
      ref m = monitor(p);
      unlink(p);
      pending.emplace(p, stopping{m, std::move(spec), std::nullopt});
      co_await me.consume(100);  // unlink and monitor cost O(links) each in the runtime: charge more than 1
    }
    children.clear();
    // 'EXIT's that arrived before the unlinks: those children are gone already.
    for (;;) {
      auto from_child = [&pending](const exit_signal& x) { return pending.contains(x.from); };
      auto take = on<exit_signal>(from_child, [&pending](exit_signal& x) {
        pending.at(x.from).early = x.reason;
        return true;
      });
      auto none = after(std::chrono::milliseconds(0), [] { return false; });
      bool took = co_await me.receive(std::move(take), std::move(none));
      if (!took) break;
    }
    std::vector<std::pair<clock_type::time_point, pid>> deadlines;
    auto start = clock_type::now();
    for (auto& [p, s] : pending) {
      if (s.early) continue;
      bool brutal = s.spec.shutdown.how == shutdown_policy::kind::brutal_kill;
      exit(p, brutal ? term(atoms::kill) : term(atoms::shutdown));
      if (s.spec.shutdown.how == shutdown_policy::kind::timeout) deadlines.emplace_back(start + s.spec.shutdown.timeout, p);
      co_await me.consume(100);
    }
    std::sort(deadlines.begin(), deadlines.end(), [](auto& a, auto& b) { return a.first < b.first; });
    std::size_t next_deadline = 0;
    while (!pending.empty()) {
      auto ours = [&pending](const down& d) {
        auto it = pending.find(d.from);
        return it != pending.end() && it->second.monitor == d.monitor;
      };
      auto on_down = on<down>(ours, [this, &pending](down& d) {
        auto it = pending.find(d.from);
        check_stopped(it->second.spec, d.from, it->second.early, d.reason);
        pending.erase(it);
        return true;
      });
      while (next_deadline < deadlines.size() && !pending.contains(deadlines[next_deadline].second)) ++next_deadline;
      if (next_deadline == deadlines.size()) {
        co_await me.receive(std::move(on_down));
        continue;
      }
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadlines[next_deadline].first - clock_type::now());
      auto expired = after(std::max(left, std::chrono::milliseconds(0)), [] { return false; });
      bool got = co_await me.receive(std::move(on_down), std::move(expired));
      if (got) continue;
      // Past their deadline: kill them (their DOWN, with `killed`, is reported as shutdown_error).
      auto now = clock_type::now();
      while (next_deadline < deadlines.size() && deadlines[next_deadline].first <= now) {
        pid p = deadlines[next_deadline].second;
        if (pending.contains(p)) exit(p, term(atoms::kill));
        ++next_deadline;
      }
    }
  }

  task<void> terminate(term) { co_await stop_all(); }
};

server_options server_opts(const dynamic_supervisor_options& o) {
  server_options so;
  so.name = o.name;
  so.trap_exit = true;
  return so;
}

}  // namespace

task<start_result> dynamic_supervisor::start_link(dynamic_supervisor_options opts) {
  return athanor::start_link<dynsup_server>(server_opts(opts), opts);
}

child_spec dynamic_supervisor::spec(term id, dynamic_supervisor_options opts) {
  child_spec c;
  c.id = std::move(id);
  c.start = [opts]() -> task<start_result> { return dynamic_supervisor::start_link(opts); };
  c.type = child_type::supervisor;
  c.shutdown = shutdown_policy::infinity();
  return c;
}

task<start_result> dynamic_supervisor::start_child(server_ref sup, child_spec spec, std::chrono::milliseconds timeout) {
  return call<dynsup_server>(std::move(sup), start_child_req{std::move(spec)}, timeout);
}

task<term> dynamic_supervisor::terminate_child(server_ref sup, pid child, std::chrono::milliseconds timeout) {
  return call<dynsup_server>(std::move(sup), terminate_child_req{child}, timeout);
}

task<std::vector<dynamic_supervisor::child_info>> dynamic_supervisor::which_children(server_ref sup, std::chrono::milliseconds timeout) {
  return call<dynsup_server>(std::move(sup), which_children_req{}, timeout);
}

task<dynamic_supervisor::counts> dynamic_supervisor::count_children(server_ref sup, std::chrono::milliseconds timeout) {
  return call<dynsup_server>(std::move(sup), count_children_req{}, timeout);
}

}  // namespace athanor
