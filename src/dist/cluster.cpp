// Cluster formation: a keeper that keeps this node connected to the nodes a strategy names (see
// cluster.h).
//
// Design
// ------
// Concepts. A *strategy* names nodes: the static list names a fixed set, each DNS query names
// <basename>@A for every IPv4 address A of its latest answer. The *wanted* set is their union,
// this node left out. The *keeper* is one gen_server that makes every wanted node connected and
// keeps it so; it owns nothing in the distribution layer but its subscription to node events: the
// connections are the node's (node.cpp), made with the same connect_node any process may call. An
// *attempt* is one process, linked to the keeper, that awaits connect_node for one node and reports
// attempt_done; a *resolver* is one process, linked to the keeper, that runs one DNS query's
// getaddrinfo on a dirty I/O thread and reports dns_answer.
//
// The keeper's one routine is reconcile(): for each wanted node that is neither connected (the
// node's own nodes(), read at that moment) nor being attempted, and whose not_before time has
// come, start an attempt, oldest not_before first, while fewer than max_concurrent_connects are in
// flight; then arm one timer for the earliest not_before still in the future. It runs on every
// event that can change its answer: start, a nodedown, an attempt's end, a DNS answer, the timer.
// Starting an attempt sets not_before to now + reconnect_interval, and a failed attempt sets it
// again from its end: attempts to one node start at least an interval apart and a failed one is
// followed by an interval of quiet, however long the attempt took. A nodedown of a node
// connected for longer than an interval therefore reconnects at once (a connection lost to a
// tick timeout or disconnect_node comes back without waiting), and a peer that accepts and drops
// connections in a loop costs one handshake per interval, not a busy loop.
//
// Why attempts are processes. connect_node waits up to the node's setup_time (a peer that accepts
// the TCP connection and never answers the handshake, a black-holed address); awaited in the
// keeper, one such node would hold up every other node and the keeper's own status calls. Each
// attempt in its own process makes the nodes independent, the cap bounds how many processes and
// half-open connections a long list of dead nodes costs, and at most one attempt per node is in
// flight. A late connect_outcome, which connect_node's own timeout can leave behind, then lands
// in a dead attempt's mailbox instead of piling up in the keeper's. DNS lookups are processes for
// the same reason: getaddrinfo can block for the resolver's whole timeout (seconds per server),
// so it runs on a dirty I/O thread (dirty.h), as epmd_io.cpp resolves EPMD hosts, and the keeper
// goes on serving meanwhile; one resolver per query at a time bounds the dirty threads it takes.
//
// Truth about connections. The keeper keeps no "connected" set of its own: it asks nodes() each
// time it decides. nodeup and nodedown are only prompts to decide again (and lines in the log),
// so events that arrive late or out of order (they come from different connection processes)
// cannot make the keeper believe a node is up when it is not. node.cpp removes a peer from its
// table before it sends nodedown, so a reconcile prompted by nodedown sees the node as gone.
//
// Rejected approaches. A fixed polling tick that retries every missing node (libcluster's Epmd
// polling): it either waits up to a whole interval after a nodedown or, retried on nodedown as
// well, can start two attempts close together; per-node not_before gives both promptness and the
// interval bound with one timer. Exponential backoff: a wanted node is part of the deployment, a
// failed attempt costs one EPMD query, and backoff would delay the rejoin of a node that was down
// for long; the interval is the knob. Disconnecting nodes that DNS stops naming (libcluster's
// DNSPoll does): a DNS hiccup (an empty or failed answer) would then cut healthy connections; a
// node that really leaves closes its own. Keeping the keeper's state in a shared structure that
// other threads read: status is a gen_server call, so it needs no lock and is consistent with
// what the keeper decides. Failing the start for one malformed static name: a typo in one entry
// would take the whole list (and, under a supervisor, its siblings) down; such names are logged
// and left out, and cluster_status::rejected shows them. Options that make the whole keeper
// meaningless (no node, intervals that are not positive, DNS without long names) do fail the start.
//
// Invariants. At most one attempt per node and one resolver per query are in flight, and at most
// max_concurrent_connects attempts in all. Every attempt and resolver is linked to the keeper and
// killed by its terminate, so none outlives the keeper (a killed keeper takes them along through
// the link). A DNS answer replaces its query's set only when the lookup worked; a failed lookup
// keeps the previous set (a name that does not exist, NXDOMAIN, is an answer: no nodes).
#include "athanor/dist/cluster.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <variant>

#include <fmt/format.h>

#include "athanor/dist/node.h"
#include "athanor/dist/node_name.h"
#include "athanor/runtime/dirty.h"
#include "athanor/runtime/logger.h"
#include "athanor/runtime/process.h"
#include "athanor/runtime/timer.h"

namespace athanor::dist {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void log(log_level level, std::string text, std::vector<std::pair<std::string, term>> metadata = {}) {
  logger::log("cluster", level, std::move(text), std::move(metadata));
}

// ---- the keeper's messages -----------------------------------------------------------------------

struct attempt_done {  // an attempt process ended: connect_node's answer
  atom peer;
  bool up = false;
};
struct dns_answer {  // a resolver ended
  std::size_t query = 0;
  bool ok = false;                     // the lookup worked (possibly with no addresses)
  std::vector<std::string> addresses;  // dotted quads, sorted, no duplicates
  std::string error;                   // why it did not work
};
struct reconnect_due {};  // the not_before timer
struct dns_poll_due {};   // the DNS polling timer
struct status_request {};

// ---- DNS -------------------------------------------------------------------------------------------

// The IPv4 addresses `query` resolves to. Blocks (DNS): run it on a dirty I/O thread.
dns_answer resolve_ipv4(std::size_t index, const std::string& query) {
  dns_answer out;
  out.query = index;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(query.c_str(), nullptr, &hints, &res);
  bool names_nothing = rc == EAI_NONAME;
#ifdef EAI_NODATA
  names_nothing = names_nothing || rc == EAI_NODATA;
#endif
  if (names_nothing) {
    out.ok = true;  // the name exists nowhere (NXDOMAIN) or has no A record: no nodes now
    return out;
  }
  if (rc != 0) {
    out.error = rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : std::string(::gai_strerror(rc));
    return out;
  }
  std::set<std::string> found;
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    if (p->ai_family != AF_INET || p->ai_addr == nullptr) continue;
    char text[INET_ADDRSTRLEN];
    if (::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr, text, sizeof text) != nullptr)
      found.insert(text);
  }
  ::freeaddrinfo(res);
  out.ok = true;
  out.addresses.assign(found.begin(), found.end());
  return out;
}

bool valid_basename(std::string_view s) {
  if (s.empty() || s.size() > max_node_name_bytes - 1 - INET_ADDRSTRLEN) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

term bad_options(const std::string& why) { return tuple(atom("bad_cluster_options"), term(why)); }

std::string names_of(const std::set<atom>& s) {
  std::string out;
  for (atom a : s) out += (out.empty() ? "" : ", ") + std::string(a.name());
  return out.empty() ? "no nodes" : out;
}

// ---- the keeper -----------------------------------------------------------------------------------

class keeper : public gen_server<keeper> {
 public:
  using info = std::tuple<nodeup, nodedown, attempt_done, dns_answer, reconnect_due, dns_poll_due>;

  explicit keeper(cluster_options options) : opts_(std::move(options)) {}

  init_result init() {
    const atom me = this_node();
    if (me == atoms::nonode_at_nohost) return init_result::stop(term(atom("not_alive")));
    if (opts_.reconnect_interval <= milliseconds(0)) return init_result::stop(bad_options("reconnect_interval must be positive"));
    if (opts_.dns_poll_interval <= milliseconds(0)) return init_result::stop(bad_options("dns_poll_interval must be positive"));
    if (opts_.max_concurrent_connects == 0) return init_result::stop(bad_options("max_concurrent_connects must be at least 1"));
    const naming_mode mode = host_naming_mode(node_name::parse_peer(me.name()).host());
    for (const dns_query& q : opts_.dns) {
      if (q.query.empty()) return init_result::stop(bad_options("a DNS query has an empty query name"));
      if (!valid_basename(q.basename))
        return init_result::stop(bad_options("DNS query " + q.query + ": basename \"" + q.basename +
                                             "\" is not a node name's alive part ([A-Za-z0-9_-]+)"));
    }
    if (!opts_.dns.empty() && mode != naming_mode::long_names)
      return init_result::stop(bad_options("the DNS strategy names nodes by IP address, which are long names: start "
                                           "this node with naming_mode::long_names"));
    for (const std::string& name : opts_.nodes) admit_static(name, mode);
    queries_.resize(opts_.dns.size());
    monitor_nodes(true);  // before reconcile() reads nodes(): no nodedown falls between the two
    handle_info(dns_poll_due{});
    reconcile();
    return init_result::ok();
  }

  cluster_status handle_call(status_request) {
    cluster_status s;
    const std::set<atom> wanted = wanted_now();
    const std::vector<atom> up = nodes();
    for (atom n : wanted) {
      s.wanted.push_back(n);
      if (std::find(up.begin(), up.end(), n) != up.end()) s.connected.push_back(n);
      if (attempts_.count(n)) s.connecting.push_back(n);
    }
    s.rejected = rejected_;
    return s;
  }

  void handle_info(nodeup e) {
    log(log_level::info, fmt::format("nodeup {}", e.node.name()), {{"node", term(e.node)}, {"wanted", term(is_wanted(e.node))}});
  }

  void handle_info(nodedown e) {
    log(log_level::info, fmt::format("nodedown {}", e.node.name()), {{"node", term(e.node)}, {"wanted", term(is_wanted(e.node))}});
    reconcile();
  }

  void handle_info(attempt_done d) {
    attempts_.erase(d.peer);
    if (!d.up) {
      not_before_[d.peer] = clock::now() + opts_.reconnect_interval;
      log(log_level::debug, fmt::format("cannot connect to {} now; trying again in {} ms", d.peer.name(), opts_.reconnect_interval.count()),
          {{"node", term(d.peer)}});
    }
    reconcile();
  }

  void handle_info(dns_answer a) {
    if (a.query >= queries_.size()) return;
    query_state& q = queries_[a.query];
    q.resolver = pid();
    const dns_query& spec = opts_.dns[a.query];
    if (!a.ok) {
      // A failed lookup keeps what the last good one found: a DNS outage must not make the keeper
      // forget nodes (it never disconnects them anyway). Warn once per outage, not every poll.
      log(q.failing ? log_level::debug : log_level::warning,
          fmt::format("DNS query {} failed: {}; keeping the {} node(s) it named before", spec.query, a.error, q.found.size()),
          {{"query", term(spec.query)}});
      q.failing = true;
      return;
    }
    q.failing = false;
    std::set<atom> found;
    for (const std::string& address : a.addresses) found.insert(atom(spec.basename + "@" + address));
    if (found != q.found || !q.answered) {
      log(log_level::info, fmt::format("DNS query {} names {}", spec.query, names_of(found)), {{"query", term(spec.query)}});
    }
    q.answered = true;
    q.found = std::move(found);
    reconcile();
  }

  void handle_info(reconnect_due) {
    timer_ = timer_ref{};
    reconcile();
  }

  // Starts a lookup for every query that has none in flight, and arms the next poll.
  void handle_info(dns_poll_due) {
    if (opts_.dns.empty()) return;
    const pid me = self();
    for (std::size_t i = 0; i < queries_.size(); ++i) {
      if (queries_[i].resolver) continue;  // the last lookup has not answered yet: one at a time
      try {
        queries_[i].resolver = spawn_link([me, i, query = opts_.dns[i].query](process&) -> proc {
          dns_answer a;
          try {
            a = co_await dirty_io([i, &query] { return resolve_ipv4(i, query); });
          } catch (const std::exception& e) {
            a.query = i;
            a.error = e.what();
          }
          send(me, std::move(a));
        });
      } catch (const std::exception& e) {
        log(log_level::warning, fmt::format("cannot start a lookup of {}: {}", opts_.dns[i].query, e.what()));
      }
    }
    poll_timer_ = send_after(opts_.dns_poll_interval, me, dns_poll_due{});
  }

  // Attempts and resolvers end now: none outlives the keeper. The connections stay.
  void terminate(const term&) {
    monitor_nodes(false);
    cancel_timer(timer_);
    cancel_timer(poll_timer_);
    for (auto& [peer, p] : attempts_) athanor::exit(p, term(atoms::kill));
    for (query_state& q : queries_)
      if (q.resolver) athanor::exit(q.resolver, term(atoms::kill));
  }

  // exit_signal from an attempt or resolver (the keeper traps exits): their results come as
  // messages, so their ends need nothing.
  void handle_info(exit_signal) {}

  term describe_state() const {
    std::vector<term> wanted;
    for (atom n : wanted_now()) wanted.emplace_back(n);
    return tuple(atom("cluster_keeper"), list(std::span<const term>(wanted)));
  }

 private:
  struct query_state {
    std::set<atom> found;  // the nodes of the last good answer
    pid resolver;          // the lookup in flight, if any
    bool answered = false;
    bool failing = false;
  };

  // Adds a static entry to the wanted set, or leaves it out with a warning.
  void admit_static(const std::string& name, naming_mode mode) {
    std::string why;
    try {
      node_name n = node_name::parse_peer(name);
      if (host_naming_mode(n.host()) != mode) {
        why = mode == naming_mode::short_names ? "a long name, and this node uses short names"
                                               : "a short name, and this node uses long names";
      } else {
        static_.insert(atom(n.full()));
        return;
      }
    } catch (const std::exception& e) {
      why = e.what();
    }
    rejected_.push_back(name);
    log(log_level::warning, fmt::format("leaving out node \"{}\": {}", name, why), {{"node", term(name)}});
  }

  std::set<atom> wanted_now() const {
    std::set<atom> all = static_;
    for (const query_state& q : queries_) all.insert(q.found.begin(), q.found.end());
    all.erase(this_node());
    return all;
  }

  bool is_wanted(atom n) const {
    if (static_.count(n)) return true;
    return std::any_of(queries_.begin(), queries_.end(), [n](const query_state& q) { return q.found.count(n) > 0; });
  }

  void reconcile() {
    const auto now = clock::now();
    const std::set<atom> wanted = wanted_now();
    const std::vector<atom> up_list = nodes();
    const std::set<atom> up(up_list.begin(), up_list.end());
    std::vector<std::pair<clock::time_point, atom>> due;
    std::optional<clock::time_point> next;
    for (atom n : wanted) {
      if (up.count(n) || attempts_.count(n)) continue;
      auto it = not_before_.find(n);
      const clock::time_point nb = it == not_before_.end() ? clock::time_point::min() : it->second;
      if (nb <= now) due.emplace_back(nb, n);
      else if (!next || nb < *next) next = nb;
    }
    std::sort(due.begin(), due.end());  // the longest-waiting first, so that no node starves under the cap
    for (const auto& [nb, n] : due) {
      if (attempts_.size() >= opts_.max_concurrent_connects) break;  // an attempt's end reconciles again
      if (!start_attempt(n, now) && (!next || not_before_[n] < *next)) next = not_before_[n];
    }
    std::erase_if(not_before_, [&](const auto& e) { return !wanted.count(e.first); });
    if (timer_) cancel_timer(timer_);  // a reconnect_due already sent only reconciles once more
    timer_ = timer_ref{};
    if (next) {
      const auto wait = std::max(milliseconds(1), std::chrono::ceil<milliseconds>(*next - now));
      timer_ = send_after(wait, self(), reconnect_due{});
    }
  }

  // Starts an attempt process for `peer`; false if it could not be spawned (the process limit),
  // in which case the timer brings the node round again after the interval.
  bool start_attempt(atom peer, clock::time_point now) {
    not_before_[peer] = now + opts_.reconnect_interval;
    const pid me = self();
    try {
      attempts_[peer] = spawn_link([me, peer](process&) -> proc {
        bool up = false;
        try {
          up = co_await connect_node(peer);
        } catch (const std::exception&) {
          up = false;  // reported as a failed attempt, retried after the interval
        }
        send(me, attempt_done{peer, up});
      });
      return true;
    } catch (const std::exception& e) {
      log(log_level::warning, fmt::format("cannot start connecting to {}: {}", peer.name(), e.what()));
      return false;
    }
  }

  cluster_options opts_;
  std::set<atom> static_;              // the static list's valid names
  std::vector<std::string> rejected_;  // the static list's other entries
  std::vector<query_state> queries_;   // one per opts_.dns entry
  std::map<atom, pid> attempts_;       // attempts in flight
  std::map<atom, clock::time_point> not_before_;
  timer_ref timer_, poll_timer_;
};

// Runs `body` (a coroutine returning task<R>) in a fresh process and waits for its value on this
// thread, at most `limit`. For the functions of `cluster`, which are called from plain threads.
template <class R, class F>
R run_in_process(const char* what, F body, std::chrono::seconds limit = std::chrono::seconds(60)) {
  if (athanor::self())
    throw std::logic_error(std::string("athanor::dist::") + what +
                           " blocks its thread: call it from a thread that is not running a process");
  // A failure travels as a value, copied on the process's thread, and is thrown anew here: an
  // exception_ptr handed across threads is released by whichever thread drops it last, through
  // libstdc++'s own reference count, which TSan cannot see (it reported this caller reading a
  // call_error that the process's thread was freeing).
  struct failure {
    std::optional<call_error> call;
    std::string message;
  };
  using outcome = std::variant<R, failure>;
  auto result = std::make_shared<std::promise<outcome>>();
  std::future<outcome> f = result->get_future();
  spawn([body = std::move(body), result](process&) mutable -> proc {
    std::optional<outcome> out;
    try {
      out.emplace(std::in_place_index<0>, co_await body());
    } catch (const call_error& e) {
      out.emplace(std::in_place_index<1>, failure{e, e.what()});
    } catch (const std::exception& e) {
      out.emplace(std::in_place_index<1>, failure{std::nullopt, e.what()});
    } catch (...) {
      out.emplace(std::in_place_index<1>, failure{std::nullopt, "an exception of unknown type"});
    }
    result->set_value(std::move(*out));
  });
  if (f.wait_for(limit) != std::future_status::ready)
    throw std::runtime_error(std::string("athanor::dist::") + what + ": no answer within " + std::to_string(limit.count()) + " s");
  outcome o = f.get();
  if (o.index() == 0) return std::move(std::get<0>(o));
  failure& fl = std::get<1>(o);
  if (fl.call) throw *fl.call;
  throw std::runtime_error(fl.message);
}

}  // namespace

// ---- in a process -------------------------------------------------------------------------------

task<start_result> start_cluster_link(cluster_options options) {
  server_options o;
  o.name = options.name;
  o.trap_exit = true;  // a supervisor's shutdown runs terminate, which ends the attempts
  return start_link<keeper>(o, std::move(options));
}

child_spec cluster_child(cluster_options options, term id) {
  child_spec c;
  c.id = std::move(id);
  c.start = [options = std::move(options)]() -> task<start_result> { return start_cluster_link(options); };
  return c;
}

task<cluster_status> cluster_status_of(server_ref keeper_ref, std::chrono::milliseconds timeout) {
  co_return co_await call<keeper>(keeper_ref, status_request{}, timeout);
}

// ---- from a plain thread --------------------------------------------------------------------------

cluster start_cluster(cluster_options options) {
  server_options o;
  o.name = options.name;
  o.trap_exit = true;
  start_result r = run_in_process<start_result>("start_cluster", [o, options = std::move(options)]() -> task<start_result> {
    co_return co_await start<keeper>(o, options);
  });
  if (!r.ok()) throw std::invalid_argument("athanor::dist::start_cluster: " + r.error().to_string());
  return cluster(r.pid());
}

cluster& cluster::operator=(cluster&& other) noexcept {
  if (this != &other) {
    try {
      stop();
    } catch (...) {
    }
    keeper_ = std::exchange(other.keeper_, pid());
  }
  return *this;
}

cluster::~cluster() {
  if (!keeper_) return;
  if (athanor::self()) {
    // Destroyed in a process, which must not block: end the keeper without waiting (its linked
    // attempts end with it).
    athanor::exit(keeper_, term(atoms::kill));
    return;
  }
  try {
    stop();
  } catch (...) {
  }
}

cluster_status cluster::status() const {
  const pid k = keeper_;
  try {
    return run_in_process<cluster_status>("cluster::status", [k]() -> task<cluster_status> {
      co_return co_await cluster_status_of(k, std::chrono::seconds(30));
    });
  } catch (const call_error& e) {
    throw std::runtime_error("athanor::dist::cluster::status: the keeper did not answer: " + e.why.to_string());
  }
}

void cluster::stop() {
  if (!keeper_) return;
  const pid k = keeper_;
  run_in_process<bool>("cluster::stop", [k]() -> task<bool> {
    try {
      co_await athanor::stop(k, term(atoms::normal), std::chrono::seconds(30));
    } catch (const call_error& e) {
      if (e.why == term(atoms::timeout)) athanor::exit(k, term(atoms::kill));  // noproc: already ended
    }
    co_return true;
  });
  keeper_ = pid();
}

}  // namespace athanor::dist
