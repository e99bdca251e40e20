// Calls by name between nodes (see rpc.h).
//
// Design
// ------
// Concepts. An *exposed function* is a C++ function registered under module:function/arity in
// one table per OS process. Other nodes call it the ways OTP 25 calls a function on a node:
//   * erpc:call and rpc:call: a SPAWN_REQUEST for erpc:execute_call(ResRef, M, F, A) with a
//     monitor; the spawned process's *exit reason* carries the result ({ResRef, return, V},
//     {ResRef, error, R, Stack}, ...), which the caller reads from its DOWN. This is erpc's own
//     protocol (erpc.erl, execute_call/4 and result/4): the result never travels as a message.
//   * erpc:cast and rpc:cast: a SPAWN_REQUEST for erpc:execute_cast(M, F, A), no monitor.
//   * spawn(Node, M, F, A) and spawn_link: a SPAWN_REQUEST for M:F/A itself.
//   * rpc:block_call, ei_rpc and C nodes: messages to the registered process `rex`.
// A SPAWN_REQUEST is answered by the connection process (node.cpp): it asks start_requested()
// here for a process that waits for a go-ahead, sets up the requested monitor and link on it,
// sends SPAWN_REPLY, and only then lets it run: a function that ends at once cannot end before
// its monitor exists (which would turn its result into `noproc`).
//
// Calling out (erpc_call) is the same protocol from the other side: the caller's request id is
// remembered on the peer's outbound queue (outbound::spawns) with the caller's pid, so that the
// connection routes the SPAWN_REPLY and the MONITOR_P_EXIT for it back to the caller as one
// spawn_outcome message, and a connection that ends answers every open request with
// noconnection (fire_noconnection), as erpc sees a DOWN noconnection. The group leader this node
// names in its requests is a small I/O server of its own: what a remote function prints arrives
// here as io_request messages and goes to this node's log, and a remote function never blocks on
// a group leader that does not answer.
//
// Rejected approaches. rpc_call through `rex` ({call, M, F, A, user}): rex answers
// {badrpc, {'EXIT', ...}} for every failure, so erpc_call could not tell exit from error from
// throw; erpc's spawn protocol keeps the classes and is what OTP 25's own rpc:call uses. A generic
// "apply any module:function": a peer could then run anything this process links; only exposed
// functions run (erlang-distribution.md §9). Running exposed functions in the connection process:
// a slow function would stall every message from that peer.
//
// Invariants. A spawned call process runs only after its SPAWN_REPLY is queued on the
// connection. Every request this node makes ends exactly once for its caller: a spawn_outcome
// (the process's exit, a refusal, or noconnection), or the caller's timeout, after which the
// request's entry is gone and later news for it is dropped.
#include "athanor/dist/rpc.h"

#include <map>
#include <mutex>
#include <shared_mutex>

#include <fmt/format.h>

#include "athanor/dist/control.h"
#include "athanor/otp/gen_server.h"
#include "athanor/runtime/process.h"
#include "dist/node_state.h"
#include "dist/rpc_internal.h"

namespace athanor::dist {

// ---- the table of exposed functions -------------------------------------------------------------

namespace {

struct function_key {
  std::string module, function;
  std::size_t arity;
  auto operator<=>(const function_key&) const = default;
};

struct function_table {
  std::shared_mutex mu;
  std::map<function_key, std::shared_ptr<const rpc_function>> functions;
};

function_table& table() {
  static function_table* t = new function_table;  // never destroyed: calls may run during exit
  return *t;
}

std::shared_ptr<const rpc_function> find_function(std::string_view module, std::string_view function, std::size_t arity) {
  function_table& t = table();
  std::shared_lock lock(t.mu);
  auto it = t.functions.find(function_key{std::string(module), std::string(function), arity});
  return it == t.functions.end() ? nullptr : it->second;
}

}  // namespace

void expose(std::string_view module, std::string_view function, std::size_t arity, rpc_function fn) {
  if (module.empty() || function.empty()) throw std::invalid_argument("athanor::dist::expose: empty module or function name");
  if (!fn) throw std::invalid_argument("athanor::dist::expose: no function given");
  function_table& t = table();
  std::unique_lock lock(t.mu);
  t.functions[function_key{std::string(module), std::string(function), arity}] =
      std::make_shared<const rpc_function>(std::move(fn));
}

bool unexpose(std::string_view module, std::string_view function, std::size_t arity) {
  function_table& t = table();
  std::unique_lock lock(t.mu);
  return t.functions.erase(function_key{std::string(module), std::string(function), arity}) > 0;
}

bool is_exposed(std::string_view module, std::string_view function, std::size_t arity) {
  return find_function(module, function, arity) != nullptr;
}

erpc_error::erpc_error(atom k, term r, term s)
    : std::runtime_error(fmt::format("erpc: {}:{}", k.name(), r.to_string())), kind(k), reason(std::move(r)),
      stack(std::move(s)) {}

namespace detail {

// ---- running an exposed function ----------------------------------------------------------------

namespace {

std::optional<std::vector<term>> list_elements(const term& list) {
  if (!list.is_list()) return std::nullopt;
  std::vector<term> out;
  term rest = list;
  while (rest.is_cons()) {
    out.push_back(rest.head());
    rest = rest.tail();
  }
  if (!rest.is_nil()) return std::nullopt;
  return out;
}

term stack_of(const term& module, const term& function, std::size_t arity) {
  return list({tuple(module, function, term(std::int64_t(arity)), list({}))});
}

}  // namespace

task<call_result> run_exposed(const term& module, const term& function, const term& args) {
  std::optional<std::vector<term>> elements = list_elements(args);
  const std::size_t arity = elements ? elements->size() : 0;
  const term stack = stack_of(module, function, arity);
  std::shared_ptr<const rpc_function> fn;
  if (elements && module.is_atom() && function.is_atom()) fn = find_function(module.as_atom().name(), function.as_atom().name(), arity);
  if (!fn) co_return call_result{atom("error"), term(atom("undef")), stack};
  try {
    term value = co_await (*fn)(std::move(*elements));
    co_return call_result{atom("return"), std::move(value), list({})};
  } catch (const exit_exception& e) {
    co_return call_result{atom("exit"), e.reason, list({})};
  } catch (const error_exception& e) {
    co_return call_result{atom("error"), e.reason, stack};
  } catch (const term_conversion_error& e) {
    log(log_level::notice, fmt::format("{}:{}/{}: bad argument: {}", module.to_string(), function.to_string(), arity, e.what()));
    co_return call_result{atom("error"), term(atom("badarg")), stack};
  } catch (const std::exception& e) {
    log(log_level::notice, fmt::format("{}:{}/{} failed: {}", module.to_string(), function.to_string(), arity, e.what()));
    co_return call_result{atom("error"), tuple(term(atom("cpp_exception")), to_term(std::string(e.what()))), stack};
  }
}

// ---- spawn requests from other nodes ------------------------------------------------------------

namespace {

// What a requested process runs once its connection lets it go.
proc run_requested(term mfa, term args) {
  process& self = this_process();
  co_await self.receive<spawn_go>();
  const term& m = mfa.element(0);
  const term& f = mfa.element(1);
  if (m == term(atom("erpc")) && f == term(atom("execute_call"))) {
    // args: [ResRef, M, F, A]; the result is the exit reason (erpc.erl's protocol).
    std::optional<std::vector<term>> a = list_elements(args);
    call_result r = co_await run_exposed((*a)[1], (*a)[2], (*a)[3]);
    if (r.kind == atom("error")) athanor::exit(tuple((*a)[0], term(r.kind), r.reason, r.stack));
    athanor::exit(tuple((*a)[0], term(r.kind), r.reason));
  }
  if (m == term(atom("erpc")) && f == term(atom("execute_cast"))) {
    std::optional<std::vector<term>> a = list_elements(args);
    (void)co_await run_exposed((*a)[0], (*a)[1], (*a)[2]);  // a cast reports nothing
    co_return;
  }
  // spawn(Node, M, F, A): the process ends as the function does: normal after a return, with its
  // error otherwise (as an Erlang process whose function raised).
  call_result r = co_await run_exposed(m, f, args);
  if (r.kind == atom("return")) co_return;
  if (r.kind == atom("exit")) athanor::exit(r.reason);
  athanor::exit(tuple(r.reason, r.stack));
}

}  // namespace

pid start_requested(const term& mfa, const term& args, term& refusal) {
  // {M, F, Arity} with Arity the length of a proper list of arguments.
  std::optional<std::vector<term>> a = list_elements(args);
  if (!mfa.is_tuple() || mfa.tuple_size() != 3 || !mfa.element(0).is_atom() || !mfa.element(1).is_atom() || !a ||
      !mfa.element(2).is_integer() || mfa.element(2) != term(std::int64_t(a->size()))) {
    refusal = term(atom("badarg"));
    return pid();
  }
  const atom m = mfa.element(0).as_atom(), f = mfa.element(1).as_atom();
  if (m == atom("erpc") && f == atom("execute_call") && (a->size() != 4 || !(*a)[3].is_list())) {
    refusal = term(atom("badarg"));
    return pid();
  }
  if (m == atom("erpc") && f == atom("execute_cast") && (a->size() != 3 || !(*a)[2].is_list())) {
    refusal = term(atom("badarg"));
    return pid();
  }
  try {
    return athanor::spawn([mfa, args](process&) -> proc { return run_requested(mfa, args); });
  } catch (const std::exception& e) {
    log(log_level::error, std::string("cannot spawn for a spawn request: ") + e.what());
    refusal = term(atom("system_limit"));
    return pid();
  }
}

// ---- rex: rpc:block_call, ei_rpc and C nodes ----------------------------------------------------

namespace {

// {call, M, F, A, GL} and {block_call, M, F, A, GL} as rex answers them: the value, or
// {badrpc, {'EXIT', ...}} (rpc.erl).
task<term> rex_answer(term request) {
  call_result r = co_await run_exposed(request.element(1), request.element(2), request.element(3));
  if (r.kind == atom("return") || r.kind == atom("throw")) co_return r.reason;
  if (r.kind == atom("exit")) co_return tuple(term(atom("badrpc")), tuple(term(atom("EXIT")), r.reason));
  co_return tuple(term(atom("badrpc")), tuple(term(atom("EXIT")), tuple(r.reason, r.stack)));
}

bool is_rex_call(const term& t) {
  return t.is_tuple() && t.tuple_size() == 5 &&
         (t.element(0) == term(atom("call")) || t.element(0) == term(atom("block_call")));
}

// One request to rex (see rex_server).
void rex_handle(const term& t) {
  // {'$gen_call', {From, Tag}, {call, M, F, A, GL}}: answered by a process of its own, so that a
  // slow function does not hold up rex.
  if (t.tuple_size() == 3 && t.element(0) == term(atom("$gen_call")) && t.element(1).is_tuple() &&
      t.element(1).tuple_size() == 2 && t.element(1).element(0).is_pid() && is_rex_call(t.element(2))) {
    term from = t.element(1), request = t.element(2);
    athanor::spawn([from, request](process&) -> proc {
      term value = co_await rex_answer(request);
      athanor::send(from.element(0).as_pid(), tuple(from.element(1), value));
    });
    return;
  }
  // {'$gen_cast', {cast, M, F, A, GL}}
  if (t.tuple_size() == 2 && t.element(0) == term(atom("$gen_cast")) && t.element(1).is_tuple() &&
      t.element(1).tuple_size() == 5 && t.element(1).element(0) == term(atom("cast"))) {
    term request = t.element(1);
    athanor::spawn([request](process&) -> proc { (void)co_await rex_answer(request); });
    return;
  }
  if (t.tuple_size() == 2 && t.element(0).is_pid()) {
    const pid from = t.element(0).as_pid();
    // {From, {call, M, F, A, GL}}: the C-node form, answered {rex, Value}.
    if (is_rex_call(t.element(1))) {
      term request = t.element(1);
      athanor::spawn([from, request](process&) -> proc {
        term value = co_await rex_answer(request);
        athanor::send(from, tuple(term(atom("rex")), value));
      });
      return;
    }
    // {From, features_request}: this node runs erpc's spawn requests.
    if (t.element(1) == term(atom("features_request"))) {
      athanor::send(from, tuple(term(atom("features_reply")), term(this_node()), list({term(atom("erpc"))})));
    }
  }
}

}  // namespace

proc rex_server() {
  process& self = this_process();
  for (;;) {
    athanor::message msg = co_await self.receive_any();
    if (msg.is<rex_stop>()) co_return;
    const term* t = msg.get_if<term>();
    if (!t || !t->is_tuple()) continue;
    try {
      rex_handle(*t);
    } catch (const std::exception& e) {  // out of processes, say: this request goes unanswered
      log(log_level::error, std::string("rex: ") + e.what());
    }
  }
}

// ---- the group leader of this node's requests ---------------------------------------------------

namespace {

// The characters of a put_chars request, when they are plain (a list of bytes or a binary).
std::string chars_of(const term& chars) {
  if (chars.is_binary()) return std::string(chars.as_binary());
  std::string out;
  term rest = chars;
  while (rest.is_cons()) {
    const term& c = rest.head();
    if (c.is_int64() && c.as_int() >= 0 && c.as_int() < 256) out.push_back(char(c.as_int()));
    else if (c.is_binary()) out += c.as_binary();
    else return chars.is_list() ? "(not plain characters)" : chars.to_string();
    rest = rest.tail();
  }
  return out;
}

}  // namespace

proc io_server() {
  process& self = this_process();
  for (;;) {
    athanor::message msg = co_await self.receive_any();
    if (msg.is<rex_stop>()) co_return;
    const term* t = msg.get_if<term>();
    // {io_request, From, ReplyAs, Request}
    if (!t || !t->is_tuple() || t->tuple_size() != 4 || t->element(0) != term(atom("io_request")) || !t->element(1).is_pid()) continue;
    const term& req = t->element(3);
    term answer = tuple(term(atom("error")), term(atom("enotsup")));
    if (req.is_tuple() && req.tuple_size() >= 2 && req.element(0) == term(atom("put_chars"))) {
      const term& chars = req.element(req.tuple_size() - 1);
      std::string text = chars_of(chars);
      constexpr std::size_t kMaxLogged = 2048;  // a peer's output must not flood the log
      if (text.size() > kMaxLogged) text = text.substr(0, kMaxLogged) + fmt::format("... ({} bytes)", text.size());
      log(log_level::info, fmt::format("output of a call on {}: {}", node_of(t->element(1).as_pid()).name(), text));
      answer = term(atom("ok"));
    }
    athanor::send(t->element(1).as_pid(), tuple(term(atom("io_reply")), t->element(2), answer));
  }
}

}  // namespace detail

// ---- calling other nodes -----------------------------------------------------------------------

task<term> erpc_call(atom node, atom module, atom function, term args, std::chrono::milliseconds timeout) {
  process& self = this_process();
  if (!detail::list_elements(args)) throw std::invalid_argument("athanor::dist::erpc_call: the arguments must be a proper list");
  std::shared_ptr<detail::node_state> st = detail::current();
  if (!st) throw node_error("athanor::dist::erpc_call: no node runs in this OS process");
  const ref request = make_ref();
  const ref result_tag = make_ref();
  if (node == st->name_atom) {
    // A call to this node runs here, as erpc:call(node(), ...) does: in a process of its own.
    detail::call_result r{};
    pid me = self.self();
    pid worker = athanor::spawn([me, request, module, function, args](process&) -> proc {
      detail::call_result out = co_await detail::run_exposed(term(module), term(function), args);
      athanor::send(me, detail::local_call_done{request, std::move(out)});
    });
    bool done = false;
    co_await self.receive(on<detail::local_call_done>([request](const detail::local_call_done& d) { return d.request == request; },
                                                      [&](detail::local_call_done d) {
                                                        r = std::move(d.result);
                                                        done = true;
                                                      }),
                          after(timeout, [] {}));
    if (!done) {
      athanor::exit(worker, term(atom("kill")));
      throw erpc_error(atom("erpc"), term(atom("timeout")), list({}));
    }
    if (r.kind == atom("return")) co_return r.reason;
    throw erpc_error(r.kind, r.reason, r.kind == atom("error") ? r.stack : list({}));
  }
  // SPAWN_REQUEST {29, ReqId, From, GroupLeader, {erpc, execute_call, 4}, [monitor]} + [ResRef, M, F, A]
  const term control = tuple(term(29), term(request), term(self.self()), term(st->group_leader),
                             tuple(term(atom("erpc")), term(atom("execute_call")), term(4)), list({term(atom("monitor"))}));
  const term payload = list({term(result_tag), term(module), term(function), args});
  bool queued = false, unsupported = false;
  try {
    queued = st->enqueue(
        self.self(), node, control, &payload,
        [&](detail::outbound& q) {
          if (q.connected && !(q.peer_flags & dflag::spawn)) {
            unsupported = true;  // recorded, then answered at once below
            return;
          }
          q.spawns.emplace(request, std::make_pair(self.self(), pid()));
        },
        true);
  } catch (const detail::queue_overloaded& e) {
    throw send_refused(std::string("athanor::dist::erpc_call: ") + e.what());
  } catch (const etf::etf_error& e) {
    throw std::invalid_argument(std::string("athanor::dist::erpc_call: the arguments cannot be sent: ") + e.what());
  }
  // A peer that does not run spawn requests (no DFLAG_SPAWN), as erpc reports it; a stopping
  // node reaches nobody.
  if (unsupported) throw erpc_error(atom("erpc"), term(atom("notsup")), list({}));
  if (!queued) throw erpc_error(atom("erpc"), term(atom("noconnection")), list({}));
  std::optional<detail::spawn_outcome> outcome;
  co_await self.receive(on<detail::spawn_outcome>([request](const detail::spawn_outcome& o) { return o.request == request; },
                                                  [&](detail::spawn_outcome o) { outcome = std::move(o); }),
                        after(timeout, [] {}));
  if (!outcome) {
    // Give up as erpc does: forget the request, kill the process if it was spawned.
    pid spawned;
    {
      std::shared_ptr<detail::outbound> q;
      {
        std::lock_guard lock(st->mu);
        auto it = st->peers.find(node);
        if (it != st->peers.end()) q = it->second;
      }
      if (q) {
        std::lock_guard lock(q->mu);
        auto it = q->spawns.find(request);
        if (it != q->spawns.end()) {
          spawned = it->second.second;
          q->spawns.erase(it);
        }
      }
    }
    if (spawned) athanor::exit(spawned, term(atom("kill")));
    // An outcome sent just before the entry went: dropped from the mailbox here.
    while (co_await self.receive_for<detail::spawn_outcome>(std::chrono::milliseconds(0))) {
    }
    throw erpc_error(atom("erpc"), term(atom("timeout")), list({}));
  }
  const term& reason = outcome->reason;
  if (outcome->refused) throw erpc_error(atom("erpc"), reason, list({}));
  if (reason == term(atom("noconnection"))) throw erpc_error(atom("erpc"), reason, list({}));
  // {ResRef, return, V} | {ResRef, throw, V} | {ResRef, exit, R} | {ResRef, error, R, Stack} |
  // {ResRef, error, {erpc, R}}
  if (reason.is_tuple() && reason.tuple_size() >= 3 && reason.element(0) == term(result_tag) && reason.element(1).is_atom()) {
    const atom kind = reason.element(1).as_atom();
    if (kind == atom("return") && reason.tuple_size() == 3) co_return reason.element(2);
    if (kind == atom("error") && reason.tuple_size() == 3 && reason.element(2).is_tuple() &&
        reason.element(2).tuple_size() == 2 && reason.element(2).element(0) == term(atom("erpc"))) {
      throw erpc_error(atom("erpc"), reason.element(2).element(1), list({}));
    }
    if (kind == atom("error") && reason.tuple_size() == 4) throw erpc_error(kind, reason.element(2), reason.element(3));
    if ((kind == atom("throw") || kind == atom("exit")) && reason.tuple_size() == 3) throw erpc_error(kind, reason.element(2), list({}));
  }
  // Anything else: the process was killed or ended otherwise, as erpc reports it.
  throw erpc_error(atom("exit"), tuple(term(atom("signal")), reason), list({}));
}

task<term> rpc_call(atom node, atom module, atom function, term args, std::chrono::milliseconds timeout) {
  try {
    co_return co_await erpc_call(node, module, function, std::move(args), timeout);
  } catch (const erpc_error& e) {
    const term badrpc(atom("badrpc"));
    const atom kind = e.kind;
    if (kind == atom("throw")) co_return e.reason;
    if (kind == atom("exit")) co_return tuple(badrpc, tuple(term(atom("EXIT")), e.reason));
    if (kind == atom("error")) co_return tuple(badrpc, tuple(term(atom("EXIT")), tuple(e.reason, e.stack)));
    if (e.reason == term(atom("noconnection"))) co_return tuple(badrpc, term(atom("nodedown")));
    co_return tuple(badrpc, e.reason);
  }
}

}  // namespace athanor::dist
