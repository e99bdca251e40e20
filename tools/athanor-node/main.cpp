// athanor-node: an Athanor node that Erlang and Elixir nodes can talk to, and the target of the
// distribution tests (erlang-distribution.md §7.2's contract).
//   athanor-node --sname NAME [--cookie C] [node settings: --schedulers N ...]
//   athanor-node --name NAME  [--cookie C]                      (long names: NAME@<FQDN>)
// Prints its full node name on a line of its own, flushed, once it is registered with EPMD and
// reachable; stops on SIGINT/SIGTERM. Its registered process `cpp_echo`:
//   {Pid, Term}                  -> Pid ! {echo, Term, self()}
//   gen_server:call(.., Req)     -> replies {echo, Req}
//   {Pid, exit_me}               -> ends its link to Pid with reason bye: a trapping Pid gets
//                                   {'EXIT', cpp_echo, bye}
//   {Pid, disconnect}            -> closes the connection to Pid's node
// Its registered gen_server `counter` (the README's Elixir session calls it):
//   GenServer.call(.., :get)     -> the count (0 at start)
//   GenServer.call(.., {:add, N})-> the new count
//   GenServer.cast(.., :reset)   -> back to 0
// And the function it exposes to rpc/erpc: math_cpp:add(A, B) -> A + B (integers).
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <future>
#include <string>
#include <variant>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "athanor/dist/rpc.h"
#include "athanor/runtime/config.h"
#include "command_line.h"

namespace {

void print_usage() {
  std::printf(
      "Usage: athanor-node (--sname NAME | --name NAME) [options]\n"
      "\n"
      "An Athanor node for Erlang/Elixir clusters. Registers `cpp_echo`, which answers\n"
      "{Pid, Term} with {echo, Term, self()} and gen_server calls with {echo, Request}.\n"
      "Prints the node's full name when ready. Stops on SIGINT/SIGTERM.\n"
      "\n"
      "Options:\n"
      "  --sname NAME                  short node name: NAME@<host name> (or NAME@HOST)\n"
      "  --name NAME                   long node name: NAME@<fully qualified host name> (or NAME@HOST)\n"
      "  --help                        this text\n"
      "\n"
      "%s",
      athanor::node_settings_help().c_str());
}

int usage_error(const std::string& message) { return athanor::tools::usage_error("athanor-node", message); }

athanor::proc cpp_echo(athanor::process& self, athanor::dist::node* node) {
  using namespace athanor;
  self.trap_exit(true);  // peers link to it; one going away must not take it down (exits arrive as mail)
  for (;;) {
    std::variant<term, exit_signal> got = co_await self.receive<term, exit_signal>();
    if (!std::holds_alternative<term>(got)) continue;  // a linked peer went away: nothing to do
    const term& m = std::get<term>(got);
    if (m.is_tuple() && m.tuple_size() == 3 && m.element(0) == term(atom("$gen_call")) && m.element(1).is_tuple() &&
        m.element(1).tuple_size() == 2 && m.element(1).element(0).is_pid()) {
      const term& from = m.element(1);
      send(from.element(0).as_pid(), tuple(from.element(1), tuple(atom("echo"), m.element(2))));
    } else if (m.is_tuple() && m.tuple_size() == 2 && m.element(0).is_pid()) {
      const pid who = m.element(0).as_pid();
      if (m.element(1) == term(atom("disconnect"))) {
        node->disconnect(node->node_of(who));
      } else if (m.element(1) == term(atom("exit_me"))) {
        // The link ends with reason bye, as if cpp_echo had ended, but cpp_echo goes on: the link is
        // removed (UNLINK_ID) and the reason sent (exit/2), so a trapping `who` gets
        // {'EXIT', cpp_echo, bye} and is no longer linked.
        athanor::unlink(who);
        athanor::exit(who, term(atom("bye")));
      } else {
        send(who, tuple(atom("echo"), m.element(1), self.self()));
      }
    }
  }
}

// A gen_server on terms, as an Elixir GenServer would be written.
struct counter : athanor::gen_server<counter> {
  std::int64_t count = 0;
  athanor::term handle_call(athanor::term request) {
    using athanor::atom, athanor::term;
    if (request == term(atom("get"))) return term(count);
    if (request.is_tuple() && request.tuple_size() == 2 && request.element(0) == term(atom("add")) && request.element(1).is_int64()) {
      count += request.element(1).as_int();
      return term(count);
    }
    return athanor::tuple(atom("error"), atom("unknown_request"));
  }
  void handle_cast(athanor::term request) {
    if (request == athanor::term(athanor::atom("reset"))) count = 0;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (athanor::tools::asks_for_help(argc, argv)) {  // first: it must work whatever the environment holds
    print_usage();
    return 0;
  }
  athanor::node_settings settings;
  try {
    settings = athanor::load_settings({}, argc, argv);
  } catch (const athanor::config_error& e) {
    return usage_error(e.what());
  }
  athanor::dist::node_config cfg;
  if (settings.node) cfg.name = *settings.node;
  if (settings.long_names && *settings.long_names) cfg.naming = athanor::dist::naming_mode::long_names;
  cfg.cookie = settings.cookie;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a != "--sname" && a != "--name") return usage_error("unknown option '" + a + "'");
    if (i + 1 >= argc) return usage_error(a + " needs a value");
    cfg.name = argv[++i];
    cfg.naming = a == "--sname" ? athanor::dist::naming_mode::short_names : athanor::dist::naming_mode::long_names;
  }
  if (cfg.name.empty()) return usage_error("give the node a name with --sname or --name");
  if (settings.log_level) athanor::logger::set_level(athanor::log_level(*athanor::find_log_level(*settings.log_level)));

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  athanor::runtime rt(athanor::to_runtime_config(settings));
  athanor::dist::node node;
  try {
    node = athanor::dist::start(cfg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "athanor-node: %s\n", e.what());
    return 1;
  }
  athanor::pid echo = athanor::spawn([&node](athanor::process& self) { return cpp_echo(self, &node); });
  athanor::register_name(athanor::atom("cpp_echo"), echo);
  athanor::dist::expose("math_cpp", "add", [](std::int64_t a, std::int64_t b) { return a + b; });
  std::promise<athanor::pid> counter_started;
  athanor::spawn([&counter_started](athanor::process&) -> athanor::proc {
    auto started = co_await athanor::start<counter>(athanor::server_options{.name = athanor::atom("counter")});
    counter_started.set_value(started ? started.value() : athanor::pid());
  });
  athanor::pid counter_pid = counter_started.get_future().get();
  std::printf("%s\n", node.full_name().full().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  node.stop();
  athanor::exit(echo, athanor::term(athanor::atom("kill")));
  if (counter_pid) athanor::exit(counter_pid, athanor::term(athanor::atom("kill")));
  return 0;
}
