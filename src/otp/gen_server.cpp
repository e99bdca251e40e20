// gen_server's non-template half: starting with an acknowledgement, the call protocol's
// monitor/alias bookkeeping, crash reports, stop and code_change.
//
// The call protocol (Erlang/OTP 24+'s gen:call): the caller monitors the server and makes the
// monitor's reference an alias of itself; the request carries {Caller, Ref}; the server replies
// through the alias; the caller takes either the reply or the DOWN for that reference, then
// deactivates the alias and drops the monitor. A reply that arrives after a timeout finds the
// alias inactive and is dropped by the runtime, so it never sits in the caller's mailbox.
#include "athanor/otp/gen_server.h"

#include <fmt/format.h>

#include "athanor/otp/child_spec.h"

namespace athanor {

pid server_ref::resolve() const {
  if (!named_) return pid_;
  if (remote_) return pid();  // reached by name, through the distribution layer
  return whereis(name_);
}

term server_ref::to_term() const {
  if (!named_) return term(pid_);
  if (remote_) return tuple(name_, node_);
  return term(name_);
}

namespace detail {
bool is_gen_call_term(const term& t) {
  return t.is_tuple() && t.tuple_size() == 3 && t.element(0) == term(atom("$gen_call")) && t.element(1).is_tuple() &&
         t.element(1).tuple_size() == 2 && t.element(1).element(0).is_pid();
}
void reply_to_term_call(const term& from, term reply) {
  const pid caller = from.element(0).as_pid();
  const term& tag = from.element(1);
  term message = tuple(tag, std::move(reply));
  if (tag.is_list() && !tag.is_nil() && tag.head() == term(atom("alias")) && tag.tail().is_reference()) {
    // gen:reply's rule for the alias form: Alias ! {Tag, Reply}. A caller on another node
    // (an Erlang one) gets it through ALIAS_SEND, so that a reply after its timeout is dropped.
    const ref a = tag.tail().as_ref();
    if (caller.is_local() ? alias_owner(a) == caller : !a.is_local() && a.node() == caller.node()) {
      send_alias(a, std::move(message));
      return;
    }
  }
  send(caller, std::move(message));
}
}  // namespace detail

task<term> call(server_ref server, term request, std::chrono::milliseconds timeout) {
  process& self = this_process();
  ref mref;
  if (server.is_remote_name()) {
    mref = monitor(name_on_node{server.name(), server.node()});
  } else {
    pid to = server.resolve();
    if (!to) throw call_error(term(atoms::noproc), server.to_term(), timeout);
    mref = monitor(to);
  }
  // OTP 24's form: the tag [alias|Alias] asks the server to reply through an alias (gen:reply
  // sends Alias ! {Tag, Reply}), which is deactivated once the call is over, so that a reply
  // coming after the timeout is dropped instead of staying in the mailbox.
  const ref reply_alias = alias();
  const term tag = list({term(atom("alias"))}, term(reply_alias));
  term message = tuple(atom("$gen_call"), tuple(self.self(), tag), std::move(request));
  try {
    if (server.is_remote_name()) send(name_on_node{server.name(), server.node()}, std::move(message));
    else send(server.resolve(), std::move(message));
  } catch (...) {
    unalias(reply_alias);
    demonitor(mref, true);
    throw;
  }
  auto is_reply = [tag](const term& t) { return t.is_tuple() && t.tuple_size() == 2 && t.element(0) == tag; };
  auto is_down = [mref](const down& d) { return d.monitor == mref; };
  struct outcome {
    std::optional<term> reply;
    term reason;
  };
  auto on_reply = on<term>(is_reply, [](term& t) { return outcome{t.element(1), term()}; });
  auto on_down = on<down>(is_down, [](down& d) { return outcome{std::nullopt, d.reason}; });
  outcome o;
  if (timeout == infinity) {
    o = co_await self.receive(std::move(on_reply), std::move(on_down));
  } else {
    o = co_await self.receive(std::move(on_reply), std::move(on_down),
                              after(timeout, [] { return outcome{std::nullopt, term(atoms::timeout)}; }));
  }
  unalias(reply_alias);
  if (!o.reply && o.reason == term(atoms::timeout)) demonitor(mref, true);
  else if (o.reply) demonitor(mref, true);
  if (o.reply) co_return std::move(*o.reply);
  term why = o.reason;
  if (why == term(atom("noconnection"))) why = tuple(atom("nodedown"), server.is_remote_name() ? term(server.node()) : term(atom("nonode@nohost")));
  throw call_error(why, server.to_term(), timeout);
}

static term timeout_term(std::chrono::milliseconds t) {
  return t == infinity ? term(atoms::infinity) : term(std::int64_t(t.count()));
}

call_error::call_error(term reason, term server, std::chrono::milliseconds timeout)
    : exit_exception{tuple(reason, tuple(atom("gen_server"), atom("call"), list({server, timeout_term(timeout)})))},
      why(std::move(reason)) {
  text = fmt::format("call to {} failed: {}", server.to_string(), why.to_string());
}

void reply(const from& f) {
  if (f.reply_type != detail::type_of<std::monostate>())
    throw std::logic_error("athanor::reply: the call expects a value");
  detail::send_reply<void>(f, std::monostate{});
}

namespace detail {

term gen_op::describe_message() const {
  term req = describe_fn(*this);
  if (kind == gen_op_kind::cast) return tuple(atom("$gen_cast"), req);
  return tuple(atom("$gen_call"), tuple(caller.caller, caller.tag), req);
}

term describe_message(message& m) {
  if (!m) return term(atoms::undefined);
  if (auto* op = m.get_if<gen_op>()) return op->describe_message();
  if (auto* t = m.get_if<term>()) return *t;
  if (auto* x = m.get_if<exit_signal>()) return tuple(atoms::EXIT, x->from, x->reason);
  if (auto* d = m.get_if<down>()) return tuple(atoms::DOWN, d->monitor, atoms::process, d->from, d->reason);
  if (auto* r = m.get_if<system_request>())
    return tuple(atom("system"), r->what == system_request::kind::stop ? atom("terminate") : atom("change_code"), r->a);
  return term(std::string_view(type_name(*m.type_info())));  // as describe() shows a type it cannot print
}

term exit_reason_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const exit_exception& x) {
    return x.reason;
  } catch (const error_exception& x) {
    return x.reason;  // a runtime error such as link/1's noproc keeps its Erlang reason
  } catch (const std::exception& x) {
    return tuple(atom("exception"), term(std::string_view(x.what())));
  } catch (...) {
    return tuple(atom("exception"), term(std::string_view("unknown exception")));
  }
}

void report_server_crash(const server_control& c, pid self, const term& reason, const term& last, const term& state) {
  if (!logger::enabled("otp", log_level::error)) return;
  log_event e;
  e.part = "otp";
  e.level = log_level::error;
  e.domain = "crash_report";
  e.text = fmt::format("gen_server {} terminating", c.name.to_string());
  e.metadata = {{"pid", term(self)}, {"name", c.name}, {"reason", reason}, {"last_message", last}, {"state", state}};
  e.process = self;
  logger::log(std::move(e));
}

void report_unexpected_message(const server_control& c, pid self, const std::type_info& server_type, message& m) {
  if (!logger::enabled("otp", log_level::warning)) return;
  std::string type = m ? type_name(*m.type_info()) : std::string("none");
  term shown = describe_message(m);
  log_event e;
  e.level = log_level::warning;
  e.part = "otp";
  e.domain = "unexpected_message";
  e.text = fmt::format("gen_server {} ({}) has no handle_info for a message of type {}", c.name.to_string(), type_name(server_type), type);
  if (shown != term(std::string_view(type))) e.text += ": " + shown.to_string();
  e.metadata = {{"pid", term(self)}, {"name", c.name}, {"message_type", term(std::string_view(type))}, {"message", shown}};
  e.process = self;
  logger::log(std::move(e));
}

void acknowledge(pid starter, const ref& tag, start_result r) {
  send_alias(starter, tag, start_ack{tag, std::move(r)});
}

namespace {

struct start_outcome {
  std::optional<start_result> ack;
  term down_reason;
  bool timed_out = false;
};

// Removes the exit_signal `child` sent when it ended, if this process traps exits (OTP 26's
// proc_lib: a failed start does not leave an 'EXIT' message behind).
task<void> flush_exit_from(process& me, pid child) {
  if (!me.trapping_exits()) co_return;
  auto from_child = [child](const exit_signal& x) { return x.from == child; };
  auto take = on<exit_signal>(from_child, [](exit_signal&) {});
  auto none = after(std::chrono::milliseconds(0), [] {});
  co_await me.receive(std::move(take), std::move(none));
}

// Waits for the DOWN of monitor `mref` and returns its reason.
task<term> wait_down(process& me, ref mref) {
  auto mine = [mref](const down& d) { return d.monitor == mref; };
  auto take = on<down>(mine, [](down& d) { return d.reason; });
  term reason = co_await me.receive(std::move(take));
  co_return reason;
}

}  // namespace

task<start_result> start_and_wait(std::function<proc(process&, ref, pid)> body, server_options opts, bool link) {
  process& me = this_process();
  pid starter = me.self();
  ref tag = make_ref();
  alias(tag);
  spawn_options so;
  so.link = link;
  so.max_heap_bytes = opts.max_heap_bytes;
  ref mref;
  pid child = spawn_closure(make_closure([body = std::move(body), tag, starter](process& p) -> proc { return body(p, tag, starter); }),
                            so, &mref);

  auto is_ack = [tag](const start_ack& a) { return a.tag == tag; };
  auto is_down = [mref](const down& d) { return d.monitor == mref; };
  auto on_ack = on<start_ack>(is_ack, [](start_ack& a) { return start_outcome{std::move(a.result), term(), false}; });
  auto on_down = on<down>(is_down, [](down& d) { return start_outcome{std::nullopt, d.reason, false}; });
  std::optional<start_outcome> got;
  if (opts.timeout == infinity) {
    start_outcome o = co_await me.receive(std::move(on_ack), std::move(on_down));
    got.emplace(std::move(o));
  } else {
    auto expired = after(opts.timeout, [] { return start_outcome{std::nullopt, term(), true}; });
    start_outcome o = co_await me.receive(std::move(on_ack), std::move(on_down), std::move(expired));
    got.emplace(std::move(o));
  }
  unalias(tag);

  if (got->ack && got->ack->ok()) {
    demonitor(mref, true);
    co_return std::move(*got->ack);
  }
  if (got->timed_out) {
    // proc_lib: a start that times out kills the new process and returns {error, timeout}.
    exit(child, term(atoms::kill));
    co_await wait_down(me, mref);
    co_await flush_exit_from(me, child);
    co_return start_result::error(term(atoms::timeout));
  }
  if (got->ack) {
    // ignore or {error, Reason}: OTP 26 returns once the process has ended.
    co_await wait_down(me, mref);
    co_await flush_exit_from(me, child);
    co_return std::move(*got->ack);
  }
  // Ended before acknowledging (killed during init, say).
  co_await flush_exit_from(me, child);
  co_return start_result::error(got->down_reason);
}

std::pair<pid, ref> call_begin(const server_ref& server, std::chrono::milliseconds timeout) {
  pid to = server.resolve();
  if (!to) {
    term t = server.to_term();
    if (t.is_tuple()) throw call_error(tuple(atom("nodedown"), t.element(1)), t, timeout);
    throw call_error(term(atoms::noproc), t, timeout);
  }
  ref tag = monitor(to);
  alias(tag);
  return {to, tag};
}

void call_end(const ref& tag, bool demonitor_needed) {
  unalias(tag);
  if (demonitor_needed) demonitor(tag, true);
}

}  // namespace detail

task<void> stop(server_ref server, term reason, std::chrono::milliseconds timeout) {
  process& me = this_process();
  auto [to, tag] = detail::call_begin(server, timeout);
  unalias(tag);  // no reply comes: the answer is the DOWN
  send(to, detail::system_request{detail::system_request::kind::stop, from{me.self(), tag, nullptr}, reason, term()});
  auto mine = [t = tag](const down& d) { return d.monitor == t; };  // clang 14: no capture of bindings
  std::optional<term> ended;
  if (timeout == infinity) {
    auto take = on<down>(mine, [](down& d) { return std::optional<term>(d.reason); });
    std::optional<term> r = co_await me.receive(std::move(take));
    ended = std::move(r);
  } else {
    auto take = on<down>(mine, [](down& d) { return std::optional<term>(d.reason); });
    auto expired = after(timeout, [] { return std::optional<term>(); });
    std::optional<term> r = co_await me.receive(std::move(take), std::move(expired));
    ended = std::move(r);
  }
  if (!ended) {
    demonitor(tag, true);
    throw call_error(term(atoms::timeout), server.to_term(), timeout);
  }
  // proc_lib:stop: ending with the requested reason is success; a server that was not there
  // (noproc) or ended otherwise is an error.
  if (*ended != reason) throw call_error(*ended, server.to_term(), timeout);
}

task<void> code_change(server_ref server, term old_vsn, term extra, std::chrono::milliseconds timeout) {
  process& me = this_process();
  auto [to, tag] = detail::call_begin(server, timeout);
  send(to, detail::system_request{detail::system_request::kind::code_change, from{me.self(), tag, detail::type_of<std::monostate>()},
                                  std::move(old_vsn), std::move(extra)});
  co_await detail::call_wait<void>(tag, std::move(server), timeout);
}

}  // namespace athanor
