// athanor-live: LiveView examples served to browsers running the official phoenix_live_view client.
//   athanor-live --port N [--host ADDR] [--sname NAME --cookie C [--join NODE]]
// Without --sname it runs without distribution (no EPMD, no cookie file).
//
// The contract other checks drive (keep it stable): /counter loads the official client and
// connects a LiveSocket at /live (/live/websocket, /live/longpoll); an element with id `count`
// holds the current integer, starting at 0; buttons with phx-click="inc" and phx-click="dec".
// Each page keeps its own count. When ready it prints its URL ("http://HOST:PORT/") and, with
// --sname, its node name, each on a line of its own.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "athanor/live/token.h"
#include "athanor/live/view.h"
#include "athanor/web/pubsub.h"
#include "athanor/web/web.h"
#include "command_line.h"

extern const char athanor_live_phoenix_js[];
extern const char athanor_live_view_js[];

namespace {

using namespace athanor;

// /counter: the issue's contract.
struct counter : live::view<counter> {
  int count = 0;
  void mount(const term&, live::view_socket& s) { s.page_title("Count: 0"); }
  void handle_event(std::string_view event, const term&, live::view_socket& s) {
    if (event == "inc") ++count;
    if (event == "dec") --count;
    s.page_title("Count: " + std::to_string(count));
  }
  live::rendered render() const {
    static const live::html_template t(
        R"(<section class="counter"><h1>Count: <span id="count">{}</span></h1>)"
        R"(<button id="dec" phx-click="dec">-</button> <button id="inc" phx-click="inc">+</button></section>)");
    return t(count);
  }
};

constexpr const char* kIndex = R"html(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Athanor LiveView</title></head>
<body><h1>Athanor LiveView examples</h1>
<ul><li><a href="/counter">/counter</a>: a counter, one per page</li></ul>
</body></html>
)html";

void print_usage() {
  std::printf(
      "Usage: athanor-live --port N [--host ADDR] [--sname NAME --cookie C [--join NODE]]\n"
      "\n"
      "LiveView examples for browsers running the official phoenix_live_view client: a counter\n"
      "at /counter (the socket at /live). With --sname the node joins a cluster (Erlang\n"
      "distribution). Pages are signed with ATHANOR_SECRET_KEY_BASE, else\n"
      "~/.athanor_secret_key_base (made once), so they survive a restart. Stops on SIGINT/SIGTERM.\n"
      "\n"
      "Options:\n"
      "  --port N        TCP port to serve on (default 4000; 0: any free port)\n"
      "  --host ADDR     address to listen on (default 127.0.0.1)\n"
      "  --sname NAME    run as node NAME@<host name> (or NAME@HOST)\n"
      "  --cookie C      the distribution cookie (default: ~/.erlang.cookie, as erl)\n"
      "  --join NODE     connect to NODE (another athanor-live or athanor-chat) at start\n"
      "  --help          this text\n");
}

int usage_error(const std::string& message) { return tools::usage_error("athanor-live", message); }

}  // namespace

int main(int argc, char** argv) {
  if (tools::asks_for_help(argc, argv)) {
    print_usage();
    return 0;
  }
  std::uint16_t port = 4000;
  std::string host = "127.0.0.1", sname, cookie, join;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a != "--port" && a != "--host" && a != "--sname" && a != "--cookie" && a != "--join") {
      return usage_error("unknown option '" + a + "'");
    }
    if (i + 1 >= argc) return usage_error(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--port") {
      auto n = tools::parse_integer(v, 0, 65535);
      if (!n) return usage_error("--port must be 0..65535");
      port = std::uint16_t(*n);
    } else if (a == "--host") {
      host = v;
    } else if (a == "--sname") {
      sname = v;
    } else if (a == "--cookie") {
      cookie = v;
    } else {
      join = v;
    }
  }
  if (sname.empty() && (!cookie.empty() || !join.empty())) return usage_error("--cookie and --join need --sname");

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  runtime rt;
  dist::node node;
  if (!sname.empty()) {
    try {
      dist::node_config cfg;
      cfg.name = sname;
      if (!cookie.empty()) cfg.cookie = cookie;
      node = dist::start(cfg);
      web::pubsub::start_cluster();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "athanor-live: %s\n", e.what());
      return 1;
    }
    if (!join.empty()) {
      const atom peer(join.find('@') == std::string::npos ? join + "@" + std::string(node.full_name().host()) : join);
      spawn([peer](process& self) -> proc {  // keeps trying for a minute: the peer may be starting
        for (int attempt = 0; attempt < 60; ++attempt) {
          if (co_await dist::connect_node(peer)) co_return;
          co_await self.sleep(std::chrono::seconds(1));
        }
        std::fprintf(stderr, "athanor-live: cannot connect to %s\n", std::string(peer.name()).c_str());
      });
    }
  }

  std::unique_ptr<live::live_router> lv;
  try {
    lv = std::make_unique<live::live_router>();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "athanor-live: %s\n", e.what());
    return 1;
  }
  lv->live<counter>("/counter");
  web::router r;
  r.get("/", [](web::conn& c) { return c.html(200, kIndex); });
  r.get("/assets/phoenix.js", [](web::conn& c) { return c.send(200, athanor_live_phoenix_js, "text/javascript; charset=utf-8"); });
  r.get("/assets/phoenix_live_view.js",
        [](web::conn& c) { return c.send(200, athanor_live_view_js, "text/javascript; charset=utf-8"); });
  lv->mount(r);
  web::server srv;
  try {
    srv = web::listen({.port = port, .host = host}, std::move(r));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "athanor-live: %s\n", e.what());
    return 1;
  }
  std::printf("http://%s:%u/\n", host == "0.0.0.0" ? "localhost" : host.c_str(), unsigned(srv.port()));
  if (!sname.empty()) std::printf("%s\n", node.full_name().full().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  srv.stop(std::chrono::seconds(2));
  if (!sname.empty()) node.stop();
  return 0;
}
