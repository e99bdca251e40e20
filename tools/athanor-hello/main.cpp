// athanor-hello: the smallest useful Athanor web server, and the benchmark target.
//   athanor-hello [--port N] [--host ADDR] [--acceptors N] [--schedulers N] [--max-connections N]
//                 [--tls-cert FILE --tls-key FILE] [--static DIR]
// GET /hello/:name -> 200 "Hello, <name>" (text/plain); WebSocket echo at /echo; GET /broadcast
// sends "ping" to every /echo WebSocket joined with ?join=1 and reports how many got it.
// Stops gracefully on SIGINT/SIGTERM.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_set>

#include "athanor/athanor.h"
#include "athanor/web/web.h"

namespace {
struct broadcast_msg {
  std::string text;
};
std::mutex g_members_mu;
std::unordered_set<athanor::pid> g_members;

void usage() {
  std::fprintf(stderr,
               "usage: athanor-hello [--port N] [--host ADDR] [--acceptors N] [--schedulers N] [--max-connections N]\n"
               "                     [--tls-cert FILE --tls-key FILE] [--static DIR]\n");
}
}  // namespace

int main(int argc, char** argv) {
  athanor::web::server_config cfg;
  cfg.port = 4000;
  unsigned schedulers = 0;
  std::string cert, key, static_dir;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--port") cfg.port = std::uint16_t(std::stoi(next()));
    else if (a == "--host") cfg.host = next();
    else if (a == "--acceptors") cfg.acceptors = unsigned(std::stoi(next()));
    else if (a == "--schedulers") schedulers = unsigned(std::stoi(next()));
    else if (a == "--max-connections") cfg.max_connections = std::stoul(next());
    else if (a == "--tls-cert") cert = next();
    else if (a == "--tls-key") key = next();
    else if (a == "--static") static_dir = next();
    else {
      usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (!cert.empty() || !key.empty()) cfg.tls = athanor::web::tls_config{cert, key};

  // Signals are taken synchronously by main (the schedulers never see them).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  athanor::runtime rt(athanor::runtime_config{.schedulers = schedulers});
  athanor::web::router r;
  r.get("/hello/:name", [](athanor::web::conn& c) { return c.text(200, "Hello, " + c.param("name")); });
  r.get("/broadcast", [](athanor::web::conn& c) {
    std::string text = c.param("text").empty() ? "ping" : c.param("text");
    std::size_t n = 0;
    {
      std::lock_guard lock(g_members_mu);
      for (athanor::pid p : g_members) athanor::send(p, broadcast_msg{text});
      n = g_members.size();
    }
    return c.text(200, std::to_string(n));
  });
  if (!static_dir.empty()) r.static_dir("/static", static_dir);
  r.websocket("/echo", [](athanor::web::ws& ws) -> athanor::proc {
    athanor::process& self = athanor::this_process();
    bool member = ws.param("join") == "1";
    if (member) {
      std::lock_guard lock(g_members_mu);
      g_members.insert(self.self());
    }
    for (;;) {
      std::optional<athanor::web::ws_message> m;
      if (member) m = co_await ws.receive_or_mail();
      else m = co_await ws.receive();
      if (!m) break;
      if (m->mailbox) {
        broadcast_msg b = co_await self.receive<broadcast_msg>();
        co_await ws.send_text(std::move(b.text));
        continue;
      }
      co_await ws.send(std::move(*m));
    }
    if (member) {
      std::lock_guard lock(g_members_mu);
      g_members.erase(self.self());
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
