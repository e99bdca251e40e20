// What the web example servers (athanor-chat, athanor-live) share: the command line
//   TOOL --port N [--host ADDR] [--sname NAME --cookie C [--join NODE]]
// and the life of the node: a runtime; with --sname, a distribution node with the PubSub relay
// (and a connection to --join, retried for a minute, as the node to join may be starting); the
// routes served until SIGINT or SIGTERM. Header-only, like command_line.h.
#pragma once

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "athanor/athanor.h"
#include "athanor/dist/node.h"
#include "athanor/web/pubsub.h"
#include "athanor/web/web.h"
#include "command_line.h"

namespace athanor::tools {

// Parses the flags (after --help was answered), runs the node and serves the routes
// `add_routes` adds (called once the runtime and node run; it may throw: the message is printed
// and the exit status is 1). When listening it prints its URL ("http://HOST:PORT/") and, with
// --sname, its node name, each on a line of its own. Returns main()'s exit status: 0 after a
// signal, 2 for a command-line mistake, 1 if the node or the server cannot start.
inline int run_web_node(std::string_view tool, int argc, char** argv, const std::function<void(web::router&)>& add_routes) {
  auto mistake = [&](const std::string& message) { return usage_error(tool, message); };
  std::uint16_t port = 4000;
  std::string host = "127.0.0.1", sname, cookie, join;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a != "--port" && a != "--host" && a != "--sname" && a != "--cookie" && a != "--join") {
      return mistake("unknown option '" + a + "'");
    }
    if (i + 1 >= argc) return mistake(a + " needs a value");
    const std::string v = argv[++i];
    if (a == "--port") {
      auto n = parse_integer(v, 0, 65535);
      if (!n) return mistake("--port must be 0..65535");
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
  if (sname.empty() && (!cookie.empty() || !join.empty())) return mistake("--cookie and --join need --sname");
  auto fail = [&](const std::exception& e) {
    std::fprintf(stderr, "%.*s: %s\n", int(tool.size()), tool.data(), e.what());
    return 1;
  };

  // Signals are taken by sigwait below: blocked before any thread starts, so every thread inherits it.
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
      return fail(e);
    }
    if (!join.empty()) {
      const atom peer(join.find('@') == std::string::npos ? join + "@" + std::string(node.full_name().host()) : join);
      const std::string name(tool);
      spawn([peer, name](process& self) -> proc {
        for (int attempt = 0; attempt < 60; ++attempt) {
          if (co_await dist::connect_node(peer)) co_return;
          co_await self.sleep(std::chrono::seconds(1));
        }
        std::fprintf(stderr, "%s: cannot connect to %s\n", name.c_str(), std::string(peer.name()).c_str());
      });
    }
  }
  web::server srv;
  try {
    web::router r;
    add_routes(r);
    srv = web::listen({.port = port, .host = host}, std::move(r));
  } catch (const std::exception& e) {
    return fail(e);
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

}  // namespace athanor::tools
