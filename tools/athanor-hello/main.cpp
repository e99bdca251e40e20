// athanor-hello: the smallest useful Athanor web server, and the benchmark target.
//   athanor-hello [--port N] [--host ADDR] [--acceptors N] [--max-connections N] [--reuse-port]
//                 [--tls-cert FILE --tls-key FILE] [--static DIR] [node settings: --schedulers N ...]
// (athanor-hello --help lists them all; the node settings also come from ATHANOR_<KEY> variables
// and a --config file.)
// GET /hello/:name -> 200 "Hello, <name>" (text/plain); WebSocket echo at /echo; GET /broadcast
// sends "ping" to every /echo WebSocket joined with ?join=1 and reports how many got it.
// Stops gracefully on SIGINT/SIGTERM.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "athanor/athanor.h"
#include "athanor/runtime/config.h"
#include "athanor/web/web.h"
#include "command_line.h"

namespace {
// The /echo?join=1 WebSockets, by process: /broadcast pushes through their outboxes, each bounded
// (ws_options::max_outbox), so a member that stops reading is cut instead of growing memory.
std::mutex g_members_mu;
std::unordered_map<athanor::pid, athanor::web::ws_outbox> g_members;

void print_usage() {
  std::printf(
      "Usage: athanor-hello [options]\n"
      "\n"
      "A small web server: GET /hello/:name answers \"Hello, <name>\"; WebSocket /echo echoes;\n"
      "GET /broadcast sends \"ping\" to every /echo?join=1 WebSocket. Stops on SIGINT/SIGTERM.\n"
      "\n"
      "Options:\n"
      "  --port N                      TCP port to listen on (default 4000; 0: any free port)\n"
      "  --host ADDR                   address to listen on (default 0.0.0.0)\n"
      "  --acceptors N                 accepting processes (default 2)\n"
      "  --max-connections N           open connections at most; more get 503 (default 16384)\n"
      "  --reuse-port                  one SO_REUSEPORT socket per acceptor; the port may be shared\n"
      "  --tls-cert FILE               serve HTTPS with this certificate (PEM), with --tls-key\n"
      "  --tls-key FILE                the certificate's private key (PEM)\n"
      "  --static DIR                  serve the files under DIR at /static\n"
      "  --help                        this text\n"
      "\n"
      "%s",
      athanor::node_settings_help().c_str());
}

int usage_error(const std::string& message) { return athanor::tools::usage_error("athanor-hello", message); }
}  // namespace

int main(int argc, char** argv) {
  // --help first: it must work whatever the environment holds.
  if (athanor::tools::asks_for_help(argc, argv)) {
    print_usage();
    return 0;
  }
  athanor::node_settings settings;
  try {
    settings = athanor::load_settings({}, argc, argv);
  } catch (const athanor::config_error& e) {
    return usage_error(e.what());
  }
  athanor::web::server_config cfg;
  cfg.port = 4000;
  std::string cert, key, static_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--reuse-port") {
      cfg.reuse_port = true;
      continue;
    }
    const bool known = a == "--port" || a == "--host" || a == "--acceptors" || a == "--max-connections" ||
                       a == "--tls-cert" || a == "--tls-key" || a == "--static";
    if (!known) return usage_error((a.starts_with("-") ? "unknown flag '" : "unexpected argument '") + a + "'");
    if (i + 1 >= argc) return usage_error(a + ": expected a value after it");
    const std::string v = argv[++i];
    if (a == "--host") cfg.host = v;
    else if (a == "--tls-cert") cert = v;
    else if (a == "--tls-key") key = v;
    else if (a == "--static") static_dir = v;
    else {
      const unsigned long max = a == "--port" ? 65535 : a == "--acceptors" ? 1024 : 100'000'000;
      const std::optional<std::uint64_t> n = athanor::tools::parse_integer(v, a == "--port" ? 0 : 1, max);
      if (!n) return usage_error(a + ": expected an integer from " + (a == "--port" ? "0" : "1") + " to " +
                                 std::to_string(max) + ", got '" + v + "'");
      if (a == "--port") cfg.port = std::uint16_t(*n);
      else if (a == "--acceptors") cfg.acceptors = unsigned(*n);
      else cfg.max_connections = std::size_t(*n);
    }
  }
  if (cert.empty() != key.empty()) return usage_error("--tls-cert and --tls-key go together");
  if (!cert.empty()) cfg.tls = athanor::web::tls_config{cert, key};
  if (settings.log_level) athanor::logger::set_level(athanor::log_level(*athanor::find_log_level(*settings.log_level)));

  // Signals are taken synchronously by main (the schedulers never see them).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  athanor::runtime rt(athanor::to_runtime_config(settings));
  athanor::web::router r;
  r.get("/hello/:name", [](athanor::web::conn& c) { return c.text(200, "Hello, " + c.param("name")); });
  r.get("/broadcast", [](athanor::web::conn& c) {
    std::string text = c.param("text").empty() ? "ping" : c.param("text");
    std::vector<athanor::web::ws_outbox> boxes;
    {
      std::lock_guard lock(g_members_mu);
      boxes.reserve(g_members.size());
      for (const auto& [p, box] : g_members) boxes.push_back(box);
    }
    // A push never blocks; one to a member too far behind cuts it (1008) and counts as not reached.
    std::size_t n = 0;
    for (athanor::web::ws_outbox& box : boxes) n += box.push_text(text) ? 1 : 0;
    return c.text(200, std::to_string(n));
  });
  if (!static_dir.empty()) r.static_dir("/static", static_dir);
  r.websocket("/echo", [](athanor::web::ws& ws) -> athanor::proc {
    const athanor::pid me = athanor::self();
    const bool member = ws.param("join") == "1";
    if (member) {
      std::lock_guard lock(g_members_mu);
      g_members.emplace(me, ws.outbox());
    }
    // Broadcasts are written inside receive(): no mailbox, and no code for them here.
    while (std::optional<athanor::web::ws_message> m = co_await ws.receive()) co_await ws.send(std::move(*m));
    if (member) {
      std::lock_guard lock(g_members_mu);
      g_members.erase(me);
    }
  });

  athanor::web::server srv = athanor::web::listen(cfg, std::move(r));
  std::fprintf(stderr, "athanor-hello: listening on %s:%u%s (GET /hello/:name, WebSocket /echo)\n", cfg.host.c_str(),
               unsigned(srv.port()), cfg.tls ? " with TLS" : "");
  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "athanor-hello: %s, draining %zu connections\n", strsignal(sig), srv.connections());
  srv.stop(std::chrono::seconds(5));
  return 0;
}
